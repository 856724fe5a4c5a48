-- tally.compact(p_rollup text) RETURNS bigint
--
-- Folds the slot rows of a rollup with slots (tally.set_slots) into slot 0, one row per
-- group, and deletes the groups left with nothing: what keeps reads of the stats view
-- cheap. It never waits for writers: slot rows a writer holds (its transaction is still
-- open) are skipped and folded next time; slot 0 rows are written in key order, as
-- writers and corrections lock rows, so compactions never deadlock with them or with each
-- other; while tally.set_slots or tally.set_mode changes the layout it returns 0. The
-- view's totals are the same before and after, in every snapshot: each slot row moves
-- into slot 0 in the statement that deletes it. A rollup in append mode (tally.set_mode) has its pending rows folded into slot 0
-- the same way, in the same statement; compactions of one rollup take turns on them (an
-- advisory lock: one that finds it taken leaves them to the running one). Run it from a
-- job: tally.schedule(rollup, 'compact', '* * * * *'). Returns the number of slot and
-- pending rows folded; 0 for a rollup without slots or pending rows.
-- jit = off: its estimates overshoot (CTEs, views over slots), and JIT compiling cost more
-- than it saved (README, Performance).
-- Security: invoker. Since: 0.1.0
CREATE OR REPLACE FUNCTION tally.compact(p_rollup text)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $function$
DECLARE
    v_rollup tally.rollups%ROWTYPE;
    v_key_names text[];  -- quoted column names: a name may hold ', ' itself
    v_part_names text[];
    v_keys text;
    v_parts text;
    v_returned text;  -- the stored columns, as a RETURNING list over alias s
    v_folded bigint;
    v_fold_pending boolean;
BEGIN
    IF NOT pg_try_advisory_xact_lock_shared(tally.slot_layout_lock_key(p_rollup)) THEN
        RETURN 0;  -- tally.set_slots or tally.set_mode is changing the layout: nothing to fold now
    END IF;
    v_rollup := tally.rollup_named(p_rollup);
    IF v_rollup.slot_table IS NULL THEN
        RETURN 0;
    END IF;
    SELECT coalesce(array_agg(quote_ident(c.column_name)) FILTER (WHERE c.column_role = 'key'), '{}'),
           array_agg(quote_ident(c.column_name)) FILTER (WHERE c.column_role <> 'key')
    INTO v_key_names, v_part_names
    FROM tally.stats_columns(p_rollup) AS c
    WHERE c.recompute_expression IS NOT NULL;
    v_keys := nullif(array_to_string(v_key_names, ', '), '');
    v_parts := array_to_string(v_part_names, ', ');
    v_returned := (SELECT string_agg('s.' || c, ', ') FROM unnest(v_key_names || v_part_names) AS c);
    v_fold_pending := v_rollup.pending_table IS NOT NULL
                      AND pg_try_advisory_xact_lock(hashtextextended('pgtally:pending:' || p_rollup, 0));

    EXECUTE format(
        $sql$
        WITH locked AS (
            SELECT s.ctid AS row_id FROM %1$s AS s WHERE s._tally_slot <> 0 %2$s FOR UPDATE SKIP LOCKED
        ),
        moved AS (
            DELETE FROM %1$s AS s USING locked WHERE s.ctid = locked.row_id RETURNING %9$s
        ),%10$s
        folded AS (
            INSERT INTO %1$s AS s (%3$s_tally_slot, %4$s)
            SELECT %3$s0, %5$s FROM (%11$s) AS moved %6$s%8$s
            ON CONFLICT (%3$s_tally_slot) DO UPDATE SET %7$s
            RETURNING 1
        )
        SELECT (SELECT count(*) FROM moved)%12$s + 0 * (SELECT count(*) FROM folded)
        $sql$,
        v_rollup.slot_table,
        CASE WHEN v_keys IS NOT NULL THEN 'ORDER BY ' || v_keys ELSE '' END,
        coalesce(v_keys || ', ', ''),
        v_parts,
        (SELECT string_agg(format('sum(coalesce(%s, ''0''))', p), ', ') FROM unnest(v_part_names) AS p),
        CASE WHEN v_keys IS NOT NULL THEN 'GROUP BY ' || v_keys ELSE 'HAVING count(*) > 0' END,
        (SELECT string_agg(format('%1$s = coalesce(s.%1$s, ''0'') + coalesce(excluded.%1$s, ''0'')', p), ', ')
         FROM unnest(v_part_names) AS p),
        -- slot 0 rows in key order, as every writer and correction locks them
        CASE WHEN v_keys IS NOT NULL THEN ' ORDER BY ' || v_keys ELSE '' END,
        v_returned,
        -- pending rows are only ever inserted (by writers) and deleted (here): no row lock to skip
        CASE WHEN v_fold_pending THEN format(E'\n        moved_pending AS (\n'
                                             '            DELETE FROM %s AS s RETURNING %s\n'
                                             '        ),', v_rollup.pending_table, v_returned)
             ELSE '' END,
        CASE WHEN v_fold_pending THEN 'SELECT * FROM moved UNION ALL SELECT * FROM moved_pending'
             ELSE 'SELECT * FROM moved' END,
        CASE WHEN v_fold_pending THEN ' + (SELECT count(*) FROM moved_pending)' ELSE '' END)
    INTO v_folded;

    -- groups with nothing left: every part of slot 0 is zero
    EXECUTE format('DELETE FROM %1$s AS s WHERE s.ctid IN (SELECT z.ctid FROM %1$s AS z '
                   'WHERE z._tally_slot = 0 AND %2$s FOR UPDATE SKIP LOCKED)', v_rollup.slot_table,
                   (SELECT string_agg(format('coalesce(z.%s, ''0'') = ''0''', p), ' AND ')
                    FROM unnest(v_part_names) AS p));
    RETURN v_folded;
END;
$function$;

COMMENT ON FUNCTION tally.compact(text) IS
'Folds a rollup''s slot and pending rows into slot 0 without waiting for writers; removes emptied groups';
