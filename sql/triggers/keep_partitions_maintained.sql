-- tally.keep_partitions_maintained() RETURNS event_trigger
--
-- Runs at the end of CREATE TABLE and ALTER TABLE (event trigger tally_partition_ddl):
-- a partition created or attached under a rollup source gets the source's maintenance
-- triggers at once (tally.create_maintenance_triggers), and a table detached from one
-- loses them. Rows do not move with the DDL itself, so when the attached or detached
-- table holds rows a WARNING says which rollups no longer match and how to correct them.
-- It never fails the user's DDL: a problem (say, no privilege on pgtally) becomes a
-- WARNING, and tally.schema_drift() keeps naming a partition without triggers.
-- Security: invoker (the DDL's role, which owns the partitioned table). Since: 0.1.0
CREATE OR REPLACE FUNCTION tally.keep_partitions_maintained()
RETURNS event_trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    v_source regclass;
    v_table regclass;
    v_joined boolean;
    v_has_rows boolean;
    v_corrections text;
BEGIN
    FOR v_source IN
        SELECT DISTINCT s.source_table
        FROM pg_catalog.pg_event_trigger_ddl_commands() AS c
        CROSS JOIN LATERAL pg_catalog.pg_partition_ancestors(c.objid) AS a (ancestor)
        JOIN tally.rollup_sources AS s ON s.source_table = a.ancestor
        WHERE c.object_type = 'table'
    LOOP
        BEGIN
            v_corrections := (SELECT string_agg(format('SELECT tally.reconcile(%L, true);', r.rollup_name), ' '
                                                ORDER BY r.rollup_name)
                              FROM tally.rollups AS r WHERE r.source_table = v_source);
            FOR v_table, v_joined IN
                SELECT p.partition, true FROM unnest(tally.source_partitions(v_source)) AS p (partition)
                WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_trigger AS t
                                  WHERE t.tgrelid = p.partition AND t.tgname = 'tally_maintain_insert')
                UNION ALL
                SELECT d.detached, false FROM unnest(tally.detached_partitions(v_source)) AS d (detached)
            LOOP
                IF v_joined THEN
                    PERFORM tally.create_maintenance_triggers(v_source, v_table);
                ELSE
                    PERFORM tally.drop_maintenance_triggers(v_table);
                END IF;
                EXECUTE format('SELECT EXISTS (SELECT FROM %s)', v_table) INTO v_has_rows;
                IF v_has_rows THEN
                    RAISE WARNING 'pgtally: % % % with rows that the rollups of % %', v_table,
                        CASE WHEN v_joined THEN 'joined' ELSE 'left' END, v_source, v_source,
                        CASE WHEN v_joined THEN 'do not count' ELSE 'still count' END
                        USING HINT = 'Correct them with: ' || v_corrections;
                END IF;
            END LOOP;
        EXCEPTION WHEN OTHERS THEN
            RAISE WARNING 'pgtally could not keep the partitions of % maintained: %', v_source, SQLERRM
                USING HINT = 'Run SELECT tally.regenerate_all_rollups() as the owner of ' || v_source || '.';
        END;
    END LOOP;
END;
$function$;

COMMENT ON FUNCTION tally.keep_partitions_maintained() IS
'Event trigger: partitions created or attached under a rollup source get its triggers, detached ones lose them';
