-- tally.set_notify(p_rollup text, p_payload text DEFAULT 'keys', p_channel text DEFAULT NULL,
--                  p_max_groups integer DEFAULT 100) RETURNS text
--
-- Makes a rollup publish every committed change on a NOTIFY channel (default
-- "tally_<rollup>"), or stops it with p_payload => 'off'. Payload modes: 'keys' (the
-- changed group keys), 'values' (the changed stats rows) and 'none' (only that something
-- changed, with the sequence). Any role that can connect may LISTEN on any channel, so
-- values are opt-in. Returns the channel. The source's triggers are regenerated.
-- Security: invoker. Since: 0.1.0
CREATE OR REPLACE FUNCTION tally.set_notify(
    p_rollup text,
    p_payload text DEFAULT 'keys',
    p_channel text DEFAULT NULL,
    p_max_groups integer DEFAULT 100
)
RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    v_rollup tally.rollups%ROWTYPE;
    v_channel text := coalesce(p_channel, 'tally_' || p_rollup);
BEGIN
    v_rollup := tally.rollup_named(p_rollup);
    IF p_payload IS NULL OR p_payload NOT IN ('keys', 'values', 'none', 'off') THEN
        RAISE EXCEPTION 'payload mode "%" is not one of keys, values, none, off', p_payload
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF v_channel = '' OR length(v_channel) > 63 THEN
        RAISE EXCEPTION 'channel name "%" must have 1 to 63 characters', v_channel
            USING ERRCODE = 'invalid_name';
    END IF;
    IF p_max_groups IS NULL OR p_max_groups NOT BETWEEN 0 AND 1000 THEN
        RAISE EXCEPTION 'max_groups must be between 0 and 1000, not %', p_max_groups
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    EXECUTE format('LOCK TABLE %s IN SHARE ROW EXCLUSIVE MODE', v_rollup.source_table);
    IF p_payload = 'off' THEN
        DELETE FROM tally.change_feed WHERE rollup_name = p_rollup;
        v_channel := NULL;
    ELSE
        INSERT INTO tally.change_feed (rollup_name, channel, payload_mode, max_groups)
        VALUES (p_rollup, v_channel, p_payload, p_max_groups)
        ON CONFLICT (rollup_name) DO UPDATE
        SET channel = excluded.channel, payload_mode = excluded.payload_mode, max_groups = excluded.max_groups;
    END IF;
    PERFORM tally.install_maintenance(v_rollup.source_table);
    RETURN v_channel;
END;
$function$;

COMMENT ON FUNCTION tally.set_notify(text, text, text, integer) IS
'Makes a rollup publish its committed changes with NOTIFY (keys, values or none), or stops it (off)';
