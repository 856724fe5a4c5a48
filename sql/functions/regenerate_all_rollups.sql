-- tally.regenerate_all_rollups() RETURNS integer
--
-- Writes the generated maintenance code of every source table again from the
-- catalogue: after an upgrade of pgtally (the installer calls it), after a restore, or
-- after adding a BEFORE UPDATE trigger to a source. Returns how many sources it did. A
-- source table dropped since, or one with rollups whose stats tables are gone
-- (tally.rollups_without_stats), is skipped with a WARNING naming its rollups.
-- Security: invoker. Since: 0.1.0
CREATE OR REPLACE FUNCTION tally.regenerate_all_rollups()
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    v_source regclass;
    v_count integer := 0;
    v_without_stats text[];
BEGIN
    FOR v_source IN
        SELECT DISTINCT r.source_table FROM tally.rollups AS r ORDER BY 1
    LOOP
        IF NOT EXISTS (SELECT FROM pg_catalog.pg_class AS c WHERE c.oid = v_source) THEN
            RAISE WARNING 'the source table of rollup(s) % was dropped: nothing to maintain',
                          (SELECT string_agg(r.rollup_name, ', ' ORDER BY r.rollup_name)
                           FROM tally.rollups AS r WHERE r.source_table = v_source)
                USING HINT = 'SELECT tally.drop_rollup(rollup) removes what is left of each.';
            CONTINUE;
        END IF;
        v_without_stats := tally.rollups_without_stats(v_source);
        IF cardinality(v_without_stats) > 0 THEN
            -- its code would name a missing table; the other sources go on
            RAISE WARNING 'the stats tables of rollup(s) % of % are gone: its code is left as it is',
                          array_to_string(v_without_stats, ', '), v_source
                USING HINT = 'Drop them with: ' || (SELECT string_agg(format('SELECT tally.drop_rollup(%L);', g), ' ')
                                                   FROM unnest(v_without_stats) AS g);
            CONTINUE;
        END IF;
        EXECUTE format('LOCK TABLE %s IN SHARE ROW EXCLUSIVE MODE', v_source);
        PERFORM tally.install_maintenance(v_source);
        v_count := v_count + 1;
    END LOOP;
    RETURN v_count;
END;
$function$;

COMMENT ON FUNCTION tally.regenerate_all_rollups() IS
'Regenerates the maintenance triggers of every source table from the catalogue';
