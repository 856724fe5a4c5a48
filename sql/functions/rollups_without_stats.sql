-- tally.rollups_without_stats(p_source regclass) RETURNS text[]
--
-- The rollups of a source whose stats table, slot table or pending table is gone (a DROP
-- SCHEMA ... CASCADE or DROP OWNED took it while the source stayed), by name. Their
-- source's code cannot be generated until they are dropped: it would name a missing
-- table, and every write to the source would fail. tally.drop_rollup removes them.
-- Security: invoker. Since: 0.1.0
CREATE OR REPLACE FUNCTION tally.rollups_without_stats(p_source regclass)
RETURNS text[]
LANGUAGE sql
STABLE
SET search_path = pg_catalog, pg_temp
AS $function$
    SELECT coalesce(array_agg(r.rollup_name ORDER BY r.rollup_name), '{}')
    FROM tally.rollups AS r
    WHERE r.source_table = p_source
      AND EXISTS (SELECT FROM unnest(ARRAY[r.stats_table, r.slot_table, r.pending_table]) AS t (relation)
                  WHERE t.relation IS NOT NULL
                    AND NOT EXISTS (SELECT FROM pg_catalog.pg_class AS c WHERE c.oid = t.relation));
$function$;

COMMENT ON FUNCTION tally.rollups_without_stats(regclass) IS
'The rollups of a source whose stats, slot or pending table is gone';
