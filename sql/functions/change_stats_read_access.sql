-- tally.change_stats_read_access(p_role text, p_rollup text, p_grant boolean) RETURNS integer
--
-- The part tally.grant_read and tally.revoke_read share: checks the role and the rollup
-- (when named) exist (undefined_object), then grants (p_grant) or revokes SELECT on the stats table of
-- p_rollup, or of every rollup the caller owns (p_rollup NULL), to or from the role.
-- Returns the number of stats tables changed.
-- Security: invoker. Since: 0.1.0
CREATE OR REPLACE FUNCTION tally.change_stats_read_access(p_role text, p_rollup text, p_grant boolean)
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    v_stats regclass;
    v_count integer := 0;
BEGIN
    IF p_role IS NULL OR to_regrole(quote_ident(p_role)) IS NULL THEN
        RAISE EXCEPTION 'role "%" does not exist', p_role USING ERRCODE = 'undefined_object';
    END IF;
    IF p_rollup IS NOT NULL THEN
        PERFORM tally.rollup_named(p_rollup);
    END IF;
    FOR v_stats IN
        SELECT r.stats_table FROM tally.rollups AS r
        WHERE (p_rollup IS NULL OR r.rollup_name = p_rollup) AND pg_has_role(current_user, tally.source_owner(r.source_table, r.owner_role), 'USAGE')
        ORDER BY r.rollup_name
    LOOP
        EXECUTE format(CASE WHEN p_grant THEN 'GRANT SELECT ON %s TO %I' ELSE 'REVOKE SELECT ON %s FROM %I' END,
                       v_stats, p_role);
        v_count := v_count + 1;
    END LOOP;
    RETURN v_count;
END;
$function$;

COMMENT ON FUNCTION tally.change_stats_read_access(text, text, boolean) IS
'Grants or revokes SELECT on the stats tables of one rollup, or of all the caller owns, for a role';
