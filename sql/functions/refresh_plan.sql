-- tally.refresh_plan(p_run_id bigint) RETURNS jsonb
--
-- Plans a refresh job run of a deferred rollup (the run recorded by tally.job_begin):
-- consumes the pending on-demand request (tally.refresh_requests), and returns the steps
-- as a JSON array of {"bucket": date or null, "full": boolean}. A rollup without a bucket
-- key has one step: its pending invalidations. A bucketed rollup has one step per day:
--   - days with pending invalidations (their groups are recomputed);
--   - days that ended within the catch-up window (catch_up_days, default 7) and were not
--     finalised since the rollup became deferred, e.g. after an outage: recomputed whole
--     ("full"), then marked finalised;
--   - never today's (incomplete) bucket or a later one, unless include_current;
--   - the groups whose day key is NULL, when pending, as a bucket of their own (null);
--   - never a dead-lettered day, nor one waiting for its retry (next_attempt_at).
-- Older unfinalised days are reported in the run's details and on tally_operations, not
-- filled. With only_requested and no pending request, returns an empty plan (idle).
-- On error, marks the run failed and returns NULL.
-- Security: invoker. Since: 0.1.0
CREATE OR REPLACE FUNCTION tally.refresh_plan(p_run_id bigint)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    v_run tally.runs%ROWTYPE;
    v_options jsonb;
    v_deferred tally.deferred_rollups%ROWTYPE;
    v_now timestamptz := tally.now();
    v_today date := (tally.now() AT TIME ZONE 'UTC')::date;
    v_since date;
    v_window_start date;
    v_include_current boolean;
    v_requested timestamptz;
    v_plan jsonb;
    v_gaps date[];
    v_message text;
    v_state text;
BEGIN
    SELECT * INTO v_run FROM tally.runs WHERE run_id = p_run_id;
    v_options := coalesce(v_run.details -> 'options', '{}');
    BEGIN
        SELECT * INTO v_deferred FROM tally.deferred_rollups WHERE rollup_name = v_run.rollup_name;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'rollup "%" is not deferred: it has nothing to refresh', v_run.rollup_name
                USING ERRCODE = 'object_not_in_prerequisite_state';
        END IF;
        v_options := v_deferred.options || v_options;
        DELETE FROM tally.refresh_requests WHERE rollup_name = v_run.rollup_name
        RETURNING requested_at INTO v_requested;
        IF coalesce((v_options ->> 'only_requested')::boolean, false) AND v_requested IS NULL THEN
            UPDATE tally.runs SET details = details || '{"idle": true}' WHERE run_id = p_run_id;
            RETURN '[]';
        END IF;

        IF v_deferred.bucket_key IS NULL THEN
            v_plan := CASE WHEN EXISTS (SELECT FROM tally.invalidations AS i WHERE i.rollup_name = v_run.rollup_name)
                           THEN '[{"bucket": null, "full": false}]' ELSE '[]' END;
        ELSE
            v_include_current := coalesce((v_options ->> 'include_current')::boolean, false);
            v_since := (v_deferred.deferred_since AT TIME ZONE 'UTC')::date;
            v_window_start := v_today - coalesce(
                (v_options ->> 'catch_up_days')::integer,
                (SELECT s.setting_value::integer FROM tally.settings AS s WHERE s.setting_name = 'catch_up_days'),
                7);
            WITH pending AS (
                SELECT DISTINCT (i.group_key ->> v_deferred.bucket_key)::date AS bucket
                FROM tally.invalidations AS i WHERE i.rollup_name = v_run.rollup_name
            ),
            due AS (
                SELECT d::date AS bucket
                FROM generate_series(greatest(v_window_start, v_since), v_today - 1, interval '1 day') AS d
                WHERE NOT EXISTS (
                    SELECT FROM tally.bucket_state AS b
                    WHERE b.rollup_name = v_run.rollup_name AND b.bucket = d::date AND b.finalised_at IS NOT NULL)
            ),
            candidate AS (
                SELECT bucket FROM pending UNION SELECT bucket FROM due
            )
            SELECT coalesce(jsonb_agg(jsonb_build_object(
                       'bucket', c.bucket,
                       'full', coalesce(c.bucket < v_today AND c.bucket >= v_since AND b.finalised_at IS NULL, false))
                       ORDER BY c.bucket), '[]')
            INTO v_plan
            FROM candidate AS c
            LEFT JOIN tally.bucket_state AS b ON b.rollup_name = v_run.rollup_name AND b.bucket = c.bucket
            WHERE (c.bucket IS NULL OR c.bucket < v_today OR v_include_current)
              AND b.dead_lettered_at IS NULL
              AND (b.next_attempt_at IS NULL OR b.next_attempt_at <= v_now);

            SELECT array_agg(d::date ORDER BY d) INTO v_gaps
            FROM generate_series(v_since, v_window_start - 1, interval '1 day') AS d
            WHERE NOT EXISTS (
                SELECT FROM tally.bucket_state AS b
                WHERE b.rollup_name = v_run.rollup_name AND b.bucket = d::date AND b.finalised_at IS NOT NULL);
            IF v_gaps IS NOT NULL THEN
                PERFORM pg_notify('tally_operations', jsonb_build_object(
                    'event', 'refresh_gaps_not_filled', 'rollup', v_run.rollup_name, 'run_id', p_run_id,
                    'buckets', to_jsonb(v_gaps))::text);
            END IF;
        END IF;
        UPDATE tally.runs SET details = details || jsonb_strip_nulls(jsonb_build_object(
            'plan', v_plan, 'requested_at', v_requested, 'gaps_not_filled', to_jsonb(v_gaps)))
        WHERE run_id = p_run_id;
        RETURN v_plan;
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS v_message = MESSAGE_TEXT, v_state = RETURNED_SQLSTATE;
        PERFORM tally.record_job_failure(p_run_id, v_message, v_state);
        RETURN NULL;
    END;
END;
$function$;

COMMENT ON FUNCTION tally.refresh_plan(bigint) IS
'Plans a refresh run of a deferred rollup: pending and missed day buckets, minus current, dead and backing-off ones';
