-- tally.use_slot_layout(p_rollup text) RETURNS void
--
-- Turns a rollup's plain stats table into its slot table (<stats>_slots: the same
-- columns plus _tally_slot, one row per group and slot) and gives the stats table's name
-- to a view that adds a group's rows up (tally.slot_view_sql), so every read stays
-- exact. Used by tally.set_slots (slots > 1) and tally.set_mode (append mode, whose
-- pending rows the view adds in too). Whoever could read the stats can read the view.
-- Refused while the stats table has indexes of its own (tally.make_rankable: a view
-- cannot be indexed) or views of the user's read it (they would follow the rename).
-- The caller holds the rollup's layout lock and has locked its writers out, and
-- regenerates the triggers afterwards.
-- Security: invoker (owner of the source). Since: 0.1.0
CREATE OR REPLACE FUNCTION tally.use_slot_layout(p_rollup text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    v_rollup tally.rollups%ROWTYPE := tally.rollup_named(p_rollup);
    v_schema name;
    v_name name;
    v_slot_name name;
    v_slot_table regclass := v_rollup.stats_table;
    v_view regclass;
    v_constraint name;
    v_index regclass;
    v_views text;
BEGIN
    IF v_rollup.slot_table IS NOT NULL THEN
        RETURN;  -- already there
    END IF;
    IF EXISTS (SELECT FROM pg_catalog.pg_index AS i WHERE i.indrelid = v_rollup.stats_table AND NOT i.indisunique) THEN
        RAISE EXCEPTION 'stats table % has indexes of its own (tally.make_rankable?): drop them first',
                        v_rollup.stats_table
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'The stats become a view, which cannot be indexed; rank a rollup that keeps one stats row '
                         'per group (no slots, not in append mode).';
    END IF;
    -- a view of the user's over the stats table would follow the table to its new name
    -- and read partial stats from then on
    SELECT string_agg(DISTINCT v.oid::regclass::text, ', ') INTO v_views
    FROM pg_catalog.pg_depend AS d
    JOIN pg_catalog.pg_rewrite AS w ON w.oid = d.objid
    JOIN pg_catalog.pg_class AS v ON v.oid = w.ev_class
    WHERE d.classid = 'pg_catalog.pg_rewrite'::regclass AND d.refclassid = 'pg_catalog.pg_class'::regclass
      AND d.refobjid = v_rollup.stats_table AND v.oid <> v_rollup.stats_table;
    IF v_views IS NOT NULL THEN
        RAISE EXCEPTION 'views read stats table % directly: %', v_rollup.stats_table, v_views
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'They would go on reading the renamed table, not the stats: drop them, then re-create them '
                         'over the stats view this makes.';
    END IF;
    SELECT n.nspname, c.relname INTO v_schema, v_name
    FROM pg_catalog.pg_class AS c JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
    WHERE c.oid = v_rollup.stats_table;
    v_slot_name := tally.name_with_suffix(v_name, '_slots');
    IF to_regclass(format('%I.%I', v_schema, v_slot_name)) IS NOT NULL THEN
        RAISE EXCEPTION 'relation %.% already exists', quote_ident(v_schema), quote_ident(v_slot_name)
            USING ERRCODE = 'duplicate_table', HINT = 'Rename or drop it, then try again.';
    END IF;
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
    UPDATE tally.rollups SET stats_table = v_view, slot_table = v_slot_table WHERE rollup_name = p_rollup;
END;
$function$;

COMMENT ON FUNCTION tally.use_slot_layout(text) IS
'Makes a rollup''s stats table its slot table, with a view adding the slots up under the stats name';
