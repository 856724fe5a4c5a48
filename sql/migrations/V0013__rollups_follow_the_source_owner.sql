-- V0013: a rollup belongs to whoever owns its source now.
--
-- The policies went by the owner recorded when the rollup was made. After ALTER TABLE ...
-- OWNER TO, the new owner could not see the rollups made before, so regenerating the
-- triggers as that owner (say, by adding a rollup) left them out of the generated code,
-- and they silently went stale. Now the table's current owner counts, and the recorded one
-- only while the table is gone (tally.source_owner states the same rule for functions;
-- the policies spell it out in pg_catalog terms, so any role that may read the
-- catalogue can evaluate them).
ALTER POLICY rollups_of_owned_sources ON tally.rollups
USING (
    pg_catalog.pg_has_role(
        current_user,
        coalesce(
            (
                SELECT c.relowner FROM pg_catalog.pg_class AS c
                WHERE c.oid = rollups.source_table
            ),
            (
                SELECT r.oid FROM pg_catalog.pg_roles AS r
                WHERE r.rolname = rollups.owner_role
            )
        ),
        'USAGE'
    )
);

ALTER POLICY rollup_sources_owned ON tally.rollup_sources
USING (
    pg_catalog.pg_has_role(
        current_user,
        coalesce(
            (
                SELECT c.relowner FROM pg_catalog.pg_class AS c
                WHERE c.oid = rollup_sources.source_table
            ),
            (
                SELECT r.oid FROM pg_catalog.pg_roles AS r
                WHERE r.rolname = rollup_sources.owner_role
            )
        ),
        'USAGE'
    )
);
