-- tally.schedule(p_rollup text, p_job text, p_cron text, p_options jsonb DEFAULT '{}') RETURNS bigint
--
-- Schedules (or re-schedules: named jobs are upserted) a pgtally job with pg_cron, as the
-- job pgtally:<rollup>:<job> ('*' for a job over every rollup, p_rollup NULL) whose
-- command is CALL tally.run_job(rollup, job), and records it in tally.scheduled_jobs with the
-- interval health checks compare against. Jobs: 'reconcile' (options: auto_correct),
-- 'refresh' (deferred rollups; options: include_current, only_requested, catch_up_days),
-- 'purge' (options: retention, an interval; default the log_retention setting) and
-- 'compact' (folds the slots and pending rows of rollups with slots or in append mode,
-- tally.compact; options: for_seconds and every_seconds, to compact every few seconds
-- within one run, which a schedule of one minute needs with pg_cron before 1.5).
-- pg_cron must be installed in this database (the one cron.database_name names);
-- otherwise the error says how to enable it. Returns the pg_cron job id.
-- Security: invoker (pg_cron runs the job as the calling role). Since: 0.1.0
CREATE OR REPLACE FUNCTION tally.schedule(p_rollup text, p_job text, p_cron text, p_options jsonb DEFAULT '{}')
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    v_name text := tally.job_name(p_rollup, p_job);
    v_job_id bigint;
BEGIN
    IF p_rollup IS NULL AND p_job = 'refresh' THEN
        RAISE EXCEPTION 'a refresh job needs a rollup' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_job = 'refresh' AND NOT EXISTS (SELECT FROM tally.deferred_rollups AS d WHERE d.rollup_name = p_rollup) THEN
        RAISE EXCEPTION 'rollup "%" is not deferred: it has nothing to refresh', p_rollup
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'SELECT tally.set_mode(rollup, ''deferred'') first.';
    END IF;
    IF p_job = 'compact' AND p_rollup IS NOT NULL
       AND NOT EXISTS (SELECT FROM tally.rollups AS r WHERE r.rollup_name = p_rollup AND r.slot_table IS NOT NULL) THEN
        RAISE EXCEPTION 'rollup "%" has no slots and is not in append mode: it has nothing to compact', p_rollup
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'SELECT tally.set_slots(rollup, 16) or tally.set_mode(rollup, ''append'') first.';
    END IF;
    PERFORM tally.check_job_options(p_job, p_options);
    IF p_cron IS NULL OR cardinality(regexp_split_to_array(btrim(p_cron), '\s+')) <> 5 THEN
        RAISE EXCEPTION 'schedule "%" is not a five-field cron expression', p_cron
            USING ERRCODE = 'invalid_parameter_value', HINT = 'For example ''5 0 * * *'' (00:05 UTC daily).';
    END IF;
    IF to_regprocedure('cron.schedule(text,text,text)') IS NULL THEN
        RAISE EXCEPTION 'pg_cron is not available in database %', current_database()
            USING ERRCODE = 'feature_not_supported',
                  HINT = 'Add shared_preload_libraries = ''pg_cron'' and cron.database_name = '''
                         || current_database() || ''' to postgresql.conf, restart the server, '
                         'then CREATE EXTENSION pg_cron in this database.';
    END IF;

    EXECUTE 'SELECT cron.schedule($1, $2, $3)'
    INTO v_job_id
    USING v_name, p_cron, format('CALL tally.run_job(%L, %L)', p_rollup, p_job);

    INSERT INTO tally.scheduled_jobs AS j (job_name, rollup_name, job_kind, schedule, options, interval_seconds,
                                          cron_job_id, scheduled_at)
    VALUES (v_name, p_rollup, p_job, p_cron, coalesce(p_options, '{}'), tally.cron_interval_seconds(p_cron), v_job_id,
            tally.now())
    ON CONFLICT (job_name) DO UPDATE SET
        schedule = excluded.schedule, options = excluded.options, interval_seconds = excluded.interval_seconds,
        cron_job_id = excluded.cron_job_id, owner_role = excluded.owner_role, scheduled_at = excluded.scheduled_at;
    RETURN v_job_id;
END;
$function$;

COMMENT ON FUNCTION tally.schedule(text, text, text, jsonb) IS
'Schedules a pgtally job (reconcile, refresh, purge) with pg_cron as pgtally:<rollup>:<job>';
