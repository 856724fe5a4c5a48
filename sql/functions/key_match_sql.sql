-- tally.key_match_sql(p_rollup text, p_left text, p_right text) RETURNS text
--
-- Generated-code fragment: a condition that rows p_left and p_right (aliases having the
-- rollup's key columns) are the same group, by the keys' own equality, as GROUP BY and
-- the stats table's unique key group them: numeric 1.0 and 1.00, or interval '1 mon'
-- and '30 days', are one group, though their text (and JSON) differ. A key that may be
-- NULL is compared as a one-element array, since array equality takes two NULLs as equal
-- and still lets the planner hash or merge the join. 'true' for a rollup without keys.
-- Security: invoker. Since: 0.1.0
CREATE OR REPLACE FUNCTION tally.key_match_sql(p_rollup text, p_left text, p_right text)
RETURNS text
LANGUAGE sql
STABLE
SET search_path = pg_catalog, pg_temp
AS $function$
    SELECT coalesce(string_agg(format(CASE WHEN k.key_not_null THEN '%1$I.%3$I = %2$I.%3$I'
                                           ELSE 'ARRAY[%1$I.%3$I] = ARRAY[%2$I.%3$I]' END,
                                      p_left, p_right, k.key_name),
                               ' AND ' ORDER BY k.key_position), 'true')
    FROM tally.rollup_keys AS k
    WHERE k.rollup_name = p_rollup;
$function$;

COMMENT ON FUNCTION tally.key_match_sql(text, text, text) IS
'Generated-code fragment: two rows are the same group of a rollup, by key equality (NULL keys equal)';
