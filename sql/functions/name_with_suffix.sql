-- tally.name_with_suffix(p_name text, p_suffix text) RETURNS name
--
-- The name of a table that belongs to another: p_name followed by p_suffix ('_slots',
-- '_pending'), p_name shortened by whole characters so that the result fits PostgreSQL's
-- 63-byte identifiers. Counting bytes, not characters, keeps the suffix whole for names
-- with multi-byte characters too, so two suffixes never give one name.
-- Security: invoker. Since: 0.1.0
CREATE OR REPLACE FUNCTION tally.name_with_suffix(p_name text, p_suffix text)
RETURNS name
LANGUAGE sql
IMMUTABLE
STRICT
SET search_path = pg_catalog, pg_temp
AS $function$
    SELECT (SELECT left(p_name, n.chars)
            FROM generate_series(length(p_name), 0, -1) AS n (chars)
            WHERE octet_length(left(p_name, n.chars) || p_suffix) <= 63
            LIMIT 1) || p_suffix;
$function$;

COMMENT ON FUNCTION tally.name_with_suffix(text, text) IS
'A table name made of another and a suffix, shortened to fit 63 bytes without cutting the suffix';
