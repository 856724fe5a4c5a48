-- tally.record_job_failure(p_run_id bigint, p_message text, p_sqlstate text) RETURNS void
--
-- Marks a job run failed with the error's text and SQLSTATE, and announces it on the
-- operations channel tally_operations (event job_failed): what a job step does with an
-- error it caught instead of letting it escape pg_cron's call.
-- Security: invoker. Since: 0.1.0
CREATE OR REPLACE FUNCTION tally.record_job_failure(p_run_id bigint, p_message text, p_sqlstate text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    v_job_name text;
BEGIN
    UPDATE tally.runs SET status = 'failed', error_text = p_message, error_sqlstate = p_sqlstate
    WHERE run_id = p_run_id
    RETURNING job_name INTO v_job_name;
    PERFORM pg_notify('tally_operations', jsonb_build_object(
        'event', 'job_failed', 'job', v_job_name, 'run_id', p_run_id, 'error', p_message,
        'sqlstate', p_sqlstate)::text);
END;
$function$;

COMMENT ON FUNCTION tally.record_job_failure(bigint, text, text) IS
'Marks a job run failed (error text, SQLSTATE) and reports it on tally_operations';
