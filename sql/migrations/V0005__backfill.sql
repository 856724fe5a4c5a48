-- V0005: online backfill checkpoints.
--
-- tally.backfill plans a rollup's groups as key ranges (batches) in this table, then
-- recomputes one batch per transaction. A batch's done_at is its checkpoint: an
-- interrupted backfill resumes at the first batch not done. Rows for groups whose keys
-- contain NULL go in one last batch (row comparisons cannot range over NULL).
CREATE TABLE tally.backfill_batches (
    rollup_name text NOT NULL REFERENCES tally.rollups ON DELETE CASCADE,
    batch_no integer NOT NULL,
    lower_key jsonb,
    upper_key jsonb,
    null_keys boolean NOT NULL DEFAULT FALSE,
    key_condition text,
    planned_groups integer NOT NULL,
    planned_at timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    done_at timestamptz,
    PRIMARY KEY (rollup_name, batch_no)
);

COMMENT ON TABLE tally.backfill_batches IS
'Planned backfill batches (key ranges) per rollup; done_at is the checkpoint a resumed backfill starts after';

ALTER TABLE tally.backfill_batches ENABLE ROW LEVEL SECURITY;

CREATE POLICY backfill_batches_of_owned_sources ON tally.backfill_batches
USING (
    EXISTS (
        SELECT FROM tally.rollups AS r
        WHERE r.rollup_name = backfill_batches.rollup_name
    )
);

REVOKE ALL ON tally.backfill_batches FROM PUBLIC;

CREATE VIEW tally.backfill_progress AS
SELECT
    b.rollup_name,
    count(*) FILTER (WHERE b.done_at IS NOT NULL) AS batches_done,
    count(*) AS batches_total,
    sum(b.planned_groups) FILTER (WHERE b.done_at IS NOT NULL) AS groups_done,
    sum(b.planned_groups) AS groups_total,
    min(b.planned_at) AS planned_at,
    max(b.done_at) AS last_batch_at,
    round(
        count(*) FILTER (WHERE b.done_at IS NOT NULL)
        / nullif(extract(EPOCH FROM max(b.done_at) - min(b.planned_at)), 0)::numeric,
        3
    ) AS batches_per_second,
    (count(*) FILTER (WHERE b.done_at IS NULL))
    * ((max(b.done_at) - min(b.planned_at)) / nullif(count(*) FILTER (WHERE b.done_at IS NOT NULL), 0)) AS eta
FROM tally.backfill_batches AS b
GROUP BY b.rollup_name;

COMMENT ON VIEW tally.backfill_progress IS 'Progress of each rollup''s backfill: batches done/total, rate and ETA';

REVOKE ALL ON tally.backfill_progress FROM PUBLIC;
