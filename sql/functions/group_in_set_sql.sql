-- tally.group_in_set_sql(p_rollup text, p_alias text, p_group_keys text) RETURNS text
--
-- Generated-code fragment: the condition that the row p_alias (having the rollup's key
-- columns) is one of a set of groups, given as SQL for a jsonb[] of group keys
-- (p_group_keys: a parameter such as '$1', or a literal). Groups are matched by key
-- equality (tally.key_match_sql), not by their JSON text: deferred refreshes, exact-now
-- reads and their verification all pick the groups an invalidation named this way.
-- Security: invoker. Since: 0.1.0
CREATE OR REPLACE FUNCTION tally.group_in_set_sql(p_rollup text, p_alias text, p_group_keys text)
RETURNS text
LANGUAGE sql
STABLE
SET search_path = pg_catalog, pg_temp
AS $function$
    SELECT format('EXISTS (SELECT FROM unnest(%s) AS _tally_g '
                  'CROSS JOIN LATERAL pg_catalog.jsonb_populate_record(NULL::%s, _tally_g) AS _tally_k WHERE %s)',
                  p_group_keys, r.stats_table, tally.key_match_sql(p_rollup, p_alias, '_tally_k'))
    FROM tally.rollups AS r
    WHERE r.rollup_name = p_rollup;
$function$;

COMMENT ON FUNCTION tally.group_in_set_sql(text, text, text) IS
'Generated-code fragment: a row is one of a set of groups (jsonb[] keys), by key equality';
