-- tally.key_batch_condition(p_rollup text, p_after jsonb, p_upto jsonb) RETURNS text
--
-- A condition over a rollup's key columns selecting the groups with key > p_after (no
-- lower bound when NULL) and <= p_upto (no upper bound when NULL), none of whose keys is
-- NULL; with both NULL, the groups that have a NULL key. The bounds are embedded as
-- jsonb literals, so the condition can be handed to tally.reconcile(p_key_condition).
-- Security: invoker, pure over the catalogue. Since: 0.1.0
CREATE OR REPLACE FUNCTION tally.key_batch_condition(p_rollup text, p_after jsonb, p_upto jsonb)
RETURNS text
LANGUAGE sql
STABLE
SET search_path = pg_catalog, pg_temp
AS $function$
    SELECT CASE
        WHEN p_after IS NULL AND p_upto IS NULL THEN
            string_agg(format('%I IS NULL', k.key_name), ' OR ')
        ELSE concat_ws(' AND ',
            format('NOT (%s)', string_agg(format('%I IS NULL', k.key_name), ' OR ')),
            CASE WHEN p_after IS NOT NULL THEN format('ROW(%s) > ROW(%s)',
                string_agg(quote_ident(k.key_name), ', ' ORDER BY k.key_position),
                string_agg(format('(pg_catalog.jsonb_populate_record(NULL::%s, %L::jsonb)).%I', r.stats_table, p_after,
                                  k.key_name), ', ' ORDER BY k.key_position)) END,
            CASE WHEN p_upto IS NOT NULL THEN format('ROW(%s) <= ROW(%s)',
                string_agg(quote_ident(k.key_name), ', ' ORDER BY k.key_position),
                string_agg(format('(pg_catalog.jsonb_populate_record(NULL::%s, %L::jsonb)).%I', r.stats_table, p_upto,
                                  k.key_name), ', ' ORDER BY k.key_position)) END)
    END
    FROM tally.rollup_keys AS k
    JOIN tally.rollups AS r USING (rollup_name)
    WHERE k.rollup_name = p_rollup;
$function$;

COMMENT ON FUNCTION tally.key_batch_condition(text, jsonb, jsonb) IS
'Condition over key columns for the key range (after, upto], or the NULL-key groups';
