-- tally.job_status_rows() RETURNS TABLE (...)
--
-- pgtally's jobs (tally.scheduled_jobs) with their pg_cron job (active, schedule, command) and its
-- last run as pg_cron saw it (cron.job_run_details), plus the last run tally.runs
-- recorded. pg_cron is optional: the cron columns are NULL when the cron schema is not
-- in this database, so pgtally installs and this works without it. The view
-- tally.jobs (below, in this file: it depends on the function) selects from it.
-- Security: invoker. Since: 0.1.0
CREATE OR REPLACE FUNCTION tally.job_status_rows()
RETURNS TABLE (
    job_name text,
    rollup_name text,
    job_kind text,
    schedule text,
    options jsonb,
    interval_seconds integer,
    cron_job_id bigint,
    cron_active boolean,
    cron_command text,
    cron_last_status text,
    cron_last_start timestamptz,
    cron_last_end timestamptz,
    cron_last_message text,
    last_run_id bigint,
    last_run_status text,
    last_run_started timestamptz,
    last_run_finished timestamptz
)
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $function$
BEGIN
    IF to_regclass('cron.job') IS NOT NULL AND to_regclass('cron.job_run_details') IS NOT NULL THEN
        RETURN QUERY EXECUTE $q$
            SELECT j.job_name, j.rollup_name, j.job_kind, j.schedule, j.options, j.interval_seconds,
                   c.jobid, c.active, c.command, d.status, d.start_time, d.end_time, d.return_message,
                   r.run_id, r.status, r.started_at, r.finished_at
            FROM tally.scheduled_jobs AS j
            LEFT JOIN cron.job AS c ON c.jobname = j.job_name
            LEFT JOIN LATERAL (
                SELECT d.status, d.start_time, d.end_time, d.return_message
                FROM cron.job_run_details AS d WHERE d.jobid = c.jobid
                ORDER BY d.runid DESC LIMIT 1
            ) AS d ON true
            LEFT JOIN LATERAL (
                SELECT r.run_id, r.status, r.started_at, r.finished_at
                FROM tally.runs AS r WHERE r.job_name = j.job_name AND r.run_kind = 'job'
                ORDER BY r.run_id DESC LIMIT 1
            ) AS r ON true
            ORDER BY j.job_name
        $q$;
    ELSE
        RETURN QUERY
            SELECT j.job_name, j.rollup_name, j.job_kind, j.schedule, j.options, j.interval_seconds,
                   j.cron_job_id, NULL::boolean, NULL::text, NULL::text, NULL::timestamptz, NULL::timestamptz,
                   NULL::text, r.run_id, r.status, r.started_at, r.finished_at
            FROM tally.scheduled_jobs AS j
            LEFT JOIN LATERAL (
                SELECT r.run_id, r.status, r.started_at, r.finished_at
                FROM tally.runs AS r WHERE r.job_name = j.job_name AND r.run_kind = 'job'
                ORDER BY r.run_id DESC LIMIT 1
            ) AS r ON true
            ORDER BY j.job_name;
    END IF;
END;
$function$;

COMMENT ON FUNCTION tally.job_status_rows() IS
'pgtally jobs with their pg_cron job and last runs (cron columns NULL without pg_cron)';
