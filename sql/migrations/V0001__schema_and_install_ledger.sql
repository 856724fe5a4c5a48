-- V0001: the tally schema and the install ledger.
--
-- The ledger records every migration (run once, checksum kept: an applied file that
-- later changes is refused) and the checksum of every repeatable file (re-applied only
-- when it changed, so a reinstall is a no-op). The installer writes it; nothing else.
-- No IF NOT EXISTS: a schema that already exists was not made by us and is refused.
CREATE SCHEMA tally;

COMMENT ON SCHEMA tally IS 'pgtally: exact, always-fresh aggregate tables maintained by triggers';

CREATE TABLE tally.install_ledger (
    file_name text PRIMARY KEY,
    file_kind text NOT NULL CHECK (file_kind IN ('migration', 'repeatable')),
    checksum text NOT NULL,
    pgtally_version text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    applied_by name NOT NULL DEFAULT current_user
);

COMMENT ON TABLE tally.install_ledger IS
'Which pgtally SQL files are applied, with their checksums and the version that applied them';

REVOKE ALL ON SCHEMA tally FROM PUBLIC;
REVOKE ALL ON tally.install_ledger FROM PUBLIC;
