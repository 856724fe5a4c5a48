-- V0002: the rollup catalogue.
--
-- One row in tally.rollups per declared rollup, its group keys in tally.rollup_keys and
-- its measures in tally.rollup_measures, in declaration order. tally.rollup_sources
-- records, per source table, where its generated maintenance functions live: all rollups
-- of one source share one generated function per event, so a statement's transition
-- table is scanned once for all of them.
-- Rows are written only by tally.create_rollup and tally.drop_rollup. Row-level security
-- lets a role granted pgtally usage see and change only the rollups of sources it owns.
CREATE TABLE tally.rollups (
    rollup_name text PRIMARY KEY
    CONSTRAINT rollup_name_is_plain_identifier CHECK (rollup_name ~ '^[a-z][a-z0-9_]{0,47}$'),
    source_table regclass NOT NULL,
    stats_table regclass NOT NULL UNIQUE,
    row_filter text,
    owner_role name NOT NULL,
    definition jsonb NOT NULL,
    source_columns name[] NOT NULL DEFAULT '{}',
    status text NOT NULL DEFAULT 'ready'
    CONSTRAINT rollup_status_known CHECK (status IN ('ready', 'populating')),
    created_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    created_by name NOT NULL DEFAULT current_user
);

COMMENT ON TABLE tally.rollups IS 'Declared rollups: source, stats table, filter and the normalised definition';

CREATE INDEX rollups_source_table_idx ON tally.rollups (source_table);

CREATE TABLE tally.rollup_keys (
    rollup_name text NOT NULL REFERENCES tally.rollups ON DELETE CASCADE,
    key_position integer NOT NULL,
    key_name name NOT NULL,
    key_expression text NOT NULL,
    key_type text NOT NULL,
    key_not_null boolean NOT NULL,
    PRIMARY KEY (rollup_name, key_position),
    UNIQUE (rollup_name, key_name)
);

COMMENT ON TABLE tally.rollup_keys IS 'Group keys of each rollup, in order: a column or a named expression';

CREATE TABLE tally.rollup_measures (
    rollup_name text NOT NULL REFERENCES tally.rollups ON DELETE CASCADE,
    measure_position integer NOT NULL,
    measure_name name NOT NULL,
    aggregate_function text NOT NULL
    CONSTRAINT measure_aggregate_supported CHECK (
        aggregate_function IN ('count', 'sum', 'min', 'max', 'avg')
    ),
    argument_expression text,
    measure_filter text,
    result_type text NOT NULL,
    state_type text,
    PRIMARY KEY (rollup_name, measure_position),
    UNIQUE (rollup_name, measure_name)
);

COMMENT ON TABLE tally.rollup_measures IS
'Measures of each rollup: aggregate, argument (NULL for count(*)), FILTER, stats type, avg sum type';

CREATE TABLE tally.rollup_sources (
    source_table regclass PRIMARY KEY,
    function_schema name NOT NULL,
    function_prefix name NOT NULL,
    owner_role name NOT NULL,
    generated_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);

COMMENT ON TABLE tally.rollup_sources IS
'Source tables with rollups: where their generated maintenance functions live';

ALTER TABLE tally.rollups ENABLE ROW LEVEL SECURITY;
ALTER TABLE tally.rollup_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE tally.rollup_measures ENABLE ROW LEVEL SECURITY;
ALTER TABLE tally.rollup_sources ENABLE ROW LEVEL SECURITY;

CREATE POLICY rollups_of_owned_sources ON tally.rollups
USING (pg_catalog.pg_has_role(current_user, owner_role, 'USAGE'));

CREATE POLICY rollup_keys_of_owned_sources ON tally.rollup_keys
USING (
    EXISTS (
        SELECT FROM tally.rollups AS r
        WHERE r.rollup_name = rollup_keys.rollup_name
    )
);

CREATE POLICY rollup_measures_of_owned_sources ON tally.rollup_measures
USING (
    EXISTS (
        SELECT FROM tally.rollups AS r
        WHERE r.rollup_name = rollup_measures.rollup_name
    )
);

CREATE POLICY rollup_sources_owned ON tally.rollup_sources
USING (pg_catalog.pg_has_role(current_user, owner_role, 'USAGE'));

REVOKE ALL ON tally.rollups, tally.rollup_keys, tally.rollup_measures, tally.rollup_sources FROM PUBLIC;
