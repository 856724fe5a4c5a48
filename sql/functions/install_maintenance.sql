-- tally.install_maintenance(p_source regclass) RETURNS void
--
-- (Re)generates and installs the maintenance triggers of one source table from the
-- catalogue: replaces the generated functions and creates or replaces one statement-level
-- AFTER trigger per event (INSERT, UPDATE, DELETE with transition tables; TRUNCATE) and,
-- per rollup, an "UPDATE OF its columns" marker trigger (tally.create_maintenance_triggers).
-- Every partition of a partitioned source, at any level, gets them too, as a statement
-- that names a partition fires only that partition's statement triggers (on a partition
-- the TRUNCATE trigger refuses to empty it alone); tables detached since lose theirs.
-- Foreign partitions cannot have transition tables and get none. Only triggers no longer
-- wanted are dropped (that needs ACCESS EXCLUSIVE; everything else works under the
-- caller's SHARE ROW EXCLUSIVE, so no lock upgrade can deadlock with a transaction that
-- read the source). With no rollups left on the source, it only removes. Generated
-- functions are owned by the source table's owner and run as that owner (SECURITY
-- DEFINER), so the source's writers need no privilege on the stats tables; EXECUTE is
-- revoked from PUBLIC. The caller must hold a lock on the source that blocks writers
-- (create/drop do).
-- Security: invoker. Since: 0.1.0
CREATE OR REPLACE FUNCTION tally.install_maintenance(p_source regclass)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    v_place tally.rollup_sources%ROWTYPE;
    v_event text;
    v_owner name;
    v_partitions regclass[] := tally.source_partitions(p_source);
    v_table regclass;
