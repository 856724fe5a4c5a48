-- tally.request_refresh(p_rollup text) RETURNS boolean
--
-- Asks for a refresh of a deferred rollup soon (S5's manual trigger). Requests collapse:
-- while one is pending, more requests add nothing (INSERT ... ON CONFLICT DO NOTHING, no
-- row is locked), and the next refresh run of the rollup consumes it, so a burst of
-- requests costs one run. Schedule a refresh job with '{"only_requested": true}' every
-- minute to serve requests within a minute and stay idle otherwise. Returns true when
-- this call created the pending request, false when it joined one.
-- Not executable by PUBLIC: grant EXECUTE to the roles that may trigger refreshes.
-- Security: invoker. Since: 0.1.0
CREATE OR REPLACE FUNCTION tally.request_refresh(p_rollup text)
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    v_created integer;
BEGIN
    IF NOT EXISTS (SELECT FROM tally.deferred_rollups AS d WHERE d.rollup_name = p_rollup) THEN
        RAISE EXCEPTION 'rollup "%" is not a deferred rollup', p_rollup
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Immediate rollups are always fresh; SELECT tally.set_mode(rollup, ''deferred'') defers one.';
    END IF;
    INSERT INTO tally.refresh_requests (rollup_name, requested_at) VALUES (p_rollup, tally.now())
    ON CONFLICT (rollup_name) DO NOTHING;
    GET DIAGNOSTICS v_created = ROW_COUNT;
    RETURN v_created = 1;
END;
$function$;

COMMENT ON FUNCTION tally.request_refresh(text) IS
'Requests a refresh of a deferred rollup; requests pending at once collapse into one run';

REVOKE ALL ON FUNCTION tally.request_refresh(text) FROM PUBLIC;
