-- tally.signed_count_sql(p_event text, p_condition text) RETURNS text
--
-- Generated-code fragment: how many changed rows meeting p_condition a statement added
-- (insert: positive), removed (delete: negative) or moved (update: new minus old rows).
-- Security: invoker, pure. Since: 0.1.0
CREATE OR REPLACE FUNCTION tally.signed_count_sql(p_event text, p_condition text)
RETURNS text
LANGUAGE sql
IMMUTABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $function$
    SELECT CASE p_event
        WHEN 'insert' THEN format('count(*) FILTER (WHERE %s)', p_condition)
        WHEN 'delete' THEN format('-count(*) FILTER (WHERE %s)', p_condition)
        ELSE format('coalesce(sum(change_sign) FILTER (WHERE %s), 0)', p_condition)
    END;
$function$;

COMMENT ON FUNCTION tally.signed_count_sql(text, text) IS
'Generated-code fragment: the signed count of changed rows meeting a condition';
