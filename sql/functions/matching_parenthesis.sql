-- tally.matching_parenthesis(p_text text, p_open integer) RETURNS integer
--
-- Position of the parenthesis that closes the one at p_open, skipping quoted strings and
-- quoted identifiers; NULL when it is never closed. Used to split a measure such as
-- "m = sum(x) FILTER (WHERE y)" without a regular expression that miscounts nesting.
-- Security: invoker, pure. Since: 0.1.0
CREATE OR REPLACE FUNCTION tally.matching_parenthesis(p_text text, p_open integer)
RETURNS integer
LANGUAGE plpgsql
IMMUTABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    v_depth integer := 0;
    v_position integer := p_open;
    v_length integer := length(p_text);
    v_char text;
    v_quote text;
BEGIN
    WHILE v_position <= v_length LOOP
        v_char := substr(p_text, v_position, 1);
        IF v_quote IS NOT NULL THEN
            IF v_char = v_quote THEN
                IF substr(p_text, v_position + 1, 1) = v_quote THEN
                    v_position := v_position + 1;  -- doubled quote: an escaped quote
                ELSE
                    v_quote := NULL;
                END IF;
            END IF;
        ELSIF v_char IN ('''', '"') THEN
            v_quote := v_char;
        ELSIF v_char = '(' THEN
            v_depth := v_depth + 1;
        ELSIF v_char = ')' THEN
            v_depth := v_depth - 1;
            IF v_depth = 0 THEN
                RETURN v_position;
            END IF;
        END IF;
        v_position := v_position + 1;
    END LOOP;
    RETURN NULL;
END;
$function$;

COMMENT ON FUNCTION tally.matching_parenthesis(text, integer) IS
'Position of the parenthesis closing the one at p_open, quotes skipped; NULL if unbalanced';
