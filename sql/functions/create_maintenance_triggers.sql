-- tally.create_maintenance_triggers(p_source regclass, p_table regclass) RETURNS void
--
-- Creates (or replaces) the triggers that keep the rollups of p_source exact on p_table,
-- the source itself or one of its partitions: one statement-level AFTER trigger per event
-- calling the source's generated functions (INSERT, UPDATE and DELETE with transition
-- tables; TRUNCATE, which on a partition refuses to empty it alone; on a partition with
-- the argument 'partition', the source's own triggers have none), and per rollup an
-- "UPDATE OF its columns" marker for the rollups tally.marker_rollups names
-- (tally.note_relevant_update; on a partition it also names the source, whose setting it
-- writes). Locks p_table SHARE ROW EXCLUSIVE. A partition that has rollups of its own, or on which the
-- caller may not create triggers, is skipped with a WARNING.
-- Security: invoker. Since: 0.1.0
CREATE OR REPLACE FUNCTION tally.create_maintenance_triggers(p_source regclass, p_table regclass)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    v_place tally.rollup_sources%ROWTYPE;
    v_rollup record;
    -- on a partition the triggers pass 'partition': the generated code then checks that
    -- the table is still part of the source (a detached table's writes are not)
    v_argument text := CASE WHEN p_table <> p_source THEN quote_literal('partition') ELSE '' END;
BEGIN
    SELECT * INTO STRICT v_place FROM tally.rollup_sources WHERE source_table = p_source;
    IF p_table <> p_source THEN
        -- A partition whose triggers cannot be made is left without them, and named by
        -- tally.schema_drift(), rather than keep the source's owner from managing its
        -- rollups: one with another source's triggers, on it or on a table between it and
        -- p_source (read from the catalogue, as row-level security may hide that source's
        -- rollups from the caller), or one the caller may not put triggers on.
        IF EXISTS (SELECT FROM pg_catalog.pg_partition_ancestors(p_table) AS a (relid)
                   JOIN pg_catalog.pg_trigger AS t
                       ON t.tgrelid = a.relid AND t.tgname = 'tally_maintain_insert' AND t.tgnargs = 0
                   WHERE a.relid <> p_source
                     -- this source's own triggers, made without the argument by an older pgtally
                     AND NOT (a.relid = p_table AND t.tgfoid = tally.generated_function(p_source, 'insert'))) THEN
            RAISE WARNING 'pgtally: partition % of % has rollups of its own: writes that name it keep only those exact',
                p_table, p_source
                USING HINT = 'Declare rollups on one table of a partition tree only.';
            RETURN;
        ELSIF NOT has_table_privilege(p_table, 'TRIGGER') THEN
            RAISE WARNING 'pgtally: no TRIGGER privilege on partition % of %: writes that name it are not maintained',
                p_table, p_source
                USING HINT = 'Its owner can run SELECT tally.regenerate_all_rollups(), or grant TRIGGER on it.';
            RETURN;
        END IF;
    END IF;
    EXECUTE format(
        'CREATE OR REPLACE TRIGGER tally_maintain_insert AFTER INSERT ON %s '
        'REFERENCING NEW TABLE AS tally_new_rows FOR EACH STATEMENT EXECUTE FUNCTION %I.%I(%s)',
        p_table, v_place.function_schema, v_place.function_prefix || '_insert', v_argument);
    EXECUTE format(
        'CREATE OR REPLACE TRIGGER tally_maintain_update AFTER UPDATE ON %s '
        'REFERENCING OLD TABLE AS tally_old_rows NEW TABLE AS tally_new_rows '
        'FOR EACH STATEMENT EXECUTE FUNCTION %I.%I(%s)',
        p_table, v_place.function_schema, v_place.function_prefix || '_update', v_argument);
    EXECUTE format(
        'CREATE OR REPLACE TRIGGER tally_maintain_delete AFTER DELETE ON %s '
        'REFERENCING OLD TABLE AS tally_old_rows FOR EACH STATEMENT EXECUTE FUNCTION %I.%I(%s)',
        p_table, v_place.function_schema, v_place.function_prefix || '_delete', v_argument);
    EXECUTE format(
        'CREATE OR REPLACE TRIGGER tally_maintain_truncate AFTER TRUNCATE ON %s '
        'FOR EACH STATEMENT EXECUTE FUNCTION %I.%I(%s)',
        p_table, v_place.function_schema, v_place.function_prefix || '_truncate', v_argument);

    FOR v_rollup IN
        SELECT r.rollup_name, r.source_columns FROM tally.rollups AS r
        WHERE r.rollup_name = ANY (tally.marker_rollups(p_source))
        ORDER BY r.rollup_name
    LOOP
        EXECUTE format(
            'CREATE OR REPLACE TRIGGER %I AFTER UPDATE OF %s ON %s FOR EACH STATEMENT '
            'EXECUTE FUNCTION tally.note_relevant_update(%s)',
            'tally_columns_' || v_rollup.rollup_name,
            (SELECT string_agg(quote_ident(c), ', ') FROM unnest(v_rollup.source_columns) AS c),
            p_table, concat_ws(', ', quote_literal(v_rollup.rollup_name),
                               CASE WHEN p_table <> p_source THEN quote_literal(p_source::oid) END));
    END LOOP;
END;
$function$;

COMMENT ON FUNCTION tally.create_maintenance_triggers(regclass, regclass) IS
'Creates the triggers keeping a source''s rollups exact on the source or one of its partitions';
