-- Event trigger tally_partition_ddl: runs tally.keep_partitions_maintained() at the end of
-- CREATE TABLE and ALTER TABLE, so partitions created, attached or detached under a rollup
-- source get or lose its triggers with the DDL. Only a superuser can make an event
-- trigger: installed by another role, pgtally goes without it, says so, and a new
-- partition has no triggers until tally.regenerate_all_rollups() (tally.schema_drift()
-- names it). Recreated when this file changes.
DO $install$
BEGIN
    IF NOT (SELECT r.rolsuper FROM pg_catalog.pg_roles AS r WHERE r.rolname = current_user) THEN
        RAISE NOTICE 'pgtally: not a superuser, so no event trigger keeps new partitions of rollup sources maintained'
            USING HINT = 'After creating or attaching a partition, run SELECT tally.regenerate_all_rollups().';
        RETURN;
    END IF;
    DROP EVENT TRIGGER IF EXISTS tally_partition_ddl;
    CREATE EVENT TRIGGER tally_partition_ddl ON ddl_command_end
    WHEN TAG IN ('CREATE TABLE', 'ALTER TABLE')
    EXECUTE FUNCTION tally.keep_partitions_maintained();
END;
$install$;
