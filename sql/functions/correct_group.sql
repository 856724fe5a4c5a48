-- tally.correct_group(p_rollup text, p_group_key jsonb, p_run_id bigint, p_reason text) RETURNS integer
--
-- Puts one group's stats row right, safely while other sessions keep writing: it locks
-- the stats row (writers of that group queue behind it), recomputes the group from the
-- source in a new snapshot, and overwrites the row with the result (or inserts it, or
-- deletes it when the group has no rows). A writer whose source change is not committed
-- yet is not in the recomputation and not in the stored row either; it applies its own
-- delta after the lock is released, so nothing is lost or counted twice. Works for every
-- measure, min and max included. A rollup with slots (tally.set_slots) is corrected by
-- adding the difference to slot 0: the stored group (all slots) and its recomputation are
-- read in one snapshot, so a writer or a compaction committing before it is in both and
-- one committing after it in neither; no slot row is locked but slot 0's (no deadlock with
-- tally.compact). Corrections of one slotted rollup take turns
-- (an advisory lock), as two of them could otherwise both add the same difference.
-- Each changed column is recorded in tally.corrections. Returns the number of columns
-- changed.
-- jit = off: its estimates overshoot (CTEs, views over slots), and JIT compiling cost more
-- than it saved (README, Performance).
-- Security: invoker. Since: 0.1.0
CREATE OR REPLACE FUNCTION tally.correct_group(p_rollup text, p_group_key jsonb, p_run_id bigint, p_reason text)
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $function$
DECLARE
    v_stats regclass;
    v_slot_table regclass;
    v_difference jsonb;
    v_columns text;
    v_stats_condition text := tally.group_condition_sql(p_rollup, 'stats', '$1');
    v_recompute text := tally.recompute_sql(p_rollup, tally.group_condition_sql(p_rollup, 'source', '$1'));
    v_before jsonb;
    v_after jsonb;
    v_inserted integer;
    v_changed integer;
    v_attempt integer := 0;
