-- tally.set_mode(p_rollup text, p_mode text, p_options jsonb DEFAULT '{}') RETURNS text
--
-- Switches a rollup between 'immediate' (the default: every write updates the stats in
-- the writer's transaction) and 'deferred' (writers only append the changed group keys
-- to tally.invalidations and lock no stats row; a refresh job, CALL tally.run_job(rollup,
-- 'refresh'), recomputes those groups from the source). Options of deferred mode:
-- bucket (a group key of type date: the rollup's day buckets, in UTC if you made it so;
-- enables finalisation, catch-up and per-bucket retries), include_current (also refresh
-- today's bucket on scheduled runs; default false) and catch_up_days (default the
-- catch_up_days setting, 7). The source's triggers are regenerated under a lock that
-- blocks its writers; switching back to immediate first applies what is pending, so the
-- stats are exact when it returns, and removes the rollup's refresh job. Returns the mode now in force.
-- Security: invoker (owner of the source). Since: 0.1.0
CREATE OR REPLACE FUNCTION tally.set_mode(p_rollup text, p_mode text, p_options jsonb DEFAULT '{}')
RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    v_rollup tally.rollups%ROWTYPE;
    v_bucket name := p_options ->> 'bucket';
    v_unknown text;
    v_keys jsonb[];
BEGIN
    v_rollup := tally.rollup_to_change(p_rollup);
    IF p_mode IS NULL OR p_mode NOT IN ('immediate', 'deferred') THEN
        RAISE EXCEPTION 'unknown mode "%"', p_mode
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Modes are immediate and deferred.';
    END IF;
    IF jsonb_typeof(coalesce(p_options, '{}')) <> 'object' THEN
        RAISE EXCEPTION 'options must be a JSON object, not %', p_options USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT string_agg(k, ', ') INTO v_unknown FROM jsonb_object_keys(coalesce(p_options, '{}')) AS k
    WHERE NOT k = ANY (ARRAY['bucket', 'include_current', 'catch_up_days']);
    IF v_unknown IS NOT NULL THEN
        RAISE EXCEPTION 'unknown option(s): %', v_unknown
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Options: bucket, include_current, catch_up_days.';
    END IF;
    IF v_bucket IS NOT NULL AND NOT EXISTS (
        SELECT FROM tally.rollup_keys AS k
        WHERE k.rollup_name = p_rollup AND k.key_name = v_bucket AND k.key_type = 'date'
    ) THEN
        RAISE EXCEPTION 'bucket "%" is not a group key of type date of rollup "%"', v_bucket, p_rollup
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Declare a key such as day = (at AT TIME ZONE ''UTC'')::date.';
    END IF;

    EXECUTE format('LOCK TABLE %s IN SHARE ROW EXCLUSIVE MODE', v_rollup.source_table);
    IF p_mode = 'deferred' AND v_rollup.slot_table IS NOT NULL THEN
        RAISE EXCEPTION 'rollup "%" spreads its groups over slots: deferred mode would not use them', p_rollup
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'SELECT tally.set_slots(rollup, 1) first.';
    END IF;
    IF p_mode = 'deferred' THEN
        INSERT INTO tally.deferred_rollups AS d (rollup_name, bucket_key, options, deferred_since)
        VALUES (p_rollup, v_bucket, coalesce(p_options, '{}') - 'bucket', tally.now())
        ON CONFLICT (rollup_name) DO UPDATE SET bucket_key = excluded.bucket_key, options = excluded.options;
    ELSIF EXISTS (SELECT FROM tally.deferred_rollups AS d WHERE d.rollup_name = p_rollup) THEN
        -- writers are locked out: apply what is pending, then maintain immediately again
        WITH d AS (DELETE FROM tally.invalidations AS i WHERE i.rollup_name = p_rollup RETURNING i.group_key)
        SELECT array_agg(DISTINCT d.group_key) INTO v_keys FROM d;
        PERFORM tally.refresh_groups(p_rollup, v_keys);
        DELETE FROM tally.deferred_rollups WHERE rollup_name = p_rollup;
        DELETE FROM tally.bucket_state WHERE rollup_name = p_rollup;
        IF EXISTS (SELECT FROM tally.scheduled_jobs AS j WHERE j.job_name = format('pgtally:%s:refresh', p_rollup)) THEN
            PERFORM tally.unschedule(p_rollup, 'refresh');
            RAISE NOTICE 'rollup "%" is immediate again: its refresh job was removed', p_rollup;
        END IF;
    END IF;
    PERFORM tally.install_maintenance(v_rollup.source_table);
    RETURN p_mode;
END;
$function$;

COMMENT ON FUNCTION tally.set_mode(text, text, jsonb) IS
'Switches a rollup between immediate maintenance and deferred mode (invalidations + refresh job)';
