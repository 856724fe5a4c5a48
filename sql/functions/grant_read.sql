-- tally.grant_read(p_role text, p_rollup text DEFAULT NULL) RETURNS integer
--
-- Lets a read-only role (a leaderboard client, a dashboard) read rollups: USAGE on schema
-- tally, SELECT on the rollup catalogue (row-level security then shows it the rollups
-- whose stats it may read) and SELECT on the stats table of p_rollup, or of every rollup
-- the caller owns. The role gets no write privilege on anything; tally.top, tally.rank
-- and tally.stats_columns work for it. Returns the number of stats tables granted.
-- Only a member of a source's owner role can grant its stats (GRANT checks that).
-- Security: invoker. Since: 0.1.0
CREATE OR REPLACE FUNCTION tally.grant_read(p_role text, p_rollup text DEFAULT NULL)
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
    IF p_rollup IS NOT NULL AND NOT EXISTS (SELECT FROM tally.rollups AS r WHERE r.rollup_name = p_rollup) THEN
        RAISE EXCEPTION 'rollup "%" does not exist', p_rollup
            USING ERRCODE = 'undefined_object', HINT = 'SELECT rollup_name FROM tally.rollups lists them.';
    END IF;
    EXECUTE format('GRANT USAGE ON SCHEMA tally TO %I', p_role);
    EXECUTE format('GRANT SELECT ON tally.rollups, tally.rollup_keys, tally.rollup_measures TO %I', p_role);
    FOR v_stats IN
        SELECT r.stats_table FROM tally.rollups AS r
        WHERE (p_rollup IS NULL OR r.rollup_name = p_rollup) AND pg_has_role(current_user, r.owner_role, 'USAGE')
        ORDER BY r.rollup_name
    LOOP
        EXECUTE format('GRANT SELECT ON %s TO %I', v_stats, p_role);
        v_count := v_count + 1;
    END LOOP;
    RETURN v_count;
END;
$function$;

COMMENT ON FUNCTION tally.grant_read(text, text) IS
'Lets a read-only role read rollups (catalogue and stats tables): for tally.top, tally.rank, dashboards';
