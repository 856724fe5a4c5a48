-- tally.one_row_count_sql(p_event text, p_condition text) RETURNS text
--
-- Generated-code fragment: tally.signed_count_sql for a statement that changed at most one
-- row, without an aggregate: 1 (insert) or -1 (delete) when the row meets p_condition,
-- else 0. The one-row path of a generated trigger uses it so that it plans no aggregation.
-- Security: invoker, pure. Since: 0.1.0
CREATE OR REPLACE FUNCTION tally.one_row_count_sql(p_event text, p_condition text)
RETURNS text
LANGUAGE sql
IMMUTABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $function$
    SELECT CASE p_event
        WHEN 'insert' THEN format('CASE WHEN %s THEN 1 ELSE 0 END', p_condition)
        WHEN 'delete' THEN format('CASE WHEN %s THEN -1 ELSE 0 END', p_condition)
    END;
$function$;

COMMENT ON FUNCTION tally.one_row_count_sql(text, text) IS
'Generated-code fragment: the signed count of one changed row meeting a condition, without an aggregate';
