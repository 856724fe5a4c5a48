-- Event triggers tally_partition_ddl and tally_table_drop (tally.create_partition_event_trigger):
-- the first runs tally.keep_partitions_maintained() at the end of CREATE TABLE and ALTER
-- TABLE, so partitions created, attached or detached under a rollup source get or lose
-- its triggers with the DDL; the second runs tally.check_dropped_tables() when a DROP
-- removes a rollup source, a partition of one or a stats table or view, and warns.
-- Only a superuser can make an event trigger: installed by another role, pgtally goes
-- without them and says so; tally.schema_drift() reports them missing while a rollup source
-- is partitioned, and a superuser can make them later. Recreated when this file changes.
DO $install$
BEGIN
    IF (SELECT r.rolsuper FROM pg_catalog.pg_roles AS r WHERE r.rolname = current_user) THEN
        PERFORM tally.create_partition_event_trigger();
    ELSE
        RAISE NOTICE 'pgtally: not a superuser, so no event trigger keeps new partitions of rollup sources maintained'
            USING HINT = 'A superuser can run SELECT tally.create_partition_event_trigger(); until then, run '
                         'SELECT tally.regenerate_all_rollups() after creating or attaching a partition.';
    END IF;
END;
$install$;
