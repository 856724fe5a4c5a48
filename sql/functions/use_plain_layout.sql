-- tally.use_plain_layout(p_rollup text) RETURNS void
--
-- The way back from tally.use_slot_layout: folds every slot of a rollup into one row per
-- group (tally.compact), drops the view and gives its name back to the slot table, which
-- loses its _tally_slot column and becomes the plain stats table again (a sum NULL while
-- no non-NULL argument is counted, as the triggers keep it). Used by tally.set_slots
-- (slots = 1) and by tally.set_mode when a rollup leaves append mode without slots.
-- The caller holds the rollup's layout lock and has locked its writers out, and
-- regenerates the triggers afterwards.
-- Security: invoker (owner of the source). Since: 0.1.0
CREATE OR REPLACE FUNCTION tally.use_plain_layout(p_rollup text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    v_rollup tally.rollups%ROWTYPE := tally.rollup_named(p_rollup);
    v_name name;
    v_constraint name;
    v_normalise text;
BEGIN
    IF v_rollup.slot_table IS NULL THEN
        RETURN;  -- already there
    END IF;
    SELECT c.relname INTO v_name FROM pg_catalog.pg_class AS c WHERE c.oid = v_rollup.stats_table;
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
    UPDATE tally.rollups SET stats_table = slot_table, slot_table = NULL WHERE rollup_name = p_rollup;
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
END;
$function$;

COMMENT ON FUNCTION tally.use_plain_layout(text) IS
'Folds a rollup''s slots and makes its slot table the plain stats table again, under the stats name';
