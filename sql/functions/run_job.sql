-- CALL tally.run_job(p_rollup text, p_job text, p_options jsonb DEFAULT NULL)
--
-- Runs one pgtally job now: what pg_cron calls (tally.schedule), and the manual trigger
-- for operators and tests (EXECUTE is not granted to PUBLIC). p_rollup NULL means the
-- job over every rollup; p_options overlays the job's scheduled options. The job's
-- advisory lock keeps two runs apart (the second records a 'skipped' run and returns);
-- a refresh commits after every bucket, so a failing bucket is retried later and never
-- blocks the next; the lock is released at the end, or by the session's end when it
-- crashes. Every run and step is a row in tally.runs.
-- Procedures that COMMIT cannot carry a SET search_path clause: every name below is
-- schema-qualified instead, operators included.
-- Security: invoker. Since: 0.1.0
CREATE OR REPLACE PROCEDURE tally.run_job(p_rollup text, p_job text, p_options jsonb DEFAULT NULL)
LANGUAGE plpgsql
AS $procedure$
DECLARE
    v_run_id bigint;
    v_plan jsonb;
    v_step jsonb;
BEGIN
    v_run_id := tally.job_begin(p_rollup, p_job, p_options);
    COMMIT;
    IF v_run_id IS NULL THEN
        RETURN;  -- another run holds the lock: recorded as skipped
    END IF;
    IF p_job OPERATOR(pg_catalog.=) 'refresh' THEN
        v_plan := tally.refresh_plan(v_run_id);
        COMMIT;
        FOR v_step IN SELECT s.value FROM pg_catalog.jsonb_array_elements(v_plan) AS s LOOP
            PERFORM tally.refresh_step(
                v_run_id,
                (v_step OPERATOR(pg_catalog.->>) 'bucket')::pg_catalog.date,
                (v_step OPERATOR(pg_catalog.->>) 'full')::pg_catalog.bool);
            COMMIT;
        END LOOP;
    ELSE
        PERFORM tally.job_step(v_run_id);
        COMMIT;
    END IF;
    PERFORM tally.job_finish(v_run_id);
    COMMIT;
END;
$procedure$;

COMMENT ON PROCEDURE tally.run_job (text, text, jsonb) IS
'Runs a pgtally job now (what pg_cron calls): advisory lock, per-bucket commits, retries, runs recorded';

REVOKE ALL ON PROCEDURE tally.run_job(text, text, jsonb) FROM PUBLIC;
