-- tally.refresh_step(p_run_id bigint, p_bucket date, p_full boolean) RETURNS text
--
-- One step of a refresh job run (p_run_id): recomputes one day bucket of a deferred
-- rollup (p_bucket; NULL for a rollup without buckets, or for the groups whose day key is
-- NULL) in its own subtransaction, so a failing bucket never blocks the next. It takes
-- the bucket's transaction-level advisory lock (skips it when another session holds it),
-- then ROW EXCLUSIVE on the source (source before stats, as writers and TRUNCATE lock;
-- skips when set_mode made the rollup immediate meanwhile), removes the bucket's pending
-- invalidations and recomputes their groups (or, with p_full, the whole bucket), then
-- verifies the written groups against the source with tally.reconcile: a difference
-- that no newer invalidation explains is flagged (verified = false on the step's run and
-- the bucket, event refresh_mismatch on tally_operations). A past bucket recomputed whole
-- is marked finalised. On error: the work is undone, the step's run records the error
-- and SQLSTATE, and the bucket waits job_retry_backoff * 2^(attempt-1) before its next
-- attempt; after job_retry_limit attempts it is dead-lettered (tally.dead_letters,
-- event bucket_dead_lettered). Returns 'done', 'failed', 'dead_letter', 'locked' or 'skipped'.
-- jit = off: its estimates overshoot (CTEs, views over slots), and JIT compiling cost more
-- than it saved (README, Performance).
-- Security: invoker. Since: 0.1.0
CREATE OR REPLACE FUNCTION tally.refresh_step(p_run_id bigint, p_bucket date, p_full boolean)
RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $function$
DECLARE
    v_job tally.runs%ROWTYPE;
    v_rollup text;
    v_source regclass;
    v_bucket_key name;
    v_pending_condition text;
    v_now timestamptz := tally.now();
    v_today date := (tally.now() AT TIME ZONE 'UTC')::date;
    v_keys jsonb[];
    v_written bigint;
    v_check tally.reconcile_summary;
    v_condition text;
    v_verified boolean;
    v_attempt integer;
    v_limit integer;
    v_backoff interval;
    v_step_id bigint;
    v_message text;
    v_state text;
