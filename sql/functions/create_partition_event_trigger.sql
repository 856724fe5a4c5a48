-- tally.create_partition_event_trigger() RETURNS void
--
-- (Re)creates pgtally's event triggers: tally_partition_ddl, which runs
-- tally.keep_partitions_maintained() at the end of CREATE TABLE and ALTER TABLE, and
-- tally_table_drop, which runs tally.check_dropped_tables() when DROP TABLE, DROP VIEW,
-- DROP SCHEMA or DROP OWNED removes tables or stats views. Only a superuser may make an event trigger: the installer
-- calls this when it is one, and a superuser can call it later for a database that a
-- non-superuser installed (tally.schema_drift() reports them missing while a rollup
-- source is partitioned).
-- Security: invoker (needs superuser). Since: 0.1.0
CREATE OR REPLACE FUNCTION tally.create_partition_event_trigger()
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $function$
BEGIN
    DROP EVENT TRIGGER IF EXISTS tally_partition_ddl;
    CREATE EVENT TRIGGER tally_partition_ddl ON ddl_command_end
    WHEN TAG IN ('CREATE TABLE', 'ALTER TABLE')
    EXECUTE FUNCTION tally.keep_partitions_maintained();
    DROP EVENT TRIGGER IF EXISTS tally_table_drop;
    CREATE EVENT TRIGGER tally_table_drop ON sql_drop
    WHEN TAG IN ('DROP TABLE', 'DROP VIEW', 'DROP SCHEMA', 'DROP OWNED')
    EXECUTE FUNCTION tally.check_dropped_tables();
END;
$function$;

COMMENT ON FUNCTION tally.create_partition_event_trigger() IS
'(Re)creates the event triggers that keep partitions of rollup sources maintained and warn about dropped ones (superuser)';