BEGIN
    SELECT r.stats_table, r.slot_table INTO v_stats, v_slot_table FROM tally.rollups AS r WHERE r.rollup_name = p_rollup;
    SELECT string_agg(quote_ident(c.column_name), ', ') INTO v_columns
    FROM tally.stats_columns(p_rollup) AS c WHERE c.recompute_expression IS NOT NULL;

    IF v_slot_table IS NOT NULL THEN
        PERFORM pg_advisory_xact_lock(hashtextextended('pgtally:slot 0:' || p_rollup, 0));
        EXECUTE format('SELECT (SELECT to_jsonb(s.*) FROM %s AS s WHERE %s), (SELECT to_jsonb(r.*) FROM (%s) AS r)',
                       v_stats, v_stats_condition, v_recompute)
        INTO v_before, v_after USING p_group_key;
        IF v_before IS NULL AND v_after IS NULL THEN
            RETURN 0;
        END IF;
        -- the difference, computed in the columns' own types (money and interval sums too)
        EXECUTE format('SELECT to_jsonb(d.*) FROM (SELECT %s FROM pg_catalog.jsonb_populate_record(NULL::%s, $1) AS a, '
                       'pg_catalog.jsonb_populate_record(NULL::%2$s, $2) AS b) AS d',
                       (SELECT string_agg(CASE WHEN c.column_role = 'key'
                                               THEN format('CASE WHEN $3 THEN a.%1$I ELSE b.%1$I END AS %1$I', c.column_name)
                                               ELSE format('coalesce(a.%1$I, ''0'') - coalesce(b.%1$I, ''0'') AS %1$I',
                                                           c.column_name) END, ', ')
                        FROM tally.stats_columns(p_rollup) AS c WHERE c.recompute_expression IS NOT NULL),
                       v_stats)
        INTO v_difference USING coalesce(v_after, '{}'), coalesce(v_before, '{}'), v_after IS NOT NULL;
        EXECUTE format('INSERT INTO %1$s AS s (%2$s, _tally_slot) '
                       'SELECT %2$s, 0 FROM pg_catalog.jsonb_populate_record(NULL::%1$s, $1) '
                       'ON CONFLICT (%3$s_tally_slot) DO UPDATE SET %4$s',
                       v_slot_table, v_columns,
                       (SELECT string_agg(quote_ident(k.key_name) || ', ', '' ORDER BY k.key_position)
                        FROM tally.rollup_keys AS k WHERE k.rollup_name = p_rollup),
                       (SELECT string_agg(format('%1$I = coalesce(s.%1$I, ''0'') + coalesce(excluded.%1$I, ''0'')',
                                                 c.column_name), ', ')
                        FROM tally.stats_columns(p_rollup) AS c
                        WHERE c.recompute_expression IS NOT NULL AND c.column_role <> 'key'))
        USING v_difference;
    END IF;

    LOOP
        EXIT WHEN v_slot_table IS NOT NULL;
        v_attempt := v_attempt + 1;
        EXECUTE format('SELECT to_jsonb(s.*) FROM %s AS s WHERE %s FOR UPDATE', v_stats, v_stats_condition)
        INTO v_before USING p_group_key;
        EXECUTE format('SELECT to_jsonb(r.*) FROM (%s) AS r', v_recompute) INTO v_after USING p_group_key;

        IF v_before IS NULL AND v_after IS NULL THEN
            RETURN 0;
        ELSIF v_before IS NULL THEN
            -- the group is missing: insert it, unless a writer created it meanwhile
            EXECUTE format('INSERT INTO %1$s (%2$s) SELECT %2$s FROM pg_catalog.jsonb_populate_record(NULL::%1$s, $1) '
                           'ON CONFLICT DO NOTHING', v_stats, v_columns)
            USING v_after;
            GET DIAGNOSTICS v_inserted = ROW_COUNT;
            EXIT WHEN v_inserted = 1;
            IF v_attempt >= 3 THEN
                RAISE EXCEPTION 'rollup "%": group % keeps changing under correction', p_rollup, p_group_key
                    USING ERRCODE = 'lock_not_available';
            END IF;
            -- someone inserted it: lock it and recompute again
        ELSIF v_after IS NULL THEN
            EXECUTE format('DELETE FROM %s AS s WHERE %s', v_stats, v_stats_condition) USING p_group_key;
            EXIT;
        ELSE
            EXECUTE format('UPDATE %1$s AS s SET (%2$s) = (SELECT %2$s FROM pg_catalog.jsonb_populate_record(NULL::%1$s, $2)) '
                           'WHERE %3$s', v_stats, v_columns, v_stats_condition)
            USING p_group_key, v_after;
            EXIT;
        END IF;
    END LOOP;

    INSERT INTO tally.corrections (run_id, rollup_name, group_key, column_name, previous_value, corrected_value,
                                   discrepancy, reason)
    SELECT p_run_id, p_rollup, p_group_key, c.column_name, v_before ->> c.column_name, v_after ->> c.column_name,
           CASE WHEN jsonb_typeof(coalesce(v_after -> c.column_name, v_before -> c.column_name)) = 'number'
                THEN coalesce((v_after ->> c.column_name)::numeric, 0) - coalesce((v_before ->> c.column_name)::numeric, 0)
           END,
           coalesce(p_reason, 'reconciliation found drift')
    FROM tally.stats_columns(p_rollup) AS c
    WHERE c.recompute_expression IS NOT NULL AND c.column_role <> 'key'
      AND (v_before -> c.column_name) IS DISTINCT FROM (v_after -> c.column_name);
    GET DIAGNOSTICS v_changed = ROW_COUNT;
    RETURN v_changed;
END;
$function$;

COMMENT ON FUNCTION tally.correct_group(text, jsonb, bigint, text) IS
'Locks one stats row, recomputes its group from the source and overwrites it; audited in tally.corrections';
