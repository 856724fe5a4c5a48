-- tally.maintenance_code(p_rollup text) RETURNS text
--
-- The generated trigger functions that run on every write to the rollup's source (all
-- rollups of that source share them), exactly as installed, so users can read what their
-- INSERT, UPDATE, DELETE and TRUNCATE statements execute: \pset format unaligned first.
-- Security: invoker. Since: 0.1.0
CREATE OR REPLACE FUNCTION tally.maintenance_code(p_rollup text)
RETURNS text
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    v_source regclass;
BEGIN
    v_source := (tally.rollup_named(p_rollup)).source_table;
    RETURN (
        SELECT string_agg(pg_catalog.pg_get_functiondef(p.oid), E'\n' ORDER BY e.o)
        FROM tally.rollup_sources AS s
        CROSS JOIN unnest(ARRAY['insert', 'update', 'delete', 'truncate']) WITH ORDINALITY AS e(event, o)
        JOIN pg_catalog.pg_proc AS p
            ON p.proname = s.function_prefix || '_' || e.event
           AND p.pronamespace = (SELECT n.oid FROM pg_catalog.pg_namespace AS n WHERE n.nspname = s.function_schema)
        WHERE s.source_table = v_source
    );
END;
$function$;

COMMENT ON FUNCTION tally.maintenance_code(text) IS
'The generated trigger functions that keep a rollup (and its source''s other rollups) exact';
