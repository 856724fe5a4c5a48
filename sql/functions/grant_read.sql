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
    v_count integer;
BEGIN
    v_count := tally.change_stats_read_access(p_role, p_rollup, true);
    EXECUTE format('GRANT USAGE ON SCHEMA tally TO %I', p_role);
    EXECUTE format('GRANT SELECT ON tally.rollups, tally.rollup_keys, tally.rollup_measures TO %I', p_role);
    RETURN v_count;
END;
$function$;

COMMENT ON FUNCTION tally.grant_read(text, text) IS
'Lets a read-only role read rollups (catalogue and stats tables): for tally.top, tally.rank, dashboards';
