-- V0003: the change feed of rollups that publish their changes with NOTIFY.
--
-- One row per publishing rollup: its channel, payload mode and change sequence. The
-- sequence is a counter row, not a SEQUENCE: it is incremented inside the writer's
-- transaction, so it is gapless and follows commit order, and a LISTEN client that sees
-- seq jump knows it missed a message. The price is that writers of a publishing rollup
-- queue on this row until they commit (NOTIFY itself serialises commits too).
CREATE TABLE tally.change_feed (
    rollup_name text PRIMARY KEY REFERENCES tally.rollups ON DELETE CASCADE,
    channel text NOT NULL,
    payload_mode text NOT NULL DEFAULT 'keys'
    CONSTRAINT change_feed_payload_mode_known CHECK (payload_mode IN ('keys', 'values', 'none')),
    max_groups integer NOT NULL DEFAULT 100 CHECK (max_groups BETWEEN 0 AND 1000),
    seq bigint NOT NULL DEFAULT 0
);

COMMENT ON TABLE tally.change_feed IS
'Rollups that publish committed changes with NOTIFY: channel, payload mode, change sequence';

ALTER TABLE tally.change_feed ENABLE ROW LEVEL SECURITY;

CREATE POLICY change_feed_of_owned_sources ON tally.change_feed
USING (
    EXISTS (
        SELECT FROM tally.rollups AS r
        WHERE r.rollup_name = change_feed.rollup_name
    )
);

REVOKE ALL ON tally.change_feed FROM PUBLIC;
