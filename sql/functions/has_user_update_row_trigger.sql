-- tally.has_user_update_row_trigger(p_source regclass) RETURNS boolean
--
-- Whether the source has a BEFORE UPDATE row trigger of the user's. Such a trigger may
-- change columns a rollup reads that the UPDATE's SET list does not name, so "UPDATE OF"
-- markers cannot tell which rollups an UPDATE touched: the generator then compares every
-- UPDATE in full and no markers are made.
-- Security: invoker. Since: 0.1.0
CREATE OR REPLACE FUNCTION tally.has_user_update_row_trigger(p_source regclass)
RETURNS boolean
LANGUAGE sql
STABLE
SET search_path = pg_catalog, pg_temp
AS $function$
    SELECT EXISTS (
        SELECT FROM pg_catalog.pg_trigger AS t
        WHERE t.tgrelid = p_source AND NOT t.tgisinternal
          AND t.tgtype & 1 = 1        -- row level
          AND t.tgtype & 2 = 2        -- before
          AND t.tgtype & 16 = 16      -- update
    );
$function$;

COMMENT ON FUNCTION tally.has_user_update_row_trigger(regclass) IS
'Whether a source has a user BEFORE UPDATE row trigger (then UPDATE OF markers cannot be trusted)';
