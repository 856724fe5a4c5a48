-- tally.parse_group_key(p_key text) RETURNS (key_name name, key_expression text, is_column boolean)
--
-- A group key is either a column name ('user_id', '"Org"') or a named expression
-- ('month = date_trunc(''month'', started_on)'). An unnamed expression is refused: the
-- stats table needs a column name for it.
-- Security: invoker, pure. Since: 0.1.0
CREATE OR REPLACE FUNCTION tally.parse_group_key(
    p_key text,
    OUT key_name name,
    OUT key_expression text,
    OUT is_column boolean
)
LANGUAGE plpgsql
IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    v_match text[];
BEGIN
    IF p_key IS NULL OR btrim(p_key) = '' THEN
        RAISE EXCEPTION 'group key is empty'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    v_match := regexp_match(p_key, '^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=(?![=>])\s*(.+?)\s*$', 's');
    IF v_match IS NOT NULL THEN
        key_name := lower(v_match[1]);
        key_expression := v_match[2];
        is_column := false;
        RETURN;
    END IF;

    v_match := regexp_match(p_key, '^\s*([A-Za-z_][A-Za-z0-9_$]*)\s*$');
    IF v_match IS NOT NULL THEN
        key_name := lower(v_match[1]);
        key_expression := quote_ident(key_name);
        is_column := true;
        RETURN;
    END IF;

    v_match := regexp_match(p_key, '^\s*"((?:[^"]|"")+)"\s*$');
    IF v_match IS NOT NULL THEN
        key_name := replace(v_match[1], '""', '"');
        key_expression := quote_ident(key_name);
        is_column := true;
        RETURN;
    END IF;

    RAISE EXCEPTION 'group key "%" is an expression without a name', p_key
        USING ERRCODE = 'invalid_parameter_value',
              HINT = format('Name it: ''my_key = %s''.', btrim(p_key));
END;
$function$;

COMMENT ON FUNCTION tally.parse_group_key(text) IS
'Splits a group key into its stats column name and its expression over the source';
