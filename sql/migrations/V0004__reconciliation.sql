-- V0004: reconciliation runs, their log, corrections and settings.
--
-- tally.runs records every reconciliation (and later backfill and scheduled job) run.
-- tally.reconciliation_log holds one row per (group, column) that was checked and
-- differed (or every checked pair, when asked), kept bounded by the log_retention
-- setting and tally.purge_logs(). tally.corrections is the audit trail of auto-correct:
-- never purged automatically. Values are stored as text (their exact rendering) with a
-- numeric discrepancy where the column is a number.
CREATE TABLE tally.settings (
    setting_name text PRIMARY KEY,
    setting_value text NOT NULL,
    description text NOT NULL
);

COMMENT ON TABLE tally.settings IS 'pgtally settings (retention and defaults), one row each';

INSERT INTO tally.settings (setting_name, setting_value, description) VALUES
('log_retention', '30 days', 'how long reconciliation log rows and finished runs are kept by tally.purge_logs()');

CREATE TABLE tally.runs (
    run_id bigserial PRIMARY KEY,
    rollup_name text,
    run_kind text NOT NULL CHECK (run_kind IN ('reconcile', 'backfill', 'refresh', 'job')),
    started_at timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    finished_at timestamptz,
    status text NOT NULL DEFAULT 'running'
    CHECK (status IN ('running', 'in_sync', 'drift', 'corrected', 'done', 'failed', 'skipped')),
    groups_checked bigint,
    groups_mismatched bigint,
    groups_missing bigint,
    groups_extra bigint,
    groups_corrected bigint,
    performed_by name NOT NULL DEFAULT session_user,
    error_text text,
    error_sqlstate text,
    details jsonb NOT NULL DEFAULT '{}'
);

COMMENT ON TABLE tally.runs IS 'Every reconciliation and backfill run: scope, outcome, counts, who and when';

CREATE INDEX runs_rollup_started_idx ON tally.runs (rollup_name, started_at DESC);

CREATE TABLE tally.reconciliation_log (
    log_id bigserial PRIMARY KEY,
    run_id bigint NOT NULL REFERENCES tally.runs ON DELETE CASCADE,
    rollup_name text NOT NULL,
    group_key jsonb NOT NULL,
    column_name name NOT NULL,
    expected_value text,
    actual_value text,
    discrepancy numeric,
    status text NOT NULL CHECK (status IN ('match', 'mismatch', 'missing', 'extra', 'error')),
    processing_ms numeric NOT NULL,
    logged_at timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp()
);

COMMENT ON TABLE tally.reconciliation_log IS
'One row per checked (group, column) that differed, or every pair with p_log_matches';

CREATE INDEX reconciliation_log_run_idx ON tally.reconciliation_log (run_id);

CREATE INDEX reconciliation_log_logged_at_idx ON tally.reconciliation_log (logged_at);

CREATE TABLE tally.corrections (
    correction_id bigserial PRIMARY KEY,
    run_id bigint NOT NULL,
    rollup_name text NOT NULL,
    group_key jsonb NOT NULL,
    column_name name NOT NULL,
    previous_value text,
    corrected_value text,
    discrepancy numeric,
    reason text NOT NULL,
    performed_by name NOT NULL DEFAULT session_user,
    corrected_at timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp()
);

COMMENT ON TABLE tally.corrections IS
'Audit trail of auto-correct: every stats value pgtally changed, with the value before and after';

CREATE INDEX corrections_run_idx ON tally.corrections (run_id);

CREATE TYPE tally.reconcile_summary AS (
    run_id bigint,
    rollup_name text,
    in_sync boolean,
    groups_checked bigint,
    groups_mismatched bigint,
    groups_missing bigint,
    groups_extra bigint,
    groups_corrected bigint,
    stored_value numeric,
    recomputed_value numeric,
    discrepancy numeric,
    started_at timestamptz,
    finished_at timestamptz,
    duration_ms numeric
);

COMMENT ON TYPE tally.reconcile_summary IS
'What tally.reconcile returns; stored/recomputed/discrepancy are set for a global rollup''s first number';

REVOKE ALL ON tally.settings, tally.runs, tally.reconciliation_log, tally.corrections FROM PUBLIC;
