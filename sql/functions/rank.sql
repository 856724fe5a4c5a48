-- tally.rank(p_rollup text, p_measure text, p_key jsonb, p_around integer DEFAULT 0)
--     RETURNS TABLE (rank bigint, group_key jsonb, measure_value text, is_target boolean)
--
-- The rank of one group on the leaderboard of tally.top (same order, same numbers), and
-- the p_around groups just above and just below it: "you are 1,234th; here are the five
-- above and below you". Rows come in rank order; the group asked for has is_target.
-- p_key names the group as a JSON object with every group key: {"user_id": "..."}
-- (values as JSON strings or numbers, JSON null for a NULL key); group_key and
-- measure_value have the form of tally.top.
-- Rank = 1 + the number of groups strictly ahead, counted in two index ranges of the
-- tally.make_rankable index: measure > v, and measure = v with keys < the group's keys (a
-- row comparison, one range of the index). Counting is O(rank): see bench/LEADERBOARD.md
-- for the figures. The neighbours are read by walking that index backwards and forwards
-- from the group (a few short index scans, LIMIT p_around each).
-- Errors: unknown rollup/measure/no keys (see tally.leaderboard_layout); p_key not an
-- object or not exactly the group keys (invalid_parameter_value); a key value that does
-- not cast to its column type (invalid_text_representation...); no such group
-- (no_data_found).
-- jit = off: its estimates overshoot (CTEs, views over slots), and JIT compiling cost more
-- than it saved (README, Performance).
-- Security: invoker. Since: 0.1.0
CREATE OR REPLACE FUNCTION tally.rank(
    p_rollup text,
    p_measure text,
    p_key jsonb,
    p_around integer DEFAULT 0
)
RETURNS TABLE (rank bigint, group_key jsonb, measure_value text, is_target boolean)
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $function$
DECLARE
    v_layout record;
    v_count integer;
    v_text text;
    v_measure text;
    v_literal text;
    v_keys_json text;
    v_keys_text text;
    v_keys_list text;
    v_keys_asc text;
    v_keys_desc text;
    v_where text[] := '{}';
    v_found boolean;
    v_value text;
    v_key_json jsonb;
    v_key_texts text[];
    v_literals text[] := '{}';
    v_ahead text;
    v_tie text;
    v_behind text[];
    v_before text;
    v_after text;
    v_after_text text;
    v_equal_prefix text := 'true';
    v_rank bigint;
    v_order text;
    v_parts text[];
    i integer;
