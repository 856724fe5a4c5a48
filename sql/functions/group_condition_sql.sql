-- tally.group_condition_sql(p_rollup text, p_side text, p_parameter text, p_only_keys text[], p_alias text)
--     RETURNS text
--
-- Generated-code fragment: the condition selecting one group, whose key arrives as a
-- jsonb parameter (p_parameter, e.g. '$1'). p_side 'stats' compares the stats table's key
-- columns (alias s), 'source' the key expressions over source rows, so the group can be
-- recomputed with an index on them. p_alias names the stats side's table alias. Keys that
-- may be NULL compare with IS NOT DISTINCT FROM. With p_only_keys, only those keys are
-- compared. Each key value is read from the parameter in a scalar sub-select, which the
-- executor evaluates once per statement: written inline, the (stable, not foldable)
-- jsonb_populate_record call ran once per source row of a sequential scan, 3-7 times the
-- scan itself. The parameter must therefore not refer to the row being filtered or to a
-- lateral row (tally.key_equals_sql compares with typed key columns instead).
-- Security: invoker. Since: 0.1.0
CREATE OR REPLACE FUNCTION tally.group_condition_sql(
    p_rollup text,
    p_side text,
    p_parameter text,
    p_only_keys text[] DEFAULT NULL,
    p_alias text DEFAULT 's'
)
RETURNS text
LANGUAGE sql
STABLE
SET search_path = pg_catalog, pg_temp
AS $function$
    SELECT coalesce(string_agg(
        format(CASE WHEN k.key_not_null THEN '%s = (SELECT (pg_catalog.jsonb_populate_record(NULL::%s, %s)).%I)'
                    ELSE '%s IS NOT DISTINCT FROM (SELECT (pg_catalog.jsonb_populate_record(NULL::%s, %s)).%I)' END,
               CASE WHEN p_side = 'stats' THEN format('%I.%I', p_alias, k.key_name) ELSE format('(%s)', k.key_expression) END,
               r.stats_table, p_parameter, k.key_name),
        ' AND ' ORDER BY k.key_position), 'true')
    FROM tally.rollup_keys AS k
    JOIN tally.rollups AS r USING (rollup_name)
    WHERE k.rollup_name = p_rollup
      AND (p_only_keys IS NULL OR k.key_name = ANY (p_only_keys));
$function$;

COMMENT ON FUNCTION tally.group_condition_sql(text, text, text, text[], text) IS
'Generated-code fragment: condition selecting the group whose key is a jsonb parameter';
