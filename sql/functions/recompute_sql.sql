-- tally.recompute_sql(p_rollup text, p_condition text DEFAULT NULL) RETURNS text
--
-- The query that recomputes a rollup's stats rows from its source, in the stats table's
-- column layout (generated avg columns left out), optionally narrowed by an extra
-- condition over the source rows. Population, reconciliation and backfill all use it,
-- so "what the stats should be" is defined in exactly one place.
-- Security: invoker. Since: 0.1.0
CREATE OR REPLACE FUNCTION tally.recompute_sql(p_rollup text, p_condition text DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $function$
DECLARE
    v_rollup tally.rollups%ROWTYPE;
    v_select text;
    v_key_count integer;
    v_where text[];
BEGIN
    v_rollup := tally.rollup_named(p_rollup);

    SELECT string_agg(format('%s AS %I', c.recompute_expression, c.column_name), ', '),
           count(*) FILTER (WHERE c.column_role = 'key')
    INTO v_select, v_key_count
    FROM tally.stats_columns(p_rollup) AS c
    WHERE c.recompute_expression IS NOT NULL;

    v_where := array_remove(ARRAY[
        format('(%s)', v_rollup.row_filter),
        format('(%s)', p_condition)
    ], '()');

    RETURN format('SELECT %s FROM %s AS tally_source%s%s',
        v_select,
        v_rollup.source_table,
        CASE WHEN cardinality(v_where) > 0 THEN ' WHERE ' || array_to_string(v_where, ' AND ') ELSE '' END,
        CASE WHEN v_key_count > 0
             THEN ' GROUP BY ' || (SELECT string_agg(g.n::text, ', ') FROM generate_series(1, v_key_count) AS g(n))
             ELSE ' HAVING count(*) > 0' END);
END;
$function$;

COMMENT ON FUNCTION tally.recompute_sql(text, text) IS
'The query recomputing a rollup''s stats rows from the source, optionally narrowed by a condition';
