-- tally.install_maintenance(p_source regclass) RETURNS void
--
-- (Re)generates and installs the maintenance triggers of one source table from the
-- catalogue: replaces the generated functions and creates or replaces one statement-level
-- AFTER trigger per event (INSERT, UPDATE, DELETE with transition tables; TRUNCATE) and,
-- per rollup, an "UPDATE OF its columns" marker trigger. Every partition of a partitioned
-- source (at any level) gets the INSERT, UPDATE and DELETE triggers and markers too, as
-- statements that name a partition fire only its own statement triggers, and a BEFORE
-- TRUNCATE trigger that refuses to empty it alone (tally.refuse_partition_truncate).
-- Foreign partitions cannot have transition tables and get none. Only triggers no longer wanted
-- are dropped (that needs ACCESS EXCLUSIVE on the source; everything else works under the
-- caller's SHARE ROW EXCLUSIVE, so no lock upgrade can deadlock with a transaction that
-- read the source). With no rollups left on the source, it only removes. Generated functions are owned by the
-- source table's owner and run as that owner (SECURITY DEFINER), so the source's writers
-- need no privilege on the stats tables; EXECUTE is revoked from PUBLIC.
-- The caller must hold a lock on the source that blocks writers (create/drop do).
-- Security: invoker. Since: 0.1.0
CREATE OR REPLACE FUNCTION tally.install_maintenance(p_source regclass)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    v_place tally.rollup_sources%ROWTYPE;
    v_trigger record;
    v_event text;
    v_rollup record;
    v_owner name;
    v_user_update_triggers boolean;
    v_partitions regclass[];
    v_table regclass;
