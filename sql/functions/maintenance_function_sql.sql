-- tally.maintenance_function_sql(p_source regclass, p_event text) RETURNS text
--
-- Generates the statement-level trigger function that keeps every rollup of one source
-- table exact for one event ('insert', 'update', 'delete' or 'truncate'). The code is
-- static SQL, generated once at definition time and readable by a human:
--   1. one aggregation over the transition table(s) computes the signed change of every
--      rollup of the source at once (GROUPING SETS when rollups group differently), so
--      the changed rows are scanned once, however many rollups there are;
--   2. one upsert per rollup applies those changes as deltas, in key order, so
--      concurrent writers lock stats rows in the same order and cannot deadlock (an
--      UPDATE's groups whose change is zero are skipped by rollups of counts and exact
--      sums; the others are skipped as a whole when the UPDATE set none of their columns);
--   3. groups left with no matching source row are deleted;
--   4. min/max whose current extreme was removed are recomputed from the source for the
--      affected groups only.
-- A rollup in deferred mode (tally.deferred_rollups) gets none of 2-4: its changed group
-- keys are appended to tally.invalidations instead, for its refresh job. A rollup in
-- append mode (tally.rollups.pending_table) gets 2 as a plain INSERT of its changes into
-- its pending table, which takes no row lock, and none of 3-4.
-- An INSERT or DELETE that changed at most one row (an application's usual write) takes a
-- second path instead of 1-2: one statement per rollup takes the change straight from the
-- row, with no aggregation to plan and run and no RETURNING that nothing reads (one
-- statement serves all the rollups in append mode, which lock no stats row). It costs a
-- third less CPU per one-row insert (bench/TRIGGER_CPU.md); both paths lock rollups in the
-- same order.
-- Security: invoker (the generated function is SECURITY DEFINER, owned by the source
-- table's owner, so writers of the source need no privilege on the stats tables).
-- Since: 0.1.0
CREATE OR REPLACE FUNCTION tally.maintenance_function_sql(p_source regclass, p_event text)
RETURNS text
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    v_place tally.rollup_sources%ROWTYPE;
    v_function text;
    v_rollup record;
    v_column record;
    v_rollup_index integer := 0;
    v_rollup_names text[] := '{}';
    v_key_expressions text[] := '{}';
    v_row_expressions text[] := '{}';
    v_row_filters text[] := '{}';      -- the distinct row filters of the rollups
    v_every_rollup_filtered boolean := true;
    v_inner_filter text := '';
    v_sets text[] := '{}';
    v_rollup_sets integer[] := '{}';
    v_rollup_keys integer[];
    v_set text;
    v_changes text[] := '{}';
    v_one_row_changes text[];  -- one rollup's columns of changes, from a statement's one changed row
    v_one_row_columns text[] := '{}';  -- per rollup: those columns, as one list
    v_one_row_inners text[] := '{}';  -- per rollup: the changed row, with the expressions it reads
    v_one_row_statements text[] := '{}';  -- per rollup: its statement for one changed row
    v_final_starts integer[] := '{}';  -- per rollup: where its entries in v_finals start
    v_returning_clause text;
    v_upserts text[] := '{}';
    v_one_row_upserts text[] := '{}';
    v_upsert text;
    v_set_condition text;
    v_order_by text;
    v_finals text[] := '{}';
    v_final_targets text[] := '{}';
    v_declares text[] := '{}';
    v_after text[] := '{}';
    v_inner text;
    v_inner_columns text[] := '{}';
    v_group_by text;
    v_prefix text;
    v_rollup_condition text;
    v_measure_condition text;
    v_argument text;
    v_insert_columns text[];
    v_select_columns text[];
    v_set_clauses text[];
    v_returning text[];
    v_key_columns text[];
    v_conflict text;
    v_gone_columns text[];
    v_gone_match text[];
    v_gone_targets text[];
    v_change_column text;
    v_feed tally.change_feed%ROWTYPE;
    v_publish text[] := '{}';
    v_minmax_sets text[];
    v_minmax_removed text[];
    v_minmax_conditions text[];
    v_minmax_keys text[];
    v_minmax_match text[];
    v_key record;
    v_skip_check boolean;
    v_body text;
    v_uses_sign boolean := (p_event = 'update');
    -- a one-row INSERT or DELETE takes a path without aggregation (an UPDATE changes two rows)
    v_has_one_row_path boolean := p_event IN ('insert', 'delete');
    v_results_needed boolean;  -- whether the rollup's one-row statement reads what its upsert returns
    v_rollup_results_needed boolean[] := '{}';  -- that, per rollup
    -- Rollups in append mode whose one-row statement reads nothing back take no row lock:
    -- their appends share one statement (each statement costs about a microsecond).
    v_rollup_appends_together boolean[] := '{}';  -- per rollup: whether it is one of them
    v_together_changes text[] := '{}';  -- per such rollup: the CTE of its changes
    v_together_upserts text[] := '{}';  -- per such rollup: the CTE of its append, reading those
    v_together_statement text;
    -- a rollup in append mode: its changes of this statement become rows of its pending
    -- table (%9$s names the CTE that holds them)
    v_append_template constant text := E'upsert_%1$s AS (\n'
        '        -- rollup %1$s (append mode): append this statement''s changes to %2$s\n'
        '        INSERT INTO %2$s AS s (%3$s)\n'
        '        SELECT %4$s\n'
        '        FROM %9$s AS c\n'
        '        WHERE %5$sc.%6$s_touched > 0%7$s%8$s\n'
        '    )';
    v_main text;
    v_reindent boolean;  -- whether the one-row path may indent generated text (see below)
    v_inputs text;  -- the rollup's keys and expressions, as a select list over a changed row
    -- An argument that only count() reads is compared by whether it is NULL (as count
    -- sees it: IS DISTINCT FROM NULL), which is all that count reads of it (and json,
    -- say, has no equality to compare it by).
    v_counted_only text[];
    v_compared_inputs text;  -- v_inputs, as the comparison of old and new rows reads them
    v_compared_columns text[] := '{}';  -- v_inner_columns, likewise
    v_unnamed_checks text[] := '{}';  -- per rollup: does an UPDATE change what it reads after all?
    -- An UPDATE's change to a rollup of counts and sums is zero in every group where nothing
    -- it reads changed: such a rollup skips those groups, and needs no comparison of its
    -- own below (its UPDATE OF marks still tell the comparison for all rollups that an
    -- UPDATE named its columns). Only for sums whose zero is one value: bigint, numeric
    -- and money (min and max are not deltas; a float sum of the same values in another
    -- order may differ; interval '1 mon' equals '30 days' yet adds differently).
    v_skips_unchanged_groups boolean;
    v_skipping_rollups integer := 0;  -- how many rollups of the source do
    v_delta_conditions text[];  -- per rollup: "this group's change is not zero", per column
    v_update_condition text;  -- per rollup: which of its groups an UPDATE writes
    -- "what the select list %1$s reads differs between the new and the old rows" (as
    -- multisets; both sides hold as many rows, so one direction tells)
    v_inputs_changed constant text := E'EXISTS (\n'
        '        SELECT %1$s\n'
        '        FROM tally_new_rows\n'
        '        EXCEPT ALL\n'
        '        SELECT %1$s\n'
        '        FROM tally_old_rows\n'
        '    )';
    v_source_text text := p_source::text;
    v_partition_guard text;  -- code that lets writes to detached partitions go
    v_gone_rollups text[];
    i integer;
BEGIN
    IF p_event NOT IN ('insert', 'update', 'delete', 'truncate') THEN
        RAISE EXCEPTION 'unknown trigger event "%"', p_event
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT * INTO STRICT v_place FROM tally.rollup_sources WHERE source_table = p_source;
    v_function := format('%I.%I', v_place.function_schema, v_place.function_prefix || '_' || p_event);
    -- a rollup whose stats went (DROP SCHEMA ... CASCADE) cannot be kept: the code would
    -- name a table that is gone, and every write to the source would fail
    v_gone_rollups := tally.rollups_without_stats(p_source);
    IF cardinality(v_gone_rollups) > 0 THEN
        RAISE EXCEPTION 'the stats tables of rollup(s) % of % are gone', array_to_string(v_gone_rollups, ', '), v_source_text
            USING ERRCODE = 'undefined_table',
                  HINT = 'Drop them with: ' || (SELECT string_agg(format('SELECT tally.drop_rollup(%L);', g), ' ')
                                                FROM unnest(v_gone_rollups) AS g);
    END IF;

    -- The functions of a partitioned source serve its partitions too (a statement that names
    -- a partition fires only that partition's triggers), whose triggers pass one argument
    -- ('partition'). A table detached since may still carry them for a while: its writes
    -- are no longer the source's. It is told apart from the catalogue alone, by whether a
    -- table above it still carries a source's trigger (one without arguments), so neither
    -- the source's name (it may be renamed) nor its oid (a restored dump has others) is
    -- written into the code, and writes to the source itself test nothing.
    IF (SELECT c.relkind FROM pg_catalog.pg_class AS c WHERE c.oid = p_source) = 'p' THEN
        v_partition_guard := E'IF TG_NARGS > 0 AND NOT EXISTS (\n'
'        SELECT FROM pg_partition_ancestors(TG_RELID) AS a (relid)\n'
'        JOIN pg_trigger AS t ON t.tgrelid = a.relid AND t.tgname = ''tally_maintain_insert'' AND t.tgnargs = 0\n'
'    ) THEN\n'
'        RETURN NULL;  -- a table detached from the source: its rows are no longer the source''s\n'
'    END IF;';
    END IF;

    IF p_event = 'truncate' THEN
        RETURN format($code$CREATE OR REPLACE FUNCTION %s()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
%sAS $generated$
-- Generated by pgtally for source %s: TRUNCATE empties every stats table of its rollups.
-- Do not edit: tally.regenerate_all_rollups() writes it again from the catalogue.
%sBEGIN
    %sTRUNCATE %s;%s
    RETURN NULL;
END;
$generated$;
$code$,
            v_function,
            -- row security off: a policy that hid rows from the emptiness check would let a
            -- partition's TRUNCATE through; with it off such a check fails, and refuses
            CASE WHEN v_partition_guard IS NOT NULL THEN E'SET row_security = off\n' ELSE '' END,
            v_source_text,
            CASE WHEN v_partition_guard IS NOT NULL
                 THEN E'DECLARE\n    v_source regclass;\n    v_leaf regclass;\n    v_refused boolean;\n' ELSE '' END,
            -- TRUNCATE has no transition table: a partition emptied alone would leave its
            -- rows in the stats. AFTER triggers run once every table named is empty, so an
            -- empty source then means the whole of it was truncated; it is locked against
            -- writers first (NOWAIT: no waiting while holding the partition) so that it stays
            -- so. A snapshot older than this statement cannot tell, so above READ COMMITTED
            -- only a transaction that truncates the whole source (holding it ACCESS
            -- EXCLUSIVE) may. The source is found as v_partition_guard finds it, and only once.
            CASE WHEN v_partition_guard IS NOT NULL THEN E'IF TG_NARGS > 0 THEN\n'
'        SELECT a.relid INTO v_source\n'
'        FROM pg_partition_ancestors(TG_RELID) AS a (relid)\n'
'        JOIN pg_trigger AS t ON t.tgrelid = a.relid AND t.tgname = ''tally_maintain_insert'' AND t.tgnargs = 0;\n'
'        IF v_source IS NULL THEN\n'
'            RETURN NULL;  -- a table detached from the source: its rows are no longer the source''s\n'
'        END IF;\n'
'        BEGIN\n'
'            EXECUTE format(''LOCK TABLE %s IN SHARE MODE NOWAIT'', v_source);\n'
'            -- leaf by leaf: a policy on the source does not filter its partitions\n'
'            v_refused := false;\n'
'            FOR v_leaf IN SELECT p.relid FROM pg_partition_tree(v_source) AS p WHERE p.isleaf LOOP\n'
'                EXECUTE format(''SELECT EXISTS (SELECT FROM %s)'', v_leaf) INTO v_refused;\n'
'                EXIT WHEN v_refused;\n'
'            END LOOP;\n'
'        EXCEPTION WHEN lock_not_available OR insufficient_privilege THEN\n'
'            v_refused := true;  -- others are writing to the source, or row security hides rows\n'
'        END;\n'
'        -- an older snapshot cannot tell, unless this transaction truncates the whole source\n'
'        IF v_refused OR current_setting(''transaction_isolation'') <> ''read committed'' AND NOT EXISTS (\n'
'            SELECT FROM pg_locks AS l\n'
'            WHERE l.locktype = ''relation'' AND l.relation = v_source AND l.pid = pg_backend_pid()\n'
'              AND l.mode = ''AccessExclusiveLock'' AND l.granted\n'
'              AND l.database = (SELECT d.oid FROM pg_database AS d WHERE d.datname = current_database())\n'
'        ) THEN\n'
'            RAISE EXCEPTION ''cannot truncate % alone: it is a partition of %, whose rollups count its rows'',\n'
'                TG_RELID::regclass, v_source\n'
'                USING ERRCODE = ''feature_not_supported'',\n'
'                      HINT = ''DELETE FROM the partition keeps the rollups exact; TRUNCATE of the whole table does too.'';\n'
'        END IF;\n'
'    END IF;\n    ' ELSE '' END,
            (SELECT string_agg(concat_ws(', ', coalesce(r.slot_table, r.stats_table), r.pending_table), ', '
                               ORDER BY r.rollup_name)
             FROM tally.rollups AS r WHERE r.source_table = p_source),
            (SELECT string_agg(format(E'\n    PERFORM tally.publish_change(%L, TG_OP, NULL, NULL);', f.rollup_name), ''
                               ORDER BY f.rollup_name)
             FROM tally.change_feed AS f JOIN tally.rollups AS r USING (rollup_name)
             WHERE r.source_table = p_source));
    END IF;

    -- A user BEFORE UPDATE row trigger may change rollup columns that the UPDATE's SET list
    -- does not name; then "UPDATE OF" cannot tell us which rollups an UPDATE touched.
    v_skip_check := p_event = 'update' AND NOT tally.has_user_update_row_trigger(p_source);

    -- Pass 1: number the distinct key expressions, row expressions and grouping sets.
    FOR v_rollup IN
        SELECT r.* FROM tally.rollups AS r WHERE r.source_table = p_source ORDER BY r.rollup_name
    LOOP
        v_rollup_names := v_rollup_names || v_rollup.rollup_name;
        v_rollup_keys := '{}';
        FOR v_key IN
            SELECT k.* FROM tally.rollup_keys AS k
            WHERE k.rollup_name = v_rollup.rollup_name ORDER BY k.key_position
        LOOP
            IF NOT v_key.key_expression = ANY (v_key_expressions) THEN
                v_key_expressions := v_key_expressions || v_key.key_expression;
            END IF;
            v_rollup_keys := v_rollup_keys || array_position(v_key_expressions, v_key.key_expression);
        END LOOP;
        v_set := (SELECT coalesce(string_agg(x::text, ',' ORDER BY x), '') FROM unnest(v_rollup_keys) AS x);
        IF NOT v_set = ANY (v_sets) THEN
            v_sets := v_sets || v_set;
        END IF;
        v_rollup_sets := v_rollup_sets || array_position(v_sets, v_set);
        IF v_rollup.row_filter IS NOT NULL AND NOT v_rollup.row_filter = ANY (v_row_expressions) THEN
            v_row_expressions := v_row_expressions || v_rollup.row_filter;
        END IF;
        IF v_rollup.row_filter IS NULL THEN
            v_every_rollup_filtered := false;
        ELSIF NOT v_rollup.row_filter = ANY (v_row_filters) THEN
            v_row_filters := v_row_filters || v_rollup.row_filter;
        END IF;
        v_row_expressions := v_row_expressions || ARRAY(
            SELECT e FROM (
                SELECT m.argument_expression AS e, m.measure_position * 2 AS o
                FROM tally.rollup_measures AS m WHERE m.rollup_name = v_rollup.rollup_name
                UNION ALL
                SELECT m.measure_filter, m.measure_position * 2 + 1
                FROM tally.rollup_measures AS m WHERE m.rollup_name = v_rollup.rollup_name
            ) AS x
            WHERE e IS NOT NULL AND NOT e = ANY (v_row_expressions)
            ORDER BY o
        );
        -- the ARRAY above may repeat an expression used twice within one rollup
        v_row_expressions := ARRAY(
            SELECT e FROM unnest(v_row_expressions) WITH ORDINALITY AS u(e, o)
            GROUP BY e ORDER BY min(o)
        );
    END LOOP;

    IF cardinality(v_rollup_names) = 0 THEN
        RAISE EXCEPTION 'source % has no rollups', v_source_text USING ERRCODE = 'undefined_object';
    END IF;

    -- The changed rows, each expression computed once per row.
    FOR i IN 1 .. cardinality(v_key_expressions) LOOP
        v_inner_columns := v_inner_columns || format('(%s) AS k%s', v_key_expressions[i], i);
    END LOOP;
    FOR i IN 1 .. cardinality(v_row_expressions) LOOP
        v_inner_columns := v_inner_columns || format('(%s) AS e%s', v_row_expressions[i], i);
    END LOOP;
    v_counted_only := ARRAY(
        SELECT m.argument_expression FROM tally.rollup_measures AS m JOIN tally.rollups AS r USING (rollup_name)
        WHERE r.source_table = p_source AND m.aggregate_function = 'count'
        EXCEPT
        SELECT x.e FROM tally.rollups AS r
        LEFT JOIN tally.rollup_measures AS m USING (rollup_name)
        CROSS JOIN LATERAL (VALUES (r.row_filter), (m.measure_filter),
                                   (CASE WHEN m.aggregate_function <> 'count' THEN m.argument_expression END)) AS x(e)
        WHERE r.source_table = p_source);
    v_compared_columns := v_inner_columns[1:cardinality(v_key_expressions)] || ARRAY(
        SELECT format(CASE WHEN e = ANY (v_counted_only) THEN '(%s) IS DISTINCT FROM NULL AS e%s' ELSE '(%s) AS e%s' END, e, o)
        FROM unnest(v_row_expressions) WITH ORDINALITY AS u(e, o) ORDER BY o);
    -- When every rollup has a row filter, rows matching none of them change nothing: they
    -- are left out before the aggregation (NULL counts as false, as in the FILTERs).
    IF v_every_rollup_filtered THEN
        v_inner_filter := E'\n            WHERE ' || (SELECT string_agg(format('(%s)', f), ' OR ' ORDER BY o)
                                                  FROM unnest(v_row_filters) WITH ORDINALITY AS u(f, o));
    END IF;
    v_inner := CASE p_event
        WHEN 'insert' THEN format(E'SELECT %s\n            FROM tally_new_rows%s',
                                  array_to_string(v_inner_columns, E',\n                   '), v_inner_filter)
        WHEN 'delete' THEN format(E'SELECT %s\n            FROM tally_old_rows%s',
                                  array_to_string(v_inner_columns, E',\n                   '), v_inner_filter)
        ELSE format(E'SELECT %1$s\n            FROM tally_new_rows%3$s\n            UNION ALL\n            SELECT %2$s\n            FROM tally_old_rows%3$s',
                    array_to_string('1 AS change_sign'::text || v_inner_columns, E',\n                   '),
                    array_to_string('-1'::text || v_inner_columns, E',\n                   '), v_inner_filter)
    END;

    IF cardinality(v_sets) > 1 THEN
        v_changes := v_changes || format('GROUPING(%s) AS grouping_set',
            (SELECT string_agg('k' || g.n, ', ') FROM generate_series(1, cardinality(v_key_expressions)) AS g(n)));
        v_group_by := format(E'\n        GROUP BY GROUPING SETS (%s)',
            (SELECT string_agg(CASE WHEN s = '' THEN '()'
                                    ELSE '(' || (SELECT string_agg('k' || x, ', ') FROM unnest(string_to_array(s, ',')) AS x) || ')' END,
                               ', ' ORDER BY o)
             FROM unnest(v_sets) WITH ORDINALITY AS u(s, o)));
    ELSIF v_sets[1] <> '' THEN
        v_group_by := format(E'\n        GROUP BY %s',
            (SELECT string_agg('k' || x, ', ') FROM unnest(string_to_array(v_sets[1], ',')) AS x));
    ELSE
        v_group_by := '';
    END IF;
    FOR i IN 1 .. cardinality(v_key_expressions) LOOP
        v_changes := v_changes || ('k' || i);
    END LOOP;

    -- Pass 2: per rollup, its columns in the aggregation, its upsert and its clean-up.
    FOR v_rollup IN
        SELECT r.* FROM tally.rollups AS r WHERE r.source_table = p_source ORDER BY r.rollup_name
    LOOP
        v_rollup_index := v_rollup_index + 1;
        -- What a rollup's upsert returns is read only by its change feed and, for UPDATE
        -- and DELETE, by the removal of its emptied groups (a plain stats table's): the
        -- one-row path of the others skips it.
        v_results_needed := EXISTS (SELECT FROM tally.change_feed AS f WHERE f.rollup_name = v_rollup.rollup_name)
            OR (p_event <> 'insert' AND v_rollup.slot_table IS NULL
                AND NOT EXISTS (SELECT FROM tally.deferred_rollups AS d WHERE d.rollup_name = v_rollup.rollup_name));
        v_rollup_results_needed := v_rollup_results_needed || v_results_needed;
        v_rollup_appends_together := v_rollup_appends_together
            || (v_has_one_row_path AND v_rollup.pending_table IS NOT NULL AND NOT v_results_needed);
        v_final_starts := v_final_starts || (cardinality(v_finals) + 1);
        v_prefix := 'r' || v_rollup_index;
        v_rollup_condition := CASE WHEN v_rollup.row_filter IS NULL THEN 'true'
                                   ELSE 'e' || array_position(v_row_expressions, v_rollup.row_filter) END;
        v_changes := v_changes || format(E'-- rollup %s\n               count(*) FILTER (WHERE %s) AS %s_touched',
                                         v_rollup.rollup_name, v_rollup_condition, v_prefix);
        v_one_row_changes := ARRAY(  -- each key expression once (two keys of a rollup may share one)
                SELECT 'k' || array_position(v_key_expressions, k.key_expression)
                FROM tally.rollup_keys AS k WHERE k.rollup_name = v_rollup.rollup_name
                GROUP BY k.key_expression ORDER BY min(k.key_position))
            || format('%s AS %s_touched', tally.one_row_count_sql('insert', v_rollup_condition), v_prefix);
        -- what this rollup reads of a row: its keys and the expressions it uses, picked
        -- from the shared pass's columns (each once, keys first, in that pass's order)
        SELECT string_agg(v_inner_columns[o], E',\n                   ' ORDER BY o),
               string_agg(v_compared_columns[o], E',\n               ' ORDER BY o)
        INTO v_inputs, v_compared_inputs
        FROM (SELECT array_position(v_key_expressions, k.key_expression)
              FROM tally.rollup_keys AS k WHERE k.rollup_name = v_rollup.rollup_name
              UNION
              SELECT cardinality(v_key_expressions) + array_position(v_row_expressions, x.e)
              FROM (SELECT v_rollup.row_filter
                    UNION ALL SELECT m.argument_expression FROM tally.rollup_measures AS m
                              WHERE m.rollup_name = v_rollup.rollup_name
                    UNION ALL SELECT m.measure_filter FROM tally.rollup_measures AS m
                              WHERE m.rollup_name = v_rollup.rollup_name) AS x(e)
              WHERE x.e IS NOT NULL) AS u(o);
        v_skips_unchanged_groups := p_event = 'update'
            AND NOT EXISTS (SELECT FROM tally.deferred_rollups AS d WHERE d.rollup_name = v_rollup.rollup_name)
            AND NOT EXISTS (SELECT FROM tally.rollup_measures AS m
                            WHERE m.rollup_name = v_rollup.rollup_name
                              AND (m.aggregate_function NOT IN ('count', 'sum', 'avg')
                                   OR m.aggregate_function = 'sum' AND m.result_type NOT IN ('bigint', 'numeric', 'money')
                                   OR m.state_type IS NOT NULL AND m.state_type NOT IN ('bigint', 'numeric', 'money')));
        IF v_skips_unchanged_groups THEN
            v_skipping_rollups := v_skipping_rollups + 1;
        ELSIF v_skip_check THEN
            -- an UPDATE whose UPDATE OF triggers did not name this rollup changed nothing it
            -- reads, unless several UPDATEs of the source ran in one query (writable CTEs,
            -- foreign-key cascades): they share these transition tables, but PostgreSQL
            -- fires only the last one's UPDATE OF triggers. Then what it reads differs
            -- between the old and the new rows (as multisets: as many rows on each side).
            v_unnamed_checks := v_unnamed_checks || format(
E'IF v_relevant_rollups NOT LIKE %1$L AND %2$s THEN\n'
'        v_relevant_rollups := v_relevant_rollups || %3$L;  -- rollup %4$s\n'
'    END IF;',
                '%,' || v_rollup.rollup_name || ',%',
                format(v_inputs_changed, coalesce(v_compared_inputs, 'NULL')),
                v_rollup.rollup_name || ',', v_rollup.rollup_name);
        END IF;
        v_one_row_inners := v_one_row_inners || CASE WHEN v_has_one_row_path THEN format(E'SELECT %s\n            FROM %s%s',
            v_inputs,
            CASE p_event WHEN 'insert' THEN 'tally_new_rows' ELSE 'tally_old_rows' END,
            CASE WHEN v_rollup.row_filter IS NOT NULL
                 THEN format(E'\n            WHERE (%s)', v_rollup.row_filter) ELSE '' END) END;
        -- which of its groups an UPDATE writes: all, once marked (v_skip_check); a rollup
        -- that skips unchanged groups gets its own condition below
        v_update_condition := CASE WHEN v_skip_check
            THEN format(' AND v_relevant_rollups LIKE %L', '%,' || v_rollup.rollup_name || ',%') ELSE '' END;
        v_set_condition := CASE WHEN cardinality(v_sets) > 1
            THEN format('c.grouping_set = %s AND ', tally.grouping_value(
                     string_to_array(nullif(v_sets[v_rollup_sets[v_rollup_index]], ''), ',')::integer[],
                     cardinality(v_key_expressions)))
            ELSE '' END;

        IF EXISTS (SELECT FROM tally.deferred_rollups AS d WHERE d.rollup_name = v_rollup.rollup_name) THEN
            -- deferred mode: no stats row is touched; the changed groups are recorded for
            -- the refresh job (insert-only, de-duplicated when refreshed)
            v_upsert := format(
E'upsert_%1$s AS (\n'
'        -- rollup %1$s (deferred): record the changed groups for its refresh job\n'
'        INSERT INTO tally.invalidations (rollup_name, group_key)\n'
'        SELECT %2$L, %3$s\n'
'        FROM changes AS c\n'
'        WHERE %4$sc.%5$s_touched > 0%6$s%7$s\n'
'    )',
                v_rollup.rollup_name, v_rollup.rollup_name,
                coalesce((SELECT 'jsonb_build_object(' || string_agg(
                              format('%L, c.k%s', k.key_name, array_position(v_key_expressions, k.key_expression)),
                              ', ' ORDER BY k.key_position) || ')'
                          FROM tally.rollup_keys AS k WHERE k.rollup_name = v_rollup.rollup_name),
                         '''{}''::jsonb'),
                v_set_condition,
                v_prefix,
                v_update_condition,
                E'\n        RETURNING 1');
            v_upserts := v_upserts || v_upsert;
            v_one_row_upserts := v_one_row_upserts || replace(replace(v_upsert,
                'WHERE ' || v_set_condition, 'WHERE '),
                CASE WHEN v_results_needed THEN '' ELSE E'\n        RETURNING 1' END, '');
            v_one_row_columns := v_one_row_columns || array_to_string(v_one_row_changes, E',\n               ');
            v_declares := v_declares || format('v_%s_changed bigint;  -- groups of rollup %s invalidated',
                                               v_prefix, v_rollup.rollup_name);
            v_finals := v_finals || format('(SELECT count(*) FROM upsert_%s)', v_rollup.rollup_name);
            v_final_targets := v_final_targets || format('v_%s_changed', v_prefix);
            CONTINUE;
        END IF;

        v_changes := v_changes
            || format('%s AS %s_rows', tally.signed_count_sql(p_event, v_rollup_condition), v_prefix);
        IF v_has_one_row_path THEN
            v_one_row_changes := v_one_row_changes
                || format('%s AS %s_rows', tally.one_row_count_sql(p_event, v_rollup_condition), v_prefix);
        END IF;

        v_delta_conditions := ARRAY[format('c.%s_rows <> 0', v_prefix)];
        v_insert_columns := '{}';
        v_select_columns := '{}';
        v_set_clauses := '{}';
        v_returning := '{}';
        v_key_columns := '{}';
        v_gone_columns := '{}';
        v_gone_targets := '{}';
        v_gone_match := '{}';
        v_minmax_sets := '{}';
        v_minmax_removed := '{}';
        v_minmax_conditions := '{}';
        v_minmax_keys := '{}';
        v_minmax_match := '{}';

        FOR v_column IN
            SELECT c.*, m.measure_name, m.argument_expression, m.measure_filter, k.key_expression, k.key_not_null
            FROM tally.stats_columns(v_rollup.rollup_name) AS c
            LEFT JOIN tally.rollup_measures AS m
                ON m.rollup_name = v_rollup.rollup_name AND m.measure_position = c.measure_position
            LEFT JOIN tally.rollup_keys AS k
                ON k.rollup_name = v_rollup.rollup_name AND k.key_position = c.key_position
        LOOP
            v_argument := 'e' || array_position(v_row_expressions, v_column.argument_expression);
            v_measure_condition := concat_ws(' AND ', v_rollup_condition,
                'e' || array_position(v_row_expressions, v_column.measure_filter),
                -- what count(x) counts, sum(x) adds up: x itself not NULL (IS NOT NULL of a
                -- composite value would ask that of every field; this form does not)
                v_argument || ' IS DISTINCT FROM NULL');
            v_change_column := format('%s_m%s', v_prefix, v_column.measure_position);

            IF v_column.column_role = 'key' THEN
                i := array_position(v_key_expressions, v_column.key_expression);
                v_insert_columns := v_insert_columns || quote_ident(v_column.column_name);
                v_select_columns := v_select_columns || ('c.k' || i);
                v_key_columns := v_key_columns || quote_ident(v_column.column_name);
                v_returning := v_returning || format('s.%I', v_column.column_name);
                IF v_rollup.slot_table IS NULL AND p_event <> 'insert' THEN
                    v_declares := v_declares || format('v_%s_gone_k%s %s[];', v_prefix, v_column.key_position,
                                                       v_column.column_type);
                END IF;
                v_gone_columns := v_gone_columns || format('array_agg(%I) FILTER (WHERE _tally_rows = 0)', v_column.column_name);
                v_gone_targets := v_gone_targets || format('v_%s_gone_k%s', v_prefix, v_column.key_position);
                v_gone_match := v_gone_match || format(
                    CASE WHEN v_column.key_not_null THEN 's.%I = gone.k%s' ELSE 's.%I IS NOT DISTINCT FROM gone.k%s' END,
                    v_column.column_name, v_column.key_position);
                v_minmax_keys := v_minmax_keys || format('(%s) AS k%s', v_column.key_expression, v_column.key_position);
                v_minmax_match := v_minmax_match || format(
                    CASE WHEN v_column.key_not_null THEN 's.%I = removed.k%s' ELSE 's.%I IS NOT DISTINCT FROM removed.k%s' END,
                    v_column.column_name, v_column.key_position);
                v_minmax_conditions := v_minmax_conditions || format(
                    CASE WHEN v_column.key_not_null THEN '(%s) = s.%I' ELSE '(%s) IS NOT DISTINCT FROM s.%I' END,
                    v_column.key_expression, v_column.column_name);
            ELSIF v_column.column_role = 'rows' THEN
                v_insert_columns := v_insert_columns || '_tally_rows'::text;
                v_select_columns := v_select_columns || format('c.%s_rows', v_prefix);
                v_set_clauses := v_set_clauses || '_tally_rows = s._tally_rows + excluded._tally_rows'::text;
                v_returning := v_returning || 's._tally_rows'::text;
            ELSIF v_column.column_role = 'nonnull' THEN
                v_changes := v_changes || format('%s AS %s_n',
                    tally.signed_count_sql(p_event, v_measure_condition), v_change_column);
                IF v_has_one_row_path THEN
                    v_one_row_changes := v_one_row_changes || format('%s AS %s_n',
                        tally.one_row_count_sql(p_event, v_measure_condition), v_change_column);
                END IF;
                v_delta_conditions := v_delta_conditions || format('c.%s_n <> 0', v_change_column);
                v_insert_columns := v_insert_columns || quote_ident(v_column.column_name);
                v_select_columns := v_select_columns || format('c.%s_n', v_change_column);
                v_set_clauses := v_set_clauses || format('%1$I = s.%1$I + excluded.%1$I', v_column.column_name);
            ELSIF v_column.column_role = 'value' AND v_column.aggregate_function = 'count' THEN
                v_changes := v_changes || format('%s AS %s',
                    tally.signed_count_sql(p_event, v_measure_condition), v_change_column);
                IF v_has_one_row_path THEN
                    v_one_row_changes := v_one_row_changes || format('%s AS %s',
                        tally.one_row_count_sql(p_event, v_measure_condition), v_change_column);
                END IF;
                v_delta_conditions := v_delta_conditions || format('c.%s <> 0', v_change_column);
                v_insert_columns := v_insert_columns || quote_ident(v_column.column_name);
                v_select_columns := v_select_columns || ('c.' || v_change_column);
                v_set_clauses := v_set_clauses || format('%1$I = s.%1$I + excluded.%1$I', v_column.column_name);
            ELSIF (v_column.column_role = 'value' AND v_column.aggregate_function = 'sum')
               OR v_column.column_role = 'sum_state' THEN
                v_changes := v_changes || format('%s AS %s',
                    CASE WHEN p_event = 'update' AND v_column.column_type = 'numeric' THEN format(
                        -- equal sums on both sides change nothing, infinite or NaN ones too
                        -- (where new - old would be NaN)
                        'CASE WHEN sum(%1$s) FILTER (WHERE change_sign > 0 AND %2$s) = '
                        'sum(%1$s) FILTER (WHERE change_sign < 0 AND %2$s) THEN 0 ELSE %3$s END',
                        v_argument, v_measure_condition, tally.signed_sum_sql(p_event, v_argument, v_measure_condition))
                    ELSE tally.signed_sum_sql(p_event, v_argument, v_measure_condition) END,
                    v_change_column);
                IF v_has_one_row_path THEN
                    v_one_row_changes := v_one_row_changes || format('%s AS %s',
                        tally.one_row_sum_sql(p_event, v_argument, v_measure_condition, v_column.column_type),
                        v_change_column);
                END IF;
                -- a NULL change (no non-NULL value on either side) is no change
                v_delta_conditions := v_delta_conditions || format('c.%s <> ''0''', v_change_column);
                v_insert_columns := v_insert_columns || quote_ident(v_column.column_name);
                v_select_columns := v_select_columns || ('c.' || v_change_column);
                v_set_clauses := v_set_clauses || CASE
                    WHEN v_rollup.slot_table IS NOT NULL THEN
                        -- a slot holds a partial sum: NULL only in the view, when the group has no value
                        format('%1$I = coalesce(s.%1$I, ''0'') + coalesce(excluded.%1$I, ''0'')', v_column.column_name)
                    ELSE format(
                        '%1$I = CASE WHEN s.%2$I + excluded.%2$I = 0 THEN NULL WHEN s.%1$I IS NULL THEN excluded.%1$I '
                        'WHEN excluded.%1$I IS NULL THEN s.%1$I ELSE s.%1$I + excluded.%1$I END',
                        v_column.column_name, '_tally_n_' || v_column.measure_name) END;
            ELSIF v_column.column_role = 'value' AND v_column.aggregate_function IN ('min', 'max') THEN
                v_changes := v_changes || format('%s AS %s',
                    CASE WHEN p_event = 'delete' THEN format('NULL::%s', v_column.column_type)
                         ELSE format('%s(%s) FILTER (WHERE %s%s)', v_column.aggregate_function, v_argument,
                                     CASE WHEN v_uses_sign THEN 'change_sign > 0 AND ' ELSE '' END,
                                     v_measure_condition) END,
                    v_change_column);
                IF v_has_one_row_path THEN
                    -- one inserted row is its own extreme; a deleted one is recomputed below
                    v_one_row_changes := v_one_row_changes || format('%s AS %s',
                        CASE WHEN p_event = 'delete' THEN format('NULL::%s', v_column.column_type)
                             ELSE format('CASE WHEN %s THEN %s END', v_measure_condition, v_argument) END,
                        v_change_column);
                END IF;
                v_insert_columns := v_insert_columns || quote_ident(v_column.column_name);
                v_select_columns := v_select_columns || ('c.' || v_change_column);
                v_set_clauses := v_set_clauses || format(
                    '%1$I = CASE WHEN s.%2$I + excluded.%2$I = 0 THEN NULL ELSE %3$s(s.%1$I, excluded.%1$I) END',
                    v_column.column_name, '_tally_n_' || v_column.measure_name,
                    CASE v_column.aggregate_function WHEN 'min' THEN 'least' ELSE 'greatest' END);
                IF p_event <> 'insert' THEN
                    v_minmax_removed := v_minmax_removed || format('%s((%s)) FILTER (WHERE %s) AS %I',
                        v_column.aggregate_function, v_column.argument_expression,
                        coalesce('(' || v_column.measure_filter || ')', 'true'),
                        v_column.column_name);
                    v_minmax_sets := v_minmax_sets || format(
                        '%1$I = CASE WHEN removed.%1$I %2$s s.%1$I THEN (SELECT %3$s((%4$s)) FROM %5$s AS tally_source WHERE %6$s) ELSE s.%1$I END',
                        v_column.column_name,
                        CASE v_column.aggregate_function WHEN 'min' THEN '<=' ELSE '>=' END,
                        v_column.aggregate_function, v_column.argument_expression, v_source_text,
                        coalesce(nullif(concat_ws(' AND ', nullif(array_to_string(v_minmax_conditions, ' AND '), ''),
                                                  '(' || v_rollup.row_filter || ')',
                                                  '(' || v_column.measure_filter || ')'), ''),
                                 'true'));
                END IF;
            END IF;
        END LOOP;

        IF v_skips_unchanged_groups THEN
            v_update_condition := format(' AND (%s)', array_to_string(v_delta_conditions, ' OR '));
        END IF;

        IF v_rollup.pending_table IS NOT NULL THEN
            NULL;  -- append mode: each statement's changes are rows of their own, in no slot
        ELSIF v_rollup.slot_table IS NOT NULL THEN
            -- hot groups split over slots: this backend adds to its own slot row of each group
            v_insert_columns := v_insert_columns || '_tally_slot'::text;
            v_select_columns := v_select_columns || format('(1 + pg_backend_pid() %% %s)::smallint', v_rollup.slots);
            v_key_columns := v_key_columns || '_tally_slot'::text;
        END IF;

        v_order_by := CASE WHEN v_rollup.pending_table IS NULL AND cardinality(v_key_columns) > 0
                                AND v_key_columns[1] <> '_tally_slot'
            THEN E'\n        ORDER BY ' || array_to_string(
                v_select_columns[1:cardinality(v_key_columns) - CASE WHEN v_rollup.slot_table IS NULL THEN 0 ELSE 1 END],
                ', ')
            ELSE '' END;
        v_returning_clause := E'\n        RETURNING ' || array_to_string(v_returning, ', ');
        IF v_rollup.pending_table IS NOT NULL THEN
            -- append mode: the changes become new rows, so no stats row is locked and
            -- concurrent writers of one group never wait for each other
            v_upsert := format(v_append_template,
                v_rollup.rollup_name, v_rollup.pending_table::text,
                array_to_string(v_insert_columns, ', '),
                array_to_string(v_select_columns, ', '),
                v_set_condition,
                v_prefix,
                v_update_condition,
                v_returning_clause,
                'changes');
        ELSE
            v_upsert := format(
E'upsert_%1$s AS (\n'
'        -- rollup %1$s: add this statement''s changes to %2$s\n'
'        INSERT INTO %2$s AS s (%3$s)\n'
'        SELECT %4$s\n'
'        FROM changes AS c\n'
'        WHERE %5$sc.%6$s_touched > 0%7$s%8$s\n'
'        ON CONFLICT %9$s DO UPDATE SET\n'
'            %10$s%11$s\n'
'    )',
                v_rollup.rollup_name, coalesce(v_rollup.slot_table, v_rollup.stats_table)::text,
                array_to_string(v_insert_columns, ', '),
                array_to_string(v_select_columns, ', '),
                v_set_condition,
                v_prefix,
                v_update_condition,
                v_order_by,
                CASE WHEN cardinality(v_key_columns) = 0 THEN '((true))'
                     ELSE '(' || array_to_string(v_key_columns, ', ') || ')' END,
                array_to_string(v_set_clauses, E',\n            '),
                v_returning_clause);
        END IF;
        v_upserts := v_upserts || v_upsert;
        -- one row has one group per rollup: no grouping set to pick, no order to lock in
        v_one_row_upserts := v_one_row_upserts || replace(replace(replace(v_upsert,
            'WHERE ' || v_set_condition, 'WHERE '), v_order_by || E'\n', E'\n'),
            CASE WHEN v_results_needed THEN '' ELSE v_returning_clause END, '');
        v_one_row_columns := v_one_row_columns || array_to_string(v_one_row_changes, E',\n               ');
        IF v_rollup_appends_together[v_rollup_index] THEN
            -- each reads its own CTE of changes: one that several read would be materialized,
            -- which costs more than computing the row's few expressions twice
            v_together_changes := v_together_changes || format(
E'changes_%1$s AS (\n'
'        SELECT %2$s\n'
'        FROM (\n'
'            %3$s\n'
'        ) AS changed_row\n'
'    )',
                v_rollup.rollup_name,
                array_to_string(v_one_row_changes, E',\n               '),
                v_one_row_inners[v_rollup_index]);
            -- the one-row append above (one row: no grouping set, nothing returned), reading
            -- its own CTE
            v_together_upserts := v_together_upserts || format(v_append_template,
                v_rollup.rollup_name, v_rollup.pending_table::text,
                array_to_string(v_insert_columns, ', '),
                array_to_string(v_select_columns, ', '),
                '', v_prefix, '', '',
                'changes_' || v_rollup.rollup_name);
        END IF;

        v_declares := v_declares || format('v_%s_changed bigint;  -- groups of rollup %s changed',
                                           v_prefix, v_rollup.rollup_name);
        v_finals := v_finals || format('(SELECT count(*) FROM upsert_%s)', v_rollup.rollup_name);
        v_final_targets := v_final_targets || format('v_%s_changed', v_prefix);
        IF v_rollup.slot_table IS NOT NULL THEN
            NULL;  -- slots of a gone group stay until tally.compact; the view leaves the group out
        ELSIF p_event <> 'insert' AND cardinality(v_key_columns) = 0 THEN
            v_declares := v_declares || format('v_%s_gone boolean;', v_prefix);
            v_finals := v_finals || format('(SELECT bool_or(_tally_rows = 0) FROM upsert_%s)', v_rollup.rollup_name);
            v_final_targets := v_final_targets || format('v_%s_gone', v_prefix);
            v_after := v_after || format(
E'IF v_%1$s_gone THEN\n'
'        -- rollup %2$s: no source row matches any more\n'
'        DELETE FROM %3$s WHERE _tally_rows = 0;\n'
'    END IF;',
                v_prefix, v_rollup.rollup_name, v_rollup.stats_table::text);
        ELSIF p_event <> 'insert' THEN
            v_finals := v_finals || ARRAY(
                SELECT format('(SELECT %s FROM upsert_%s)', g, v_rollup.rollup_name)
                FROM unnest(v_gone_columns) WITH ORDINALITY AS u(g, o) ORDER BY o);
            v_final_targets := v_final_targets || v_gone_targets;
            v_after := v_after || format(
E'IF v_%1$s_gone_k1 IS NOT NULL THEN\n'
'        -- rollup %2$s: drop groups that no longer have a matching source row\n'
'        DELETE FROM %3$s AS s\n'
'        USING unnest(%4$s) AS gone(%5$s)\n'
'        WHERE %6$s AND s._tally_rows = 0;\n'
'    END IF;',
                v_prefix, v_rollup.rollup_name, v_rollup.stats_table::text,
                array_to_string(v_gone_targets, ', '),
                (SELECT string_agg('k' || x, ', ') FROM generate_series(1, cardinality(v_key_columns)) AS x),
                array_to_string(v_gone_match, ' AND '));
        END IF;

        SELECT * INTO v_feed FROM tally.change_feed AS f WHERE f.rollup_name = v_rollup.rollup_name;
        IF FOUND THEN
            v_declares := v_declares || format('v_%s_keys jsonb;  -- changed groups of %s, for its change feed',
                                               v_prefix, v_rollup.rollup_name);
            v_finals := v_finals || format(
                '(SELECT jsonb_agg(jsonb_build_object(%s)) FROM (SELECT * FROM upsert_%s LIMIT %s) AS changed)',
                coalesce((SELECT string_agg(format('%L, %s', k.key_name, quote_ident(k.key_name)), ', ' ORDER BY k.key_position)
                          FROM tally.rollup_keys AS k WHERE k.rollup_name = v_rollup.rollup_name), ''),
                v_rollup.rollup_name, v_feed.max_groups + 1);
            v_final_targets := v_final_targets || format('v_%s_keys', v_prefix);
            v_publish := v_publish || format(
E'IF v_%1$s_changed > 0 THEN\n'
'        -- rollup %2$s publishes its changes on channel %3$s\n'
'        PERFORM tally.publish_change(%4$L, TG_OP, v_%1$s_changed, v_%1$s_keys);\n'
'    END IF;',
                v_prefix, v_rollup.rollup_name, v_feed.channel, v_rollup.rollup_name);
        END IF;

        IF cardinality(v_minmax_sets) > 0 THEN
            v_after := v_after || format(
E'-- rollup %1$s: recompute min/max of the groups whose extreme was removed\n'
'    UPDATE %2$s AS s SET\n'
'        %3$s\n'
'    FROM (\n'
'        SELECT %4$s\n'
'        FROM tally_old_rows%5$s%6$s\n'
'    ) AS removed\n'
'    WHERE %7$s(%8$s);',
                v_rollup.rollup_name, v_rollup.stats_table::text,
                array_to_string(v_minmax_sets, E',\n        '),
                array_to_string(v_minmax_keys || v_minmax_removed, E',\n               '),
                CASE WHEN v_rollup.row_filter IS NOT NULL THEN format(E'\n        WHERE (%s)', v_rollup.row_filter) ELSE '' END,
                CASE WHEN cardinality(v_key_columns) > 0
                     THEN format(E'\n        GROUP BY %s', (SELECT string_agg(x::text, ', ') FROM generate_series(1, cardinality(v_key_columns)) AS x))
                     ELSE '' END,
                CASE WHEN cardinality(v_minmax_match) > 0 THEN array_to_string(v_minmax_match, ' AND ') || ' AND ' ELSE '' END,
                (SELECT string_agg(format('removed.%1$I %2$s s.%1$I', m.measure_name,
                                          CASE m.aggregate_function WHEN 'min' THEN '<=' ELSE '>=' END), ' OR ')
                 FROM tally.rollup_measures AS m
                 WHERE m.rollup_name = v_rollup.rollup_name AND m.aggregate_function IN ('min', 'max')));
        END IF;
    END LOOP;

    -- Many changed rows: one statement aggregates them, then upserts every rollup's
    -- changes; its final SELECT reads the upserts in rollup order, which is the order in
    -- which every writer locks stats rows.
    v_body := format(
E'WITH changes AS (\n'
'        -- the signed change of every rollup, from one pass over the changed rows\n'
'        SELECT %s\n'
'        FROM (\n'
'            %s\n'
'        ) AS changed_rows%s\n'
'    ),\n'
'    %s\n'
'    SELECT %s\n'
'    INTO %s;',
        array_to_string(v_changes, E',\n               '), v_inner, v_group_by,
        array_to_string(v_upserts, E',\n    '),
        array_to_string(v_finals, E',\n           '),
        array_to_string(v_final_targets, ', '));

    -- Indenting generated text for the IF below is cosmetic, and done by adding spaces after
    -- every line break: it is skipped when a user's expression or name has a line break of
    -- its own (inside a string literal, spaces added there would change the value).
    v_reindent := NOT EXISTS (SELECT FROM unnest(v_key_expressions || v_row_expressions) AS e
                              WHERE strpos(e, E'\n') > 0)
              AND NOT EXISTS (SELECT FROM tally.rollups AS r CROSS JOIN tally.stats_columns(r.rollup_name) AS c
                              WHERE r.source_table = p_source
                                AND strpos(concat(c.column_name, coalesce(r.slot_table, r.stats_table), r.pending_table),
                                           E'\n') > 0);

    -- At most one changed row (a one-row INSERT or DELETE, the common case of an
    -- application's writes; also one that changed nothing): nothing to aggregate. One
    -- statement per rollup, in rollup order as above, takes that rollup's change straight
    -- from the row, reading only the expressions that rollup uses. Rollups in append mode
    -- that read nothing back lock no stats row, so the order does not matter for them: when
    -- there are several, one statement before the others appends for them all.
    IF v_has_one_row_path THEN
        IF cardinality(v_together_upserts) > 1 THEN
            -- the last append is the statement itself
            v_main := regexp_replace(v_together_upserts[cardinality(v_together_upserts)],
                                     E'^upsert_\\S+ AS \\(\n        (.*)\n    \\)$', E'\\1');
            v_together_statement := 'WITH ' || array_to_string(
                ARRAY(SELECT u.part
                      FROM unnest(v_together_changes, v_together_upserts) WITH ORDINALITY AS t(changes, upsert, o)
                      CROSS JOIN LATERAL (VALUES (1, t.changes), (2, t.upsert)) AS u(n, part)
                      WHERE t.o < cardinality(v_together_upserts) OR u.n = 1
                      ORDER BY t.o, u.n),
                E',\n    ')
                || E'\n    ' || CASE WHEN v_reindent THEN replace(v_main, E'\n        ', E'\n    ') ELSE v_main END || ';';
        END IF;
        FOR i IN 1 .. cardinality(v_rollup_names) LOOP
            CONTINUE WHEN v_together_statement IS NOT NULL AND v_rollup_appends_together[i];
            v_one_row_statements[i] := format(
E'WITH changes AS (\n'
'        SELECT %s\n'
'        FROM (\n'
'            %s\n'
'        ) AS changed_row\n'
'    )',
                v_one_row_columns[i], v_one_row_inners[i]);
            IF v_rollup_results_needed[i] THEN
                v_one_row_statements[i] := format(E'%s,\n    %s\n    SELECT %s\n    INTO %s;',
                    v_one_row_statements[i], v_one_row_upserts[i],
                    array_to_string(v_finals[v_final_starts[i]:coalesce(v_final_starts[i + 1] - 1, cardinality(v_finals))],
                                    E',\n           '),
                    array_to_string(v_final_targets[v_final_starts[i]:coalesce(v_final_starts[i + 1] - 1,
                                                                                cardinality(v_final_targets))], ', '));
            ELSE
                -- nothing reads what the upsert returns: it is the statement itself
                v_main := regexp_replace(v_one_row_upserts[i], E'^upsert_\\S+ AS \\(\n        (.*)\n    \\)$', E'\\1');
                v_one_row_statements[i] := v_one_row_statements[i] || E'\n    '
                    || CASE WHEN v_reindent THEN replace(v_main, E'\n        ', E'\n    ') ELSE v_main END || ';';
            END IF;
        END LOOP;
        v_body := format(
E'IF NOT EXISTS (SELECT FROM %1$s OFFSET 1) THEN\n'
'        -- at most one changed row (a one-row %2$s): each rollup takes its change straight from it\n'
'        %3$s\n'
'    ELSE\n'
'        %4$s\n'
'    END IF;',
            CASE p_event WHEN 'insert' THEN 'tally_new_rows' ELSE 'tally_old_rows' END, upper(p_event),
            CASE WHEN v_reindent
                 THEN replace(array_to_string(v_together_statement || v_one_row_statements, E'\n    '), E'\n', E'\n    ')
                 ELSE array_to_string(v_together_statement || v_one_row_statements, E'\n    ') END,
            CASE WHEN v_reindent THEN replace(v_body, E'\n', E'\n    ') ELSE v_body END);
    END IF;

    RETURN format(
$code$CREATE OR REPLACE FUNCTION %1$s()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $generated$
-- Generated by pgtally for source %2$s, %3$s statements; rollups: %4$s.
-- Do not edit: tally.regenerate_all_rollups() writes it again from the catalogue.
%5$sBEGIN
    %6$s
    RETURN NULL;
END;
$generated$;
$code$,
        v_function, v_source_text, upper(p_event), array_to_string(v_rollup_names, ', '),
        CASE WHEN cardinality(v_declares) > 0 OR v_skip_check
             THEN E'DECLARE\n    ' || array_to_string(
                      v_declares || CASE WHEN v_skip_check THEN ARRAY['v_relevant_rollups text;'] ELSE '{}'::text[] END,
                      E'\n    ') || E'\n'
             ELSE '' END,
        array_to_string(
            array_remove(ARRAY[v_partition_guard], NULL)
            || CASE WHEN v_skip_check THEN ARRAY[format(
E'-- UPDATE OF triggers named the rollups whose columns this statement set\n'
'    v_relevant_rollups := coalesce(nullif(current_setting(%1$L, true), ''''), '','');\n'
'    PERFORM set_config(%1$L, '''', true);',
                'pgtally.relevant_' || p_source::oid)]
                -- the usual UPDATE of columns no rollup reads: one comparison for them all
                || CASE WHEN cardinality(v_unnamed_checks) > 1 OR v_skipping_rollups > 0 THEN ARRAY[format(
E'IF v_relevant_rollups = '','' AND NOT %s THEN\n'
'        RETURN NULL;  -- nothing any rollup reads changed\n'
'    END IF;',
                    format(v_inputs_changed, array_to_string(v_compared_columns, E',\n               ')))]
                ELSE '{}'::text[] END
                || v_unnamed_checks
                -- (a rollup that skips unchanged groups reads no marks: past the comparison
                -- above, or with no other rollup, the aggregation below runs for it)
                || CASE WHEN v_skipping_rollups = 0
                        THEN E'IF v_relevant_rollups = \',\' THEN\n        RETURN NULL;  -- nothing any rollup reads changed\n    END IF;'::text
                   END
            ELSE '{}'::text[] END
            || v_body || v_after || v_publish,
            E'\n    '));
END;
$function$;

COMMENT ON FUNCTION tally.maintenance_function_sql(regclass, text) IS
'Generates the statement-level trigger function maintaining every rollup of a source for one event';
