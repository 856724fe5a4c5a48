-- tally.job_finish(p_run_id bigint) RETURNS text
--
-- Last step of tally.run_job: sets the job run's outcome from its steps ('failed' when a
-- step failed, else 'done'; a run already marked failed stays so), counts of its
-- refresh steps in details, and releases the job's advisory lock. Returns the status.
-- Security: invoker. Since: 0.1.0
CREATE OR REPLACE FUNCTION tally.job_finish(p_run_id bigint)
RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    v_run tally.runs%ROWTYPE;
    v_steps jsonb;
    v_status text;
BEGIN
    SELECT * INTO v_run FROM tally.runs WHERE run_id = p_run_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no run %', p_run_id USING ERRCODE = 'undefined_object';
    END IF;
    SELECT jsonb_build_object(
               'steps_done', count(*) FILTER (WHERE s.status = 'done'),
               'steps_failed', count(*) FILTER (WHERE s.status = 'failed'),
               'rows_written', coalesce(sum(s.rows_written), 0),
               'unverified', count(*) FILTER (WHERE NOT s.verified)),
           CASE WHEN v_run.status = 'failed' OR bool_or(s.status = 'failed') THEN 'failed' ELSE 'done' END
    INTO v_steps, v_status
    FROM tally.runs AS s
    WHERE s.parent_run_id = p_run_id;
    UPDATE tally.runs SET
        status = v_status,
        finished_at = clock_timestamp(),
        rows_written = (v_steps ->> 'rows_written')::bigint,
        verified = CASE WHEN (v_steps ->> 'steps_done')::integer > 0 THEN (v_steps ->> 'unverified')::integer = 0 END,
        details = details || v_steps
    WHERE run_id = p_run_id;
    PERFORM pg_advisory_unlock(hashtextextended(v_run.job_name, 0));
    RETURN v_status;
END;
$function$;

COMMENT ON FUNCTION tally.job_finish(bigint) IS
'Sets a job run''s outcome from its steps and releases the job''s advisory lock';
