-- tally.record_function_fingerprints() RETURNS integer
--
-- Records the md5 of the definition of every function and procedure in schema tally, as
-- installed now. Every install path calls it last (pgtally install, the psql script,
-- CREATE EXTENSION), so tally.schema_drift() can tell a function edited by hand.
-- Returns how many were recorded.
-- Security: invoker. Since: 0.1.0
CREATE OR REPLACE FUNCTION tally.record_function_fingerprints()
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    v_count integer;
BEGIN
    DELETE FROM tally.function_fingerprints;
    INSERT INTO tally.function_fingerprints (signature, definition_md5)
    SELECT p.oid::regprocedure::text, md5(pg_get_functiondef(p.oid))
    FROM pg_catalog.pg_proc AS p
    WHERE p.pronamespace = 'tally'::regnamespace;
    GET DIAGNOSTICS v_count = ROW_COUNT;
    RETURN v_count;
END;
$function$;

COMMENT ON FUNCTION tally.record_function_fingerprints() IS
'Records an md5 of every pgtally function definition, for tally.schema_drift()';
