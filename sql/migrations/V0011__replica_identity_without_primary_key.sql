-- V0011: a replica identity for every table pgtally updates or deletes from.
--
-- Under a publication of all tables (logical replication, change data capture), an UPDATE
-- or DELETE of a table without a replica identity fails, and with it the user's write whose
-- trigger made it. Tables with a primary key use it; these have none: the invalidation
-- queue of deferred rollups, and the stats and slot tables of rollups without keys (one
-- row, a unique index on (true)) or with keys that may be NULL (UNIQUE NULLS NOT DISTINCT,
-- which cannot serve as identity). They get REPLICA IDENTITY FULL; new ones get it from
-- tally.add_group_key_constraint.
ALTER TABLE tally.invalidations REPLICA IDENTITY FULL;

DO $migration$
DECLARE
    v_table pg_catalog.regclass;
BEGIN
    FOR v_table IN
        SELECT c.oid::pg_catalog.regclass
        FROM tally.rollups AS r
        CROSS JOIN LATERAL (VALUES (r.stats_table), (r.slot_table)) AS t (table_oid)
        JOIN pg_catalog.pg_class AS c ON c.oid = t.table_oid
        WHERE c.relkind = 'r'
          AND c.relreplident = 'd'
          AND NOT EXISTS (
              SELECT FROM pg_catalog.pg_index AS i WHERE i.indrelid = c.oid AND i.indisprimary
          )
    LOOP
        BEGIN
            EXECUTE pg_catalog.format('ALTER TABLE %s REPLICA IDENTITY FULL', v_table);
        EXCEPTION WHEN insufficient_privilege THEN
            -- an installer that does not own it: the upgrade goes on, and says what is left
            RAISE WARNING 'pgtally: % is not yours to alter', v_table
                USING HINT = pg_catalog.format('Its owner or a superuser can run: ALTER TABLE %s REPLICA IDENTITY FULL', v_table);
        END;
    END LOOP;
END;
$migration$;
