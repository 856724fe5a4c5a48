-- tally.now() RETURNS timestamptz
--
-- The time pgtally's scheduling, refresh, catch-up and health logic go by: the
-- pgtally.clock setting when it is set (tests and drills: SET pgtally.clock =
-- '2025-03-04 00:05+00'), else the transaction's now(). Nothing that writes stats
-- depends on it: only which buckets are due, backoff and staleness do.
-- Security: invoker. Since: 0.1.0
CREATE OR REPLACE FUNCTION tally.now()
RETURNS timestamptz
LANGUAGE sql
STABLE
SET search_path = pg_catalog, pg_temp
AS $function$
    SELECT coalesce(nullif(current_setting('pgtally.clock', true), '')::timestamptz, now());
$function$;

COMMENT ON FUNCTION tally.now() IS
'The time scheduling and health go by: the pgtally.clock setting when set, else now()';
