-- tally.check_dropped_tables() RETURNS event_trigger
--
-- Runs when DROP TABLE, DROP VIEW, DROP SCHEMA or DROP OWNED removes tables (event
-- trigger tally_table_drop). A dropped table that carried pgtally's maintenance triggers was a
-- rollup source or a partition of one, and its rows went without any DML:
--   * a dropped source leaves its rollups with nothing to maintain them: a WARNING names
--     them, with the tally.drop_rollup calls that remove them;
--   * a dropped partition's rows, if it held any, are still counted by the rollups of its
--     source (by now they cannot be told apart): a WARNING names the partition, with the
--     tally.reconcile calls that correct those rollups (a scheduled reconcile job with
--     auto_correct does too).
-- A table that stays but lost its triggers (they went with the generated functions, which
-- live in the schema of the source's first stats table) gets a WARNING with the repair.
-- Which source a partition belonged to is no longer in the catalogue: its UPDATE OF
-- marker triggers, dropped with it, name rollups of the source; without them it is the
-- partitioned source still in place, or one of several (the warning says so). Partitions
-- dropped along with their source or with a partition above them (DROP TABLE of either)
-- get no warning of their own; when a DROP SCHEMA or DROP OWNED takes a source and
-- partitions without markers while other partitioned sources stay, those partitions cannot
-- be told from partitions of the sources that stay, and are warned about as theirs
-- (a reconcile of a rollup whose rows did not move finds nothing to correct). One warning per source and per set of partitions counted
-- by the same rollups. A DROP that removes no table with pgtally's triggers costs one
-- look at the dropped objects. The warnings come before the DROP commits (a DROP rolled
-- back later has warned too), and never fail it: a problem becomes a WARNING.
-- Security: invoker (the DDL's role: row-level security on the catalogue shows it the
-- rollups of its own sources; a partition of another role's source gets a warning without
-- names).
-- Since: 0.1.0
CREATE OR REPLACE FUNCTION tally.check_dropped_tables()
RETURNS event_trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    v_dropped record;
    v_lost record;
    v_tables text;
BEGIN
    BEGIN
        -- stats tables (or views over slots) dropped while their rollup and its source stay
        IF pg_catalog.has_schema_privilege('tally', 'USAGE')
           AND pg_catalog.has_table_privilege('tally.rollups', 'SELECT') THEN
            FOR v_lost IN
                SELECT r.source_table, array_agg(r.rollup_name ORDER BY r.rollup_name) AS rollups
                FROM tally.rollups AS r
                WHERE EXISTS (SELECT FROM pg_catalog.pg_class AS c WHERE c.oid = r.source_table)
                  AND EXISTS (SELECT FROM pg_catalog.pg_event_trigger_dropped_objects() AS t
                              WHERE t.object_type IN ('table', 'view')
                                AND t.objid IN (r.stats_table, r.slot_table, r.pending_table))
                GROUP BY r.source_table
                ORDER BY r.source_table::text
            LOOP
                RAISE WARNING 'pgtally: the rollup(s) % of % lost their stats tables: writes to it fail or go unmaintained',
                    array_to_string(v_lost.rollups, ', '), v_lost.source_table
                    USING HINT = 'Drop them with: ' || (SELECT string_agg(format('SELECT tally.drop_rollup(%L);', r), ' ')
                                                       FROM unnest(v_lost.rollups) AS r);
            END LOOP;
        END IF;
        -- most DROPs stop here: no table went with a tally_maintain_insert trigger
        IF NOT EXISTS (SELECT FROM pg_catalog.pg_event_trigger_dropped_objects() AS g
                       WHERE g.object_type = 'trigger' AND g.address_names[3] = 'tally_maintain_insert') THEN
            RETURN;
        END IF;
        v_tables := (SELECT string_agg(t.object_identity, ', ' ORDER BY t.object_identity)
                     FROM pg_catalog.pg_event_trigger_dropped_objects() AS t WHERE t.object_type = 'table');
        -- a table that stays lost its triggers: they went with the generated functions, which
        -- live in the schema of a stats table (DROP SCHEMA ... CASCADE of that schema)
        FOR v_lost IN
            WITH lost AS (
                SELECT DISTINCT format('%I.%I', g.address_names[1], g.address_names[2])::regclass AS table_oid
                FROM pg_catalog.pg_event_trigger_dropped_objects() AS g
                WHERE g.object_type = 'trigger' AND g.address_names[3] = 'tally_maintain_insert'
                  AND NOT EXISTS (SELECT FROM pg_catalog.pg_event_trigger_dropped_objects() AS t
                                  WHERE t.object_type = 'table' AND t.address_names = g.address_names[1:2])
            )
            -- the source, not each of its partitions
            SELECT l.table_oid::text AS table_name FROM lost AS l
            WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_partition_ancestors(l.table_oid) AS a (relid)
                              JOIN lost AS above ON above.table_oid = a.relid
                              WHERE a.relid <> l.table_oid)
            ORDER BY 1
        LOOP
            RAISE WARNING 'pgtally: the triggers that keep the rollups of % exact went with their functions: its writes are not maintained',
                v_lost.table_name
                USING HINT = 'Drop the rollups whose stats tables went too (SELECT * FROM tally.schema_drift() names them), '
                             'then run SELECT tally.regenerate_all_rollups() and correct the others with tally.reconcile(rollup, true).';
        END LOOP;
        FOR v_dropped IN
            WITH dropped AS (
                SELECT t.objid AS table_oid, t.object_identity AS table_name, t.original,
                       -- the rollups named by the UPDATE OF marker triggers dropped with it
                       ARRAY(SELECT substr(m.address_names[3], length('tally_columns_') + 1)
                             FROM pg_catalog.pg_event_trigger_dropped_objects() AS m
                             WHERE m.object_type = 'trigger' AND m.address_names[1:2] = t.address_names
                               AND m.address_names[3] LIKE 'tally\_columns\_%') AS marked_rollups,
                       -- rollups of its own: it was their source
                       ARRAY(SELECT r.rollup_name FROM tally.rollups AS r
                             WHERE r.source_table = t.objid ORDER BY r.rollup_name) AS own_rollups
                FROM pg_catalog.pg_event_trigger_dropped_objects() AS t
                WHERE t.object_type = 'table'
                  AND EXISTS (SELECT FROM pg_catalog.pg_event_trigger_dropped_objects() AS g
                              WHERE g.object_type = 'trigger'
                                AND g.address_names = t.address_names || 'tally_maintain_insert'::text)
            ),
            partitions AS (
                -- a partition named by the DROP (or all of them, for DROP SCHEMA and DROP
                -- OWNED), and the partitioned sources still in place it may have belonged to
                SELECT d.table_name,
                       ARRAY(SELECT DISTINCT r.source_table
                             FROM tally.rollups AS r
                             JOIN pg_catalog.pg_class AS c ON c.oid = r.source_table AND c.relkind = 'p'
                             WHERE cardinality(d.marked_rollups) = 0 OR r.rollup_name = ANY (d.marked_rollups)
                       ) AS sources,
                       -- none, and rightly so: it went with its source (this DROP's, or the one
                       -- its markers name)
                       d.went_with_a_source
                       OR EXISTS (SELECT FROM tally.rollups AS r WHERE r.rollup_name = ANY (d.marked_rollups))
                       AS source_known
                FROM (
                    -- not named by the DROP, while a source was dropped too (DROP SCHEMA):
                    -- perhaps one of its partitions, when no other source is in sight
                    SELECT d.*, NOT d.original AND EXISTS (SELECT FROM dropped AS s
                                                           WHERE cardinality(s.own_rollups) > 0)
                                AS went_with_a_source
                    FROM dropped AS d
                ) AS d
                WHERE cardinality(d.own_rollups) = 0
                  AND (d.original OR NOT EXISTS (SELECT FROM dropped AS o WHERE o.original))
            )
            SELECT true AS is_source, d.table_name AS table_names, d.own_rollups AS rollups, 1 AS source_count
            FROM dropped AS d WHERE cardinality(d.own_rollups) > 0
            UNION ALL
            SELECT false, string_agg(p.table_name, ', ' ORDER BY p.table_name),
                   ARRAY(SELECT r.rollup_name FROM tally.rollups AS r
                         WHERE r.source_table = ANY (p.sources) ORDER BY r.rollup_name),
                   cardinality(p.sources)
            FROM partitions AS p
            WHERE cardinality(p.sources) > 0 OR NOT p.source_known
            GROUP BY p.sources
            ORDER BY 2
        LOOP
            IF v_dropped.is_source THEN
                RAISE WARNING 'pgtally: dropping % leaves its rollups % with nothing to maintain them',
                    v_dropped.table_names, array_to_string(v_dropped.rollups, ', ')
                    USING HINT = 'Drop them with: ' || (SELECT string_agg(format('SELECT tally.drop_rollup(%L);', r), ' ')
                                                       FROM unnest(v_dropped.rollups) AS r);
            ELSIF v_dropped.source_count = 1 THEN
                RAISE WARNING 'pgtally: dropping partition(s) % takes their rows along without DML: the rollups % still count any they held',
                    v_dropped.table_names, array_to_string(v_dropped.rollups, ', ')
                    USING HINT = 'Correct them with: ' || (SELECT string_agg(format('SELECT tally.reconcile(%L, true);', r), ' ')
                                                          FROM unnest(v_dropped.rollups) AS r)
                                 || ' To drop a partition with rows exactly, DELETE its rows first.';
            ELSIF v_dropped.source_count > 1 THEN
                RAISE WARNING 'pgtally: dropping partition(s) % takes their rows along without DML: the rollups of their source, one of those of %, still count any they held',
                    v_dropped.table_names, array_to_string(v_dropped.rollups, ', ')
                    USING HINT = 'Correct those of their source with tally.reconcile(rollup, true), one of: '
                                 || (SELECT string_agg(format('SELECT tally.reconcile(%L, true);', r), ' ')
                                     FROM unnest(v_dropped.rollups) AS r)
                                 || ' To drop a partition with rows exactly, DELETE its rows first.';
            ELSE
                -- no rollup in sight: another role's source
                RAISE WARNING 'pgtally: dropping partition(s) % takes their rows along without DML: the rollups of their source still count any they held',
                    v_dropped.table_names
                    USING HINT = 'The owner of their source can correct its rollups with SELECT tally.reconcile(rollup, true).'
                                 || ' To drop a partition with rows exactly, DELETE its rows first.';
            END IF;
        END LOOP;
    EXCEPTION WHEN OTHERS THEN
        RAISE WARNING 'pgtally: could not tell which rollups count the rows of the dropped tables %: %',
            coalesce(v_tables, '(not known)'), SQLERRM
            USING HINT = 'The owner of their source can correct its rollups with SELECT tally.reconcile(rollup, true).';
    END;
END;
$function$;

COMMENT ON FUNCTION tally.check_dropped_tables() IS
'Event trigger: warns when a DROP removes a rollup source, or a partition of one whose rows the rollups may still count';
