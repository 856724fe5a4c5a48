-- tally.job_begin(p_rollup text, p_job text, p_options jsonb DEFAULT NULL) RETURNS bigint
--
-- First step of tally.run_job: takes the job's session-level advisory lock
-- (pg_try_advisory_lock on the job name pgtally:<rollup>:<job>) and records the run in
-- tally.runs (run_kind 'job', status 'running', the options in force: the job's options
-- from tally.scheduled_jobs overlaid with p_options, checked by tally.check_job_options
-- first). When another session holds the lock, records
-- a 'skipped' run and returns NULL: two runs of one job never overlap. The lock is
-- released by tally.job_finish, or by the end of the session (a crash included).
-- Security: invoker. Since: 0.1.0
CREATE OR REPLACE FUNCTION tally.job_begin(p_rollup text, p_job text, p_options jsonb DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    v_name text := tally.job_name(p_rollup, p_job);
    v_options jsonb;
    v_run_id bigint;
BEGIN
    SELECT j.options INTO v_options FROM tally.scheduled_jobs AS j WHERE j.job_name = v_name;
    v_options := coalesce(v_options, '{}') || coalesce(p_options, '{}');
    PERFORM tally.check_job_options(p_job, v_options);

    IF NOT pg_try_advisory_lock(hashtextextended(v_name, 0)) THEN
        INSERT INTO tally.runs (rollup_name, run_kind, job_name, status, finished_at, details)
        VALUES (p_rollup, 'job', v_name, 'skipped', clock_timestamp(),
                jsonb_build_object('job', p_job, 'reason', 'another run of this job holds its lock'));
        RETURN NULL;
    END IF;
    INSERT INTO tally.runs (rollup_name, run_kind, job_name, details)
    VALUES (p_rollup, 'job', v_name, jsonb_build_object('job', p_job, 'options', v_options, 'clock', tally.now()))
    RETURNING run_id INTO v_run_id;
    RETURN v_run_id;
END;
$function$;

COMMENT ON FUNCTION tally.job_begin(text, text, jsonb) IS
'Takes a job''s advisory lock and records its run; records a skipped run when another holds it';
