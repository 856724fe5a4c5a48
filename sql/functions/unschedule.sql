-- tally.unschedule(p_rollup text, p_job text) RETURNS boolean
--
-- Removes a job scheduled by tally.schedule: its pg_cron job (when pg_cron is there) and
-- its tally.scheduled_jobs row. p_rollup NULL means the job over every rollup ('*'). Returns false
-- when there was no such job.
-- Security: invoker. Since: 0.1.0
CREATE OR REPLACE FUNCTION tally.unschedule(p_rollup text, p_job text)
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    v_name text := format('pgtally:%s:%s', coalesce(p_rollup, '*'), p_job);
    v_found boolean;
    v_removed bigint;
BEGIN
    DELETE FROM tally.scheduled_jobs WHERE job_name = v_name;
    v_found := FOUND;
    IF to_regclass('cron.job') IS NOT NULL THEN
        EXECUTE 'SELECT count(cron.unschedule(j.jobid)) FROM cron.job AS j WHERE j.jobname = $1'
        INTO v_removed USING v_name;
        v_found := v_found OR v_removed > 0;
    END IF;
    RETURN v_found;
END;
$function$;

COMMENT ON FUNCTION tally.unschedule(text, text) IS 'Removes a pgtally job from pg_cron and tally.scheduled_jobs';