BEGIN
    v_partitions := ARRAY(
        SELECT t.relid FROM pg_catalog.pg_partition_tree(p_source) AS t
        JOIN pg_catalog.pg_class AS c ON c.oid = t.relid
        WHERE t.relid <> p_source AND c.relkind IN ('r', 'p')
        ORDER BY t.level, t.relid::text
    );
    -- Same test as the generator's: with a user BEFORE UPDATE row trigger, every UPDATE
    -- is processed in full and no marker triggers are made.
    v_user_update_triggers := EXISTS (
        SELECT FROM pg_catalog.pg_trigger AS t
        WHERE t.tgrelid = p_source AND NOT t.tgisinternal
          AND t.tgtype & 1 = 1 AND t.tgtype & 2 = 2 AND t.tgtype & 16 = 16
    );
    -- Drop only the triggers no longer wanted (a dropped rollup's marker, or all of them
    -- with the last rollup): DROP TRIGGER locks the source ACCESS EXCLUSIVE, which callers
    -- that only change the code (set_mode, set_slots, a new rollup) must not need.
    FOR v_trigger IN
        SELECT t.tgname, t.tgrelid::regclass AS table_name FROM pg_catalog.pg_trigger AS t
        WHERE t.tgrelid = ANY (p_source || v_partitions) AND NOT t.tgisinternal
          AND (
              ((t.tgname LIKE 'tally\_maintain\_%' OR t.tgname = 'tally_partition_truncate')
               AND NOT EXISTS (SELECT FROM tally.rollups AS r WHERE r.source_table = p_source))
              OR (t.tgname LIKE 'tally\_columns\_%' AND (v_user_update_triggers OR NOT EXISTS (
                  SELECT FROM tally.rollups AS r
                  WHERE r.source_table = p_source AND t.tgname = 'tally_columns_' || r.rollup_name
                    AND cardinality(r.source_columns) > 0)))
          )
    LOOP
        EXECUTE format('DROP TRIGGER %I ON %s', v_trigger.tgname, v_trigger.table_name);
    END LOOP;

    IF NOT EXISTS (SELECT FROM tally.rollups WHERE source_table = p_source) THEN
        SELECT * INTO v_place FROM tally.rollup_sources WHERE source_table = p_source;
        IF FOUND THEN
            FOREACH v_event IN ARRAY ARRAY['insert', 'update', 'delete', 'truncate'] LOOP
                EXECUTE format('DROP FUNCTION IF EXISTS %I.%I()', v_place.function_schema,
                               v_place.function_prefix || '_' || v_event);
            END LOOP;
        END IF;
        DELETE FROM tally.rollup_sources WHERE source_table = p_source;
        RETURN;
    END IF;
    SELECT * INTO v_place FROM tally.rollup_sources WHERE source_table = p_source;

    SELECT c.relowner::regrole::name INTO v_owner FROM pg_catalog.pg_class AS c WHERE c.oid = p_source;
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
    ELSE
        UPDATE tally.rollup_sources SET generated_at = now(), owner_role = v_owner
        WHERE source_table = p_source;
    END IF;

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
        EXECUTE format(
            'CREATE OR REPLACE TRIGGER tally_maintain_insert AFTER INSERT ON %s '
            'REFERENCING NEW TABLE AS tally_new_rows FOR EACH STATEMENT EXECUTE FUNCTION %I.%I()',
            v_table, v_place.function_schema, v_place.function_prefix || '_insert');
        EXECUTE format(
            'CREATE OR REPLACE TRIGGER tally_maintain_update AFTER UPDATE ON %s '
            'REFERENCING OLD TABLE AS tally_old_rows NEW TABLE AS tally_new_rows '
            'FOR EACH STATEMENT EXECUTE FUNCTION %I.%I()',
            v_table, v_place.function_schema, v_place.function_prefix || '_update');
        EXECUTE format(
            'CREATE OR REPLACE TRIGGER tally_maintain_delete AFTER DELETE ON %s '
            'REFERENCING OLD TABLE AS tally_old_rows FOR EACH STATEMENT EXECUTE FUNCTION %I.%I()',
            v_table, v_place.function_schema, v_place.function_prefix || '_delete');
    END LOOP;
    EXECUTE format(
        'CREATE OR REPLACE TRIGGER tally_maintain_truncate AFTER TRUNCATE ON %s '
        'FOR EACH STATEMENT EXECUTE FUNCTION %I.%I()',
        p_source, v_place.function_schema, v_place.function_prefix || '_truncate');
    FOREACH v_table IN ARRAY v_partitions LOOP
        EXECUTE format(
            'CREATE OR REPLACE TRIGGER tally_partition_truncate BEFORE TRUNCATE ON %s '
            'FOR EACH STATEMENT EXECUTE FUNCTION tally.refuse_partition_truncate(%L)',
            v_table, p_source::oid);
    END LOOP;

    IF NOT v_user_update_triggers THEN
        FOR v_rollup IN
            SELECT r.rollup_name, r.source_columns FROM tally.rollups AS r
            WHERE r.source_table = p_source ORDER BY r.rollup_name
        LOOP
            IF cardinality(v_rollup.source_columns) = 0 THEN
                -- count(*) of an unfiltered global rollup reads no column: no UPDATE changes it
                CONTINUE;
            END IF;
            FOREACH v_table IN ARRAY p_source || v_partitions LOOP
                -- on a partition the marker also names the source, whose setting it writes
                EXECUTE format(
                    'CREATE OR REPLACE TRIGGER %I AFTER UPDATE OF %s ON %s FOR EACH STATEMENT '
                    'EXECUTE FUNCTION tally.note_relevant_update(%s)',
                    'tally_columns_' || v_rollup.rollup_name,
                    (SELECT string_agg(quote_ident(c), ', ') FROM unnest(v_rollup.source_columns) AS c),
                    v_table, concat_ws(', ', quote_literal(v_rollup.rollup_name),
                                       CASE WHEN v_table <> p_source THEN quote_literal(p_source::oid) END));
            END LOOP;
        END LOOP;
    END IF;
END;
$function$;

COMMENT ON FUNCTION tally.install_maintenance(regclass) IS
'Regenerates and installs the maintenance triggers of a source table from the catalogue';
