-- tally.grouping_value(p_set integer[], p_key_count integer) RETURNS integer
--
-- What GROUPING(k1, ..., kN) returns for the rows of one grouping set: a bit, from the
-- most significant (k1) down, for every key column NOT in the set. The generated code
-- uses it to route each aggregated row to the rollup that grouped by that set.
-- Security: invoker, pure. Since: 0.1.0
CREATE OR REPLACE FUNCTION tally.grouping_value(p_set integer[], p_key_count integer)
RETURNS integer
LANGUAGE sql
IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $function$
    SELECT coalesce(sum(1 << (p_key_count - k)), 0)::integer
    FROM generate_series(1, p_key_count) AS k
    WHERE NOT k = ANY (coalesce(p_set, '{}'));
$function$;

COMMENT ON FUNCTION tally.grouping_value(integer[], integer) IS
'The GROUPING() bitmask of a grouping set, for routing aggregated rows to their rollup';
