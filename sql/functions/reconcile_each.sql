-- CALL tally.reconcile_each(p_auto_correct boolean DEFAULT false)
--
-- Reconciles every rollup, committing after each one, so a long check holds no snapshot
-- and no row lock for more than one rollup. A rollup whose check fails is recorded as a
-- failed run (with its error and SQLSTATE) and the next one goes on. Meant for pg_cron.
-- Procedures that COMMIT cannot carry a SET search_path clause: every name below is
-- schema-qualified instead.
-- Security: invoker. Since: 0.1.0
CREATE OR REPLACE PROCEDURE tally.reconcile_each(p_auto_correct boolean DEFAULT FALSE)
LANGUAGE plpgsql
AS $procedure$
DECLARE
    v_rollup text;
    v_message text;
    v_state text;
BEGIN
    FOR v_rollup IN
        SELECT r.rollup_name FROM tally.rollups AS r WHERE r.status OPERATOR(pg_catalog.=) 'ready' ORDER BY 1
    LOOP
        BEGIN
            PERFORM tally.reconcile(v_rollup, p_auto_correct);
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS v_message = MESSAGE_TEXT, v_state = RETURNED_SQLSTATE;
            INSERT INTO tally.runs (rollup_name, run_kind, status, finished_at, error_text, error_sqlstate)
            VALUES (v_rollup, 'reconcile', 'failed', pg_catalog.clock_timestamp(), v_message, v_state);
            PERFORM pg_catalog.pg_notify('tally_operations', pg_catalog.jsonb_build_object(
                'event', 'reconciliation_failed', 'rollup', v_rollup, 'error', v_message, 'sqlstate', v_state)::text);
        END;
        COMMIT;
    END LOOP;
END;
$procedure$;

COMMENT ON PROCEDURE tally.reconcile_each (boolean) IS
'Reconciles every rollup, committing after each; failures are recorded and do not stop the rest';
