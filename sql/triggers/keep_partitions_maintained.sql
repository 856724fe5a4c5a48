-- tally.keep_partitions_maintained() RETURNS event_trigger
--
-- Runs at the end of CREATE TABLE and ALTER TABLE (event trigger tally_partition_ddl):
-- a partition created or attached under a rollup source gets the source's maintenance
-- triggers at once (tally.create_maintenance_triggers), and a table detached from one
-- loses them; a source renamed gets its code regenerated (it names the source). Rows do
-- not move with the DDL itself, so when the attached or detached
-- table holds rows a WARNING says which rollups no longer match and how to correct them.
-- Only partitions under the tables the DDL touched are looked at. It never fails the
-- user's DDL: DDL outside partition trees with pgtally's triggers returns after one
-- catalogue query, and a problem (say, no privilege on schema tally) becomes a WARNING;
-- tally.schema_drift() keeps naming a partition without triggers.
-- Security: invoker (the DDL's role, which owns the partitioned table). Since: 0.1.0
CREATE OR REPLACE FUNCTION tally.keep_partitions_maintained()
RETURNS event_trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    v_tables oid[];
    v_related oid[];
    v_source regclass;
    v_table regclass;
    v_joined regclass[];
    v_left regclass[];
    v_has_rows boolean;
    v_corrections text;
BEGIN
    -- From the catalogue alone (any role gets here): is any table the DDL touched in a
    -- partition tree that carries pgtally's triggers? Most DDL stops here.
    v_tables := ARRAY(SELECT DISTINCT c.objid FROM pg_catalog.pg_event_trigger_ddl_commands() AS c
                      WHERE c.object_type = 'table');
    -- those tables and the tables above them
    v_related := v_tables || ARRAY(SELECT a.relid FROM unnest(v_tables) AS d (table_oid),
                                   LATERAL pg_catalog.pg_partition_ancestors(d.table_oid) AS a);
    IF NOT EXISTS (
        SELECT FROM pg_catalog.pg_trigger AS t
        WHERE t.tgrelid = ANY (v_related) AND t.tgname = 'tally_maintain_insert'
    ) THEN
        RETURN;
    END IF;

    BEGIN
        FOR v_source IN
            SELECT s.source_table FROM tally.rollup_sources AS s WHERE s.source_table = ANY (v_related)
        LOOP
            -- a renamed source: the generated code names it (min/max recomputation reads it)
            IF NOT EXISTS (
                SELECT FROM pg_catalog.pg_proc AS f
                WHERE f.oid = tally.generated_function(v_source, 'insert')
                  AND strpos(f.prosrc, format('for source %s, INSERT statements', v_source)) > 0
            ) THEN
                PERFORM tally.install_maintenance(v_source);
            END IF;
            -- partitions under the tables the DDL touched whose triggers are missing or
            -- not this source's; tables that left the source and still carry them
            v_joined := ARRAY(
                SELECT p.partition FROM unnest(tally.source_partitions(v_source)) AS p (partition)
                WHERE EXISTS (SELECT FROM pg_catalog.pg_partition_ancestors(p.partition) AS a (ancestor)
                              WHERE a.ancestor = ANY (v_tables))
                  AND NOT EXISTS (
                      SELECT FROM pg_catalog.pg_trigger AS t
                      WHERE t.tgrelid = p.partition AND t.tgname = 'tally_maintain_insert'
                        AND t.tgfoid = tally.generated_function(v_source, 'insert')));
            v_left := tally.detached_partitions(v_source);
            v_corrections := (SELECT string_agg(format('SELECT tally.reconcile(%L, true);', r.rollup_name), ' '
                                                ORDER BY r.rollup_name)
                              FROM tally.rollups AS r WHERE r.source_table = v_source);
            FOREACH v_table IN ARRAY v_joined LOOP
                PERFORM tally.create_maintenance_triggers(v_source, v_table);
            END LOOP;
            FOREACH v_table IN ARRAY v_left LOOP
                PERFORM tally.drop_maintenance_triggers(v_table);
            END LOOP;
            -- one warning per table attached or detached with rows (not per sub-partition)
            FOR v_table IN
                SELECT t FROM unnest(v_joined || v_left) AS t
                WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_inherits AS i
                                  WHERE i.inhrelid = t AND i.inhparent = ANY (v_joined || v_left))
            LOOP
                EXECUTE format('SELECT EXISTS (SELECT FROM %s)', v_table) INTO v_has_rows;
                IF v_has_rows THEN
                    RAISE WARNING 'pgtally: % % % with rows that the rollups of % %', v_table,
                        CASE WHEN v_table = ANY (v_joined) THEN 'joined' ELSE 'left' END, v_source, v_source,
                        CASE WHEN v_table = ANY (v_joined) THEN 'do not count' ELSE 'still count' END
                        USING HINT = 'Correct them with: ' || v_corrections;
                END IF;
            END LOOP;
        END LOOP;
    EXCEPTION WHEN OTHERS THEN
        RAISE WARNING 'pgtally could not keep the partitions of % maintained: %', coalesce(v_source::text, 'a rollup source'), SQLERRM
            USING HINT = 'Its owner can run SELECT tally.regenerate_all_rollups().';
    END;
END;
$function$;

COMMENT ON FUNCTION tally.keep_partitions_maintained() IS
'Event trigger: partitions created or attached under a rollup source get its triggers, detached ones lose them';
