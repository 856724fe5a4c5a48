-- tally.generated_function(p_source regclass, p_event text) RETURNS regprocedure
--
-- The generated trigger function of a rollup source for one event ('insert', 'update',
-- 'delete', 'truncate'), as the catalogue names it (tally.rollup_sources); NULL when it
-- does not exist. Drift checks and the partition code compare triggers with it.
-- Security: invoker. Since: 0.1.0
CREATE OR REPLACE FUNCTION tally.generated_function(p_source regclass, p_event text)
RETURNS regprocedure
LANGUAGE sql
STABLE
SET search_path = pg_catalog, pg_temp
AS $function$
    SELECT to_regprocedure(format('%I.%I()', s.function_schema, s.function_prefix || '_' || p_event))
    FROM tally.rollup_sources AS s
    WHERE s.source_table = p_source;
$function$;

COMMENT ON FUNCTION tally.generated_function(regclass, text) IS
'The generated trigger function of a rollup source for one event (NULL if missing)';
