-- tally.one_row_sum_sql(p_event text, p_argument text, p_condition text, p_sum_type text) RETURNS text
--
-- Generated-code fragment: tally.signed_sum_sql for a statement that changed at most one
-- row, without an aggregate: the row's argument (insert) or its negation (delete) when
-- the row meets p_condition, else NULL, as a sum over no contributing row is. The value
-- is cast to the sum's type (the stats column's) before it is negated, as sum() widens
-- it: the smallest integer has no negative in its own type; it is negated as "* -1",
-- as tally.signed_sum_sql does (money has no unary minus).
-- Security: invoker, pure. Since: 0.1.0
CREATE OR REPLACE FUNCTION tally.one_row_sum_sql(p_event text, p_argument text, p_condition text, p_sum_type text)
RETURNS text
LANGUAGE sql
IMMUTABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $function$
    SELECT CASE p_event
        WHEN 'insert' THEN format('(CASE WHEN %s THEN %s END)::%s', p_condition, p_argument, p_sum_type)
        WHEN 'delete' THEN format('(CASE WHEN %s THEN %s END)::%s * -1', p_condition, p_argument, p_sum_type)
    END;
$function$;

COMMENT ON FUNCTION tally.one_row_sum_sql(text, text, text, text) IS
'Generated-code fragment: the change one changed row makes to a sum, without an aggregate';
