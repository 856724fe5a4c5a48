-- tally.rollup_named(p_rollup text) RETURNS tally.rollups
--
-- The catalogue row of a rollup, or the error every function taking a rollup name
-- raises when there is none: 'rollup "<name>" does not exist' (undefined_object, with a
-- hint listing where to look). Rows hidden by the catalogue's row-level security count as
-- missing. tally.rollup_to_change adds the owner check for changing functions.
-- Security: invoker. Since: 0.1.0
CREATE OR REPLACE FUNCTION tally.rollup_named(p_rollup text)
RETURNS tally.rollups
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    v_rollup tally.rollups%ROWTYPE;
BEGIN
    SELECT * INTO v_rollup FROM tally.rollups WHERE rollup_name = p_rollup;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'rollup "%" does not exist', p_rollup
            USING ERRCODE = 'undefined_object', HINT = 'SELECT rollup_name FROM tally.rollups lists them.';
    END IF;
    RETURN v_rollup;
END;
$function$;

COMMENT ON FUNCTION tally.rollup_named(text) IS
'A rollup''s catalogue row, or undefined_object when there is no rollup of that name';
