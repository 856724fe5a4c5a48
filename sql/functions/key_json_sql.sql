-- tally.key_json_sql(p_rollup text, p_alias text) RETURNS text
--
-- Generated-code fragment: a rollup's group key as a jsonb object built from the key
-- columns of p_alias ('{}' for a global rollup). Reconciliation logs and matches groups by
-- it; tally.group_condition_sql turns it back into a condition.
-- Security: invoker. Since: 0.1.0
CREATE OR REPLACE FUNCTION tally.key_json_sql(p_rollup text, p_alias text)
RETURNS text
LANGUAGE sql
STABLE
SET search_path = pg_catalog, pg_temp
AS $function$
    SELECT coalesce(
        'jsonb_build_object(' || string_agg(format('%L, %I.%I', k.key_name, p_alias, k.key_name), ', '
                                            ORDER BY k.key_position) || ')',
        '''{}''::jsonb')
    FROM tally.rollup_keys AS k
    WHERE k.rollup_name = p_rollup;
$function$;

COMMENT ON FUNCTION tally.key_json_sql(text, text) IS
'Generated-code fragment: a rollup''s group key as jsonb, from the key columns of an alias';
