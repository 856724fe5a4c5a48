-- tally.drop_maintenance_triggers(p_table regclass, p_markers_kept text[] DEFAULT NULL)
--     RETURNS void
--
-- Drops pgtally's triggers from a source, a partition or a detached table: all of them,
-- or, given p_markers_kept, only the "UPDATE OF" marker triggers of rollups not in it.
-- DROP TRIGGER locks the table ACCESS EXCLUSIVE, so nothing is dropped that is wanted. A
-- table of another role's (a partition, say) keeps unused markers with a WARNING; dropping
-- all of its triggers then fails with an error that says whose it is.
-- Security: invoker. Since: 0.1.0
CREATE OR REPLACE FUNCTION tally.drop_maintenance_triggers(p_table regclass, p_markers_kept text[] DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    v_triggers name[];
    v_trigger name;
BEGIN
    v_triggers := ARRAY(
        SELECT t.tgname FROM pg_catalog.pg_trigger AS t
        WHERE t.tgrelid = p_table AND NOT t.tgisinternal
          AND CASE WHEN p_markers_kept IS NULL
                   THEN t.tgname LIKE 'tally\_maintain\_%' OR t.tgname LIKE 'tally\_columns\_%'
                   ELSE t.tgname LIKE 'tally\_columns\_%'
                        AND NOT t.tgname = ANY (ARRAY(SELECT 'tally_columns_' || r FROM unnest(p_markers_kept) AS r))
              END
        ORDER BY t.tgname);
    IF cardinality(v_triggers) > 0
       AND NOT pg_has_role(current_user, (SELECT c.relowner FROM pg_catalog.pg_class AS c WHERE c.oid = p_table), 'USAGE') THEN
        IF p_markers_kept IS NOT NULL THEN
            -- a marker left behind only names a rollup that is gone: harmless
            RAISE WARNING 'pgtally: % belongs to another role: its unused UPDATE OF triggers stay', p_table;
            RETURN;
        END IF;
        RAISE EXCEPTION 'pgtally''s triggers on % cannot be dropped: it belongs to %', p_table,
            (SELECT pg_get_userbyid(c.relowner) FROM pg_catalog.pg_class AS c WHERE c.oid = p_table)
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Its owner or a superuser can drop them, or run the same command.';
    END IF;
    FOREACH v_trigger IN ARRAY v_triggers LOOP
        EXECUTE format('DROP TRIGGER %I ON %s', v_trigger, p_table);
    END LOOP;
END;
$function$;

COMMENT ON FUNCTION tally.drop_maintenance_triggers(regclass, text[]) IS
'Drops pgtally''s maintenance and marker triggers from a table (or only the markers no longer wanted)';
