-- tally.health() RETURNS TABLE (...)
--
-- One row per scheduled job (tally.scheduled_jobs), per deferred rollup without a refresh
-- job and per rollup in append mode without a compact job (its own or the one over every rollup):
-- last success and failure, whether a run holds the job's lock now, lag since the last
-- success, pending invalidations (and the oldest), dead-lettered buckets, the last
-- reconciliation of the rollup, and healthy. A job is unhealthy when it has not
-- succeeded within twice its interval (counted from when it was scheduled if it never
-- ran), when its rollup has dead letters, or when its last refresh wrote rows that did
-- not verify; a deferred rollup with nothing to refresh it, and an append-mode rollup with
-- nothing to fold its pending rows (its reads grow with them), are unhealthy too. Times are
-- judged by tally.now(), so a drill can move the clock.
-- Security: invoker. Since: 0.1.0
CREATE OR REPLACE FUNCTION tally.health()
RETURNS TABLE (
    rollup_name text,
    job_name text,
    job_kind text,
    interval_seconds integer,
    last_success timestamptz,
    last_failure timestamptz,
    last_error text,
    running_now boolean,
    lag interval,
    pending_invalidations bigint,
    oldest_invalidation timestamptz,
    dead_letters bigint,
    last_reconcile_status text,
    last_reconcile_at timestamptz,
    healthy boolean,
    problem text
)
LANGUAGE sql
STABLE
SET search_path = pg_catalog, pg_temp
AS $function$
    WITH subject AS (
        SELECT j.rollup_name, j.job_name, j.job_kind, j.interval_seconds, j.scheduled_at, NULL AS missing_job
        FROM tally.scheduled_jobs AS j
        UNION ALL
        SELECT d.rollup_name, NULL, NULL, NULL, d.deferred_since, 'deferred rollup has no refresh job'
        FROM tally.deferred_rollups AS d
        WHERE NOT EXISTS (
            SELECT FROM tally.scheduled_jobs AS j WHERE j.rollup_name = d.rollup_name AND j.job_kind = 'refresh')
        UNION ALL
        SELECT r.rollup_name, NULL, NULL, NULL, NULL, 'rollup in append mode has no compact job'
        FROM tally.rollups AS r
        WHERE r.pending_table IS NOT NULL AND NOT EXISTS (
            SELECT FROM tally.scheduled_jobs AS j
            WHERE (j.rollup_name = r.rollup_name OR j.rollup_name IS NULL) AND j.job_kind = 'compact')
    ),
    measured AS (
        SELECT s.*,
               ok.finished_at AS last_success,
               bad.finished_at AS last_failure,
               bad.error_text AS last_error,
               ok.verified AS last_verified,
               s.job_name IS NOT NULL AND EXISTS (
                   SELECT FROM pg_catalog.pg_locks AS l
                   WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
                     AND l.database = (SELECT o.oid FROM pg_catalog.pg_database AS o WHERE o.datname = current_database())
                     AND l.classid = ((hashtextextended(s.job_name, 0) >> 32) & 4294967295)::text::oid
                     AND l.objid = (hashtextextended(s.job_name, 0) & 4294967295)::text::oid
               ) AS running_now,
               (SELECT count(*) FROM tally.invalidations AS i WHERE i.rollup_name = s.rollup_name) AS pending,
               (SELECT min(i.invalidated_at) FROM tally.invalidations AS i WHERE i.rollup_name = s.rollup_name)
                   AS oldest,
               (SELECT count(*) FROM tally.bucket_state AS b
                WHERE b.rollup_name = s.rollup_name AND b.dead_lettered_at IS NOT NULL) AS dead,
               rec.status AS reconcile_status,
               rec.started_at AS reconcile_at
        FROM subject AS s
        LEFT JOIN LATERAL (
            SELECT r.finished_at, r.verified FROM tally.runs AS r
            WHERE r.job_name = s.job_name AND r.run_kind = 'job' AND r.status = 'done'
            ORDER BY r.run_id DESC LIMIT 1
        ) AS ok ON true
        LEFT JOIN LATERAL (
            SELECT r.finished_at, r.error_text FROM tally.runs AS r
            WHERE r.job_name = s.job_name AND r.run_kind = 'job' AND r.status = 'failed'
            ORDER BY r.run_id DESC LIMIT 1
        ) AS bad ON true
        LEFT JOIN LATERAL (
            SELECT r.status, r.started_at FROM tally.runs AS r
            WHERE r.rollup_name = s.rollup_name AND r.run_kind = 'reconcile'
            ORDER BY r.run_id DESC LIMIT 1
        ) AS rec ON true
    ),
    judged AS (
        SELECT m.*,
               CASE
                   WHEN m.missing_job IS NOT NULL THEN m.missing_job
                   WHEN m.interval_seconds IS NOT NULL
                    AND coalesce(m.last_success, m.scheduled_at)
                        < tally.now() - 2 * m.interval_seconds * interval '1 second'
                       THEN CASE WHEN m.last_success IS NULL THEN 'never succeeded within twice its interval'
                                 ELSE 'no success within twice its interval' END
                   WHEN m.dead > 0 THEN 'dead-lettered buckets'
                   WHEN m.last_verified IS FALSE THEN 'last refresh did not verify'
               END AS problem
        FROM measured AS m
    )
    SELECT j.rollup_name, j.job_name, j.job_kind, j.interval_seconds, j.last_success, j.last_failure, j.last_error,
           j.running_now, tally.now() - j.last_success, j.pending, j.oldest, j.dead, j.reconcile_status,
           j.reconcile_at, j.problem IS NULL, j.problem
    FROM judged AS j
    ORDER BY j.rollup_name NULLS FIRST, j.job_name;
$function$;

COMMENT ON FUNCTION tally.health() IS
'Per job and deferred rollup: last success/failure, running, lag, pending, dead letters, last reconcile, healthy';
