-- tally.rollup_to_change(p_rollup text, p_action text DEFAULT 'change') RETURNS tally.rollups
--
-- The catalogue row of a rollup the caller is about to change, after the checks every
-- changing function makes: the rollup exists (tally.rollup_named), and the caller is a member of its source table's owner role
-- (insufficient_privilege, "must be owner of table ... to <p_action> rollup ...").
-- Security: invoker. Since: 0.1.0
CREATE OR REPLACE FUNCTION tally.rollup_to_change(p_rollup text, p_action text DEFAULT 'change')
RETURNS tally.rollups
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    v_rollup tally.rollups%ROWTYPE := tally.rollup_named(p_rollup);
BEGIN
    IF NOT pg_has_role(current_user, tally.source_owner(v_rollup.source_table, v_rollup.owner_role), 'USAGE') THEN
        RAISE EXCEPTION 'must be owner of table % to % rollup "%"', v_rollup.source_table, p_action, p_rollup
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN v_rollup;
END;
$function$;

COMMENT ON FUNCTION tally.rollup_to_change(text, text) IS
'A rollup''s catalogue row, after checking it exists and the caller owns its source';
