-- tally.check_job_options(p_job text, p_options jsonb) RETURNS void
--
-- Raises invalid_parameter_value unless p_options suit a job of kind p_job: a JSON
-- object naming only that kind's options (reconcile: auto_correct; refresh:
-- include_current, only_requested, catch_up_days; purge: retention; compact: for_seconds
-- and every_seconds, numbers of seconds, 0-3600 and 0.01-3600). tally.schedule checks a
-- job's options with it when the job is scheduled, and tally.job_begin the options in
-- force before a run starts (and takes its lock), so a bad option never leaves a run
-- behind that holds the job's lock.
-- Security: invoker. Since: 0.1.0
CREATE OR REPLACE FUNCTION tally.check_job_options(p_job text, p_options jsonb)
RETURNS void
LANGUAGE plpgsql
IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    v_allowed text[] := CASE p_job WHEN 'reconcile' THEN ARRAY['auto_correct']
                                   WHEN 'refresh' THEN ARRAY['include_current', 'only_requested', 'catch_up_days']
                                   WHEN 'compact' THEN ARRAY['for_seconds', 'every_seconds']
                                   ELSE ARRAY['retention'] END;
    v_unknown text;
BEGIN
    IF jsonb_typeof(coalesce(p_options, '{}')) <> 'object' THEN
        RAISE EXCEPTION 'options must be a JSON object, not %', p_options USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT string_agg(k, ', ') INTO v_unknown
    FROM jsonb_object_keys(coalesce(p_options, '{}')) AS k WHERE NOT k = ANY (v_allowed);
    IF v_unknown IS NOT NULL THEN
        RAISE EXCEPTION 'unknown option(s) for a % job: %', p_job, v_unknown
            USING ERRCODE = 'invalid_parameter_value', HINT = format('Options: %s.', array_to_string(v_allowed, ', '));
    END IF;
    IF p_job = 'compact' AND (
        coalesce(p_options ->> 'for_seconds', '0') !~ '^[0-9]+(\.[0-9]+)?$'
        OR coalesce(p_options ->> 'every_seconds', '1') !~ '^[0-9]+(\.[0-9]+)?$'
        OR (p_options ->> 'for_seconds')::numeric > 3600
        OR (p_options ->> 'every_seconds')::numeric NOT BETWEEN 0.01 AND 3600
    ) THEN
        RAISE EXCEPTION 'compact options for_seconds (0-3600) and every_seconds (0.01-3600) must be numbers, not %',
                        p_options
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'For example ''{"for_seconds": 55, "every_seconds": 1}'' with a schedule of ''* * * * *''.';
    END IF;
END;
$function$;

COMMENT ON FUNCTION tally.check_job_options(text, jsonb) IS
'Raises unless the options suit the job kind (names, and the compact job''s numbers of seconds)';
