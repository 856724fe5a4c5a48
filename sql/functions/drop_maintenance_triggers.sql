-- tally.drop_maintenance_triggers(p_table regclass, p_markers_kept text[] DEFAULT NULL)
--     RETURNS void
--
-- Drops pgtally's triggers from a source, a partition or a detached table: all of them,
-- or, given p_markers_kept, only the "UPDATE OF" marker triggers of rollups not in it.
-- DROP TRIGGER locks the table ACCESS EXCLUSIVE, so nothing is dropped that is wanted.
-- Security: invoker. Since: 0.1.0
CREATE OR REPLACE FUNCTION tally.drop_maintenance_triggers(p_table regclass, p_markers_kept text[] DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    v_trigger name;
BEGIN
    FOR v_trigger IN
        SELECT t.tgname FROM pg_catalog.pg_trigger AS t
        WHERE t.tgrelid = p_table AND NOT t.tgisinternal
          AND CASE WHEN p_markers_kept IS NULL
                   THEN t.tgname LIKE 'tally\_maintain\_%' OR t.tgname LIKE 'tally\_columns\_%'
                   ELSE t.tgname LIKE 'tally\_columns\_%'
                        AND NOT t.tgname = ANY (ARRAY(SELECT 'tally_columns_' || r FROM unnest(p_markers_kept) AS r))
              END
        ORDER BY t.tgname
    LOOP
        EXECUTE format('DROP TRIGGER %I ON %s', v_trigger, p_table);
    END LOOP;
END;
$function$;

COMMENT ON FUNCTION tally.drop_maintenance_triggers(regclass, text[]) IS
'Drops pgtally''s maintenance and marker triggers from a table (or only the markers no longer wanted)';
