-- tally.set_slots(p_rollup text, p_slots integer) RETURNS integer
--
-- Spreads every group of a rollup over p_slots slot rows, so that concurrent writers of
-- one hot group (the global total, a popular organisation, today's bucket) do not queue
-- on one stats row: each backend adds its changes to slot 1 + (its pid modulo p_slots).
-- The stats then live in the slot table <stats>_slots (one row per group and slot) and
-- the stats table's name becomes a view adding the slots up per group, so every read
-- stays exact; reading one group costs up to p_slots index rows instead of one.
-- tally.compact folds the slots (schedule it: tally.schedule(rollup, 'compact', ...)).
-- p_slots = 1 folds everything back into a plain stats table. Changing the number of
-- slots only regenerates the triggers. Refused for rollups with min or max (a slot
-- cannot know the group's extreme), deferred rollups and rank-indexed ones. The source's
-- writers are locked out meanwhile. Returns the number of slots now in force.
-- Security: invoker (owner of the source). Since: 0.1.0
CREATE OR REPLACE FUNCTION tally.set_slots(p_rollup text, p_slots integer)
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    v_rollup tally.rollups%ROWTYPE;
BEGIN
    PERFORM pg_advisory_xact_lock(tally.slot_layout_lock_key(p_rollup));
    v_rollup := tally.rollup_to_change(p_rollup);
    IF p_slots IS NULL OR p_slots NOT BETWEEN 1 AND 1024 THEN
        RAISE EXCEPTION 'slots must be between 1 and 1024, not %', p_slots USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_slots > 1 AND EXISTS (SELECT FROM tally.rollup_measures AS m
                               WHERE m.rollup_name = p_rollup AND m.aggregate_function IN ('min', 'max')) THEN
        RAISE EXCEPTION 'rollup "%" has a min or max measure: its groups cannot be split over slots', p_rollup
            USING ERRCODE = 'feature_not_supported',
                  HINT = 'Slots add partial counts and sums; declare min/max in a rollup of their own.';
    END IF;
    IF v_rollup.pending_table IS NOT NULL THEN
        RAISE EXCEPTION 'rollup "%" is in append mode: its writers lock no stats row already', p_rollup
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'SELECT tally.set_mode(rollup, ''immediate'') first.';
    END IF;
    IF p_slots > 1 AND EXISTS (SELECT FROM tally.deferred_rollups AS d WHERE d.rollup_name = p_rollup) THEN
        RAISE EXCEPTION 'rollup "%" is deferred: its writers lock no stats row already', p_rollup
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;

    EXECUTE format('LOCK TABLE %s IN SHARE ROW EXCLUSIVE MODE', v_rollup.source_table);

    IF p_slots > 1 THEN
        PERFORM tally.use_slot_layout(p_rollup);
    ELSE
        PERFORM tally.use_plain_layout(p_rollup);
    END IF;
    UPDATE tally.rollups SET slots = p_slots WHERE rollup_name = p_rollup;
    PERFORM tally.install_maintenance(v_rollup.source_table);
    RETURN p_slots;
END;
$function$;

COMMENT ON FUNCTION tally.set_slots(text, integer) IS
'Spreads a rollup''s groups over slot rows so concurrent writers of a hot group do not queue (1: off)';
