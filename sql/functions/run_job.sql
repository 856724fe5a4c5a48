-- CALL tally.run_job(p_rollup text, p_job text, p_options jsonb DEFAULT NULL)
--
-- Runs one pgtally job now: what pg_cron calls (tally.schedule), and the manual trigger
-- for operators and tests (EXECUTE is not granted to PUBLIC). p_rollup NULL means the
-- job over every rollup; p_options overlays the job's scheduled options. The job's
-- advisory lock keeps two runs apart (the second records a 'skipped' run and returns);
-- a refresh commits after every bucket, so a failing bucket is retried later and never
-- blocks the next; the lock is released at the end, or by the session's end when it
-- crashes. Every run and step is a row in tally.runs. A compact job with the option
-- for_seconds repeats its step, committing after each and sleeping every_seconds
-- (default 1) in between, until that many seconds have passed: folding every second
-- under a schedule of one minute.
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
    v_options jsonb;
    v_until timestamptz;
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
        SELECT r.details OPERATOR(pg_catalog.->) 'options' INTO v_options FROM tally.runs AS r
        WHERE r.run_id OPERATOR(pg_catalog.=) v_run_id;
        v_until := pg_catalog.clock_timestamp() OPERATOR(pg_catalog.+) pg_catalog.make_interval(
            secs => coalesce((v_options OPERATOR(pg_catalog.->>) 'for_seconds')::pg_catalog.float8, 0));
        LOOP
            EXIT WHEN tally.job_step(v_run_id) OPERATOR(pg_catalog.<>) 'done';
            COMMIT;
            EXIT WHEN p_job OPERATOR(pg_catalog.<>) 'compact' OR pg_catalog.clock_timestamp() OPERATOR(pg_catalog.>=) v_until;
            PERFORM pg_catalog.pg_sleep(coalesce((v_options OPERATOR(pg_catalog.->>) 'every_seconds')::pg_catalog.float8, 1));
        END LOOP;
        COMMIT;
    END IF;
    PERFORM tally.job_finish(v_run_id);
    COMMIT;
END;
$procedure$;

COMMENT ON PROCEDURE tally.run_job (text, text, jsonb) IS
'Runs a pgtally job now (what pg_cron calls): advisory lock, per-bucket commits, retries, runs recorded';

REVOKE ALL ON PROCEDURE tally.run_job(text, text, jsonb) FROM PUBLIC;
