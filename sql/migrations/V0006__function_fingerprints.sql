-- V0006: fingerprints of pgtally's own functions, for schema drift checks.
--
-- Every install path records, at its end, an md5 of the definition of each function and
-- procedure in schema tally (tally.record_function_fingerprints). tally.schema_drift()
-- reports a function whose definition no longer matches: edited or dropped by hand.
CREATE TABLE tally.function_fingerprints (
    signature text PRIMARY KEY,
    definition_md5 text NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);

COMMENT ON TABLE tally.function_fingerprints IS
'md5 of each pgtally function''s definition as installed; schema drift compares against it';

REVOKE ALL ON tally.function_fingerprints FROM PUBLIC;
