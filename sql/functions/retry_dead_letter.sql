-- tally.retry_dead_letter(p_rollup text, p_bucket date DEFAULT NULL) RETURNS integer
--
-- Puts dead-lettered buckets of a deferred rollup (all of them, or p_bucket) back in the
-- queue with a fresh attempt count, once the cause is fixed: the next refresh run
-- processes them. Returns how many buckets were released.
-- Security: invoker. Since: 0.1.0
CREATE OR REPLACE FUNCTION tally.retry_dead_letter(p_rollup text, p_bucket date DEFAULT NULL)
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    v_count integer;
BEGIN
    UPDATE tally.bucket_state SET dead_lettered_at = NULL, attempts = 0, next_attempt_at = NULL
    WHERE rollup_name = p_rollup AND dead_lettered_at IS NOT NULL AND (p_bucket IS NULL OR bucket = p_bucket);
    GET DIAGNOSTICS v_count = ROW_COUNT;
    RETURN v_count;
END;
$function$;

COMMENT ON FUNCTION tally.retry_dead_letter(text, date) IS
'Releases dead-lettered buckets of a deferred rollup for the next refresh run';