BEGIN
    -- Drop only the triggers no longer wanted: all of them on tables detached from the
    -- source, or everywhere with the last rollup; else the markers of rollups that are
    -- gone or read no column, or all markers once the source has a BEFORE UPDATE row
    -- trigger of the user's. DROP TRIGGER locks ACCESS EXCLUSIVE, which callers that only
    -- change the code (set_mode, set_slots, a new rollup) must not need.
    FOREACH v_table IN ARRAY tally.detached_partitions(p_source) LOOP
        PERFORM tally.drop_maintenance_triggers(v_table);
    END LOOP;
    IF NOT EXISTS (SELECT FROM tally.rollups WHERE source_table = p_source) THEN
        FOREACH v_table IN ARRAY p_source || v_partitions LOOP
            PERFORM tally.drop_maintenance_triggers(v_table);
        END LOOP;
        SELECT * INTO v_place FROM tally.rollup_sources WHERE source_table = p_source;
        -- (a DROP SCHEMA ... CASCADE may have taken them with their schema)
        IF FOUND AND EXISTS (SELECT FROM pg_catalog.pg_namespace AS n WHERE n.nspname = v_place.function_schema) THEN
            FOREACH v_event IN ARRAY ARRAY['insert', 'update', 'delete', 'truncate'] LOOP
                EXECUTE format('DROP FUNCTION IF EXISTS %I.%I()', v_place.function_schema,
                               v_place.function_prefix || '_' || v_event);
            END LOOP;
        END IF;
        DELETE FROM tally.rollup_sources WHERE source_table = p_source;
        RETURN;
    END IF;
    FOREACH v_table IN ARRAY p_source || v_partitions LOOP
        PERFORM tally.drop_maintenance_triggers(v_table, tally.marker_rollups(p_source));
    END LOOP;
    SELECT * INTO v_place FROM tally.rollup_sources WHERE source_table = p_source;

    SELECT pg_get_userbyid(c.relowner) INTO v_owner FROM pg_catalog.pg_class AS c WHERE c.oid = p_source;
    IF v_place.source_table IS NULL THEN
        INSERT INTO tally.rollup_sources (source_table, function_schema, function_prefix, owner_role)
        SELECT p_source, n.nspname,
               format('tally_%s_%s', left(c.relname, 30), p_source::oid), v_owner
        FROM tally.rollups AS r
        JOIN pg_catalog.pg_class AS s ON s.oid = r.stats_table
        JOIN pg_catalog.pg_namespace AS n ON n.oid = s.relnamespace
        JOIN pg_catalog.pg_class AS c ON c.oid = p_source
        WHERE r.source_table = p_source
        ORDER BY r.created_at, r.rollup_name
        LIMIT 1
        RETURNING * INTO v_place;
    ELSIF NOT EXISTS (SELECT FROM pg_catalog.pg_namespace AS n WHERE n.nspname = v_place.function_schema) THEN
        -- the schema of the generated functions was dropped (DROP SCHEMA ... CASCADE took
        -- them, and with them the triggers): they move to that of the first stats table left
        UPDATE tally.rollup_sources AS p
        SET function_schema = first_left.nspname, generated_at = now(), owner_role = v_owner
        FROM (SELECT n.nspname
              FROM tally.rollups AS r
              JOIN pg_catalog.pg_class AS s ON s.oid = r.stats_table
              JOIN pg_catalog.pg_namespace AS n ON n.oid = s.relnamespace
              WHERE r.source_table = p_source
              ORDER BY r.created_at, r.rollup_name
              LIMIT 1) AS first_left
        WHERE p.source_table = p_source
        RETURNING p.* INTO v_place;
    ELSE
        UPDATE tally.rollup_sources SET generated_at = now(), owner_role = v_owner
        WHERE source_table = p_source;
    END IF;
    -- The source may have changed hands (ALTER TABLE ... OWNER TO). The generated functions
    -- run as its owner and write every stats table, so tables made for a former owner
    -- follow the source to its owner now, and objects made from now on (pending tables,
    -- views over slots) go to that owner. Moving them needs their owner's rights (or a
    -- superuser's); without them this stops here, before writers could trip over code
    -- that may not write the stats.
    FOR v_table IN
        SELECT t.table_oid
        FROM tally.rollups AS r
        CROSS JOIN LATERAL (VALUES (r.stats_table), (r.slot_table), (r.pending_table)) AS t (table_oid)
        JOIN pg_catalog.pg_class AS c ON c.oid = t.table_oid
        WHERE r.source_table = p_source AND pg_get_userbyid(c.relowner) <> v_owner
    LOOP
        BEGIN
            EXECUTE format('ALTER TABLE %s OWNER TO %I', v_table, v_owner);
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE EXCEPTION 'stats table % belongs to %, but its source % belongs to %',
                v_table, (SELECT pg_get_userbyid(c.relowner) FROM pg_catalog.pg_class AS c WHERE c.oid = v_table),
                p_source, v_owner
                USING ERRCODE = 'insufficient_privilege',
                      HINT = format('As its owner or a superuser: ALTER TABLE %s OWNER TO %I; then try again.',
                                    v_table, v_owner);
        END;
    END LOOP;
    UPDATE tally.rollups SET owner_role = v_owner
    WHERE source_table = p_source AND owner_role IS DISTINCT FROM v_owner;

    FOREACH v_event IN ARRAY ARRAY['insert', 'update', 'delete', 'truncate'] LOOP
        EXECUTE tally.maintenance_function_sql(p_source, v_event);
        EXECUTE format('ALTER FUNCTION %I.%I() OWNER TO %I', v_place.function_schema,
                       v_place.function_prefix || '_' || v_event, v_owner);
        EXECUTE format('REVOKE ALL ON FUNCTION %I.%I() FROM PUBLIC', v_place.function_schema,
                       v_place.function_prefix || '_' || v_event);
        EXECUTE format('COMMENT ON FUNCTION %I.%I() IS %L', v_place.function_schema,
                       v_place.function_prefix || '_' || v_event,
                       format('pgtally: keeps the rollups of %s exact on %s (generated)', p_source, upper(v_event)));
    END LOOP;

    FOREACH v_table IN ARRAY p_source || v_partitions LOOP
        PERFORM tally.create_maintenance_triggers(p_source, v_table);
    END LOOP;
END;
$function$;

COMMENT ON FUNCTION tally.install_maintenance(regclass) IS
'Regenerates and installs the maintenance triggers of a source table from the catalogue';
