-- tally.leaderboard_layout(p_rollup text, p_measure text) RETURNS TABLE (...)
--
-- What tally.make_rankable, tally.top and tally.rank need to know about one measure of a
-- rollup: the stats table, the measure column and its type, the group key columns in
-- order with their types, whether every key is NOT NULL, and the name of the rank index
-- ("<stats>_rank_<measure>", shortened with a hash suffix when it would pass 63 bytes).
-- Types are read from the stats table itself (format_type), so casts of literals match
-- the columns exactly. Checks the input once for all three functions:
--   unknown rollup -> undefined_object, unknown measure -> undefined_column,
--   no group keys  -> invalid_parameter_value (a single-row rollup has nothing to rank).
-- Security: invoker (row-level security on the catalogue applies). Since: 0.1.0
CREATE OR REPLACE FUNCTION tally.leaderboard_layout(p_rollup text, p_measure text)
RETURNS TABLE (
    stats_table regclass,
    stats_schema name,
    stats_name name,
    measure_column name,
    measure_type text,
    key_names name[],
    key_types text[],
    keys_not_null boolean,
    index_name name
)
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    v_rollup tally.rollups%ROWTYPE;
    v_index text;
BEGIN
    v_rollup := tally.rollup_named(p_rollup);
    IF NOT EXISTS (SELECT FROM tally.rollup_measures AS m
                   WHERE m.rollup_name = p_rollup AND m.measure_name = p_measure) THEN
        RAISE EXCEPTION 'rollup "%" has no measure "%"', p_rollup, p_measure
            USING ERRCODE = 'undefined_column',
                  HINT = format('Its measures: %s.', (
                      SELECT string_agg(m.measure_name, ', ' ORDER BY m.measure_position)
                      FROM tally.rollup_measures AS m WHERE m.rollup_name = p_rollup));
    END IF;
    IF NOT EXISTS (SELECT FROM tally.rollup_keys AS k WHERE k.rollup_name = p_rollup) THEN
        RAISE EXCEPTION 'rollup "%" has no group keys: there is nothing to rank', p_rollup
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Leaderboards rank the groups of a rollup declared with group_by.';
    END IF;

    stats_table := v_rollup.stats_table;
    SELECT n.nspname, c.relname INTO stats_schema, stats_name
    FROM pg_catalog.pg_class AS c
    JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
    WHERE c.oid = v_rollup.stats_table;
    measure_column := p_measure;
    SELECT format_type(a.atttypid, a.atttypmod) INTO measure_type
    FROM pg_catalog.pg_attribute AS a
    WHERE a.attrelid = v_rollup.stats_table AND a.attname = p_measure AND NOT a.attisdropped;
    SELECT array_agg(k.key_name ORDER BY k.key_position),
           array_agg(format_type(a.atttypid, a.atttypmod) ORDER BY k.key_position),
           bool_and(a.attnotnull)
    INTO key_names, key_types, keys_not_null
    FROM tally.rollup_keys AS k
    JOIN pg_catalog.pg_attribute AS a
      ON a.attrelid = v_rollup.stats_table AND a.attname = k.key_name AND NOT a.attisdropped
    WHERE k.rollup_name = p_rollup;

    v_index := stats_name || '_rank_' || p_measure;
    IF octet_length(v_index) > 63 THEN
        -- Two long names could shorten to the same prefix: the hash keeps them apart.
        v_index := left(stats_name, 24) || '_rank_' || left(p_measure, 24) || '_'
                   || left(md5(stats_name || '.' || p_measure), 6);
    END IF;
    index_name := v_index;
    RETURN NEXT;
END;
$function$;

COMMENT ON FUNCTION tally.leaderboard_layout(text, text) IS
'Stats table, measure and key columns (with types) and rank index name of a rollup measure';
