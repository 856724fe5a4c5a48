-- tally.top(p_rollup text, p_measure text, p_limit integer DEFAULT 10, p_offset integer DEFAULT 0)
--     RETURNS TABLE (rank bigint, group_key jsonb, measure_value text)
--
-- The leaderboard of a rollup by one measure: groups in the order
--     measure DESC NULLS LAST, then the group keys ascending (NULL keys last),
-- which is total and deterministic (the keys are unique), from position p_offset + 1,
-- at most p_limit of them. rank is the 1-based position in that order (row_number, not
-- rank(): two groups with equal values get consecutive ranks, the smaller key first), so
-- tally.rank() returns the same number for the same group.
-- group_key is the group's key as a JSON object ({"user_id": "..."}), numbers as exact
-- strings (tally.exact_json), the form tally.rank() accepts and NOTIFY payloads carry.
-- measure_value is the value's exact text (numeric keeps its scale: '10.400000'), as
-- measures of any type can be ranked (count, sum, min/max of dates, avg...) and no
-- generic SQL type holds them all without loss; cast it back (measure_value::numeric).
-- With the index of tally.make_rankable the plan is Limit -> Index Scan: cost O(offset +
-- limit), not O(groups). Without it, it works, with a top-N sort over the stats table.
-- Security: invoker. Since: 0.1.0
CREATE OR REPLACE FUNCTION tally.top(
    p_rollup text,
    p_measure text,
    p_limit integer DEFAULT 10,
    p_offset integer DEFAULT 0
)
RETURNS TABLE (rank bigint, group_key jsonb, measure_value text)
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    v_layout record;
    v_keys_json text;
    v_keys_order text;
BEGIN
    IF p_limit IS NULL OR p_limit < 0 THEN
        RAISE EXCEPTION 'limit must be 0 or more, not %', coalesce(p_limit::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_offset IS NULL OR p_offset < 0 THEN
        RAISE EXCEPTION 'offset must be 0 or more, not %', coalesce(p_offset::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT * INTO v_layout FROM tally.leaderboard_layout(p_rollup, p_measure);

    SELECT string_agg(format('%L, s.%I', k, k), ', ' ORDER BY o),
           string_agg(format('s.%I', k), ', ' ORDER BY o)
    INTO v_keys_json, v_keys_order
    FROM unnest(v_layout.key_names) WITH ORDINALITY AS u(k, o);

    RETURN QUERY EXECUTE format(
        'SELECT $1 + row_number() OVER (ORDER BY s.%2$I DESC NULLS LAST, %4$s), '
        'tally.exact_json(jsonb_build_object(%1$s)), s.%2$I::text '
        'FROM (SELECT * FROM %3$s AS s ORDER BY s.%2$I DESC NULLS LAST, %4$s LIMIT $2 OFFSET $1) AS s '
        'ORDER BY s.%2$I DESC NULLS LAST, %4$s',
        v_keys_json, v_layout.measure_column, v_layout.stats_table, v_keys_order)
    USING p_offset::bigint, p_limit::bigint;
END;
$function$;

COMMENT ON FUNCTION tally.top(text, text, integer, integer) IS
'Leaderboard: groups by a measure (DESC NULLS LAST, ties by key), ranked, with exact values as text';
