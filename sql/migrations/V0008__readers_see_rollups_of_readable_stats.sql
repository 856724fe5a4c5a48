-- V0008: readers see the declarations of the rollups whose stats they may read.
--
-- The catalogue's row-level security (V0002) shows a role only the rollups of sources it
-- owns, so a read-only role (a leaderboard client, a reporting user) could not call
-- tally.top, tally.rank or tally.stats_columns even with SELECT on the stats table. These
-- permissive SELECT policies add the rollups whose stats table the role may SELECT;
-- writing the catalogue stays with the owners. tally.grant_read gives the privileges.
CREATE POLICY rollups_of_readable_stats ON tally.rollups
FOR SELECT
USING (pg_catalog.has_table_privilege(stats_table, 'SELECT'));

CREATE POLICY rollup_keys_of_readable_stats ON tally.rollup_keys
FOR SELECT
USING (
    EXISTS (
        SELECT FROM tally.rollups AS r
        WHERE
            r.rollup_name = rollup_keys.rollup_name
            AND pg_catalog.has_table_privilege(r.stats_table, 'SELECT')
    )
);

CREATE POLICY rollup_measures_of_readable_stats ON tally.rollup_measures
FOR SELECT
USING (
    EXISTS (
        SELECT FROM tally.rollups AS r
        WHERE
            r.rollup_name = rollup_measures.rollup_name
            AND pg_catalog.has_table_privilege(r.stats_table, 'SELECT')
    )
);
