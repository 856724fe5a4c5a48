-- tally.grant_usage(p_role regrole) RETURNS void
--
-- Lets a role declare and drop rollups on the tables it owns: USAGE on the tally schema,
-- EXECUTE on pgtally's functions and access to the catalogue, where row-level security
-- shows each role only the rollups of sources it owns. Every pgtally function a role
-- gets this way runs with that role's own privileges (SECURITY INVOKER), so the grant
-- lets it do nothing it could not do by hand.
-- Security: invoker (the caller must be able to grant on the tally schema). Since: 0.1.0
CREATE OR REPLACE FUNCTION tally.grant_usage(p_role regrole)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $function$
BEGIN
    EXECUTE format('GRANT USAGE ON SCHEMA tally TO %s', p_role);
    EXECUTE format('GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA tally TO %s', p_role);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON tally.rollups, tally.rollup_keys, '
                   'tally.rollup_measures, tally.rollup_sources, tally.change_feed, tally.runs, tally.reconciliation_log, tally.corrections, tally.backfill_batches, '
                   'tally.scheduled_jobs, tally.deferred_rollups, tally.invalidations, tally.bucket_state, tally.refresh_requests TO %s', p_role);
    EXECUTE format('GRANT SELECT ON tally.install_ledger, tally.settings, tally.backfill_progress, tally.dead_letters, tally.jobs TO %s', p_role);
    EXECUTE format('GRANT USAGE ON ALL SEQUENCES IN SCHEMA tally TO %s', p_role);
    EXECUTE format('GRANT EXECUTE ON ALL PROCEDURES IN SCHEMA tally TO %s', p_role);
END;
$function$;

COMMENT ON FUNCTION tally.grant_usage(regrole) IS
'Lets a role declare and drop rollups on the tables it owns';
