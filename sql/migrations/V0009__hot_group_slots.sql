-- V0009: hot groups split over slot rows (tally.set_slots), and the compact job.
--
-- A rollup with slots > 1 keeps its partial stats in a slot table (slot_table: one row per
-- group and slot; writers add to slot 1 + their backend pid modulo slots, so concurrent
-- writers of one hot group do not queue on one row), and stats_table is then a view that
-- adds the slots up per group: reads stay exact. The compact job folds the slots into
-- slot 0, which corrections and backfills also write.
ALTER TABLE tally.rollups
ADD COLUMN slots integer NOT NULL DEFAULT 1
CONSTRAINT slots_in_range CHECK (slots BETWEEN 1 AND 1024),
ADD COLUMN slot_table regclass UNIQUE;

COMMENT ON COLUMN tally.rollups.slots IS
'Slot rows per group that writers spread over (1: one stats row per group, no slot table)';

COMMENT ON COLUMN tally.rollups.slot_table IS
'With slots > 1: the table of per-slot partial stats; stats_table is then a view adding them up';

ALTER TABLE tally.scheduled_jobs
DROP CONSTRAINT job_kind_known,
ADD CONSTRAINT job_kind_known CHECK (job_kind IN ('reconcile', 'refresh', 'purge', 'compact'));
