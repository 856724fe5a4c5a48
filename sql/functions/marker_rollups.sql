-- tally.marker_rollups(p_source regclass) RETURNS text[]
--
-- The rollups of a source that get an "UPDATE OF their columns" marker trigger
-- (tally.note_relevant_update): those that read a column (count(*) of an unfiltered
-- global rollup reads none, so no UPDATE changes it), and none while the source has a
-- BEFORE UPDATE row trigger of the user's (the generated code then compares every UPDATE
-- in full). tally.create_maintenance_triggers makes these markers, tally.install_maintenance
-- drops the others.
-- Security: invoker. Since: 0.1.0
CREATE OR REPLACE FUNCTION tally.marker_rollups(p_source regclass)
RETURNS text[]
LANGUAGE sql
STABLE
SET search_path = pg_catalog, pg_temp
AS $function$
    SELECT coalesce(array_agg(r.rollup_name ORDER BY r.rollup_name), '{}')
    FROM tally.rollups AS r
    WHERE r.source_table = p_source AND cardinality(r.source_columns) > 0
      AND NOT tally.has_user_update_row_trigger(p_source);
$function$;

COMMENT ON FUNCTION tally.marker_rollups(regclass) IS
'The rollups of a source that get UPDATE OF marker triggers';
