-- tally.job_step(p_run_id bigint) RETURNS text
--
-- The work of a reconcile or purge job run (recorded by tally.job_begin), inside a
-- subtransaction so a failure is recorded (error text and SQLSTATE on the run, event
-- job_failed on tally_operations) instead of escaping:
--   reconcile: tally.reconcile of the job's rollup (every rollup for '*'), with the
--              auto_correct option;
--   compact:   tally.compact of the job's rollup (every rollup with slots or in append mode
--              for '*'), rows folded added up over the rounds of a repeating run;
--   purge:     tally.purge_logs with the retention option (default the log_retention
--              setting), plus the cron.job_run_details rows of pgtally:* jobs that ended
--              before the retention (when pg_cron is there).
-- Returns 'done' or 'failed'.
-- Security: invoker. Since: 0.1.0
CREATE OR REPLACE FUNCTION tally.job_step(p_run_id bigint)
RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    v_run tally.runs%ROWTYPE;
    v_options jsonb;
    v_job text;
    v_retention interval;
    v_rollup text;
    v_result tally.reconcile_summary;
    v_details jsonb := '{}';
    v_count bigint;
    v_message text;
    v_state text;
BEGIN
    SELECT * INTO STRICT v_run FROM tally.runs WHERE run_id = p_run_id;
    v_options := coalesce(v_run.details -> 'options', '{}');
    v_job := v_run.details ->> 'job';
    BEGIN
        IF v_job = 'reconcile' THEN
            FOR v_rollup IN
                SELECT r.rollup_name FROM tally.rollups AS r
                WHERE (v_run.rollup_name IS NULL OR r.rollup_name = v_run.rollup_name) AND r.status = 'ready'
                ORDER BY 1
            LOOP
                v_result := tally.reconcile(v_rollup, coalesce((v_options ->> 'auto_correct')::boolean, false),
                                            p_reason => format('scheduled job %s', v_run.job_name));
                v_details := v_details || jsonb_build_object(v_rollup, jsonb_build_object(
                    'run_id', v_result.run_id, 'in_sync', v_result.in_sync,
                    'corrected', v_result.groups_corrected));
            END LOOP;
            v_details := jsonb_build_object('reconciled', v_details);
        ELSIF v_job = 'compact' THEN
            -- rows folded per rollup, added up over the rounds of a repeating run
            SELECT jsonb_build_object(
                       'compacted', coalesce(jsonb_object_agg(r.rollup_name, tally.compact(r.rollup_name)
                           + coalesce((v_run.details #>> ARRAY['compacted', r.rollup_name])::bigint, 0)), '{}'),
                       'rounds', coalesce((v_run.details ->> 'rounds')::integer, 0) + 1)
            INTO v_details
            FROM tally.rollups AS r
            WHERE (v_run.rollup_name IS NULL OR r.rollup_name = v_run.rollup_name) AND r.slot_table IS NOT NULL;
        ELSIF v_job = 'purge' THEN
            v_retention := coalesce(
                (v_options ->> 'retention')::interval,
                (SELECT s.setting_value::interval FROM tally.settings AS s WHERE s.setting_name = 'log_retention'));
            v_details := jsonb_build_object('runs_purged', tally.purge_logs(v_retention));
            IF to_regclass('cron.job_run_details') IS NOT NULL THEN
                EXECUTE 'DELETE FROM cron.job_run_details AS d USING cron.job AS j '
                        'WHERE d.jobid = j.jobid AND j.jobname LIKE $1 AND d.end_time < $2'
                USING 'pgtally:%', tally.now() - v_retention;
                GET DIAGNOSTICS v_count = ROW_COUNT;
                v_details := v_details || jsonb_build_object('cron_run_details_purged', v_count);
            END IF;
        ELSE
            RAISE EXCEPTION 'job "%" has no step of its own', v_job USING ERRCODE = 'invalid_parameter_value';
        END IF;
        UPDATE tally.runs SET details = details || v_details WHERE run_id = p_run_id;
        RETURN 'done';
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS v_message = MESSAGE_TEXT, v_state = RETURNED_SQLSTATE;
    END;
    PERFORM tally.record_job_failure(p_run_id, v_message, v_state);
    RETURN 'failed';
END;
$function$;

COMMENT ON FUNCTION tally.job_step(bigint) IS
'The work of a reconcile or purge job run, failures recorded rather than raised';
