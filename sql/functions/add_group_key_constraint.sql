-- tally.add_group_key_constraint(p_rollup text, p_table regclass, p_with_slot boolean DEFAULT false) RETURNS void
--
-- Makes the group keys of a rollup unique in a stats (or slot) table, as ON CONFLICT in
-- the generated triggers needs: PRIMARY KEY (keys) when every key is NOT NULL, UNIQUE
-- NULLS NOT DISTINCT (keys) when one may be NULL (GROUP BY puts NULLs in one group), a
-- unique index on (true) for a rollup without keys (one row). With p_with_slot the slot
-- column _tally_slot is part of the key: one row per group and slot. Without a primary
-- key the table gets REPLICA IDENTITY FULL: under a publication of all tables an UPDATE or
-- DELETE of a table without replica identity fails, and with it the writer's statement.
-- Security: invoker. Since: 0.1.0
CREATE OR REPLACE FUNCTION tally.add_group_key_constraint(
    p_rollup text,
    p_table regclass,
    p_with_slot boolean DEFAULT FALSE
)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    v_key_names text[];
    v_all_keys_not_null boolean;
BEGIN
    SELECT array_agg(quote_ident(k.key_name) ORDER BY k.key_position), coalesce(bool_and(k.key_not_null), true)
    INTO v_key_names, v_all_keys_not_null
    FROM tally.rollup_keys AS k WHERE k.rollup_name = p_rollup;
    IF p_with_slot THEN
        v_key_names := coalesce(v_key_names, '{}') || '_tally_slot'::text;
    END IF;
    IF v_key_names IS NULL THEN
        EXECUTE format('CREATE UNIQUE INDEX %I ON %s ((true))',
                       left((SELECT c.relname FROM pg_catalog.pg_class AS c WHERE c.oid = p_table), 50) || '_single_row',
                       p_table);
        EXECUTE format('ALTER TABLE %s REPLICA IDENTITY FULL', p_table);
    ELSIF v_all_keys_not_null THEN
        EXECUTE format('ALTER TABLE %s ADD PRIMARY KEY (%s)', p_table, array_to_string(v_key_names, ', '));
    ELSIF current_setting('server_version_num')::integer >= 150000 THEN
        -- A key that can be NULL groups NULLs together, as GROUP BY does.
        EXECUTE format('ALTER TABLE %s ADD UNIQUE NULLS NOT DISTINCT (%s)', p_table, array_to_string(v_key_names, ', '));
        EXECUTE format('ALTER TABLE %s REPLICA IDENTITY FULL', p_table);
    ELSE
        RAISE EXCEPTION 'rollup "%": group keys % may be NULL', p_rollup, array_to_string(v_key_names, ', ')
            USING ERRCODE = 'feature_not_supported',
                  HINT = 'Before PostgreSQL 15 every group key must be a NOT NULL column or wrapped in coalesce().';
    END IF;
END;
$function$;

COMMENT ON FUNCTION tally.add_group_key_constraint(text, regclass, boolean) IS
'Makes a rollup''s group keys (and slot) unique in its stats or slot table, for ON CONFLICT';
