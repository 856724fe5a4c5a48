-- tally.set_mode(p_rollup text, p_mode text, p_options jsonb DEFAULT '{}') RETURNS text
--
-- Switches a rollup between 'immediate' (the default: every write updates the stats in
-- the writer's transaction), 'append' (every statement appends its changes per group to
-- the pending table <stats>_pending, which has no index, and locks no stats row; the
-- stats name is a view adding the folded rows and the pending ones up per group, so
-- reads stay exact; tally.compact, scheduled as the 'compact' job, folds the pending
-- rows; the cheapest writes, reads that grow with what is not folded yet) and 'deferred'
-- (writers only append the changed group keys to tally.invalidations and lock no stats
-- row; a refresh job, CALL tally.run_job(rollup, 'refresh'), recomputes those groups
-- from the source). Options of deferred mode:
-- bucket (a group key of type date: the rollup's day buckets, in UTC if you made it so;
-- enables finalisation, catch-up and per-bucket retries), include_current (also refresh
-- today's bucket on scheduled runs; default false) and catch_up_days (default the
-- catch_up_days setting, 7). The source's triggers are regenerated under a lock that
-- blocks its writers; switching back to immediate first applies what is pending, so the
-- stats are exact when it returns, and removes the rollup's refresh job; leaving append
-- mode folds the pending rows and drops the pending table. Append mode is refused for
-- rollups with min or max (a pending row cannot know the group's extreme), deferred ones
-- (switch them to immediate first) and, by tally.use_slot_layout, rank-indexed ones.
-- Returns the mode now in force.
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
    v_schema name;
    v_pending_name name;
    v_left_over boolean;
BEGIN
    v_rollup := tally.rollup_to_change(p_rollup);
    IF p_mode IS NULL OR p_mode NOT IN ('immediate', 'deferred', 'append') THEN
        RAISE EXCEPTION 'unknown mode "%"', p_mode
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Modes are immediate, append and deferred.';
    END IF;
    IF p_mode = 'append' AND EXISTS (SELECT FROM tally.deferred_rollups AS d WHERE d.rollup_name = p_rollup) THEN
        RAISE EXCEPTION 'rollup "%" is deferred', p_rollup
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'SELECT tally.set_mode(rollup, ''immediate'') first.';
    END IF;
    IF p_mode = 'append' OR v_rollup.pending_table IS NOT NULL THEN
        -- the layout changes: no compaction, reconciliation or backfill may read it
        -- meanwhile (taken before any table lock, as they do; a deferred rollup's refresh
        -- takes it after its table locks, but a deferred rollup never gets here)
        PERFORM pg_advisory_xact_lock(tally.slot_layout_lock_key(p_rollup));
        v_rollup := tally.rollup_to_change(p_rollup);
    END IF;
    IF p_mode = 'append' AND EXISTS (SELECT FROM tally.rollup_measures AS m
                                     WHERE m.rollup_name = p_rollup AND m.aggregate_function IN ('min', 'max')) THEN
        RAISE EXCEPTION 'rollup "%" has a min or max measure: append mode cannot keep it', p_rollup
            USING ERRCODE = 'feature_not_supported',
                  HINT = 'Pending rows add partial counts and sums; declare min/max in a rollup of their own.';
    END IF;
    IF jsonb_typeof(coalesce(p_options, '{}')) <> 'object' THEN
        RAISE EXCEPTION 'options must be a JSON object, not %', p_options USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_mode <> 'deferred' AND coalesce(p_options, '{}') <> '{}' THEN
        RAISE EXCEPTION '% mode takes no options, not %', p_mode, p_options
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Options are for deferred mode.';
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
    v_rollup := tally.rollup_named(p_rollup);  -- as another set_mode may have left it meanwhile
    IF (p_mode = 'append') <> (v_rollup.pending_table IS NOT NULL) THEN
        -- the stats relation changes shape: take it (and what a view over it reads) before
        -- touching the catalogue row, which readers such as tally.plan_backfill lock after it
        EXECUTE format('LOCK TABLE %s IN ACCESS EXCLUSIVE MODE', v_rollup.stats_table);
    END IF;
    IF p_mode = 'append' AND EXISTS (SELECT FROM tally.deferred_rollups AS d WHERE d.rollup_name = p_rollup) THEN
        RAISE EXCEPTION 'rollup "%" is deferred', p_rollup  -- made so while we waited for the lock
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'SELECT tally.set_mode(rollup, ''immediate'') first.';
    END IF;
    IF p_mode = 'deferred' AND v_rollup.pending_table IS NOT NULL THEN
        RAISE EXCEPTION 'rollup "%" is in append mode', p_rollup
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'SELECT tally.set_mode(rollup, ''immediate'') first.';
    END IF;
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

    IF p_mode = 'append' AND v_rollup.pending_table IS NULL THEN
        -- the stats move behind a view (as with slots), which adds the pending rows in
        PERFORM tally.use_slot_layout(p_rollup);
        v_rollup := tally.rollup_named(p_rollup);
        SELECT n.nspname, tally.name_with_suffix(c.relname, '_pending') INTO v_schema, v_pending_name
        FROM pg_catalog.pg_class AS c JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
        WHERE c.oid = v_rollup.stats_table;
        IF to_regclass(format('%I.%I', v_schema, v_pending_name)) IS NOT NULL THEN
            RAISE EXCEPTION 'relation %.% already exists', quote_ident(v_schema), quote_ident(v_pending_name)
                USING ERRCODE = 'duplicate_table', HINT = 'Rename or drop it, then try again.';
        END IF;
        -- the stored stats columns (types, typmods and collations of the slot table), no index
        EXECUTE format('CREATE TABLE %I.%I AS SELECT %s FROM %s WITH NO DATA', v_schema, v_pending_name,
                       (SELECT string_agg(quote_ident(c.column_name), ', ') FROM tally.stats_columns(p_rollup) AS c
                        WHERE c.recompute_expression IS NOT NULL),
                       v_rollup.slot_table);
        EXECUTE format('ALTER TABLE %I.%I OWNER TO %I', v_schema, v_pending_name, v_rollup.owner_role);
        -- compactions delete from it: a publication of all tables needs an identity to do so
        EXECUTE format('ALTER TABLE %I.%I REPLICA IDENTITY FULL', v_schema, v_pending_name);
        EXECUTE format('COMMENT ON TABLE %I.%I IS %L', v_schema, v_pending_name, format(
            'pgtally rollup %s (append mode): changes of %s not folded yet, one row per group and statement; '
            'read the view %s. Do not edit by hand.', p_rollup, v_rollup.source_table, v_rollup.stats_table));
        UPDATE tally.rollups SET pending_table = format('%I.%I', v_schema, v_pending_name)::regclass
        WHERE rollup_name = p_rollup;
        EXECUTE format('CREATE OR REPLACE VIEW %s AS %s', v_rollup.stats_table,
                       tally.slot_view_sql(p_rollup, v_rollup.slot_table));
    ELSIF p_mode <> 'append' AND v_rollup.pending_table IS NOT NULL THEN
        -- writers are locked out: fold what is pending (after running compactions), then
        -- the view reads the slot table alone, and without slots the plain table comes back
        EXECUTE format('LOCK TABLE %s IN EXCLUSIVE MODE', v_rollup.slot_table);
        PERFORM tally.compact(p_rollup);
        EXECUTE format('SELECT EXISTS (SELECT FROM %s)', v_rollup.pending_table) INTO v_left_over;
        IF v_left_over THEN  -- never expected: dropping the table would lose them
            RAISE EXCEPTION 'rollup "%": pending rows were left after folding them all', p_rollup
                USING ERRCODE = 'internal_error';
        END IF;
        UPDATE tally.rollups SET pending_table = NULL WHERE rollup_name = p_rollup;
        IF v_rollup.slots = 1 THEN
            PERFORM tally.use_plain_layout(p_rollup);  -- drops the view
            IF EXISTS (SELECT FROM tally.scheduled_jobs AS j WHERE j.job_name = tally.job_name(p_rollup, 'compact')) THEN
                PERFORM tally.unschedule(p_rollup, 'compact');
                RAISE NOTICE 'rollup "%" has one stats row per group again: its compact job was removed', p_rollup;
            END IF;
        ELSE
            EXECUTE format('CREATE OR REPLACE VIEW %s AS %s', v_rollup.stats_table,
                           tally.slot_view_sql(p_rollup, v_rollup.slot_table));
        END IF;
        EXECUTE format('DROP TABLE %s', v_rollup.pending_table);
    END IF;
    PERFORM tally.install_maintenance(v_rollup.source_table);
    RETURN p_mode;
END;
$function$;

COMMENT ON FUNCTION tally.set_mode(text, text, jsonb) IS
'Switches a rollup between immediate maintenance, append mode (pending rows + compaction) and deferred mode';
