-- tally.one_row_sum_sql(p_event text, p_argument text, p_condition text) RETURNS text
--
-- Generated-code fragment: tally.signed_sum_sql for a statement that changed exactly one
-- row, without an aggregate: the row's argument (insert) or its negation (delete) when
-- the row meets p_condition, else NULL, as a sum over no contributing row is. The stats
-- column's type takes the value by assignment (an integer argument into a bigint sum).
-- Security: invoker, pure. Since: 0.1.0
CREATE OR REPLACE FUNCTION tally.one_row_sum_sql(p_event text, p_argument text, p_condition text)
RETURNS text
LANGUAGE sql
IMMUTABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $function$
    SELECT CASE p_event
        WHEN 'insert' THEN format('CASE WHEN %s THEN %s END', p_condition, p_argument)
        WHEN 'delete' THEN format('-CASE WHEN %s THEN %s END', p_condition, p_argument)
    END;
$function$;

COMMENT ON FUNCTION tally.one_row_sum_sql(text, text, text) IS
'Generated-code fragment: the change one changed row makes to a sum, without an aggregate';
