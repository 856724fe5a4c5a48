-- tally.drop_rollup(p_rollup text, p_keep_stats boolean DEFAULT false) RETURNS void
--
-- Removes a rollup: its catalogue rows, its part of the source's generated triggers
-- (regenerated for the rollups that remain, or removed with the last one), its scheduled
-- jobs (pg_cron jobs included), pending invalidations and its stats table (with its slot
-- and pending tables) unless p_keep_stats, which keeps them as they are.
-- Only a member of the source table's owner role may drop it. Works after the source
-- table itself was dropped, too, also when its stats tables went with it (DROP SCHEMA ...
-- CASCADE, DROP OWNED).
-- Security: invoker. Since: 0.1.0
CREATE OR REPLACE FUNCTION tally.drop_rollup(p_rollup text, p_keep_stats boolean DEFAULT FALSE)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    v_rollup tally.rollups%ROWTYPE;
    v_source_exists boolean;
    v_relation regclass;
    v_kind "char";
    v_without_stats text[];  -- the source's rollups whose stats tables are gone
BEGIN
    v_rollup := tally.rollup_to_change(p_rollup, 'drop');

    v_source_exists := EXISTS (SELECT FROM pg_catalog.pg_class AS c WHERE c.oid = v_rollup.source_table);
    v_without_stats := CASE WHEN v_source_exists THEN tally.rollups_without_stats(v_rollup.source_table) ELSE '{}' END;
    -- the code of a source whose other rollups lost their stats cannot be written again
    -- without this one: those go first
    IF cardinality(v_without_stats) > 0 AND NOT p_rollup = ANY (v_without_stats) THEN
        RAISE EXCEPTION 'rollup(s) % of % lost their stats tables: drop them before %',
            array_to_string(v_without_stats, ', '), v_rollup.source_table, p_rollup
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Drop them with: ' || (SELECT string_agg(format('SELECT tally.drop_rollup(%L);', g), ' ')
                                               FROM unnest(v_without_stats) AS g);
    END IF;
    IF v_source_exists THEN
        -- ACCESS EXCLUSIVE from the start: dropping its triggers needs it, and taking it
        -- later (a lock upgrade) could deadlock with a transaction that read the source
        EXECUTE format('LOCK TABLE %s IN ACCESS EXCLUSIVE MODE', v_rollup.source_table);
    END IF;
    PERFORM tally.unschedule(p_rollup, j.job_kind) FROM tally.scheduled_jobs AS j WHERE j.rollup_name = p_rollup;
    DELETE FROM tally.invalidations WHERE rollup_name = p_rollup;
    DELETE FROM tally.rollups WHERE rollup_name = p_rollup;
    v_without_stats := array_remove(v_without_stats, p_rollup);
    IF cardinality(v_without_stats) > 0 THEN
        -- other rollups of the source lost their stats too: its code is written again
        -- when the last of them is dropped
        RAISE NOTICE 'the code maintaining % is written again once rollup(s) % are dropped too', v_rollup.source_table,
                     array_to_string(v_without_stats, ', ');
    -- a dropped source took its triggers along: its generated functions go with its last rollup
    ELSIF v_source_exists OR NOT EXISTS (SELECT FROM tally.rollups AS r WHERE r.source_table = v_rollup.source_table) THEN
        PERFORM tally.install_maintenance(v_rollup.source_table);
    END IF;
    -- the stats view (over slots) or table, then the slot and pending tables; those that a
    -- DROP SCHEMA ... CASCADE or DROP OWNED took along are gone already
    FOR v_relation, v_kind IN
        SELECT c.oid::regclass, c.relkind
        FROM unnest(ARRAY[v_rollup.stats_table, v_rollup.slot_table, v_rollup.pending_table]) WITH ORDINALITY
             AS u (relation, position)
        JOIN pg_catalog.pg_class AS c ON c.oid = u.relation
        ORDER BY u.position
    LOOP
        IF NOT coalesce(p_keep_stats, false) THEN
            EXECUTE format('DROP %s %s', CASE v_kind WHEN 'v' THEN 'VIEW' ELSE 'TABLE' END, v_relation);
        ELSIF v_relation = v_rollup.stats_table THEN
            EXECUTE format('COMMENT ON %s %s IS %L', CASE v_kind WHEN 'v' THEN 'VIEW' ELSE 'TABLE' END,
                           v_relation, format('Former pgtally rollup %s: no longer maintained', p_rollup));
        END IF;
    END LOOP;
END;
$function$;

COMMENT ON FUNCTION tally.drop_rollup(text, boolean) IS
'Removes a rollup: its triggers, catalogue rows and (unless kept) its stats table';
