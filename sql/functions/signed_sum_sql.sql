-- tally.signed_sum_sql(p_event text, p_argument text, p_condition text) RETURNS text
--
-- Generated-code fragment: the change a statement makes to sum(p_argument) over rows
-- meeting p_condition. For UPDATE the old rows' sum is subtracted from the new rows'
-- sum rather than summing sign * value, so no value is ever negated before it is added
-- up (the smallest integer has no negative in its own type). A sum is negated as
-- "* -1", which every summable type has (money has no unary minus). NULL means "no
-- contributing row", which the upsert keeps apart from zero.
-- Security: invoker, pure. Since: 0.1.0
CREATE OR REPLACE FUNCTION tally.signed_sum_sql(p_event text, p_argument text, p_condition text)
RETURNS text
LANGUAGE sql
IMMUTABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $function$
    SELECT CASE p_event
        WHEN 'insert' THEN format('sum(%s) FILTER (WHERE %s)', p_argument, p_condition)
        WHEN 'delete' THEN format('sum(%s) FILTER (WHERE %s) * -1', p_argument, p_condition)
        ELSE format(
            'CASE WHEN sum(%1$s) FILTER (WHERE change_sign < 0 AND %2$s) IS NULL '
            'THEN sum(%1$s) FILTER (WHERE change_sign > 0 AND %2$s) '
            'WHEN sum(%1$s) FILTER (WHERE change_sign > 0 AND %2$s) IS NULL '
            'THEN sum(%1$s) FILTER (WHERE change_sign < 0 AND %2$s) * -1 '
            'ELSE sum(%1$s) FILTER (WHERE change_sign > 0 AND %2$s) '
            '- sum(%1$s) FILTER (WHERE change_sign < 0 AND %2$s) END',
            p_argument, p_condition)
    END;
$function$;

COMMENT ON FUNCTION tally.signed_sum_sql(text, text, text) IS
'Generated-code fragment: the change a statement makes to a sum, NULL when no row contributes';
