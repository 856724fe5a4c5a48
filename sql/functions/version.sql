-- tally.version() RETURNS text
--
-- The installed pgtally version, as recorded by the installer in the ledger.
-- Security: invoker. Since: 0.1.0
CREATE OR REPLACE FUNCTION tally.version()
RETURNS text
LANGUAGE sql
STABLE
SET search_path = pg_catalog, pg_temp
AS $function$
    SELECT l.pgtally_version FROM tally.install_ledger AS l ORDER BY l.applied_at DESC, l.pgtally_version DESC LIMIT 1;
$function$;

COMMENT ON FUNCTION tally.version() IS 'The installed pgtally version';
