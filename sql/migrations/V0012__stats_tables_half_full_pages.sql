-- V0012: stats and slot tables leave half of each page free (fillfactor 50).
--
-- A statement that changes many groups updates every stats row of a page once. On a full
-- page each new row version goes to another page and adds a primary key entry; with room
-- beside the old version the update is HOT (no index entry) and the old versions are
-- pruned by later statements. Measured in the lab on a DELETE of 138,281 of 1.38M rows
-- over 7,500 groups: the trigger's work fell by about a quarter. tally.create_rollup
-- makes new stats tables so; this sets it on existing ones that have no fillfactor of
-- their own (it applies to pages filled from now on; VACUUM FULL rewrites the rest).
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
          AND NOT EXISTS (SELECT FROM unnest(c.reloptions) AS o (setting) WHERE o.setting LIKE 'fillfactor=%')
    LOOP
        BEGIN
            EXECUTE pg_catalog.format('ALTER TABLE %s SET (fillfactor = 50)', v_table);
        EXCEPTION WHEN insufficient_privilege THEN
            -- an installer that does not own it: the upgrade goes on, and says what is left
            RAISE WARNING 'pgtally: % is not yours to alter', v_table
                USING HINT = pg_catalog.format('Its owner or a superuser can run: ALTER TABLE %s SET (fillfactor = 50)', v_table);
        END;
    END LOOP;
END;
$migration$;
