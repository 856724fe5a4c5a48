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
    v_schema name;
    v_name name;
    v_slot_name name;
    v_slot_table regclass;
    v_view regclass;
    v_constraint name;
    v_index regclass;
    v_normalise text;
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
    IF p_slots > 1 AND EXISTS (SELECT FROM tally.deferred_rollups AS d WHERE d.rollup_name = p_rollup) THEN
        RAISE EXCEPTION 'rollup "%" is deferred: its writers lock no stats row already', p_rollup
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    IF p_slots > 1 AND v_rollup.slot_table IS NULL AND EXISTS (
        SELECT FROM pg_catalog.pg_index AS i WHERE i.indrelid = v_rollup.stats_table AND NOT i.indisunique
    ) THEN
        RAISE EXCEPTION 'stats table % has indexes of its own (tally.make_rankable?): drop them first',
                        v_rollup.stats_table
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'A view over slots cannot be indexed; rank a rollup without slots.';
    END IF;

    EXECUTE format('LOCK TABLE %s IN SHARE ROW EXCLUSIVE MODE', v_rollup.source_table);
    SELECT n.nspname, c.relname INTO v_schema, v_name
    FROM pg_catalog.pg_class AS c JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
    WHERE c.oid = v_rollup.stats_table;

    IF p_slots > 1 AND v_rollup.slot_table IS NULL THEN
        -- the stats table becomes the slot table; a view takes its name
        v_slot_name := left(v_name, 57) || '_slots';
        IF to_regclass(format('%I.%I', v_schema, v_slot_name)) IS NOT NULL THEN
            RAISE EXCEPTION 'relation %.% already exists', quote_ident(v_schema), quote_ident(v_slot_name)
                USING ERRCODE = 'duplicate_table', HINT = 'Rename or drop it, then try again.';
        END IF;
        v_slot_table := v_rollup.stats_table;
        EXECUTE format('ALTER TABLE %s RENAME TO %I', v_slot_table, v_slot_name);
        FOR v_constraint IN
            SELECT c.conname FROM pg_catalog.pg_constraint AS c
            WHERE c.conrelid = v_slot_table AND c.contype IN ('p', 'u')
        LOOP
            EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', v_slot_table, v_constraint);
        END LOOP;
        FOR v_index IN SELECT i.indexrelid FROM pg_catalog.pg_index AS i WHERE i.indrelid = v_slot_table LOOP
            EXECUTE format('DROP INDEX %s', v_index);  -- the (true) index of a rollup without keys
        END LOOP;
        EXECUTE format('ALTER TABLE %s ADD COLUMN _tally_slot smallint NOT NULL DEFAULT 0', v_slot_table);
        PERFORM tally.add_group_key_constraint(p_rollup, v_slot_table, p_with_slot => true);
        EXECUTE format('COMMENT ON TABLE %s IS %L', v_slot_table, format(
            'pgtally rollup %s: partial stats of %s per group and slot; read the view %s. Do not edit by hand.',
            p_rollup, v_rollup.source_table, format('%I.%I', v_schema, v_name)));

        EXECUTE format('CREATE VIEW %I.%I AS %s', v_schema, v_name, tally.slot_view_sql(p_rollup, v_slot_table));
        v_view := format('%I.%I', v_schema, v_name)::regclass;
        EXECUTE format('ALTER VIEW %s OWNER TO %I', v_view, v_rollup.owner_role);
        EXECUTE format('COMMENT ON VIEW %s IS %L', v_view, format(
            'pgtally rollup %s: stats of %s (its slots in %s added up), kept exact by its triggers.',
            p_rollup, v_rollup.source_table, v_slot_table));
        PERFORM tally.copy_select_grants(v_slot_table, v_view);  -- whoever read the stats still can
        UPDATE tally.rollups SET stats_table = v_view, slot_table = v_slot_table, slots = p_slots
        WHERE rollup_name = p_rollup;

    ELSIF p_slots = 1 AND v_rollup.slot_table IS NOT NULL THEN
        -- fold every slot into one row per group, then the slot table becomes the stats table again
        -- wait for running compactions and corrections, and let none start: then the fold
        -- below skips nothing
        EXECUTE format('LOCK TABLE %s IN EXCLUSIVE MODE', v_rollup.slot_table);
        PERFORM tally.compact(p_rollup);
        -- a plain stats table keeps a sum NULL while no non-NULL argument is counted
        SELECT format('UPDATE %s SET %s', v_rollup.slot_table, string_agg(format(
                   '%1$I = CASE WHEN %2$I = 0 THEN NULL ELSE %1$I END', c.column_name,
                   '_tally_n_' || (SELECT m.measure_name FROM tally.rollup_measures AS m
                                   WHERE m.rollup_name = p_rollup AND m.measure_position = c.measure_position)),
                   ', '))
        INTO v_normalise
        FROM tally.stats_columns(p_rollup) AS c
        WHERE c.column_role = 'sum_state' OR (c.column_role = 'value' AND c.aggregate_function = 'sum')
        HAVING count(*) > 0;
        IF v_normalise IS NOT NULL THEN
            EXECUTE v_normalise;
        END IF;
        PERFORM tally.copy_select_grants(v_rollup.stats_table, v_rollup.slot_table);
        UPDATE tally.rollups SET stats_table = slot_table, slot_table = NULL, slots = 1 WHERE rollup_name = p_rollup;
        EXECUTE format('DROP VIEW %s', v_rollup.stats_table);
        FOR v_constraint IN
            SELECT c.conname FROM pg_catalog.pg_constraint AS c
            WHERE c.conrelid = v_rollup.slot_table AND c.contype IN ('p', 'u')
        LOOP
            EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', v_rollup.slot_table, v_constraint);
        END LOOP;
        EXECUTE format('ALTER TABLE %s DROP COLUMN _tally_slot', v_rollup.slot_table);
        EXECUTE format('ALTER TABLE %s RENAME TO %I', v_rollup.slot_table, v_name);
        PERFORM tally.add_group_key_constraint(p_rollup, v_rollup.slot_table);
        EXECUTE format('COMMENT ON TABLE %s IS %L', v_rollup.slot_table, format(
            'pgtally rollup %s: stats of %s, kept exact by its triggers. Do not edit by hand; '
            'columns starting with _tally are bookkeeping.', p_rollup, v_rollup.source_table));

    ELSE
        UPDATE tally.rollups SET slots = p_slots WHERE rollup_name = p_rollup;
    END IF;
    PERFORM tally.install_maintenance(v_rollup.source_table);
    RETURN p_slots;
END;
$function$;

COMMENT ON FUNCTION tally.set_slots(text, integer) IS
'Spreads a rollup''s groups over slot rows so concurrent writers of a hot group do not queue (1: off)';
