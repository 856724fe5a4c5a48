-- tally.publish_change(p_rollup text, p_operation text, p_groups bigint, p_keys jsonb) RETURNS void
--
-- Called by the generated trigger once per statement that changed groups of a rollup
-- that publishes (see tally.set_notify). Bumps the rollup's change sequence and sends
-- one NOTIFY on its channel; PostgreSQL delivers it only if the writer commits.
-- Payload (JSON): {"rollup", "op", "seq", "groups"} plus, by payload mode, "keys" (the
-- changed group keys) or "rows" (their stats rows as now stored, numbers as exact
-- strings; a group that no longer exists appears as {"key": ..., "deleted": true}).
-- One statement that changed more than max_groups groups, or whose payload would pass
-- 7,900 bytes (the NOTIFY limit is 8,000), sends {"many": true} instead: refetch.
-- Security: invoker (runs as the source owner, inside the generated trigger). Since: 0.1.0
CREATE OR REPLACE FUNCTION tally.publish_change(p_rollup text, p_operation text, p_groups bigint, p_keys jsonb)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    v_feed tally.change_feed%ROWTYPE;
    v_stats regclass;
    v_payload jsonb;
    v_rows jsonb;
    v_text text;
BEGIN
    UPDATE tally.change_feed SET seq = seq + 1 WHERE rollup_name = p_rollup
    RETURNING * INTO v_feed;
    IF NOT FOUND THEN
        RETURN;  -- publishing was switched off after the trigger was generated
    END IF;

    v_payload := jsonb_build_object('rollup', p_rollup, 'op', lower(p_operation), 'seq', v_feed.seq,
                                    'groups', p_groups);
    IF p_groups IS NULL OR p_groups > v_feed.max_groups THEN  -- NULL: TRUNCATE
        v_payload := v_payload || '{"many": true}';
    ELSIF v_feed.payload_mode = 'keys' THEN
        v_payload := v_payload || jsonb_build_object('keys',
            (SELECT coalesce(jsonb_agg(tally.exact_json(k)), '[]') FROM jsonb_array_elements(p_keys) AS k));
    ELSIF v_feed.payload_mode = 'values' THEN
        SELECT r.stats_table INTO v_stats FROM tally.rollups AS r WHERE r.rollup_name = p_rollup;
        EXECUTE format(
            -- qualified references only: a stats column may be named s or k
            'SELECT coalesce(jsonb_agg(CASE WHEN s._tally_rows IS NULL '
            'THEN jsonb_build_object(%L, tally.exact_json(changed.group_key), %L, true) '
            'ELSE tally.exact_json(to_jsonb(s.*)) END), %L) '
            'FROM jsonb_array_elements($1) AS changed(group_key) '
            'LEFT JOIN %s AS s ON to_jsonb(s.*) @> changed.group_key',
            'key', 'deleted', '[]', v_stats)
        INTO v_rows USING p_keys;
        v_payload := v_payload || jsonb_build_object('rows', v_rows);
    END IF;

    v_text := v_payload::text;
    IF octet_length(v_text) > 7900 THEN
        v_text := (jsonb_build_object('rollup', p_rollup, 'op', lower(p_operation), 'seq', v_feed.seq,
                                      'groups', p_groups, 'many', true))::text;
    END IF;
    PERFORM pg_catalog.pg_notify(v_feed.channel, v_text);
END;
$function$;

COMMENT ON FUNCTION tally.publish_change(text, text, bigint, jsonb) IS
'Sends one bounded NOTIFY for a statement''s changes to a publishing rollup, with its change sequence';
