-- tally.reconcile(p_rollup text, p_auto_correct boolean DEFAULT false, p_keys jsonb DEFAULT NULL,
--                 p_key_condition text DEFAULT NULL, p_sample integer DEFAULT NULL,
--                 p_log_matches boolean DEFAULT false, p_reason text DEFAULT NULL)
--     RETURNS tally.reconcile_summary
--
-- Compares a rollup's stats rows with a recomputation from the source, set-based and in
-- one statement (so in one consistent snapshot), and records the run in tally.runs and
-- every differing (group, column) in tally.reconciliation_log (every checked pair with
-- p_log_matches). Unless a sample or p_log_matches is asked for, a read-only statement
-- compares first: it may use parallel workers, which a statement writing the log may
-- not, and when it finds every group equal it is the whole check; otherwise the logging
-- statement compares again (in a new snapshot) and its findings are the report. Scope: the whole rollup, the groups matching p_keys (a partial key,
-- e.g. '{"org_id": 5}'), a condition over the key columns (p_key_condition, e.g.
-- 'day >= ''2025-01-01'''), or a random sample of p_sample stored groups (a sample checks
-- stored groups only, so it cannot see missing ones). Report only by default; with
-- p_auto_correct each drifted group is fixed by tally.correct_group, which is safe while
-- others write. Drift is also announced on the NOTIFY channel tally_operations.
-- jit = off: its estimates overshoot (CTEs, views over slots), and JIT compiling cost more
-- than it saved (README, Performance).
-- Security: invoker. Since: 0.1.0
CREATE OR REPLACE FUNCTION tally.reconcile(
    p_rollup text,
    p_auto_correct boolean DEFAULT FALSE,
    p_keys jsonb DEFAULT NULL,
    p_key_condition text DEFAULT NULL,
    p_sample integer DEFAULT NULL,
    p_log_matches boolean DEFAULT FALSE,
    p_reason text DEFAULT NULL
)
RETURNS tally.reconcile_summary
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $function$
DECLARE
    v_rollup tally.rollups%ROWTYPE;
    v_result tally.reconcile_summary;
    v_started timestamptz := clock_timestamp();
    v_compared_columns text[];
    v_stored_columns text;
    v_scope text[] := '{}';
    v_unknown text;
    v_expected text;
    v_stored text;
    v_headline name;
    v_group jsonb;
    v_key_order text;
    v_join text;
    v_differing bigint;  -- groups the read-only compare found different (NULL: not run)
