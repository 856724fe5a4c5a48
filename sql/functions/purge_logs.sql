-- tally.purge_logs(p_older_than interval DEFAULT NULL) RETURNS bigint
--
-- Keeps the reconciliation log bounded: deletes finished runs (and, with them, their log
-- rows) older than p_older_than, by default the log_retention setting. Corrections are
-- an audit trail and are kept. Returns how many runs were deleted.
-- Security: invoker. Since: 0.1.0
CREATE OR REPLACE FUNCTION tally.purge_logs(p_older_than interval DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    v_cutoff interval := coalesce(
        p_older_than,
        (SELECT s.setting_value::interval FROM tally.settings AS s WHERE s.setting_name = 'log_retention'));
    v_deleted bigint;
BEGIN
    IF v_cutoff IS NULL OR v_cutoff < interval '0' THEN
        RAISE EXCEPTION 'retention must be a positive interval, not %', v_cutoff
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    DELETE FROM tally.runs WHERE status <> 'running' AND started_at < now() - v_cutoff;
    GET DIAGNOSTICS v_deleted = ROW_COUNT;
    RETURN v_deleted;
END;
$function$;

COMMENT ON FUNCTION tally.purge_logs(interval) IS
'Deletes finished runs and their reconciliation log rows older than the retention';
