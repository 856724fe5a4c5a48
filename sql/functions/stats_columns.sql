-- tally.stats_columns(p_rollup text) RETURNS TABLE (...)
--
-- The column layout of a rollup's stats table, in order, with each column's role and the
-- aggregate that recomputes it from the source. One source of truth for the table's DDL,
-- the generated triggers, the initial population, reconciliation and backfill.
-- Roles: key (a group key), value (a measure as users read it), rows (matching source
-- rows; the row exists while it is > 0), nonnull (how many non-NULL arguments a sum, min,
-- max or avg has seen: the value is NULL when it is 0), sum_state (avg's running sum; the
-- avg column itself is generated from it).
-- Security: invoker. Since: 0.1.0
CREATE OR REPLACE FUNCTION tally.stats_columns(p_rollup text)
RETURNS TABLE (
    column_name name,
    column_role text,
    column_type text,
    key_position integer,
    measure_position integer,
    aggregate_function text,
    recompute_expression text
)
LANGUAGE sql
STABLE
SET search_path = pg_catalog, pg_temp
AS $function$
    WITH measure AS (
        SELECT
            m.*,
            CASE WHEN m.measure_filter IS NULL THEN ''
                 ELSE format(' FILTER (WHERE (%s))', m.measure_filter) END AS filter_clause
        FROM tally.rollup_measures AS m
        WHERE m.rollup_name = p_rollup
    )
    SELECT * FROM (
    SELECT k.key_name AS column_name, 'key' AS column_role, k.key_type AS column_type,
           k.key_position AS key_position, NULL::integer AS measure_position, NULL::text AS aggregate_function,
           format('(%s)', k.key_expression) AS recompute_expression
    FROM tally.rollup_keys AS k
    WHERE k.rollup_name = p_rollup
    UNION ALL
    SELECT m.measure_name, 'value', m.result_type, NULL, m.measure_position, m.aggregate_function,
           CASE WHEN m.aggregate_function = 'avg' THEN NULL
                ELSE format('%s(%s)%s', m.aggregate_function,
                            coalesce('(' || m.argument_expression || ')', '*'), m.filter_clause) END
    FROM measure AS m
    UNION ALL
    SELECT '_tally_rows', 'rows', 'bigint', NULL, NULL, 'count', 'count(*)'
    UNION ALL
    SELECT format('_tally_n_%s', m.measure_name)::name, 'nonnull', 'bigint', NULL, m.measure_position,
           'count', format('count((%s))%s', m.argument_expression, m.filter_clause)
    FROM measure AS m
    WHERE m.aggregate_function <> 'count'
    UNION ALL
    SELECT format('_tally_sum_%s', m.measure_name)::name, 'sum_state', m.state_type, NULL, m.measure_position,
           'sum', format('sum((%s))%s', m.argument_expression, m.filter_clause)
    FROM measure AS m
    WHERE m.aggregate_function = 'avg'
    ) AS layout
    ORDER BY layout.column_role <> 'key', layout.key_position, layout.column_role <> 'value',
             layout.measure_position, layout.column_role;
$function$;

COMMENT ON FUNCTION tally.stats_columns(text) IS
'Column layout of a rollup''s stats table: role, type and the aggregate that recomputes each column';
