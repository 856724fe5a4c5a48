-- tally.jobs: pgtally's scheduled jobs, one row each
--
-- Each job scheduled by tally.schedule (catalogued in tally.scheduled_jobs) with its
-- pg_cron job (id, active, command), pg_cron's record of its last run
-- (cron.job_run_details) and the last run tally.runs recorded for it. Without pg_cron in
-- this database the cron columns are NULL. Rows are those of the sources the reader owns
-- (row-level security on tally.scheduled_jobs).
-- Since: 0.1.0
CREATE OR REPLACE VIEW tally.jobs AS
SELECT
    j.job_name,
    j.rollup_name,
    j.job_kind,
    j.schedule,
    j.options,
    j.interval_seconds,
    j.cron_job_id,
    j.cron_active,
    j.cron_command,
    j.cron_last_status,
    j.cron_last_start,
    j.cron_last_end,
    j.cron_last_message,
    j.last_run_id,
    j.last_run_status,
    j.last_run_started,
    j.last_run_finished
FROM tally.job_status_rows() AS j;

COMMENT ON VIEW tally.jobs IS
'pgtally jobs with their pg_cron job, pg_cron''s last run and the last run tally.runs recorded';

REVOKE ALL ON tally.jobs FROM PUBLIC;
