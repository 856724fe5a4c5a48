-- V0007: scheduled jobs (pg_cron), deferred rollups, retries and dead letters.
--
-- tally.scheduled_jobs is the catalogue of pgtally's pg_cron jobs (named pgtally:<rollup>:<job>),
-- with the interval health checks compare against. tally.deferred_rollups marks the
-- rollups whose writers only record which groups changed (tally.invalidations, insert
-- only) and which a refresh job recomputes. tally.bucket_state holds, per time bucket of
-- a deferred rollup, its finalisation, verification, failed attempts, backoff and
-- dead-lettering. tally.refresh_requests collapses on-demand refresh requests into one
-- pending request per rollup (debounce). tally.runs gains the columns a job run needs.
CREATE TABLE tally.scheduled_jobs (
    job_name text PRIMARY KEY,
    rollup_name text REFERENCES tally.rollups ON DELETE CASCADE,
    job_kind text NOT NULL CONSTRAINT job_kind_known CHECK (job_kind IN ('reconcile', 'refresh', 'purge')),
    schedule text NOT NULL,
    options jsonb NOT NULL DEFAULT '{}',
    interval_seconds integer,
    cron_job_id bigint,
    owner_role name NOT NULL DEFAULT current_user,
    scheduled_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);

COMMENT ON TABLE tally.scheduled_jobs IS
'pgtally''s pg_cron jobs: rollup (NULL: every rollup), kind, cron schedule, options, interval for health';

CREATE TABLE tally.deferred_rollups (
    rollup_name text PRIMARY KEY REFERENCES tally.rollups ON DELETE CASCADE,
    bucket_key name,
    options jsonb NOT NULL DEFAULT '{}',
    deferred_since timestamptz NOT NULL DEFAULT pg_catalog.now()
);

COMMENT ON TABLE tally.deferred_rollups IS
'Rollups in deferred mode: writers record changed groups, a refresh job recomputes them; optional day bucket key';

CREATE TABLE tally.invalidations (
    rollup_name text NOT NULL,
    group_key jsonb NOT NULL,
    invalidated_at timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp()
);

-- No key and no index: the write path only appends a heap row (no sequence, no index
-- entry); the refresh reads and deletes a rollup's pending rows in one scan.
COMMENT ON TABLE tally.invalidations IS
'Groups of deferred rollups changed since their last refresh (insert-only; de-duplicated by the refresh)';

CREATE TABLE tally.bucket_state (
    rollup_name text NOT NULL REFERENCES tally.rollups ON DELETE CASCADE,
    bucket date NOT NULL,
    finalised_at timestamptz,
    verified boolean,
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz,
    dead_lettered_at timestamptz,
    last_error text,
    last_sqlstate text,
    last_run_id bigint,
    PRIMARY KEY (rollup_name, bucket)
);

COMMENT ON TABLE tally.bucket_state IS
'Per day bucket of a deferred rollup: finalised, verified, failed attempts, backoff and dead letter';

CREATE VIEW tally.dead_letters AS
SELECT
    b.rollup_name,
    b.bucket,
    b.attempts,
    b.dead_lettered_at,
    b.last_error,
    b.last_sqlstate,
    b.last_run_id
FROM tally.bucket_state AS b
WHERE b.dead_lettered_at IS NOT NULL;

COMMENT ON VIEW tally.dead_letters IS
'Buckets set aside after failing every attempt; tally.retry_dead_letter puts one back in the queue';

CREATE TABLE tally.refresh_requests (
    rollup_name text PRIMARY KEY REFERENCES tally.rollups ON DELETE CASCADE,
    requested_at timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    requested_by name NOT NULL DEFAULT session_user
);

COMMENT ON TABLE tally.refresh_requests IS
'One pending on-demand refresh per rollup: later requests collapse into it until a refresh starts';

ALTER TABLE tally.runs
ADD COLUMN job_name text,
ADD COLUMN parent_run_id bigint,
ADD COLUMN bucket date,
ADD COLUMN attempt integer,
ADD COLUMN rows_written bigint,
ADD COLUMN verified boolean;

COMMENT ON COLUMN tally.runs.verified IS
'Refresh runs: false when the written groups differed from the source right after the write';

COMMENT ON COLUMN tally.runs.parent_run_id IS 'Refresh steps (one per bucket): the job run they belong to';

CREATE INDEX runs_job_started_idx ON tally.runs (job_name, started_at DESC);

CREATE INDEX runs_parent_idx ON tally.runs (parent_run_id) WHERE parent_run_id IS NOT NULL;

INSERT INTO tally.settings (setting_name, setting_value, description) VALUES
('job_retry_limit', '3', 'attempts of a failing bucket before it is dead-lettered'),
('job_retry_backoff', '1 minute', 'wait before the first retry of a failing bucket; doubles each attempt'),
('catch_up_days', '7', 'days of buckets of deferred rollups filled when missed; older gaps are reported');

ALTER TABLE tally.scheduled_jobs ENABLE ROW LEVEL SECURITY;
ALTER TABLE tally.deferred_rollups ENABLE ROW LEVEL SECURITY;
ALTER TABLE tally.bucket_state ENABLE ROW LEVEL SECURITY;
ALTER TABLE tally.refresh_requests ENABLE ROW LEVEL SECURITY;

CREATE POLICY jobs_of_owned_sources ON tally.scheduled_jobs
USING (
    pg_catalog.pg_has_role(current_user, owner_role, 'USAGE')
    AND (
        rollup_name IS NULL OR EXISTS (
            SELECT FROM tally.rollups AS r
            WHERE r.rollup_name = scheduled_jobs.rollup_name
        )
    )
);

CREATE POLICY deferred_of_owned_sources ON tally.deferred_rollups
USING (EXISTS (
    SELECT FROM tally.rollups AS r
    WHERE r.rollup_name = deferred_rollups.rollup_name
));

CREATE POLICY bucket_state_of_owned_sources ON tally.bucket_state
USING (EXISTS (
    SELECT FROM tally.rollups AS r
    WHERE r.rollup_name = bucket_state.rollup_name
));

CREATE POLICY refresh_requests_of_owned_sources ON tally.refresh_requests
USING (EXISTS (
    SELECT FROM tally.rollups AS r
    WHERE r.rollup_name = refresh_requests.rollup_name
));

REVOKE ALL ON tally.scheduled_jobs, tally.deferred_rollups, tally.invalidations, tally.bucket_state,
tally.refresh_requests, tally.dead_letters FROM PUBLIC;
