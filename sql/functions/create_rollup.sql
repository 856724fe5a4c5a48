-- tally.create_rollup(rollup_name, source, measures, group_by, filter, stats_table,
--                     allow_float, replace, populate) RETURNS regclass
--
-- Declares a rollup: "keep stats_table equal to
--     SELECT group_by, measures FROM source WHERE filter GROUP BY group_by"
-- and makes it so, in the caller's transaction:
--   * every expression is checked by PostgreSQL against the source (unknown column, bad
--     type, not immutable, aggregate where none belongs...) and an error names the part;
--   * the stats table is created (default: the source's schema, named after the rollup),
--     with a primary key on the group keys, exact types and fillfactor 50;
--   * the statement-level triggers of the source are regenerated for all its rollups;
--   * the stats are filled from the rows already there. The source is locked against
--     writers (SHARE ROW EXCLUSIVE; readers go on) from the start to the commit, so no
--     write is missed or counted twice. With populate => false the table starts empty and
--     tally.backfill() fills it in batches instead.
-- Calling it again with the same definition is a no-op; a different definition is an
-- error unless replace => true, which drops and re-creates the rollup.
-- Only a role that owns the source (or is a member of its owner) may declare a rollup
-- on it. Parameters are not p_-prefixed: they are the public, named-argument API.
-- Security: invoker. Since: 0.1.0
CREATE OR REPLACE FUNCTION tally.create_rollup(
    rollup_name text,
    source regclass,
    measures text[],
    group_by text[] DEFAULT '{}',
    filter text DEFAULT NULL,
    stats_table text DEFAULT NULL,
    allow_float boolean DEFAULT FALSE,
    replace boolean DEFAULT FALSE,
    populate boolean DEFAULT TRUE
)
RETURNS regclass
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    v_name text := create_rollup.rollup_name;
    v_source regclass := create_rollup.source;
    v_filter text := nullif(btrim(create_rollup.filter), '');
    v_source_class record;
    v_nested regclass;  -- a rollup source above or below v_source in its partition tree
    v_keys jsonb := '[]';
    v_measures jsonb := '[]';
    v_key record;
    v_measure record;
    v_text text;
    v_target text[];
    v_stats_schema name;
    v_stats_name name;
    v_stats regclass;
    v_definition jsonb;
    v_existing tally.rollups%ROWTYPE;
    v_parts text[] := '{}';
    v_part_names text[] := '{}';
    v_state text;
    v_message text;
    v_detail text;
    v_types jsonb;
    v_type text;
    v_source_columns name[];
    v_column record;
    v_column_definitions text[] := '{}';
    i integer;
BEGIN
    ---------------------------------------------------------------- names and ownership
    IF v_name IS NULL OR v_name !~ '^[a-z][a-z0-9_]{0,47}$' THEN
        RAISE EXCEPTION 'rollup name "%" is not valid', v_name
            USING ERRCODE = 'invalid_name',
                  HINT = 'Use a lower-case identifier of at most 48 characters: letters, digits, underscores.';
    END IF;
    IF v_source IS NULL THEN
        RAISE EXCEPTION 'rollup "%": source table is required', v_name
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT c.relkind, c.relowner, n.nspname AS schema_name  -- unquoted: format('%I') quotes it
    INTO v_source_class
    FROM pg_catalog.pg_class AS c
    JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
    WHERE c.oid = v_source;
    IF v_source_class.relkind NOT IN ('r', 'p') THEN
        RAISE EXCEPTION 'rollup "%": source % is not a table', v_name, v_source
            USING ERRCODE = 'wrong_object_type',
                  HINT = 'A rollup source must be a plain or partitioned table.';
    END IF;
    IF NOT pg_catalog.pg_has_role(current_user, v_source_class.relowner, 'USAGE') THEN
        RAISE EXCEPTION 'rollup "%": must be owner of table % to define a rollup on it', v_name, v_source
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    -- One set of maintenance triggers per table: a partition's would serve both sources.
    -- A source is a table whose tally_maintain_insert trigger has no arguments (its
    -- partitions' pass 'partition'); the catalogue tells even when row-level security
    -- hides that source's rollups from the caller.
    SELECT t.tgrelid::regclass INTO v_nested
    FROM pg_catalog.pg_trigger AS t
    WHERE t.tgname = 'tally_maintain_insert' AND t.tgnargs = 0 AND t.tgrelid <> v_source
      AND (t.tgrelid IN (SELECT pg_catalog.pg_partition_ancestors(v_source))
           OR t.tgrelid IN (SELECT p.relid FROM pg_catalog.pg_partition_tree(v_source) AS p))
    LIMIT 1;
    IF v_nested IS NOT NULL THEN
        RAISE EXCEPTION 'rollup "%": % and % are in one partition tree, and only one table of a tree can have rollups',
            v_name, v_source, v_nested
            USING ERRCODE = 'feature_not_supported',
                  HINT = 'Declare it on the table that has rollups, with a filter on the partition key for a part of the tree.';
    END IF;
    IF coalesce(cardinality(create_rollup.measures), 0) = 0 THEN
        RAISE EXCEPTION 'rollup "%" has no measures', v_name
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Give at least one, e.g. measures => ARRAY[''n = count(*)''].';
    END IF;

    ---------------------------------------------------------------- parse
    FOREACH v_text IN ARRAY coalesce(create_rollup.group_by, '{}') LOOP
        SELECT * INTO v_key FROM tally.parse_group_key(v_text);
        v_keys := v_keys || jsonb_build_array(jsonb_build_object(
            'name', v_key.key_name, 'expression', v_key.key_expression, 'is_column', v_key.is_column));
        v_parts := v_parts || v_key.key_expression;
        v_part_names := v_part_names || format('group key "%s"', v_key.key_name);
    END LOOP;
    FOREACH v_text IN ARRAY create_rollup.measures LOOP
        SELECT * INTO v_measure FROM tally.parse_measure(v_text);
        v_measures := v_measures || jsonb_build_array(jsonb_build_object(
            'name', v_measure.measure_name, 'aggregate', v_measure.aggregate_function,
            'argument', v_measure.argument_expression, 'filter', v_measure.measure_filter));
        IF v_measure.argument_expression IS NOT NULL THEN
            v_parts := v_parts || v_measure.argument_expression;
            v_part_names := v_part_names || format('measure "%s"', v_measure.measure_name);
        END IF;
        IF v_measure.measure_filter IS NOT NULL THEN
            v_parts := v_parts || v_measure.measure_filter;
            v_part_names := v_part_names || format('FILTER of measure "%s"', v_measure.measure_name);
        END IF;
    END LOOP;
    IF v_filter IS NOT NULL THEN
        v_parts := v_parts || v_filter;
        v_part_names := v_part_names || 'filter'::text;
    END IF;

    SELECT string_agg(n, ', ') INTO v_text
    FROM (
        SELECT n FROM (
            SELECT e ->> 'name' AS n FROM jsonb_array_elements(v_keys) AS e
            UNION ALL
            SELECT e ->> 'name' FROM jsonb_array_elements(v_measures) AS e
        ) AS all_names
        GROUP BY n HAVING count(*) > 1
    ) AS duplicates;
    IF v_text IS NOT NULL THEN
        RAISE EXCEPTION 'rollup "%": duplicate column name(s): %', v_name, v_text
            USING ERRCODE = 'duplicate_column',
                  HINT = 'Every group key and measure needs its own name.';
    END IF;
    SELECT string_agg(n, ', ') INTO v_text
    FROM (
        SELECT e ->> 'name' AS n FROM jsonb_array_elements(v_keys) AS e
        UNION ALL
        SELECT e ->> 'name' FROM jsonb_array_elements(v_measures) AS e
    ) AS all_names
    WHERE n LIKE '\_tally%';
    IF v_text IS NOT NULL THEN
        RAISE EXCEPTION 'rollup "%": column name(s) % are reserved', v_name, v_text
            USING ERRCODE = 'reserved_name',
                  HINT = 'Names starting with _tally are pgtally''s bookkeeping columns.';
    END IF;

    ---------------------------------------------------------------- stats table name
    IF create_rollup.stats_table IS NULL THEN
        v_stats_schema := v_source_class.schema_name;
        v_stats_name := v_name;
    ELSE
        BEGIN
            v_target := pg_catalog.parse_ident(create_rollup.stats_table);
        EXCEPTION WHEN invalid_parameter_value THEN
            v_target := NULL;
        END;
        IF coalesce(cardinality(v_target), 0) NOT IN (1, 2) THEN
            RAISE EXCEPTION 'rollup "%": stats table name "%" is not valid', v_name, create_rollup.stats_table
                USING ERRCODE = 'invalid_name',
                      HINT = 'Use "table" or "schema.table".';
        END IF;
        v_stats_schema := CASE WHEN cardinality(v_target) = 2 THEN v_target[1] ELSE v_source_class.schema_name END;
        v_stats_name := v_target[cardinality(v_target)];
        IF to_regnamespace(quote_ident(v_stats_schema)) IS NULL THEN
            RAISE EXCEPTION 'rollup "%": schema "%" does not exist', v_name, v_stats_schema
                USING ERRCODE = 'invalid_schema_name';
        END IF;
    END IF;

    v_definition := jsonb_build_object(
        'source', v_source::text,
        'group_by', v_keys,
        'measures', v_measures,
        'filter', v_filter,
        'stats_table', format('%I.%I', v_stats_schema, v_stats_name),
        'allow_float', coalesce(create_rollup.allow_float, false));

    ---------------------------------------------------------------- same name again?
    SELECT * INTO v_existing FROM tally.rollups AS r WHERE r.rollup_name = v_name;
    IF FOUND AND NOT EXISTS (SELECT FROM pg_catalog.pg_class AS c WHERE c.oid = v_existing.source_table) THEN
        -- its source table was dropped (a migration that re-creates a table): the old
        -- rollup maintains nothing any more, and is made again over the new table
        RAISE NOTICE 'rollup "%": its source table was dropped; creating it again over %', v_name, v_source;
        PERFORM tally.drop_rollup(v_name);
        FOUND := false;
    END IF;
    IF FOUND THEN
        IF v_existing.definition = v_definition THEN
            RAISE NOTICE 'rollup "%" already exists with this definition: nothing to do', v_name;
            RETURN v_existing.stats_table;
        ELSIF coalesce(create_rollup.replace, false) THEN
            PERFORM tally.drop_rollup(v_name);
        ELSE
            RAISE EXCEPTION 'rollup "%" already exists with a different definition', v_name
                USING ERRCODE = 'duplicate_object',
                      DETAIL = format('existing: %s; requested: %s', v_existing.definition, v_definition),
                      HINT = 'Pass replace => true to drop and re-create it, or choose another name.';
        END IF;
    ELSIF to_regclass(format('%I.%I', v_stats_schema, v_stats_name)) IS NOT NULL THEN
        RAISE EXCEPTION 'rollup "%": relation %.% already exists', v_name,
                quote_ident(v_stats_schema), quote_ident(v_stats_name)
            USING ERRCODE = 'duplicate_table',
                  HINT = 'Choose another stats_table, or drop the existing relation.';
    END IF;

    -- From here to the commit no one writes the source: population sees every row once.
    EXECUTE format('LOCK TABLE %s IN SHARE ROW EXCLUSIVE MODE', v_source);

    ---------------------------------------------------------------- validate expressions
    FOR i IN 1 .. coalesce(cardinality(v_parts), 0) LOOP
        PERFORM tally.check_expression_text(v_part_names[i], v_parts[i]);
        BEGIN
            EXECUTE format('SELECT (%s) FROM %s AS tally_source LIMIT 0', v_parts[i], v_source);
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT;
            RAISE EXCEPTION 'rollup "%": % is not valid: %', v_name, v_part_names[i], v_message
                USING ERRCODE = v_state, DETAIL = format('expression: %s', v_parts[i]);
        END;
    END LOOP;

    -- The type of every row-level expression, and the source columns they read.
    EXECUTE format('CREATE TEMPORARY VIEW tally_probe_rows AS SELECT %s FROM %s AS tally_source',
        coalesce((SELECT string_agg(format('(%s) AS p%s', p, o), ', ')
                  FROM unnest(v_parts) WITH ORDINALITY AS u(p, o)), '1 AS p0'),
        v_source);
    SELECT jsonb_object_agg(a.attname, format_type(a.atttypid, a.atttypmod))
    INTO v_types
    FROM pg_catalog.pg_attribute AS a
    WHERE a.attrelid = pg_catalog.to_regclass('pg_temp.tally_probe_rows') AND a.attnum > 0;
    SELECT coalesce(array_agg(DISTINCT a.attname ORDER BY a.attname), '{}')
    INTO v_source_columns
    FROM pg_catalog.pg_rewrite AS rw
    JOIN pg_catalog.pg_depend AS d ON d.classid = 'pg_catalog.pg_rewrite'::regclass AND d.objid = rw.oid
    JOIN pg_catalog.pg_attribute AS a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
    WHERE rw.ev_class = pg_catalog.to_regclass('pg_temp.tally_probe_rows')
      AND d.refobjid = v_source AND d.refobjsubid > 0;
    DROP VIEW pg_temp.tally_probe_rows;

    FOR i IN 1 .. coalesce(cardinality(v_parts), 0) LOOP
        IF (v_part_names[i] = 'filter' OR v_part_names[i] LIKE 'FILTER of %')
           AND v_types ->> ('p' || i) <> 'boolean' THEN
            RAISE EXCEPTION 'rollup "%": % must be boolean, not %', v_name, v_part_names[i], v_types ->> ('p' || i)
                USING ERRCODE = 'datatype_mismatch', DETAIL = format('expression: %s', v_parts[i]);
        END IF;
    END LOOP;

    -- Stats must not depend on anything but the row: every expression must be immutable
    -- (no subquery, no now(), no time-zone-dependent cast). A stored generated column
    -- enforces exactly that, so let PostgreSQL judge on a throw-away copy of the columns.
    EXECUTE format('CREATE TEMPORARY TABLE tally_probe_immutable (LIKE %s)', v_source);
    FOR i IN 1 .. coalesce(cardinality(v_parts), 0) LOOP
        BEGIN
            EXECUTE format('ALTER TABLE pg_temp.tally_probe_immutable ADD COLUMN tally_probe_%s %s GENERATED ALWAYS AS ((%s)) STORED',
                           i, v_types ->> ('p' || i), v_parts[i]);
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT;
            RAISE EXCEPTION 'rollup "%": % cannot be maintained: %', v_name, v_part_names[i],
                    replace(v_message, 'generation expression', 'expression')
                USING ERRCODE = v_state, DETAIL = format('expression: %s', v_parts[i]),
                      HINT = 'Rollup expressions must be immutable functions of the row: no subqueries, '
                             'aggregates, volatile or time-zone-dependent functions.';
        END;
    END LOOP;
    DROP TABLE pg_temp.tally_probe_immutable;

    ---------------------------------------------------------------- aggregate types
    BEGIN
        EXECUTE format('CREATE TEMPORARY VIEW tally_probe_aggregates AS SELECT %s FROM %s AS tally_source%s%s',
            (SELECT string_agg(x, ', ' ORDER BY o) FROM (
                SELECT format('(%s) AS %I', e ->> 'expression', 'k_' || (e ->> 'name')) AS x, o
                FROM jsonb_array_elements(v_keys) WITH ORDINALITY AS u(e, o)
                UNION ALL
                SELECT format('%s(%s)%s AS %I', e ->> 'aggregate', coalesce('(' || (e ->> 'argument') || ')', '*'),
                              coalesce(' FILTER (WHERE (' || (e ->> 'filter') || '))', ''), 'm_' || (e ->> 'name')),
                       1000 + o
                FROM jsonb_array_elements(v_measures) WITH ORDINALITY AS u(e, o)
                UNION ALL
                SELECT format('sum((%s)) AS %I', e ->> 'argument', 's_' || (e ->> 'name')), 2000 + o
                FROM jsonb_array_elements(v_measures) WITH ORDINALITY AS u(e, o)
                WHERE e ->> 'aggregate' = 'avg'

            ) AS select_list),
            v_source,
            coalesce(' WHERE (' || v_filter || ')', ''),
            CASE WHEN jsonb_array_length(v_keys) > 0
                 THEN ' GROUP BY ' || (SELECT string_agg(g.n::text, ', ') FROM generate_series(1, jsonb_array_length(v_keys)) AS g(n))
                 ELSE '' END);
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT;
        RAISE EXCEPTION 'rollup "%": measures are not valid: %', v_name, v_message
            USING ERRCODE = v_state;
    END;
    SELECT v_types || jsonb_object_agg(a.attname, format_type(a.atttypid, a.atttypmod))
    INTO v_types
    FROM pg_catalog.pg_attribute AS a
    WHERE a.attrelid = pg_catalog.to_regclass('pg_temp.tally_probe_aggregates') AND a.attnum > 0;
    DROP VIEW pg_temp.tally_probe_aggregates;

    -- Sums and averages of floating point drift with the order of additions: refuse them
    -- unless the user says that is fine.
    IF NOT coalesce(create_rollup.allow_float, false) THEN
        FOR i IN 1 .. coalesce(cardinality(v_parts), 0) LOOP
            IF v_part_names[i] LIKE 'measure %' AND v_types ->> ('p' || i) IN ('real', 'double precision')
               AND EXISTS (SELECT FROM jsonb_array_elements(v_measures) AS e
                           WHERE format('measure "%s"', e ->> 'name') = v_part_names[i]
                             AND e ->> 'aggregate' IN ('sum', 'avg')) THEN
                RAISE EXCEPTION 'rollup "%": % adds up % values, which is not exact', v_name, v_part_names[i], v_types ->> ('p' || i)
                    USING ERRCODE = 'datatype_mismatch',
                          HINT = 'Cast to numeric (sum(x::numeric)) or pass allow_float => true.';
            END IF;
        END LOOP;
    END IF;

    ---------------------------------------------------------------- create
    -- Half-empty pages: a statement that changes every group of a page writes each row's
    -- new version beside the old one (a HOT update, no index entry), where a full page
    -- sends it elsewhere and adds an index entry; the old versions are pruned later.
    EXECUTE format('CREATE TABLE %I.%I () WITH (fillfactor = 50)', v_stats_schema, v_stats_name);
    v_stats := format('%I.%I', v_stats_schema, v_stats_name)::regclass;

    INSERT INTO tally.rollups (rollup_name, source_table, stats_table, row_filter, owner_role, definition,
                               source_columns, status)
    VALUES (v_name, v_source, v_stats, v_filter, pg_get_userbyid(v_source_class.relowner), v_definition,
            v_source_columns, CASE WHEN coalesce(create_rollup.populate, true) THEN 'ready' ELSE 'populating' END);

    INSERT INTO tally.rollup_keys (rollup_name, key_position, key_name, key_expression, key_type, key_not_null)
    SELECT v_name, o, e ->> 'name', e ->> 'expression', v_types ->> ('k_' || (e ->> 'name')),
           (e ->> 'is_column')::boolean AND coalesce((
               SELECT a.attnotnull FROM pg_catalog.pg_attribute AS a
               WHERE a.attrelid = v_source AND a.attname = e ->> 'name' AND NOT a.attisdropped), false)
    FROM jsonb_array_elements(v_keys) WITH ORDINALITY AS u(e, o);

    INSERT INTO tally.rollup_measures (rollup_name, measure_position, measure_name, aggregate_function,
                                       argument_expression, measure_filter, result_type, state_type)
    SELECT v_name, o, e ->> 'name', e ->> 'aggregate', e ->> 'argument', e ->> 'filter',
           v_types ->> ('m_' || (e ->> 'name')), v_types ->> ('s_' || (e ->> 'name'))
    FROM jsonb_array_elements(v_measures) WITH ORDINALITY AS u(e, o);

    -- avg columns are generated from their bookkeeping columns, so they come last: a
    -- generated column cannot refer to a column added by the same ALTER TABLE.
    FOR v_column IN
        SELECT c.* FROM tally.stats_columns(v_name) AS c
        ORDER BY c.column_role = 'value' AND c.aggregate_function = 'avg'
    LOOP
        IF v_column.column_role = 'value' AND v_column.aggregate_function = 'avg'
           AND NOT v_column_definitions[cardinality(v_column_definitions)] LIKE '%GENERATED%' THEN
            EXECUTE format('ALTER TABLE %s %s', v_stats, array_to_string(v_column_definitions, ', '));
            v_column_definitions := '{}';
        END IF;
        v_column_definitions := v_column_definitions || CASE
            WHEN v_column.column_role = 'key' THEN format('ADD COLUMN %I %s%s', v_column.column_name, v_column.column_type,
                CASE WHEN (SELECT k.key_not_null FROM tally.rollup_keys AS k
                           WHERE k.rollup_name = v_name AND k.key_position = v_column.key_position)
                     THEN ' NOT NULL' ELSE '' END)
            WHEN v_column.column_role = 'value' AND v_column.aggregate_function = 'avg' THEN format(
                'ADD COLUMN %1$I %2$s GENERATED ALWAYS AS (CASE WHEN %3$I > 0 THEN %4$I / %3$I::%5$s END) STORED',
                v_column.column_name, v_column.column_type, '_tally_n_' || v_column.column_name,
                '_tally_sum_' || v_column.column_name,
                CASE WHEN v_column.column_type = 'numeric' THEN 'numeric' ELSE 'double precision' END)
            WHEN v_column.column_role IN ('rows', 'nonnull') THEN format('ADD COLUMN %I bigint NOT NULL DEFAULT 0', v_column.column_name)
            WHEN v_column.aggregate_function = 'count' THEN format('ADD COLUMN %I bigint NOT NULL DEFAULT 0', v_column.column_name)
            ELSE format('ADD COLUMN %I %s', v_column.column_name, v_column.column_type)
        END;
    END LOOP;
    EXECUTE format('ALTER TABLE %s %s', v_stats, array_to_string(v_column_definitions, ', '));

    PERFORM tally.add_group_key_constraint(v_name, v_stats);

    EXECUTE format('COMMENT ON TABLE %s IS %L', v_stats, format(
        'pgtally rollup %s: stats of %s, kept exact by its triggers. Do not edit by hand; '
        'columns starting with _tally are bookkeeping.', v_name, v_source));
    EXECUTE format('ALTER TABLE %s OWNER TO %I', v_stats, pg_get_userbyid(v_source_class.relowner));

    PERFORM tally.install_maintenance(v_source);

    IF coalesce(create_rollup.populate, true) THEN
        EXECUTE format('INSERT INTO %s (%s) %s', v_stats,
            (SELECT string_agg(quote_ident(c.column_name), ', ')
             FROM tally.stats_columns(v_name) AS c WHERE c.recompute_expression IS NOT NULL),
            tally.recompute_sql(v_name));
    END IF;

    RETURN v_stats;
END;
$function$;

COMMENT ON FUNCTION tally.create_rollup(text, regclass, text[], text[], text, text, boolean, boolean, boolean) IS
'Declares a rollup: a stats table kept equal to SELECT keys, aggregates FROM source WHERE filter GROUP BY keys';
