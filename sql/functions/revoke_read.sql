-- tally.revoke_read(p_role text, p_rollup text DEFAULT NULL) RETURNS integer
--
-- Undoes tally.grant_read: SELECT on the stats table of p_rollup (or of every rollup the
-- caller owns) and, when p_rollup is NULL, SELECT on the catalogue and USAGE on schema
-- tally. Returns the number of stats tables revoked.
-- Security: invoker. Since: 0.1.0
CREATE OR REPLACE FUNCTION tally.revoke_read(p_role text, p_rollup text DEFAULT NULL)
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    v_stats regclass;
    v_count integer := 0;
BEGIN
    IF p_role IS NULL OR to_regrole(quote_ident(p_role)) IS NULL THEN
        RAISE EXCEPTION 'role "%" does not exist', p_role USING ERRCODE = 'undefined_object';
    END IF;
    FOR v_stats IN
        SELECT r.stats_table FROM tally.rollups AS r
        WHERE (p_rollup IS NULL OR r.rollup_name = p_rollup) AND pg_has_role(current_user, r.owner_role, 'USAGE')
        ORDER BY r.rollup_name
    LOOP
        EXECUTE format('REVOKE SELECT ON %s FROM %I', v_stats, p_role);
        v_count := v_count + 1;
    END LOOP;
    IF p_rollup IS NULL THEN
        EXECUTE format('REVOKE SELECT ON tally.rollups, tally.rollup_keys, tally.rollup_measures FROM %I', p_role);
        EXECUTE format('REVOKE USAGE ON SCHEMA tally FROM %I', p_role);
    END IF;
    RETURN v_count;
END;
$function$;

COMMENT ON FUNCTION tally.revoke_read(text, text) IS 'Undoes tally.grant_read for one rollup or all';
