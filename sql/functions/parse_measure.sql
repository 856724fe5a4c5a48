-- tally.parse_measure(p_measure text) RETURNS (measure_name, aggregate_function, argument_expression, measure_filter)
--
-- A measure is 'name = agg(argument) [FILTER (WHERE condition)]' with agg one of count,
-- sum, min, max, avg; count(*) has a NULL argument. Everything else (no name, another
-- function, DISTINCT, trailing text) is refused with an error naming the measure.
-- Whether the argument and condition are valid SQL is checked later, by PostgreSQL,
-- against the source table.
-- Security: invoker, pure. Since: 0.1.0
CREATE OR REPLACE FUNCTION tally.parse_measure(
    p_measure text,
    OUT measure_name name,
    OUT aggregate_function text,
    OUT argument_expression text,
    OUT measure_filter text
)
LANGUAGE plpgsql
IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    v_match text[];
    v_call text;
    v_open integer;
    v_close integer;
    v_rest text;
BEGIN
    v_match := regexp_match(coalesce(p_measure, ''), '^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=(?![=>])\s*(.+?)\s*$', 's');
    IF v_match IS NULL THEN
        RAISE EXCEPTION 'measure "%" has no name', p_measure
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Write measures as ''name = sum(column)''.';
    END IF;
    measure_name := lower(v_match[1]);
    v_call := v_match[2];

    v_match := regexp_match(v_call, '^([A-Za-z_][A-Za-z0-9_.]*)\s*\(');
    IF v_match IS NULL THEN
        RAISE EXCEPTION 'measure "%" is not an aggregate: "%"', measure_name, v_call
            USING ERRCODE = 'grouping_error',
                  HINT = 'A measure is count(*), count(x), sum(x), min(x), max(x) or avg(x), optionally with FILTER (WHERE ...).';
    END IF;
    aggregate_function := lower(regexp_replace(v_match[1], '^pg_catalog\.', '', 'i'));
    IF aggregate_function NOT IN ('count', 'sum', 'min', 'max', 'avg') THEN
        RAISE EXCEPTION 'measure "%" uses %(), which pgtally cannot maintain incrementally', measure_name, v_match[1]
            USING ERRCODE = 'feature_not_supported',
                  HINT = 'Supported aggregates: count, sum, min, max, avg.';
    END IF;

    v_open := strpos(v_call, '(');
    v_close := tally.matching_parenthesis(v_call, v_open);
    IF v_close IS NULL THEN
        RAISE EXCEPTION 'measure "%" has unbalanced parentheses: "%"', measure_name, v_call
            USING ERRCODE = 'syntax_error';
    END IF;
    argument_expression := btrim(substr(v_call, v_open + 1, v_close - v_open - 1));
    v_rest := btrim(substr(v_call, v_close + 1));

    IF argument_expression = '*' THEN
        IF aggregate_function <> 'count' THEN
            RAISE EXCEPTION 'measure "%": %(*) is not valid', measure_name, aggregate_function
                USING ERRCODE = 'syntax_error';
        END IF;
        argument_expression := NULL;
    ELSIF argument_expression = '' THEN
        RAISE EXCEPTION 'measure "%": %() needs an argument', measure_name, aggregate_function
            USING ERRCODE = 'syntax_error';
    ELSIF argument_expression ~* '^(distinct|all)\M' THEN
        RAISE EXCEPTION 'measure "%": %(%) is not supported', measure_name, aggregate_function, argument_expression
            USING ERRCODE = 'feature_not_supported',
                  DETAIL = 'DISTINCT aggregates cannot be maintained from the changed rows alone.';
    END IF;

    IF v_rest <> '' THEN
        v_match := regexp_match(v_rest, '^filter\s*\(\s*where\s', 'i');
        v_open := strpos(v_rest, '(');
        IF v_match IS NULL OR tally.matching_parenthesis(v_rest, v_open) <> length(v_rest) THEN
            RAISE EXCEPTION 'measure "%": unexpected "%" after the aggregate', measure_name, v_rest
                USING ERRCODE = 'syntax_error',
                      HINT = 'Only FILTER (WHERE condition) may follow the aggregate.';
        END IF;
        measure_filter := btrim(regexp_replace(substr(v_rest, v_open + 1, length(v_rest) - v_open - 1), '^\s*where\s', '', 'i'));
    END IF;
END;
$function$;

COMMENT ON FUNCTION tally.parse_measure(text) IS
'Splits ''name = agg(arg) FILTER (WHERE cond)'' into its parts; refuses what cannot be maintained';
