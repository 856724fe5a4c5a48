-- CALL tally.reconcile_batched(p_rollup text, p_batch_groups integer DEFAULT 10000,
--                              p_auto_correct boolean DEFAULT false)
--
-- Reconciles a large rollup one key range of p_batch_groups stored groups at a time,
-- committing after each range, so no snapshot or correction lock is held for long.
-- Each range is one tally.reconcile run (see tally.runs); groups missing from the stats
-- are found in the range they fall into, those beyond the last stored key in a final
-- open range, and groups with a NULL key in their own last range. NOTICEs report
-- progress. Must be CALLed outside a transaction block.
-- Procedures that COMMIT cannot carry a SET search_path clause: every name below is
-- schema-qualified, and all dynamic SQL runs inside pinned tally functions.
-- Security: invoker. Since: 0.1.0
CREATE OR REPLACE PROCEDURE tally.reconcile_batched(
    p_rollup text,
    p_batch_groups integer DEFAULT 10000,
    p_auto_correct boolean DEFAULT FALSE
)
LANGUAGE plpgsql
AS $procedure$
DECLARE
    v_after jsonb;
    v_upto jsonb;
    v_batch integer := 0;
    v_result tally.reconcile_summary;
    v_drifted bigint := 0;
    v_has_keys boolean;
BEGIN
    PERFORM tally.rollup_named(p_rollup);
    IF p_batch_groups IS NULL OR p_batch_groups OPERATOR(pg_catalog.<) 1 THEN
        RAISE EXCEPTION 'batch size must be a positive number of groups, not %', p_batch_groups
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    v_has_keys := EXISTS (SELECT FROM tally.rollup_keys AS k WHERE k.rollup_name OPERATOR(pg_catalog.=) p_rollup);
    IF NOT v_has_keys THEN
        v_result := tally.reconcile(p_rollup, p_auto_correct);
        RAISE NOTICE 'rollup %: batch 1/1 done, in sync: %', p_rollup, v_result.in_sync;
        RETURN;
    END IF;

    LOOP
        v_upto := tally.next_key_boundary(p_rollup, v_after, p_batch_groups);
        v_result := tally.reconcile(p_rollup, p_auto_correct,
                                    p_key_condition => tally.key_batch_condition(p_rollup, v_after, v_upto));
        v_batch := v_batch OPERATOR(pg_catalog.+) 1;
        v_drifted := v_drifted OPERATOR(pg_catalog.+) v_result.groups_mismatched
                     OPERATOR(pg_catalog.+) v_result.groups_missing OPERATOR(pg_catalog.+) v_result.groups_extra;
        RAISE NOTICE 'rollup %: batch % done (% groups checked, % drifted so far)',
            p_rollup, v_batch, v_result.groups_checked, v_drifted;
        COMMIT;
        EXIT WHEN v_upto IS NULL;
        v_after := v_upto;
    END LOOP;

    v_result := tally.reconcile(p_rollup, p_auto_correct, p_key_condition => tally.key_batch_condition(p_rollup, NULL, NULL));
    RAISE NOTICE 'rollup %: NULL-key groups done; % groups drifted in all', p_rollup,
        v_drifted OPERATOR(pg_catalog.+) v_result.groups_mismatched OPERATOR(pg_catalog.+) v_result.groups_missing
        OPERATOR(pg_catalog.+) v_result.groups_extra;
    COMMIT;
END;
$procedure$;

COMMENT ON PROCEDURE tally.reconcile_batched (text, integer, boolean) IS
'Reconciles a large rollup in key-range batches, committing after each';