BEGIN
    PERFORM pg_advisory_xact_lock_shared(tally.slot_layout_lock_key(p_rollup));
    v_rollup := tally.rollup_named(p_rollup);
    -- the source before the stats, the order writers and TRUNCATE lock in
    EXECUTE format('LOCK TABLE %s IN ACCESS SHARE MODE', v_rollup.source_table);
    IF p_sample IS NOT NULL AND p_sample < 1 THEN
        RAISE EXCEPTION 'sample size must be positive, not %', p_sample USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_keys IS NOT NULL THEN
        IF jsonb_typeof(p_keys) <> 'object' THEN
            RAISE EXCEPTION 'p_keys must be a JSON object of group keys, not %', p_keys
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        SELECT string_agg(k, ', ') INTO v_unknown
        FROM jsonb_object_keys(p_keys) AS k
        WHERE NOT EXISTS (SELECT FROM tally.rollup_keys AS rk WHERE rk.rollup_name = p_rollup AND rk.key_name = k);
        IF v_unknown IS NOT NULL THEN
            RAISE EXCEPTION 'rollup "%" has no group key %', p_rollup, v_unknown USING ERRCODE = 'undefined_column';
        END IF;
        v_scope := v_scope
            || tally.group_condition_sql(p_rollup, 'stats', '$3', ARRAY(SELECT jsonb_object_keys(p_keys)), 'a');
    END IF;
    IF p_key_condition IS NOT NULL THEN
        PERFORM tally.check_expression_text('key condition', p_key_condition);
        v_scope := v_scope || format('(%s)', p_key_condition);
    END IF;

    SELECT array_agg(c.column_name::text ORDER BY c.column_name) FILTER (WHERE c.column_role <> 'key'),
           string_agg(format('a.%I', c.column_name), ', ')
    INTO v_compared_columns, v_stored_columns
    FROM tally.stats_columns(p_rollup) AS c
    WHERE c.recompute_expression IS NOT NULL;
    SELECT c.column_name INTO v_headline
    FROM tally.stats_columns(p_rollup) AS c
    WHERE c.column_role = 'value' AND c.column_type IN ('numeric', 'bigint', 'integer', 'smallint')
      AND c.recompute_expression IS NOT NULL  -- compared (an avg is computed from its sum and count)
      AND NOT EXISTS (SELECT FROM tally.rollup_keys AS k WHERE k.rollup_name = p_rollup)
    ORDER BY c.measure_position LIMIT 1;

    -- _tally_e (expected) and _tally_s (stored) cannot be a stats column's name (_tally is
    -- reserved), so a measure named e or s does not capture these whole-row references.
    -- Groups match by their keys' own equality, as GROUP BY groups them, not by their text;
    -- a global rollup has one row on each side at most.
    v_join := tally.key_match_sql(p_rollup, '_tally_e', '_tally_s');

    INSERT INTO tally.runs (rollup_name, run_kind, details)
    VALUES (p_rollup, 'reconcile', jsonb_strip_nulls(jsonb_build_object(
        'auto_correct', p_auto_correct, 'keys', p_keys, 'key_condition', p_key_condition, 'sample', p_sample)))
    RETURNING run_id INTO v_result.run_id;

    v_stored := format('SELECT %s FROM %s AS a%s', v_stored_columns, v_rollup.stats_table,
                       CASE WHEN cardinality(v_scope) > 0 THEN ' WHERE ' || array_to_string(v_scope, ' AND ') ELSE '' END);
    IF p_sample IS NOT NULL THEN
        -- recompute only the sampled groups, each through the source's key expressions
        v_stored := v_stored || format(' ORDER BY random() LIMIT %s', p_sample);
        v_expected := format('SELECT r.* FROM stored AS sampled CROSS JOIN LATERAL (%s) AS r',
            tally.recompute_sql(p_rollup, tally.key_equals_sql(p_rollup, 'sampled')));
    ELSE
        v_expected := format('SELECT * FROM (%s) AS a%s', tally.recompute_sql(p_rollup),
                             CASE WHEN cardinality(v_scope) > 0 THEN ' WHERE ' || array_to_string(v_scope, ' AND ') ELSE '' END);
    END IF;

    IF p_sample IS NULL AND NOT coalesce(p_log_matches, false) THEN
        EXECUTE format($sql$
            SELECT count(*), count(*) FILTER (WHERE _tally_e IS DISTINCT FROM _tally_s),
                   min((_tally_s).%4$I::numeric), min((_tally_e).%4$I::numeric)
            FROM (%2$s) AS _tally_e
            FULL JOIN (%1$s) AS _tally_s ON %3$s
            $sql$, v_stored, v_expected, v_join, coalesce(v_headline, '_tally_rows'))
        INTO v_result.groups_checked, v_differing, v_result.stored_value, v_result.recomputed_value
        USING NULL::text[], NULL::bigint, p_keys;  -- the scope reads p_keys as $3, as below
        IF v_differing = 0 THEN
            v_result.groups_mismatched := 0;
            v_result.groups_missing := 0;
            v_result.groups_extra := 0;
        END IF;
    END IF;

    IF v_differing IS DISTINCT FROM 0 THEN
        -- the logging compare: every differing (group, column) goes to the log
        EXECUTE format($sql$
            WITH stored AS MATERIALIZED (%1$s),
            expected AS MATERIALIZED (%2$s),
            joined AS (
                -- typed keys and whole rows: JSON is built only for the rows that differ
                SELECT CASE WHEN _tally_s._tally_rows IS NULL THEN %3$s ELSE %5$s END AS group_key,
                       _tally_s._tally_rows IS NULL AS missing, _tally_e._tally_rows IS NULL AS extra,
                       _tally_e IS NOT DISTINCT FROM _tally_s AS same,
                       _tally_e AS expected_record, _tally_s AS stored_record
                FROM expected AS _tally_e
                FULL JOIN stored AS _tally_s ON %6$s
            ),
            compared AS (
                SELECT j.group_key, j.missing, j.extra,
                       to_jsonb(j.expected_record) AS expected_row, to_jsonb(j.stored_record) AS stored_row
                FROM joined AS j
                WHERE NOT j.same OR $5
            ),
            judged AS (
                SELECT c.group_key, col AS column_name, c.expected_row -> col AS expected_value,
                       c.stored_row -> col AS actual_value,
                       CASE WHEN c.missing THEN 'missing' WHEN c.extra THEN 'extra'
                            WHEN c.expected_row -> col = c.stored_row -> col THEN 'match'
                            WHEN c.expected_row -> col IS NULL AND c.stored_row -> col IS NULL THEN 'match'
                            ELSE 'mismatch' END AS status
                FROM compared AS c CROSS JOIN unnest($1::text[]) AS col
            ),
            logged AS (
                INSERT INTO tally.reconciliation_log (run_id, rollup_name, group_key, column_name, expected_value,
                                                      actual_value, discrepancy, status, processing_ms)
                SELECT $2, %4$L, j.group_key, j.column_name, j.expected_value #>> '{}', j.actual_value #>> '{}',
                       CASE WHEN coalesce(jsonb_typeof(j.expected_value), 'number') = 'number'
                             AND coalesce(jsonb_typeof(j.actual_value), 'number') = 'number'
                             AND j.status <> 'match'
                            THEN coalesce((j.expected_value #>> '{}')::numeric, 0) - coalesce((j.actual_value #>> '{}')::numeric, 0)
                       END,
                       j.status, round(extract(epoch FROM clock_timestamp() - $4) * 1000, 3)
                FROM judged AS j
                WHERE j.status <> 'match' OR $5
                RETURNING 1
            )
            SELECT (SELECT count(*) FROM joined),
                   count(DISTINCT group_key) FILTER (WHERE status = 'mismatch'),
                   count(DISTINCT group_key) FILTER (WHERE status = 'missing'),
                   count(DISTINCT group_key) FILTER (WHERE status = 'extra'),
                   (SELECT (stored_record).%7$I::numeric FROM joined LIMIT 1),
                   (SELECT (expected_record).%7$I::numeric FROM joined LIMIT 1),
                   (SELECT count(*) FROM logged)
            FROM judged
            $sql$,
            v_stored, v_expected, tally.key_json_sql(p_rollup, '_tally_e'), p_rollup,
            tally.key_json_sql(p_rollup, '_tally_s'),
            v_join, coalesce(v_headline, '_tally_rows'))
        INTO v_result.groups_checked, v_result.groups_mismatched, v_result.groups_missing, v_result.groups_extra,
             v_result.stored_value, v_result.recomputed_value, v_result.groups_corrected
        USING v_compared_columns, v_result.run_id, p_keys, v_started, coalesce(p_log_matches, false);
    END IF;

    v_result.rollup_name := p_rollup;
    v_result.in_sync := v_result.groups_mismatched + v_result.groups_missing + v_result.groups_extra = 0;
    IF v_headline IS NULL THEN
        v_result.stored_value := NULL;
        v_result.recomputed_value := NULL;
    END IF;
    v_result.discrepancy := v_result.recomputed_value - v_result.stored_value;
    v_result.groups_corrected := 0;

    IF NOT v_result.in_sync THEN
        PERFORM pg_catalog.pg_notify('tally_operations', jsonb_build_object(
            'event', 'reconciliation_drift', 'rollup', p_rollup, 'run_id', v_result.run_id,
            'mismatched', v_result.groups_mismatched, 'missing', v_result.groups_missing,
            'extra', v_result.groups_extra, 'auto_correct', coalesce(p_auto_correct, false))::text);
    END IF;

    IF coalesce(p_auto_correct, false) AND NOT v_result.in_sync THEN
        -- in key order, the order writers lock stats rows in
        SELECT string_agg(format('(pg_catalog.jsonb_populate_record(NULL::%s, l.group_key)).%I',
                                 v_rollup.stats_table, k.key_name), ', ' ORDER BY k.key_position)
        INTO v_key_order
        FROM tally.rollup_keys AS k WHERE k.rollup_name = p_rollup;
        FOR v_group IN EXECUTE format(
            'SELECT l.group_key FROM (SELECT DISTINCT group_key FROM tally.reconciliation_log '
            'WHERE run_id = $1 AND status <> %L) AS l ORDER BY %s', 'match', coalesce(v_key_order, '1'))
            USING v_result.run_id
        LOOP
            IF tally.correct_group(p_rollup, v_group, v_result.run_id,
                                   coalesce(p_reason, format('reconciliation run %s', v_result.run_id))) > 0 THEN
                v_result.groups_corrected := v_result.groups_corrected + 1;
            END IF;
        END LOOP;
    END IF;

    v_result.started_at := v_started;
    v_result.finished_at := clock_timestamp();
    v_result.duration_ms := round(extract(epoch FROM v_result.finished_at - v_started) * 1000, 3);
    UPDATE tally.runs SET
        finished_at = v_result.finished_at,
        status = CASE WHEN v_result.in_sync THEN 'in_sync' WHEN v_result.groups_corrected > 0 THEN 'corrected'
                      ELSE 'drift' END,
        groups_checked = v_result.groups_checked,
        groups_mismatched = v_result.groups_mismatched,
        groups_missing = v_result.groups_missing,
        groups_extra = v_result.groups_extra,
        groups_corrected = v_result.groups_corrected
    WHERE run_id = v_result.run_id;
    RETURN v_result;
END;
$function$;

COMMENT ON FUNCTION tally.reconcile(text, boolean, jsonb, text, integer, boolean, text) IS
'Compares a rollup with a recomputation from its source, logs differences and (optionally) corrects them';
