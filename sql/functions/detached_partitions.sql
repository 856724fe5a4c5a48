-- tally.detached_partitions(p_source regclass) RETURNS regclass[]
--
-- Tables that still carry a rollup source's maintenance triggers but are no longer the
-- source or one of its partitions: partitions detached since their triggers were made.
-- The generated code ignores writes to them; tally.install_maintenance and the partition
-- DDL event trigger drop their triggers (the generated functions could not be dropped
-- while a trigger uses them).
-- Security: invoker. Since: 0.1.0
CREATE OR REPLACE FUNCTION tally.detached_partitions(p_source regclass)
RETURNS regclass[]
LANGUAGE sql
STABLE
SET search_path = pg_catalog, pg_temp
AS $function$
    WITH partitions AS MATERIALIZED (SELECT tally.source_partitions(p_source) AS tables)
    SELECT coalesce(array_agg(DISTINCT t.tgrelid::regclass), '{}')
    FROM partitions AS p
    JOIN pg_catalog.pg_trigger AS t ON t.tgfoid = tally.generated_function(p_source, 'insert')
    WHERE t.tgrelid <> p_source
      AND NOT t.tgrelid = ANY (p.tables);
$function$;

COMMENT ON FUNCTION tally.detached_partitions(regclass) IS
'Tables detached from a partitioned rollup source that still carry its maintenance triggers';
