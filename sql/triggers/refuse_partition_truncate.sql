-- tally.refuse_partition_truncate() RETURNS trigger
--
-- BEFORE TRUNCATE on each partition of a partitioned rollup source (TG_ARGV[0]: the
-- source's oid). Writes that name a partition are maintained by its own statement
-- triggers, but TRUNCATE has no transition table: emptying one partition alone would leave
-- its rows in the stats. So it is refused, with the ways that keep the stats exact. A
-- TRUNCATE of the source itself (or of a table above it) also fires this trigger on every
-- partition; it holds the source ACCESS EXCLUSIVE, passes, and the source's own TRUNCATE
-- trigger empties the stats. A table detached from the source passes too.
-- Security: invoker; it only reads pg_locks and the partition tree. Since: 0.1.0
CREATE OR REPLACE FUNCTION tally.refuse_partition_truncate()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    v_source oid := TG_ARGV[0]::oid;
BEGIN
    IF NOT v_source IN (SELECT pg_catalog.pg_partition_ancestors(TG_RELID)) THEN
        RETURN NULL;  -- detached: no longer part of the source
    END IF;
    IF EXISTS (
        SELECT FROM pg_catalog.pg_locks AS l
        WHERE l.locktype = 'relation' AND l.relation = v_source AND l.pid = pg_catalog.pg_backend_pid()
          AND l.mode = 'AccessExclusiveLock' AND l.granted
          AND l.database = (SELECT d.oid FROM pg_catalog.pg_database AS d WHERE d.datname = current_database())
    ) THEN
        RETURN NULL;  -- the source is being truncated as a whole
    END IF;
    RAISE EXCEPTION 'cannot truncate % alone: it is a partition of %, whose rollups count its rows',
        TG_RELID::regclass, v_source::regclass
        USING ERRCODE = 'feature_not_supported',
              HINT = 'DELETE FROM the partition keeps the rollups exact; TRUNCATE of the whole table does too.';
END;
$function$;

COMMENT ON FUNCTION tally.refuse_partition_truncate() IS
'BEFORE TRUNCATE on a partition of a rollup source: refuses to empty it alone (no transition table)';
