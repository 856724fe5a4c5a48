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
    v_count integer;
BEGIN
    v_count := tally.change_stats_read_access(p_role, p_rollup, false);
    IF p_rollup IS NULL THEN
        EXECUTE format('REVOKE SELECT ON tally.rollups, tally.rollup_keys, tally.rollup_measures FROM %I', p_role);
        EXECUTE format('REVOKE USAGE ON SCHEMA tally FROM %I', p_role);
    END IF;
    RETURN v_count;
END;
$function$;

COMMENT ON FUNCTION tally.revoke_read(text, text) IS 'Undoes tally.grant_read for one rollup or all';
