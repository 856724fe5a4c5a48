-- tally.key_equals_sql(p_rollup text, p_record_alias text) RETURNS text
--
-- Generated-code fragment: the condition that a source row belongs to the group whose
-- typed key columns are those of p_record_alias (a stats row or a lateral row of them), by
-- comparing the rollup's key expressions over the source with those columns. Unlike
-- tally.group_condition_sql it needs no JSON per row, so it suits a lateral recompute of
-- many groups. Keys that may be NULL compare with IS NOT DISTINCT FROM; 'true' for a
-- global rollup.
-- Security: invoker. Since: 0.1.0
CREATE OR REPLACE FUNCTION tally.key_equals_sql(p_rollup text, p_record_alias text)
RETURNS text
LANGUAGE sql
STABLE
SET search_path = pg_catalog, pg_temp
AS $function$
    SELECT coalesce(string_agg(
        format(CASE WHEN k.key_not_null THEN '(%s) = %I.%I' ELSE '(%s) IS NOT DISTINCT FROM %I.%I' END,
               k.key_expression, p_record_alias, k.key_name),
        ' AND ' ORDER BY k.key_position), 'true')
    FROM tally.rollup_keys AS k
    WHERE k.rollup_name = p_rollup;
$function$;

COMMENT ON FUNCTION tally.key_equals_sql(text, text) IS
'Generated-code fragment: source rows of the group whose typed key columns a record alias holds';
