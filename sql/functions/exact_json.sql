-- tally.exact_json(p_row jsonb) RETURNS jsonb
--
-- A stats row as JSON for clients: bookkeeping (_tally*) columns dropped and every
-- number turned into a string of its exact digits ("30.900000"), so no client parses a
-- total into a float.
-- Security: invoker, pure. Since: 0.1.0
CREATE OR REPLACE FUNCTION tally.exact_json(p_row jsonb)
RETURNS jsonb
LANGUAGE sql
IMMUTABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $function$
    SELECT coalesce(jsonb_object_agg(
        f.key,
        CASE WHEN jsonb_typeof(f.value) = 'number' THEN to_jsonb(f.value #>> '{}') ELSE f.value END
    ), '{}')
    FROM jsonb_each(p_row) AS f
    WHERE f.key NOT LIKE '\_tally%';
$function$;

COMMENT ON FUNCTION tally.exact_json(jsonb) IS
'A stats row as client JSON: bookkeeping columns dropped, numbers as exact strings';