BEGIN
    SELECT * INTO STRICT v_job FROM tally.runs WHERE run_id = p_run_id;
    v_rollup := v_job.rollup_name;
    SELECT r.source_table INTO v_source FROM tally.rollups AS r WHERE r.rollup_name = v_rollup;
    v_attempt := coalesce((SELECT b.attempts FROM tally.bucket_state AS b
                           WHERE b.rollup_name = v_rollup AND b.bucket = p_bucket), 0) + 1;
    IF NOT pg_try_advisory_xact_lock(hashtextextended(format('pgtally:%s:bucket:%s', v_rollup, p_bucket), 0)) THEN
        INSERT INTO tally.runs (rollup_name, run_kind, job_name, parent_run_id, bucket, status, finished_at, details)
        VALUES (v_rollup, 'refresh', v_job.job_name, p_run_id, p_bucket, 'skipped', clock_timestamp(),
                '{"reason": "another session holds this bucket"}');
        RETURN 'locked';
    END IF;

    INSERT INTO tally.runs (rollup_name, run_kind, job_name, parent_run_id, bucket, attempt, details)
    VALUES (v_rollup, 'refresh', v_job.job_name, p_run_id, p_bucket, v_attempt, jsonb_build_object('full', p_full))
    RETURNING run_id INTO v_step_id;

    BEGIN
        -- Source before stats, the order writers and TRUNCATE lock in (no deadlock with a
        -- TRUNCATE of the source); it also waits for a set_mode in progress. ROW EXCLUSIVE
        -- blocks neither writers nor readers.
        EXECUTE format('LOCK TABLE %s IN ROW EXCLUSIVE MODE', v_source);
        SELECT d.bucket_key INTO v_bucket_key FROM tally.deferred_rollups AS d WHERE d.rollup_name = v_rollup;
        IF NOT FOUND THEN
            UPDATE tally.runs SET status = 'skipped', finished_at = clock_timestamp(),
                                  details = details || '{"reason": "the rollup is no longer deferred"}'
            WHERE run_id = v_step_id;
            RETURN 'skipped';
        END IF;
        -- this step's invalidations: its day (a NULL day is a bucket of its own), or all
        -- of them for a rollup without buckets
        v_pending_condition := CASE
            WHEN v_bucket_key IS NULL THEN 'true'
            WHEN p_bucket IS NULL THEN format('i.group_key ->> %L IS NULL', v_bucket_key)
            ELSE format('(i.group_key ->> %L)::date = %L::date', v_bucket_key, p_bucket) END;
        EXECUTE format('WITH d AS (DELETE FROM tally.invalidations AS i WHERE i.rollup_name = $1 AND %s '
                       'RETURNING i.group_key) SELECT array_agg(DISTINCT d.group_key) FROM d', v_pending_condition)
        INTO v_keys USING v_rollup;
        IF p_full AND p_bucket IS NOT NULL THEN
            v_written := tally.refresh_groups(v_rollup, NULL, p_bucket);
        ELSE
            v_written := tally.refresh_groups(v_rollup, v_keys);
        END IF;

        -- verify what was written, in a new snapshot
        IF p_bucket IS NOT NULL THEN
            v_condition := format('%I = %L', v_bucket_key, p_bucket);
        ELSIF v_bucket_key IS NOT NULL THEN
            v_condition := format('%I IS NULL', v_bucket_key);
        ELSIF EXISTS (SELECT FROM tally.rollup_keys AS k WHERE k.rollup_name = v_rollup) THEN
            -- the refreshed groups, matched by key equality
            v_condition := tally.group_in_set_sql(v_rollup, 'a', format('%L::jsonb[]', coalesce(v_keys, '{}')));
        END IF;
        v_check := tally.reconcile(v_rollup, p_key_condition => v_condition,
                                   p_reason => format('verification of refresh run %s', v_step_id));
        -- a source write committed since the refresh has its own invalidation: not a failure
        EXECUTE format('SELECT $1 OR EXISTS (SELECT FROM tally.invalidations AS i WHERE i.rollup_name = $2 AND %s)',
                       v_pending_condition)
        INTO v_verified USING v_check.in_sync, v_rollup;
        IF NOT v_verified THEN
            PERFORM pg_notify('tally_operations', jsonb_build_object(
                'event', 'refresh_mismatch', 'rollup', v_rollup, 'bucket', p_bucket, 'run_id', v_step_id,
                'reconcile_run_id', v_check.run_id)::text);
        END IF;

        IF p_bucket IS NOT NULL THEN
            INSERT INTO tally.bucket_state AS b (rollup_name, bucket, finalised_at, verified, attempts, last_run_id)
            VALUES (v_rollup, p_bucket, CASE WHEN p_full AND p_bucket < v_today THEN v_now END, v_verified, 0,
                    v_step_id)
            ON CONFLICT (rollup_name, bucket) DO UPDATE SET
                finalised_at = coalesce(b.finalised_at, excluded.finalised_at),
                verified = excluded.verified, attempts = 0, next_attempt_at = NULL,
                last_error = NULL, last_sqlstate = NULL, last_run_id = excluded.last_run_id;
        END IF;
        UPDATE tally.runs SET
            status = 'done', finished_at = clock_timestamp(), rows_written = v_written, verified = v_verified,
            groups_checked = v_check.groups_checked,
            details = details || jsonb_build_object('groups_invalidated', coalesce(cardinality(v_keys), 0),
                                                    'reconcile_run_id', v_check.run_id)
        WHERE run_id = v_step_id;
        RETURN 'done';
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS v_message = MESSAGE_TEXT, v_state = RETURNED_SQLSTATE;
    END;

    -- the subtransaction was rolled back: the invalidations are still pending
    v_limit := coalesce((SELECT s.setting_value::integer FROM tally.settings AS s
                         WHERE s.setting_name = 'job_retry_limit'), 3);
    v_backoff := coalesce((SELECT s.setting_value::interval FROM tally.settings AS s
                           WHERE s.setting_name = 'job_retry_backoff'), interval '1 minute');
    UPDATE tally.runs SET status = 'failed', finished_at = clock_timestamp(), error_text = v_message,
                          error_sqlstate = v_state
    WHERE run_id = v_step_id;
    IF p_bucket IS NOT NULL THEN
        INSERT INTO tally.bucket_state AS b (rollup_name, bucket, attempts, next_attempt_at, dead_lettered_at,
                                             last_error, last_sqlstate, last_run_id)
        VALUES (v_rollup, p_bucket, v_attempt, v_now + v_backoff * power(2, v_attempt - 1),
                CASE WHEN v_attempt >= v_limit THEN v_now END, v_message, v_state, v_step_id)
        ON CONFLICT (rollup_name, bucket) DO UPDATE SET
            attempts = excluded.attempts, next_attempt_at = excluded.next_attempt_at,
            dead_lettered_at = excluded.dead_lettered_at, last_error = excluded.last_error,
            last_sqlstate = excluded.last_sqlstate, last_run_id = excluded.last_run_id;
    END IF;
    PERFORM pg_notify('tally_operations', jsonb_build_object(
        'event', CASE WHEN p_bucket IS NOT NULL AND v_attempt >= v_limit THEN 'bucket_dead_lettered'
                      ELSE 'bucket_failed' END,
        'rollup', v_rollup, 'bucket', p_bucket, 'attempt', v_attempt, 'run_id', v_step_id,
        'error', v_message, 'sqlstate', v_state)::text);
    RETURN CASE WHEN p_bucket IS NOT NULL AND v_attempt >= v_limit THEN 'dead_letter' ELSE 'failed' END;
END;
$function$;

COMMENT ON FUNCTION tally.refresh_step(bigint, date, boolean) IS
'Refreshes one bucket of a deferred rollup in a subtransaction: verify, finalise, or retry with backoff and dead-letter';
