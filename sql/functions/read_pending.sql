-- tally.read_pending(p_stats anyelement, p_key_condition text DEFAULT NULL) RETURNS SETOF anyelement
--
-- Exact-now read of a rollup's stats table: the stored rows, except that every group
-- with a pending invalidation (a deferred rollup not yet refreshed) is recomputed from
-- the source on the fly. Nothing is written. Call it with a NULL of the stats table's
-- row type: SELECT * FROM tally.read_pending(NULL::public.daily_costs, 'day >= ''2025-03-01''').
-- p_key_condition (over the stats columns) narrows both the stored and the recomputed
-- rows. For an immediate rollup it returns the stored rows.
-- Security: invoker. Since: 0.1.0
CREATE OR REPLACE FUNCTION tally.read_pending(p_stats anyelement, p_key_condition text DEFAULT NULL)
RETURNS SETOF anyelement
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    v_stats regclass;
    v_rollup tally.rollups%ROWTYPE;
    v_keys jsonb[];
    v_columns text;
    v_source_condition text;
    v_condition text := coalesce(p_key_condition, 'true');
BEGIN
    SELECT c.oid INTO v_stats FROM pg_catalog.pg_class AS c WHERE c.reltype = pg_typeof(p_stats);
    SELECT * INTO v_rollup FROM tally.rollups WHERE stats_table = v_stats;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'type % is not the row type of a rollup''s stats table', pg_typeof(p_stats)
            USING ERRCODE = 'undefined_object',
                  HINT = 'Pass NULL::schema.stats_table, e.g. tally.read_pending(NULL::public.daily_costs).';
    END IF;
    IF p_key_condition IS NOT NULL THEN
        PERFORM tally.check_expression_text('key condition', p_key_condition);
    END IF;
    SELECT array_agg(DISTINCT i.group_key) INTO v_keys FROM tally.invalidations AS i
    WHERE i.rollup_name = v_rollup.rollup_name;
    IF v_keys IS NULL THEN
        RETURN QUERY EXECUTE format('SELECT * FROM %s AS s WHERE %s', v_stats, v_condition);
        RETURN;
    END IF;

    -- the recomputed rows in the table's column order, generated (avg) columns computed
    SELECT string_agg(CASE WHEN a.attgenerated = 's' THEN format('(%s)', pg_get_expr(d.adbin, d.adrelid))
                           ELSE format('r.%I', a.attname) END, ', ' ORDER BY a.attnum)
    INTO v_columns
    FROM pg_catalog.pg_attribute AS a
    LEFT JOIN pg_catalog.pg_attrdef AS d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
    WHERE a.attrelid = v_stats AND a.attnum > 0 AND NOT a.attisdropped;
    v_source_condition := tally.group_set_condition_sql(v_rollup.rollup_name, v_keys);

    -- pending groups are matched by key equality, not by their JSON text
    RETURN QUERY EXECUTE format(
        'SELECT s.* FROM %1$s AS s WHERE NOT %2$s AND (%3$s) '
        'UNION ALL '
        'SELECT * FROM (SELECT %4$s FROM (%5$s) AS r WHERE %6$s) AS p WHERE (%3$s)',
        v_stats, tally.group_in_set_sql(v_rollup.rollup_name, 's', '$1'), v_condition, v_columns,
        tally.recompute_sql(v_rollup.rollup_name, v_source_condition),
        tally.group_in_set_sql(v_rollup.rollup_name, 'r', '$1'))
    USING v_keys;
END;
$function$;

COMMENT ON FUNCTION tally.read_pending(anyelement, text) IS
'Exact-now read of a stats table: stored rows, with groups pending a refresh recomputed from the source';
