-- tally.make_rankable(p_rollup text, p_measure text) RETURNS regclass
--
-- Creates the index that makes tally.top and tally.rank fast for one measure of a rollup:
--     CREATE INDEX <stats>_rank_<measure> ON <stats> (<measure> DESC NULLS LAST, <key1>, ...)
-- i.e. exactly the leaderboard order, so the top N is an Index Scan stopped by a Limit and
-- the rank of a group is an index-only count. Returns the index. Idempotent: when the
-- index already exists on the stats table it is returned as it is (with a NOTICE).
-- Records nothing in the catalogue: the index is the only state, and it goes away with
-- the stats table (tally.drop_rollup).
-- The index is built in the caller's transaction and blocks writes to the stats table
-- (hence to the source) while it is built. On a large live table, build it beforehand
-- with CREATE INDEX CONCURRENTLY under the same name; this function then finds it.
-- Errors: unknown rollup (undefined_object), unknown measure (undefined_column), rollup
-- without group keys (invalid_parameter_value), another relation already holding the
-- index name (duplicate_table), a rollup with slots (feature_not_supported).
-- Security: invoker (the caller must own the stats table). Since: 0.1.0
CREATE OR REPLACE FUNCTION tally.make_rankable(p_rollup text, p_measure text)
RETURNS regclass
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    v_layout record;
    v_existing regclass;
    v_table regclass;
BEGIN
    SELECT * INTO v_layout FROM tally.leaderboard_layout(p_rollup, p_measure);
    IF EXISTS (SELECT FROM tally.rollups AS r WHERE r.rollup_name = p_rollup AND r.slot_table IS NOT NULL) THEN
        RAISE EXCEPTION 'rollup "%" spreads its groups over slots: its stats are a view, which has no index', p_rollup
            USING ERRCODE = 'feature_not_supported',
                  HINT = 'tally.top and tally.rank still work (by a sort); SELECT tally.set_slots(rollup, 1) to index it.';
    END IF;

    v_existing := to_regclass(format('%I.%I', v_layout.stats_schema, v_layout.index_name));
    IF v_existing IS NOT NULL THEN
        SELECT i.indrelid INTO v_table FROM pg_catalog.pg_index AS i WHERE i.indexrelid = v_existing;
        IF v_table IS DISTINCT FROM v_layout.stats_table THEN
            RAISE EXCEPTION 'relation % already exists and is not a rank index of %', v_existing, v_layout.stats_table
                USING ERRCODE = 'duplicate_table',
                      HINT = 'Rename or drop that relation, then call tally.make_rankable again.';
        END IF;
        RAISE NOTICE 'rollup "%" is already rankable by "%" (index %)', p_rollup, p_measure, v_existing;
        RETURN v_existing;
    END IF;

    EXECUTE format('CREATE INDEX %I ON %s (%I DESC NULLS LAST, %s)',
        v_layout.index_name, v_layout.stats_table, v_layout.measure_column,
        (SELECT string_agg(quote_ident(k), ', ' ORDER BY o)
         FROM unnest(v_layout.key_names) WITH ORDINALITY AS u(k, o)));
    RETURN to_regclass(format('%I.%I', v_layout.stats_schema, v_layout.index_name));
END;
$function$;

COMMENT ON FUNCTION tally.make_rankable(text, text) IS
'Creates (once) the index (measure DESC NULLS LAST, keys) that tally.top and tally.rank use';
