-- tally.source_partitions(p_source regclass) RETURNS regclass[]
--
-- The partitions of a rollup source at every level, itself left out, that carry its
-- maintenance triggers: a statement that names a partition fires only that partition's
-- statement triggers. Tables and partitioned tables only (a foreign table cannot have
-- transition tables). Empty for a table that is not partitioned.
-- Security: invoker. Since: 0.1.0
CREATE OR REPLACE FUNCTION tally.source_partitions(p_source regclass)
RETURNS regclass[]
LANGUAGE sql
STABLE
SET search_path = pg_catalog, pg_temp
AS $function$
    SELECT coalesce(array_agg(t.relid ORDER BY t.level, t.relid::text), '{}')
    FROM pg_catalog.pg_partition_tree(p_source) AS t
    JOIN pg_catalog.pg_class AS c ON c.oid = t.relid
    WHERE t.relid <> p_source AND c.relkind IN ('r', 'p');
$function$;

COMMENT ON FUNCTION tally.source_partitions(regclass) IS
'Partitions (all levels) of a rollup source that carry its maintenance triggers';
