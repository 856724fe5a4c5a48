-- tally.slot_view_sql(p_rollup text, p_slot_table regclass) RETURNS text
--
-- Generated-code fragment: the query behind the stats view of a rollup with slots. It
-- adds up the rollup's partial stats over the slot rows of each group, giving exactly the
-- columns (names, order of tally.stats_columns, types) a plain stats table has: counts
-- and bookkeeping counts are sums, a sum is NULL when no non-NULL argument is left (its
-- _tally_n_ column is 0), an avg is its summed state over its summed count, as the
-- generated column of a plain table computes it. A group is shown while anything in it
-- is not zero, so a group whose rows are gone disappears and a drifted one stays visible
-- to reconciliation. A rollup in append mode adds its pending rows (not yet folded by
-- tally.compact) in too: its rows are the slot rows and the pending rows together.
-- Security: invoker. Since: 0.1.0
CREATE OR REPLACE FUNCTION tally.slot_view_sql(p_rollup text, p_slot_table regclass)
RETURNS text
LANGUAGE sql
STABLE
SET search_path = pg_catalog, pg_temp
AS $function$
    WITH layout AS (
        SELECT
            c.*,
            row_number() OVER () AS position,
            CASE
                WHEN c.column_role = 'key' THEN format('s.%I', c.column_name)
                WHEN c.column_role IN ('rows', 'nonnull') OR c.aggregate_function = 'count'
                    THEN format('sum(s.%I)::bigint', c.column_name)
                WHEN c.column_role = 'value' AND c.aggregate_function = 'avg'
                    THEN format('(CASE WHEN sum(s.%1$I) > 0 THEN sum(coalesce(s.%2$I, ''0'')) / sum(s.%1$I)::%3$s END)::%4$s',
                                '_tally_n_' || c.column_name, '_tally_sum_' || c.column_name,
                                CASE WHEN c.column_type = 'numeric' THEN 'numeric' ELSE 'double precision' END,
                                c.column_type)
                ELSE format('(CASE WHEN sum(s.%1$I) = 0 THEN NULL ELSE sum(coalesce(s.%2$I, ''0'')) END)::%3$s',
                            '_tally_n_' || CASE WHEN c.column_role = 'sum_state'
                                                THEN substr(c.column_name, length('_tally_sum_') + 1)
                                                ELSE c.column_name END,
                            c.column_name, c.column_type)
            END AS expression,
            -- what must be zero in every slot of a group that is gone
            CASE
                WHEN c.column_role IN ('rows', 'nonnull') OR c.aggregate_function = 'count'
                    THEN format('sum(s.%I) <> 0', c.column_name)
                WHEN c.column_role = 'sum_state' OR (c.column_role = 'value' AND c.aggregate_function = 'sum')
                    THEN format('sum(coalesce(s.%I, ''0'')) <> ''0''', c.column_name)
            END AS nonzero
        FROM tally.stats_columns(p_rollup) AS c
    )
    SELECT format(
        E'SELECT %s\nFROM %s AS s%s\nHAVING %s',
        string_agg(format('%s AS %I', l.expression, l.column_name), E',\n       ' ORDER BY l.position),
        CASE WHEN r.pending_table IS NULL THEN p_slot_table::text
             ELSE format(E'(\n    SELECT %1$s FROM %2$s\n    UNION ALL\n    SELECT %1$s FROM %3$s\n)',
                         string_agg(quote_ident(l.column_name), ', ' ORDER BY l.position)
                             FILTER (WHERE l.recompute_expression IS NOT NULL),
                         p_slot_table, r.pending_table) END,
        coalesce(E'\nGROUP BY ' || string_agg(format('s.%I', l.column_name), ', ' ORDER BY l.position)
                     FILTER (WHERE l.column_role = 'key'), ''),
        string_agg(l.nonzero, ' OR ' ORDER BY l.position) FILTER (WHERE l.nonzero IS NOT NULL))
    FROM layout AS l
    CROSS JOIN tally.rollups AS r
    WHERE r.rollup_name = p_rollup
    GROUP BY r.pending_table;
$function$;

COMMENT ON FUNCTION tally.slot_view_sql(text, regclass) IS
'Generated-code fragment: the stats view of a rollup with slots, adding up its slot rows per group';
