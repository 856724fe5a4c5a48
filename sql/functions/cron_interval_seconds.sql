-- tally.cron_interval_seconds(p_schedule text) RETURNS integer
--
-- How often a cron expression fires, in seconds, for the shapes health checks need:
-- '* * * * *' (60), '*/N * * * *' (N minutes), 'M * * * *' (hourly), 'M */N * * *'
-- (N hours), 'M H * * *' (daily), 'M H * * D' (weekly). Anything else: NULL (the job
-- runs, but health cannot tell when it is late).
-- Security: invoker. Since: 0.1.0
CREATE OR REPLACE FUNCTION tally.cron_interval_seconds(p_schedule text)
RETURNS integer
LANGUAGE plpgsql
IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    v_fields text[] := regexp_split_to_array(btrim(p_schedule), '\s+');
BEGIN
    IF cardinality(v_fields) <> 5 OR v_fields[3] <> '*' OR v_fields[4] <> '*' THEN
        RETURN NULL;
    END IF;
    IF v_fields[1] = '*' AND v_fields[2] = '*' AND v_fields[5] = '*' THEN
        RETURN 60;
    ELSIF v_fields[1] ~ '^\*/[0-9]+$' AND v_fields[2] = '*' AND v_fields[5] = '*' THEN
        RETURN substr(v_fields[1], 3)::integer * 60;
    ELSIF v_fields[1] ~ '^[0-9]+$' AND v_fields[2] = '*' AND v_fields[5] = '*' THEN
        RETURN 3600;
    ELSIF v_fields[1] ~ '^[0-9]+$' AND v_fields[2] ~ '^\*/[0-9]+$' AND v_fields[5] = '*' THEN
        RETURN substr(v_fields[2], 3)::integer * 3600;
    ELSIF v_fields[1] ~ '^[0-9]+$' AND v_fields[2] ~ '^[0-9]+$' AND v_fields[5] = '*' THEN
        RETURN 86400;
    ELSIF v_fields[1] ~ '^[0-9]+$' AND v_fields[2] ~ '^[0-9]+$' AND v_fields[5] ~ '^[0-7]$' THEN
        RETURN 7 * 86400;
    END IF;
    RETURN NULL;
END;
$function$;

COMMENT ON FUNCTION tally.cron_interval_seconds(text) IS
'Seconds between runs of a cron expression (minute, hourly, daily, weekly shapes), else NULL';
