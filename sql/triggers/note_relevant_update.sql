-- tally.note_relevant_update() RETURNS trigger
--
-- Fires AFTER UPDATE OF <the columns a rollup reads>, once per statement, before the
-- generated maintenance trigger (trigger names sort "tally_columns_*" before
-- "tally_maintain_*"). It records the rollup named in TG_ARGV[0] in a transaction-local
-- setting (named after the source: TG_ARGV[1] on a partition of it, else the table the
-- trigger is on); the maintenance trigger then skips every rollup whose columns the UPDATE's
-- SET list did not name once it has checked that nothing the rollup reads differs between
-- the old and the new rows (several UPDATEs of the source in one query share one
-- transition table, but only the last one's UPDATE OF triggers fire), and clears the
-- setting. Transition tables cannot be combined with column lists, hence this handshake.
-- Security: invoker; it only sets a transaction-local custom setting. Since: 0.1.0
CREATE OR REPLACE FUNCTION tally.note_relevant_update()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    -- TG_ARGV[1]: the source, when the trigger is on one of its partitions
    v_setting text := 'pgtally.relevant_' || coalesce(TG_ARGV[1], TG_RELID::oid::text);
    v_current text := coalesce(nullif(current_setting(v_setting, true), ''), ',');
BEGIN
    IF strpos(v_current, ',' || TG_ARGV[0] || ',') = 0 THEN
        PERFORM set_config(v_setting, v_current || TG_ARGV[0] || ',', true);
    END IF;
    RETURN NULL;
END;
$function$;

COMMENT ON FUNCTION tally.note_relevant_update() IS
'Statement trigger: notes that an UPDATE set a column the rollup in TG_ARGV[0] reads';
