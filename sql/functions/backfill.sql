-- CALL tally.backfill(p_rollup text, p_batch_groups integer DEFAULT 1000,
--                     p_delay interval DEFAULT '0', p_key_condition text DEFAULT NULL,
--                     p_restart boolean DEFAULT false)
--
-- Recomputes a rollup's stats online, in batches of p_batch_groups groups with a commit
-- (and an optional pause) after each, so writers wait at most one batch and no snapshot
-- is held for long. Exact while others write: each batch locks the source against
-- writers for its own duration (see tally.backfill_batch). Progress: one NOTICE per
-- batch ("batch 7/365") and the view tally.backfill_progress. Interrupted, it resumes
-- where it stopped when called again (p_restart => true plans afresh). A rollup created
-- with populate => false becomes 'ready' when its backfill completes. Must be CALLed
-- outside a transaction block.
-- Procedures that COMMIT cannot carry a SET search_path clause: every name below is
-- schema-qualified, and all SQL built from rollup expressions runs inside the pinned
-- functions tally.plan_backfill and tally.backfill_batch.
-- Security: invoker. Since: 0.1.0
CREATE OR REPLACE PROCEDURE tally.backfill(
    p_rollup text,
    p_batch_groups integer DEFAULT 1000,
    p_delay interval DEFAULT '0',
    p_key_condition text DEFAULT NULL,
    p_restart boolean DEFAULT FALSE
)
LANGUAGE plpgsql
AS $procedure$
DECLARE
    v_total integer;
    v_done integer;
    v_batch integer;
    v_groups bigint;
    v_run_id bigint;
BEGIN
    IF p_delay IS NULL OR p_delay OPERATOR(pg_catalog.<) interval '0' THEN
        RAISE EXCEPTION 'delay between batches must not be negative, not %', p_delay
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM tally.plan_backfill(p_rollup, p_batch_groups, p_key_condition, p_restart);
    INSERT INTO tally.runs (rollup_name, run_kind, details)
    VALUES (p_rollup, 'backfill', pg_catalog.jsonb_build_object('batch_groups', p_batch_groups,
                                                                 'key_condition', p_key_condition))
    RETURNING run_id INTO v_run_id;
    COMMIT;

    SELECT pg_catalog.count(*), pg_catalog.count(b.done_at) INTO v_total, v_done
    FROM tally.backfill_batches AS b WHERE b.rollup_name OPERATOR(pg_catalog.=) p_rollup;
    FOR v_batch IN
        SELECT b.batch_no FROM tally.backfill_batches AS b
        WHERE b.rollup_name OPERATOR(pg_catalog.=) p_rollup AND b.done_at IS NULL
        ORDER BY b.batch_no
    LOOP
        v_groups := tally.backfill_batch(p_rollup, v_batch);
        v_done := v_done OPERATOR(pg_catalog.+) 1;
        RAISE NOTICE 'rollup %: batch %/% done (% groups)', p_rollup, v_done, v_total, v_groups;
        COMMIT;
        IF p_delay OPERATOR(pg_catalog.>) interval '0' THEN
            PERFORM pg_catalog.pg_sleep(pg_catalog.date_part('epoch', p_delay));
        END IF;
    END LOOP;

    UPDATE tally.rollups SET status = 'ready'
    WHERE rollup_name OPERATOR(pg_catalog.=) p_rollup AND status OPERATOR(pg_catalog.=) 'populating';
    UPDATE tally.runs SET status = 'done', finished_at = pg_catalog.clock_timestamp(),
        groups_checked = (SELECT pg_catalog.sum(b.planned_groups) FROM tally.backfill_batches AS b
                          WHERE b.rollup_name OPERATOR(pg_catalog.=) p_rollup)
    WHERE run_id OPERATOR(pg_catalog.=) v_run_id;
    COMMIT;
END;
$procedure$;

COMMENT ON PROCEDURE tally.backfill (text, integer, interval, text, boolean) IS
'Recomputes a rollup online in committed batches, resumable, with progress; exact while others write';
