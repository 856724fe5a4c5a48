-- tally.reconcile_all(p_auto_correct boolean DEFAULT false) RETURNS SETOF tally.reconcile_summary
--
-- tally.reconcile for every rollup the caller can see, in name order, in the caller's
-- transaction. For very large installations prefer CALL tally.reconcile_each(), which
-- commits after every rollup so no snapshot or lock is held for long.
-- Security: invoker. Since: 0.1.0
CREATE OR REPLACE FUNCTION tally.reconcile_all(p_auto_correct boolean DEFAULT FALSE)
RETURNS SETOF tally.reconcile_summary
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    v_rollup text;
BEGIN
    FOR v_rollup IN SELECT r.rollup_name FROM tally.rollups AS r WHERE r.status = 'ready' ORDER BY 1 LOOP
        RETURN NEXT tally.reconcile(v_rollup, p_auto_correct);
    END LOOP;
END;
$function$;

COMMENT ON FUNCTION tally.reconcile_all(boolean) IS
'Reconciles every rollup in one transaction and returns one summary per rollup';
