-- tally.check_dropped_tables() RETURNS event_trigger
--
-- Runs when DROP TABLE, DROP SCHEMA or DROP OWNED removes tables (event trigger
-- tally_table_drop). A dropped table that carried pgtally's maintenance triggers was a
-- rollup source or a partition of one, and its rows went without any DML:
--   * a dropped source leaves its rollups unmaintained: a WARNING names them, with the
--     tally.drop_rollup calls that remove them;
--   * a dropped partition's rows, if it held any, are still counted by the rollups of
--     its source (by now they cannot be told apart): a WARNING names the partition, with
--     the tally.reconcile calls that correct those rollups (a scheduled reconcile job with
--     auto_correct does too). The partition's UPDATE OF marker triggers, dropped with it,
--     name the rollups; a partition without them is put down to every partitioned source
--     still in place.
-- One warning per source, and one for the partitions of a source (a sub-partitioned
-- partition goes with its own partitions). A DROP that removes no such table costs one
-- look at the dropped objects. It never fails the user's DDL: a problem becomes a WARNING.
-- Security: invoker (the DDL's role). Since: 0.1.0
CREATE OR REPLACE FUNCTION tally.check_dropped_tables()
RETURNS event_trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    v_dropped record;
BEGIN
    -- most DROPs stop here: no table went with a tally_maintain_insert trigger
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_event_trigger_dropped_objects() AS g
                   WHERE g.object_type = 'trigger' AND g.address_names[3] = 'tally_maintain_insert') THEN
        RETURN;
    END IF;
    BEGIN
        FOR v_dropped IN
            WITH dropped AS (
                SELECT t.objid AS table_oid, t.object_identity AS table_name,
                       -- the rollups named by the UPDATE OF marker triggers dropped with it
                       ARRAY(SELECT substr(m.address_names[3], length('tally_columns_') + 1)
                             FROM pg_catalog.pg_event_trigger_dropped_objects() AS m
                             WHERE m.object_type = 'trigger' AND m.address_names[1:2] = t.address_names
                               AND m.address_names[3] LIKE 'tally\_columns\_%') AS marked_rollups
                FROM pg_catalog.pg_event_trigger_dropped_objects() AS t
                WHERE t.object_type = 'table'
                  AND EXISTS (SELECT FROM pg_catalog.pg_event_trigger_dropped_objects() AS g
                              WHERE g.object_type = 'trigger'
                                AND g.address_names = t.address_names || 'tally_maintain_insert'::text)
            ),
            counted_by AS (
                SELECT d.table_name, s.is_source,
                       coalesce(s.rollups, p.rollups) AS rollups
                FROM dropped AS d
                -- a source: its own rollups
                LEFT JOIN LATERAL (
                    SELECT true AS is_source, array_agg(r.rollup_name ORDER BY r.rollup_name) AS rollups
                    FROM tally.rollups AS r WHERE r.source_table = d.table_oid
                    HAVING count(*) > 0
                ) AS s ON true
                -- a partition: the rollups of its source (none when the source went too)
                LEFT JOIN LATERAL (
                    SELECT array_agg(r.rollup_name ORDER BY r.rollup_name) AS rollups
                    FROM tally.rollups AS r
                    JOIN pg_catalog.pg_class AS c ON c.oid = r.source_table AND c.relkind = 'p'
                    WHERE cardinality(d.marked_rollups) = 0
                       OR r.source_table IN (SELECT m.source_table FROM tally.rollups AS m
                                             WHERE m.rollup_name = ANY (d.marked_rollups))
                    HAVING count(*) > 0
                ) AS p ON s.is_source IS NULL
            )
            -- one warning per source, or per set of partitions counted by the same rollups
            SELECT coalesce(c.is_source, false) AS is_source, c.rollups,
                   string_agg(c.table_name, ', ' ORDER BY c.table_name) AS table_names
            FROM counted_by AS c
            WHERE c.rollups IS NOT NULL
            GROUP BY 1, 2, CASE WHEN c.is_source THEN c.table_name END
            ORDER BY 3
        LOOP
            IF v_dropped.is_source THEN
                RAISE WARNING 'pgtally: the dropped table % was the source of the rollups %, which nothing maintains now',
                    v_dropped.table_names, array_to_string(v_dropped.rollups, ', ')
                    USING HINT = 'Drop them with: ' || (SELECT string_agg(format('SELECT tally.drop_rollup(%L);', r), ' ')
                                                       FROM unnest(v_dropped.rollups) AS r);
            ELSE
                RAISE WARNING 'pgtally: dropped partition(s) % took their rows along without DML: the rollups % still count any they held',
                    v_dropped.table_names, array_to_string(v_dropped.rollups, ', ')
                    USING HINT = 'Correct them with: ' || (SELECT string_agg(format('SELECT tally.reconcile(%L, true);', r), ' ')
                                                          FROM unnest(v_dropped.rollups) AS r)
                                 || ' To drop a partition with rows exactly, DELETE its rows first.';
            END IF;
        END LOOP;
    EXCEPTION WHEN OTHERS THEN
        RAISE WARNING 'pgtally could not tell which rollups counted the rows of the tables dropped: %', SQLERRM
            USING HINT = 'SELECT * FROM tally.reconcile_all() finds rollups that differ from their sources.';
    END;
END;
$function$;

COMMENT ON FUNCTION tally.check_dropped_tables() IS
'Event trigger: warns when a DROP removes a rollup source, or a partition of one whose rows the rollups may still count';
