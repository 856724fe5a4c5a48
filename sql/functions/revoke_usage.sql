-- tally.revoke_usage(p_role regrole) RETURNS void
--
-- Takes back what tally.grant_usage gave. Rollups the role made keep working: their
-- triggers run as the source table's owner.
-- Security: invoker. Since: 0.1.0
CREATE OR REPLACE FUNCTION tally.revoke_usage(p_role regrole)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $function$
BEGIN
    EXECUTE format('REVOKE SELECT, INSERT, UPDATE, DELETE ON tally.rollups, tally.rollup_keys, '
                   'tally.rollup_measures, tally.rollup_sources, tally.change_feed, tally.runs, tally.reconciliation_log, tally.corrections, tally.backfill_batches, '
                   'tally.scheduled_jobs, tally.deferred_rollups, tally.invalidations, tally.bucket_state, tally.refresh_requests FROM %s', p_role);
    EXECUTE format('REVOKE SELECT ON tally.install_ledger, tally.settings, tally.backfill_progress, tally.dead_letters, tally.jobs FROM %s', p_role);
    EXECUTE format('REVOKE USAGE ON ALL SEQUENCES IN SCHEMA tally FROM %s', p_role);
    EXECUTE format('REVOKE EXECUTE ON ALL PROCEDURES IN SCHEMA tally FROM %s', p_role);
    EXECUTE format('REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA tally FROM %s', p_role);
    EXECUTE format('REVOKE USAGE ON SCHEMA tally FROM %s', p_role);
END;
$function$;

COMMENT ON FUNCTION tally.revoke_usage(regrole) IS 'Takes back what tally.grant_usage gave a role';
