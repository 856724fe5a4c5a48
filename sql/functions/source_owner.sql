-- tally.source_owner(p_source regclass, p_recorded_owner name) RETURNS oid
--
-- The role that owns a rollup's source now: the table's owner, or, while the table is gone
-- (a dropped source still in the catalogue), the owner recorded with the rollup. The
-- checks of the functions that change rollups go by it, and so do the catalogue's
-- row-level security policies (migration V0013, which spells the same rule out in
-- pg_catalog terms), so a rollup follows its table to a new owner (ALTER TABLE ... OWNER
-- TO): the new owner sees and manages every rollup of it, and regenerating the triggers
-- as that owner leaves none out.
-- Security: invoker. Since: 0.1.0
CREATE OR REPLACE FUNCTION tally.source_owner(p_source regclass, p_recorded_owner name)
RETURNS oid
LANGUAGE sql
STABLE
SET search_path = pg_catalog, pg_temp
AS $function$
    SELECT coalesce((SELECT c.relowner FROM pg_catalog.pg_class AS c WHERE c.oid = p_source),
                    (SELECT r.oid FROM pg_catalog.pg_roles AS r WHERE r.rolname = p_recorded_owner));
$function$;

COMMENT ON FUNCTION tally.source_owner(regclass, name) IS
'The role owning a rollup''s source now (the recorded owner while the table is gone)';
