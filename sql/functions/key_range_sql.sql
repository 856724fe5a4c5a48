-- tally.key_range_sql(p_rollup text, p_side text) RETURNS text
--
-- Generated-code fragment: "the group key lies between the keys in parameters $1 and $2
-- (jsonb), inclusive", as a row comparison so an index on the key columns (stats side,
-- alias s) or on the key expressions (source side) can serve it; or, with parameter $3
-- true, "some key is NULL". Backfill batches are such ranges.
-- Security: invoker. Since: 0.1.0
CREATE OR REPLACE FUNCTION tally.key_range_sql(p_rollup text, p_side text)
RETURNS text
LANGUAGE sql
STABLE
SET search_path = pg_catalog, pg_temp
AS $function$
    SELECT format(
        'CASE WHEN $3 THEN (%1$s) ELSE NOT (%1$s) AND ROW(%2$s) >= ROW(%3$s) AND ROW(%2$s) <= ROW(%4$s) END',
        string_agg(format('%s IS NULL', c.side_value), ' OR ' ORDER BY c.key_position),
        string_agg(c.side_value, ', ' ORDER BY c.key_position),
        string_agg(format('(pg_catalog.jsonb_populate_record(NULL::%s, $1)).%I', c.stats_table, c.key_name),
                   ', ' ORDER BY c.key_position),
        string_agg(format('(pg_catalog.jsonb_populate_record(NULL::%s, $2)).%I', c.stats_table, c.key_name),
                   ', ' ORDER BY c.key_position))
    FROM (
        SELECT k.key_position, k.key_name, r.stats_table,
               CASE WHEN p_side = 'stats' THEN format('s.%I', k.key_name)
                    ELSE format('(%s)', k.key_expression) END AS side_value
        FROM tally.rollup_keys AS k
        JOIN tally.rollups AS r USING (rollup_name)
        WHERE k.rollup_name = p_rollup
    ) AS c;
$function$;

COMMENT ON FUNCTION tally.key_range_sql(text, text) IS
'Generated-code fragment: group key between two jsonb keys (or some key NULL), index-friendly';
