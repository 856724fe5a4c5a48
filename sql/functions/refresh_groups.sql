-- tally.refresh_groups(p_rollup text, p_group_keys jsonb[] DEFAULT NULL, p_bucket date DEFAULT NULL)
--     RETURNS bigint
--
-- Recomputes some groups of a rollup from its source and replaces their stats rows
-- (delete, then insert the recomputation): the groups whose keys are in p_group_keys
-- (jsonb objects as tally.invalidations holds them), or with p_bucket every group of that
-- day bucket of a deferred rollup. Idempotent: running it twice writes the same rows.
-- Source rows are narrowed with each key expression (an index on them helps), then the
-- exact key tuples. Used by the refresh job; safe for deferred rollups, whose writers
-- never touch the stats rows (the job's advisory lock keeps refreshes apart).
-- Returns the number of stats rows written.
-- Security: invoker. Since: 0.1.0
CREATE OR REPLACE FUNCTION tally.refresh_groups(
    p_rollup text,
    p_group_keys jsonb[] DEFAULT NULL,
    p_bucket date DEFAULT NULL
)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    v_rollup tally.rollups%ROWTYPE;
    v_bucket_key name;
    v_bucket_expression text;
    v_columns text;
    v_source_condition text;
    v_written bigint;
BEGIN
    v_rollup := tally.rollup_named(p_rollup);
    SELECT string_agg(quote_ident(c.column_name), ', ') INTO v_columns
    FROM tally.stats_columns(p_rollup) AS c WHERE c.recompute_expression IS NOT NULL;

    IF p_bucket IS NOT NULL THEN
        SELECT d.bucket_key, k.key_expression INTO v_bucket_key, v_bucket_expression
        FROM tally.deferred_rollups AS d
        JOIN tally.rollup_keys AS k ON k.rollup_name = d.rollup_name AND k.key_name = d.bucket_key
        WHERE d.rollup_name = p_rollup;
        IF v_bucket_key IS NULL THEN
            RAISE EXCEPTION 'rollup "%" has no bucket key', p_rollup
                USING ERRCODE = 'object_not_in_prerequisite_state';
        END IF;
        EXECUTE format('DELETE FROM %s AS s WHERE s.%I = $1', v_rollup.stats_table, v_bucket_key) USING p_bucket;
        EXECUTE format('INSERT INTO %s (%s) %s', v_rollup.stats_table, v_columns,
                       tally.recompute_sql(p_rollup, format('(%s) = $1', v_bucket_expression)))
        USING p_bucket;
        GET DIAGNOSTICS v_written = ROW_COUNT;
        RETURN v_written;
    END IF;

    IF p_group_keys IS NULL OR cardinality(p_group_keys) = 0 THEN
        RETURN 0;
    END IF;
    -- each key expression narrowed to the values present (index-friendly), then the exact tuples
    v_source_condition := tally.group_set_condition_sql(p_rollup, p_group_keys);
    -- the groups are matched by key equality, not by their JSON text
    EXECUTE format('DELETE FROM %s AS s WHERE %s', v_rollup.stats_table, tally.group_in_set_sql(p_rollup, 's', '$1'))
    USING p_group_keys;
    EXECUTE format('INSERT INTO %s (%s) SELECT r.* FROM (%s) AS r WHERE %s', v_rollup.stats_table, v_columns,
                   tally.recompute_sql(p_rollup, v_source_condition), tally.group_in_set_sql(p_rollup, 'r', '$1'))
    USING p_group_keys;
    GET DIAGNOSTICS v_written = ROW_COUNT;
    RETURN v_written;
END;
$function$;

COMMENT ON FUNCTION tally.refresh_groups(text, jsonb[], date) IS
'Recomputes the given groups (or one day bucket) of a rollup from its source and replaces their stats rows';
