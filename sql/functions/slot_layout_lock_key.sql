-- tally.slot_layout_lock_key(p_rollup text) RETURNS bigint
--
-- The advisory lock that keeps a rollup's layout (plain table, or slot table plus view)
-- still while it is used: tally.set_slots and tally.set_mode hold it exclusively while
-- they convert; tally.compact, tally.reconcile and tally.backfill_batch hold it shared,
-- taken before they read the catalogue, so they never see a slot table renamed or
-- dropped under them.
-- Always taken before any table lock, so it cannot close a lock cycle.
-- Security: invoker. Since: 0.1.0
CREATE OR REPLACE FUNCTION tally.slot_layout_lock_key(p_rollup text)
RETURNS bigint
LANGUAGE sql
IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $function$
    SELECT hashtextextended('pgtally:layout:' || p_rollup, 0);
$function$;

COMMENT ON FUNCTION tally.slot_layout_lock_key(text) IS
'Advisory lock key keeping a rollup''s stats layout (plain or slots) still while it is used';
