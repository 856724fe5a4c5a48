-- V0010: append mode (tally.set_mode(rollup, 'append')).
--
-- Writers of a rollup in append mode lock no stats row: each statement appends its
-- changes per group to the pending table (pending_table: the stats columns without an
-- index, one row per changed group and statement), and stats_table is the view over the
-- slot table and the pending rows added up per group, so reads stay exact. tally.compact
-- folds the pending rows into slot 0.
ALTER TABLE tally.rollups
ADD COLUMN pending_table regclass UNIQUE;

COMMENT ON COLUMN tally.rollups.pending_table IS
'In append mode: the table writers append their changes to; stats_table is then a view adding them in';
