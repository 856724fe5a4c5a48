-- tally.job_name(p_rollup text, p_job text) RETURNS text
--
-- The name of a pgtally job, pgtally:<rollup>:<job> ('*' for p_rollup NULL: the job over
-- every rollup), after the checks scheduling and running it share: the job is a known
-- kind (reconcile, refresh, purge, compact; invalid_parameter_value) and the rollup, when
-- named, exists (undefined_object). The pg_cron job, the tally.scheduled_jobs row and the
-- job's advisory lock all go by this name.
-- Security: invoker. Since: 0.1.0
CREATE OR REPLACE FUNCTION tally.job_name(p_rollup text, p_job text)
RETURNS text
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $function$
BEGIN
    IF p_job IS NULL OR p_job NOT IN ('reconcile', 'refresh', 'purge', 'compact') THEN
        RAISE EXCEPTION 'unknown job "%"', p_job
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Jobs are reconcile, refresh, purge and compact.';
    END IF;
    IF p_rollup IS NOT NULL THEN
        PERFORM tally.rollup_named(p_rollup);
    END IF;
    RETURN format('pgtally:%s:%s', coalesce(p_rollup, '*'), p_job);
END;
$function$;

COMMENT ON FUNCTION tally.job_name(text, text) IS
'Name of a pgtally job (pgtally:<rollup>:<job>), after checking the job kind and the rollup';
