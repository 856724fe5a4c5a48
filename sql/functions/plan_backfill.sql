-- tally.plan_backfill(p_rollup text, p_batch_groups integer, p_key_condition text, p_restart boolean)
--     RETURNS integer
--
-- Splits a rollup's groups (those in the source and those in the stats table) into
-- batches of p_batch_groups consecutive keys and records them in tally.backfill_batches.
-- If an earlier plan still has batches to do and p_restart is false, that plan is kept
-- (resume). Returns the number of batches left to do. p_key_condition (over the key
-- columns) narrows the plan, e.g. to a time range of a bucketed rollup.
-- Security: invoker. Since: 0.1.0
CREATE OR REPLACE FUNCTION tally.plan_backfill(
    p_rollup text,
    p_batch_groups integer,
    p_key_condition text DEFAULT NULL,
    p_restart boolean DEFAULT FALSE
)
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    v_rollup tally.rollups%ROWTYPE;
    v_pending integer;
    v_keys text;
    v_key_expressions text;
    v_any_null text;
BEGIN
    -- the layout (plain table, or slot table and view) stays still while the plan reads it
    PERFORM pg_advisory_xact_lock_shared(tally.slot_layout_lock_key(p_rollup));
    v_rollup := tally.rollup_named(p_rollup);
    IF p_batch_groups IS NULL OR p_batch_groups < 1 THEN
        RAISE EXCEPTION 'batch size must be a positive number of groups, not %', p_batch_groups
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_key_condition IS NOT NULL THEN
        PERFORM tally.check_expression_text('key condition', p_key_condition);
    END IF;

    SELECT count(*) INTO v_pending FROM tally.backfill_batches
    WHERE rollup_name = p_rollup AND done_at IS NULL;
    IF v_pending > 0 AND NOT coalesce(p_restart, false) THEN
        RETURN v_pending;
    END IF;
    DELETE FROM tally.backfill_batches WHERE rollup_name = p_rollup;

    SELECT string_agg(quote_ident(k.key_name), ', ' ORDER BY k.key_position),
           string_agg(format('(%s) AS %I', k.key_expression, k.key_name), ', ' ORDER BY k.key_position),
           string_agg(format('%I IS NULL', k.key_name), ' OR ' ORDER BY k.key_position)
    INTO v_keys, v_key_expressions, v_any_null
    FROM tally.rollup_keys AS k WHERE k.rollup_name = p_rollup;

    IF v_keys IS NULL THEN
        INSERT INTO tally.backfill_batches (rollup_name, batch_no, planned_groups) VALUES (p_rollup, 1, 1);
        RETURN 1;
    END IF;

    EXECUTE format($sql$
        WITH all_groups AS (
            SELECT * FROM (
                SELECT DISTINCT %2$s FROM %3$s AS tally_source%4$s
                UNION
                SELECT %1$s FROM %5$s
            ) AS a
            WHERE %6$s
        ),
        ranged AS (
            SELECT %7$s AS group_key, (row_number() OVER (ORDER BY %1$s) - 1) / $1 AS batch
            FROM all_groups AS a
            WHERE NOT (%8$s)
        )
        INSERT INTO tally.backfill_batches (rollup_name, batch_no, lower_key, upper_key, null_keys, planned_groups,
                                            key_condition)
        SELECT $2, batch + 1, (array_agg(group_key))[1], (array_agg(group_key))[count(*)], false, count(*), $3
        FROM (SELECT * FROM ranged ORDER BY batch) AS ordered
        GROUP BY batch
        UNION ALL
        SELECT $2, (SELECT count(DISTINCT batch) FROM ranged) + 1, NULL, NULL, true, count(*), $3
        FROM all_groups AS a
        WHERE %8$s
        HAVING count(*) > 0
        $sql$,
        v_keys, v_key_expressions, v_rollup.source_table,
        coalesce(' WHERE (' || v_rollup.row_filter || ')', ''),
        v_rollup.stats_table, coalesce(p_key_condition, 'true'),
        tally.key_json_sql(p_rollup, 'a'), v_any_null)
    USING p_batch_groups, p_rollup, p_key_condition;

    SELECT count(*) INTO v_pending FROM tally.backfill_batches WHERE rollup_name = p_rollup;
    RETURN v_pending;
END;
$function$;

COMMENT ON FUNCTION tally.plan_backfill(text, integer, text, boolean) IS
'Splits a rollup''s groups into key-range batches for tally.backfill, or keeps an unfinished plan';