BEGIN
    IF p_around IS NULL OR p_around < 0 THEN
        RAISE EXCEPTION 'around must be 0 or more, not %', coalesce(p_around::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT * INTO v_layout FROM tally.leaderboard_layout(p_rollup, p_measure);
    v_count := cardinality(v_layout.key_names);

    ---------------------------------------------------------------- the group asked for
    IF p_key IS NULL OR jsonb_typeof(p_key) <> 'object' THEN
        RAISE EXCEPTION 'rollup "%": the group key must be a JSON object, not %', p_rollup, coalesce(p_key::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = format('Give every group key: %s.', (
                      SELECT jsonb_object_agg(k, '...') FROM unnest(v_layout.key_names) AS u(k)));
    END IF;
    SELECT string_agg(k, ', ') INTO v_text
    FROM (
        SELECT k FROM unnest(v_layout.key_names) AS u(k) WHERE NOT p_key ? k
        UNION ALL
        SELECT j FROM jsonb_object_keys(p_key) AS j WHERE j <> ALL (v_layout.key_names)
    ) AS wrong;
    IF v_text IS NOT NULL THEN
        RAISE EXCEPTION 'rollup "%": the group key % does not match its group keys (%)', p_rollup, p_key,
                array_to_string(v_layout.key_names, ', ')
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('Missing or unknown: %s.', v_text);
    END IF;

    v_measure := format('s.%I', v_layout.measure_column);
    SELECT string_agg(format('%L, s.%I', k, k), ', ' ORDER BY o),
           string_agg(format('s.%I::text', k), ', ' ORDER BY o),
           string_agg(format('s.%I', k), ', ' ORDER BY o),
           string_agg(format('s.%I DESC', k), ', ' ORDER BY o)
    INTO v_keys_json, v_keys_text, v_keys_list, v_keys_desc
    FROM unnest(v_layout.key_names) WITH ORDINALITY AS u(k, o);
    v_keys_asc := v_keys_list;
    FOR i IN 1 .. v_count LOOP
        v_where := v_where || CASE
            WHEN p_key -> v_layout.key_names[i] = 'null'::jsonb THEN format('s.%I IS NULL', v_layout.key_names[i])
            ELSE format('s.%I = %L::%s', v_layout.key_names[i], p_key ->> v_layout.key_names[i], v_layout.key_types[i])
        END;
    END LOOP;
    EXECUTE format('SELECT true, %s::text, tally.exact_json(jsonb_build_object(%s)), ARRAY[%s]::text[] '
                   'FROM %s AS s WHERE %s',
                   v_measure, v_keys_json, v_keys_text, v_layout.stats_table, array_to_string(v_where, ' AND '))
    INTO v_found, v_value, v_key_json, v_key_texts;
    IF v_found IS NULL THEN
        RAISE EXCEPTION 'rollup "%" has no group %', p_rollup, p_key
            USING ERRCODE = 'no_data_found',
                  HINT = 'A group exists while at least one source row matches it.';
    END IF;

    ---------------------------------------------------------------- the order, as ranges
    -- Leaderboard order: measure DESC NULLS LAST, keys ASC NULLS LAST. "Ahead of the
    -- group" = measure ahead, or measure tied and keys before; "behind" the mirror.
    IF v_value IS NULL THEN
        v_ahead := format('%s IS NOT NULL', v_measure);
        v_tie := format('%s IS NULL', v_measure);
        v_behind := '{}';
    ELSE
        v_literal := format('%L::%s', v_value, v_layout.measure_type);
        v_ahead := format('%s > %s', v_measure, v_literal);
        v_tie := format('%s = %s', v_measure, v_literal);
        v_behind := ARRAY[format('%s < %s', v_measure, v_literal), format('%s IS NULL', v_measure)];
    END IF;
    FOR i IN 1 .. v_count LOOP
        v_literals := v_literals || format('%L::%s', v_key_texts[i], v_layout.key_types[i]);
    END LOOP;
    -- A row comparison is one index range. It means "keys before" exactly when the group's
    -- keys are all non-NULL (a NULL met on the row's side sorts it after), and "keys
    -- after" when no key can be NULL. Otherwise spell the order out, key by key.
    IF array_position(v_key_texts, NULL) IS NULL THEN
        v_before := format('(%s) < (%s)', v_keys_list, array_to_string(v_literals, ', '));
    END IF;
    IF v_layout.keys_not_null THEN
        v_after := format('(%s) > (%s)', v_keys_list, array_to_string(v_literals, ', '));
    END IF;
    IF v_before IS NULL OR v_after IS NULL THEN
        v_text := 'false';
        v_after_text := 'false';
        FOR i IN 1 .. v_count LOOP
            v_text := v_text || format(' OR (%s AND %s)', v_equal_prefix, CASE WHEN v_key_texts[i] IS NULL
                THEN format('s.%I IS NOT NULL', v_layout.key_names[i])
                ELSE format('s.%I < %s', v_layout.key_names[i], v_literals[i]) END);
            v_after_text := v_after_text || format(' OR (%s AND %s)', v_equal_prefix, CASE WHEN v_key_texts[i] IS NULL
                THEN 'false'
                ELSE format('(s.%1$I > %2$s OR s.%1$I IS NULL)', v_layout.key_names[i], v_literals[i]) END);
            v_equal_prefix := v_equal_prefix || ' AND ' || CASE WHEN v_key_texts[i] IS NULL
                THEN format('s.%I IS NULL', v_layout.key_names[i])
                ELSE format('s.%I = %s', v_layout.key_names[i], v_literals[i]) END;
        END LOOP;
        v_before := coalesce(v_before, '(' || v_text || ')');
        v_after := coalesce(v_after, '(' || v_after_text || ')');
    END IF;

    ---------------------------------------------------------------- rank
    EXECUTE format('SELECT 1 + (SELECT count(*) FROM %1$s AS s WHERE %2$s) '
                   '+ (SELECT count(*) FROM %1$s AS s WHERE %3$s AND %4$s)',
                   v_layout.stats_table, v_ahead, v_tie, v_before)
    INTO v_rank;

    ---------------------------------------------------------------- above
    IF p_around > 0 THEN
        -- Nearest first: the tied groups with smaller keys, then those with larger values;
        -- each part is one backward index scan stopped after p_around rows.
        v_order := format('%s ASC NULLS FIRST, %s', v_measure, v_keys_desc);
        v_parts := ARRAY[format('%s AND %s', v_tie, v_before), v_ahead];
        RETURN QUERY EXECUTE format(
            'SELECT * FROM (SELECT $1 - row_number() OVER (ORDER BY s._tally_part, %1$s), '
            'tally.exact_json(jsonb_build_object(%2$s)), %3$s::text, false '
            'FROM (%4$s) AS s ORDER BY s._tally_part, %1$s LIMIT $2) AS above ORDER BY 1',
            v_order, v_keys_json, v_measure,
            (SELECT string_agg(format('(SELECT %s AS _tally_part, s.* FROM %s AS s WHERE %s ORDER BY %s LIMIT $2)',
                                      o, v_layout.stats_table, p, v_order), ' UNION ALL ' ORDER BY o)
             FROM unnest(v_parts) WITH ORDINALITY AS u(p, o)))
        USING v_rank, p_around::bigint;
    END IF;

    rank := v_rank;
    group_key := v_key_json;
    measure_value := v_value;
    is_target := true;
    RETURN NEXT;

    ---------------------------------------------------------------- below
    IF p_around > 0 THEN
        v_order := format('%s DESC NULLS LAST, %s', v_measure, v_keys_asc);
        v_parts := ARRAY[format('%s AND %s', v_tie, v_after)] || v_behind;
        RETURN QUERY EXECUTE format(
            'SELECT $1 + row_number() OVER (ORDER BY s._tally_part, %1$s), '
            'tally.exact_json(jsonb_build_object(%2$s)), %3$s::text, false '
            'FROM (%4$s) AS s ORDER BY s._tally_part, %1$s LIMIT $2',
            v_order, v_keys_json, v_measure,
            (SELECT string_agg(format('(SELECT %s AS _tally_part, s.* FROM %s AS s WHERE %s ORDER BY %s LIMIT $2)',
                                      o, v_layout.stats_table, p, v_order), ' UNION ALL ' ORDER BY o)
             FROM unnest(v_parts) WITH ORDINALITY AS u(p, o)))
        USING v_rank, p_around::bigint;
    END IF;
END;
$function$;

COMMENT ON FUNCTION tally.rank(text, text, jsonb, integer) IS
'Rank of one group on a leaderboard (same order as tally.top) and the groups just above and below it';
