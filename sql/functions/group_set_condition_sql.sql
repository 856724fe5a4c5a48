-- tally.group_set_condition_sql(p_rollup text, p_group_keys jsonb[]) RETURNS text
--
-- Generated-code fragment: a condition over source rows narrowing them to the groups
-- whose keys are in a jsonb[] parameter ($1), key by key: (key expression) = ANY (the
-- values of that key present), plus IS NULL only when a NULL value is present, so an
-- index on a key expression can serve it. It may admit other combinations of the keys:
-- callers match the exact tuples afterwards. 'true' for a global rollup.
-- Security: invoker. Since: 0.1.0
CREATE OR REPLACE FUNCTION tally.group_set_condition_sql(p_rollup text, p_group_keys jsonb[])
RETURNS text
LANGUAGE sql
STABLE
SET search_path = pg_catalog, pg_temp
AS $function$
    SELECT coalesce(string_agg(format(
        CASE WHEN EXISTS (SELECT FROM unnest(p_group_keys) AS g WHERE g -> k.key_name = 'null'::jsonb)
             THEN '((%1$s) = ANY (ARRAY(SELECT (pg_catalog.jsonb_populate_record(NULL::%2$s, g)).%3$I '
                  'FROM unnest($1) AS g)) OR (%1$s) IS NULL)'
             ELSE '(%1$s) = ANY (ARRAY(SELECT (pg_catalog.jsonb_populate_record(NULL::%2$s, g)).%3$I '
                  'FROM unnest($1) AS g))' END,
        k.key_expression, r.stats_table, k.key_name), ' AND ' ORDER BY k.key_position), 'true')
    FROM tally.rollup_keys AS k
    JOIN tally.rollups AS r USING (rollup_name)
    WHERE k.rollup_name = p_rollup;
$function$;

COMMENT ON FUNCTION tally.group_set_condition_sql(text, jsonb[]) IS
'Generated-code fragment: index-friendly condition narrowing source rows to a set of groups ($1, jsonb[])';
