-- tally.next_key_boundary(p_rollup text, p_after jsonb, p_batch_groups integer) RETURNS jsonb
--
-- The key of the p_batch_groups-th stored group after p_after (from the start when
-- NULL), in key order, or NULL when fewer remain. Batched reconciliation walks a large
-- stats table with it, one key range at a time, through the primary key index.
-- Security: invoker. Since: 0.1.0
CREATE OR REPLACE FUNCTION tally.next_key_boundary(p_rollup text, p_after jsonb, p_batch_groups integer)
RETURNS jsonb
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    v_stats regclass;
    v_keys text;
    v_after_keys text;
    v_boundary jsonb;
BEGIN
    SELECT r.stats_table INTO v_stats FROM tally.rollups AS r WHERE r.rollup_name = p_rollup;
    SELECT string_agg(format('s.%I', k.key_name), ', ' ORDER BY k.key_position),
           string_agg(format('(pg_catalog.jsonb_populate_record(NULL::%s, $1)).%I', v_stats, k.key_name),
                      ', ' ORDER BY k.key_position)
    INTO v_keys, v_after_keys
    FROM tally.rollup_keys AS k WHERE k.rollup_name = p_rollup;
    IF v_keys IS NULL THEN
        RETURN NULL;  -- a global rollup is one batch
    END IF;
    EXECUTE format(
        'SELECT %s FROM %s AS s WHERE ($1 IS NULL OR ROW(%s) > ROW(%s)) ORDER BY %s OFFSET $2 LIMIT 1',
        tally.key_json_sql(p_rollup, 's'), v_stats, v_keys, v_after_keys, v_keys)
    INTO v_boundary USING p_after, p_batch_groups - 1;
    RETURN v_boundary;
END;
$function$;

COMMENT ON FUNCTION tally.next_key_boundary(text, jsonb, integer) IS
'Key of the n-th stored group after a key, for walking a stats table in key-range batches';
