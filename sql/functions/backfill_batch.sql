-- tally.backfill_batch(p_rollup text, p_batch_no integer) RETURNS bigint
--
-- Recomputes one planned batch (a key range) of a rollup from its source and replaces
-- those stats rows, then marks the batch done. It first locks the source against
-- writers (SHARE ROW EXCLUSIVE: readers go on), so the batch sees every committed write
-- and no write is in flight; the lock lasts until the caller commits, which
-- tally.backfill does after every batch. Writes between batches are kept exact by the
-- triggers as usual. Returns the number of groups written.
-- jit = off: its estimates overshoot (CTEs, views over slots), and JIT compiling cost more
-- than it saved (README, Performance).
-- Security: invoker. Since: 0.1.0
CREATE OR REPLACE FUNCTION tally.backfill_batch(p_rollup text, p_batch_no integer)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $function$
DECLARE
    v_rollup tally.rollups%ROWTYPE;
    v_batch tally.backfill_batches%ROWTYPE;
    v_columns text;
    v_written bigint;
    v_has_keys boolean;
BEGIN
    PERFORM pg_advisory_xact_lock_shared(tally.slot_layout_lock_key(p_rollup));
    SELECT * INTO v_rollup FROM tally.rollups WHERE rollup_name = p_rollup;
    SELECT * INTO v_batch FROM tally.backfill_batches WHERE rollup_name = p_rollup AND batch_no = p_batch_no;
    IF v_rollup.rollup_name IS NULL OR v_batch.rollup_name IS NULL THEN
        RAISE EXCEPTION 'rollup "%" has no planned batch %', p_rollup, p_batch_no USING ERRCODE = 'undefined_object';
    END IF;
    v_has_keys := EXISTS (SELECT FROM tally.rollup_keys AS k WHERE k.rollup_name = p_rollup);
    SELECT string_agg(quote_ident(c.column_name), ', ') INTO v_columns
    FROM tally.stats_columns(p_rollup) AS c WHERE c.recompute_expression IS NOT NULL;

    EXECUTE format('LOCK TABLE %s IN SHARE ROW EXCLUSIVE MODE', v_rollup.source_table);
    IF v_rollup.slot_table IS NOT NULL THEN
        -- no compaction or correction may move rows of this batch meanwhile (readers go on)
        EXECUTE format('LOCK TABLE %s IN EXCLUSIVE MODE', v_rollup.slot_table);
    END IF;
    IF v_rollup.pending_table IS NOT NULL THEN
        -- append mode: the batch's pending rows are in the recomputation below too
        EXECUTE format('LOCK TABLE %s IN EXCLUSIVE MODE', v_rollup.pending_table);
        EXECUTE format('DELETE FROM %s AS s WHERE %s AND (%s)', v_rollup.pending_table,
                       CASE WHEN v_has_keys THEN tally.key_range_sql(p_rollup, 'stats') ELSE 'true' END,
                       coalesce(v_batch.key_condition, 'true'))
        USING v_batch.lower_key, v_batch.upper_key, v_batch.null_keys;
    END IF;
    -- the plan's key condition (over key columns) narrows both sides, the NULL-key batch too
    -- a rollup with slots: the batch's groups become one row each, in slot 0
    EXECUTE format('DELETE FROM %s AS s WHERE %s AND (%s)', coalesce(v_rollup.slot_table, v_rollup.stats_table),
                   CASE WHEN v_has_keys THEN tally.key_range_sql(p_rollup, 'stats') ELSE 'true' END,
                   coalesce(v_batch.key_condition, 'true'))
    USING v_batch.lower_key, v_batch.upper_key, v_batch.null_keys;
    EXECUTE format('INSERT INTO %s (%s) SELECT recomputed.*%s FROM (%s) AS recomputed WHERE %s',
                   coalesce(v_rollup.slot_table, v_rollup.stats_table),
                   v_columns || CASE WHEN v_rollup.slot_table IS NOT NULL THEN ', _tally_slot' ELSE '' END,
                   CASE WHEN v_rollup.slot_table IS NOT NULL THEN ', 0' ELSE '' END,
                   tally.recompute_sql(p_rollup,
                       CASE WHEN v_has_keys THEN tally.key_range_sql(p_rollup, 'source') END),
                   coalesce(v_batch.key_condition, 'true'))
    USING v_batch.lower_key, v_batch.upper_key, v_batch.null_keys;
    GET DIAGNOSTICS v_written = ROW_COUNT;

    UPDATE tally.backfill_batches SET done_at = clock_timestamp()
    WHERE rollup_name = p_rollup AND batch_no = p_batch_no;
    RETURN v_written;
END;
$function$;

COMMENT ON FUNCTION tally.backfill_batch(text, integer) IS
'Recomputes one planned backfill batch under a brief writer lock and marks it done';
