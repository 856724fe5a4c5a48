-- tally.check_expression_text(p_part text, p_expression text) RETURNS void
--
-- Refuses expression text that could step outside the parentheses pgtally wraps it in:
-- statement separators, comments, dollar quotes or a closing parenthesis that would end
-- the wrapper early. Rollup expressions are pasted into generated SQL (as CHECK
-- constraints are), so this runs before PostgreSQL is asked what the expression means.
-- Security: invoker, pure. Since: 0.1.0
CREATE OR REPLACE FUNCTION tally.check_expression_text(p_part text, p_expression text)
RETURNS void
LANGUAGE plpgsql
IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    v_unquoted text;
    v_wrapped text := '(' || coalesce(p_expression, '') || ')';
BEGIN
    IF p_expression IS NULL OR btrim(p_expression) = '' THEN
        RAISE EXCEPTION '% is empty', p_part USING ERRCODE = 'syntax_error';
    END IF;
    -- drop string literals and quoted identifiers, then look at what is left
    v_unquoted := regexp_replace(p_expression, '''(?:[^'']|'''')*''|"(?:[^"]|"")*"', '', 'g');
    IF v_unquoted ~ '(;|--|/\*|\$)' THEN
        RAISE EXCEPTION '% contains "%", which is not allowed in a rollup expression',
                p_part, substring(v_unquoted FROM '(;|--|/\*|\$)')
            USING ERRCODE = 'syntax_error',
                  DETAIL = format('expression: %s', p_expression);
    END IF;
    IF tally.matching_parenthesis(v_wrapped, 1) IS DISTINCT FROM length(v_wrapped) THEN
        RAISE EXCEPTION '% has unbalanced parentheses', p_part
            USING ERRCODE = 'syntax_error',
                  DETAIL = format('expression: %s', p_expression);
    END IF;
END;
$function$;

COMMENT ON FUNCTION tally.check_expression_text(text, text) IS
'Refuses expression text that could escape its wrapper: ; -- /* $ or unbalanced parentheses';
