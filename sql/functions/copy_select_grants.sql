-- tally.copy_select_grants(p_from regclass, p_to regclass) RETURNS integer
--
-- Grants SELECT on p_to to every role (PUBLIC included) that has SELECT on p_from, except
-- p_from's owner: when tally.set_slots swaps a plain stats table for a view over slots, or
-- back, whoever could read the rollup's stats still can. Returns the number of grantees.
-- Security: invoker. Since: 0.1.0
CREATE OR REPLACE FUNCTION tally.copy_select_grants(p_from regclass, p_to regclass)
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    v_grantee text;
    v_count integer := 0;
BEGIN
    FOR v_grantee IN
        SELECT DISTINCT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) END
        FROM pg_catalog.pg_class AS c, LATERAL pg_catalog.aclexplode(c.relacl) AS a
        WHERE c.oid = p_from AND a.privilege_type = 'SELECT' AND a.grantee <> c.relowner
    LOOP
        EXECUTE format('GRANT SELECT ON %s TO %s', p_to, v_grantee);
        v_count := v_count + 1;
    END LOOP;
    RETURN v_count;
END;
$function$;

COMMENT ON FUNCTION tally.copy_select_grants(regclass, regclass) IS
'Grants SELECT on one relation to every role that may SELECT from another (owner excepted)';
