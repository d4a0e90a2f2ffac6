-- audit_trail: the fast filtered search. Runs after the report (report.sql), whose rows it
-- returns.

-- The SQL of one page of audit.search, from which filters are given (contract/src/
-- search.rs): never a value, only their presence and the actors' distinct positions.
CREATE FUNCTION audit.search_plan(
    since          boolean,
    until          boolean,
    actors         text[],
    entities       boolean,
    actions        boolean,
    except_actions boolean,
    sources        boolean,
    subject        boolean,
    table_name     boolean,
    tenant         boolean,
    direction      text,
    summarized     boolean
) RETURNS text
    LANGUAGE c IMMUTABLE
AS 'MODULE_PATHNAME', 'audit_search_plan';

-- One page of the report's events matching the filters, newest first: what the dashboard,
-- the API and SQL users page through. Every argument is optional; a filter left NULL (or an
-- empty list) matches everything. The next page: before_at and before_id of the last row.
-- The page before it (newer): after_at and after_id of the first row. Found through the
-- hourly summary, an organization's own index or the time index (contract/src/search.rs),
-- so a filter that matches rarely reads a few index entries, not the whole log.
CREATE FUNCTION audit.search(
    since          timestamptz DEFAULT NULL,
    until          timestamptz DEFAULT NULL,
    actors         text[]      DEFAULT NULL,
    entities       text[]      DEFAULT NULL,
    actions        text[]      DEFAULT NULL,
    sources        text[]      DEFAULT NULL,
    subject        text        DEFAULT NULL,
    table_name     text        DEFAULT NULL,
    tenant         text        DEFAULT NULL,
    page_size      integer     DEFAULT 50,
    before_at      timestamptz DEFAULT NULL,
    before_id      bigint      DEFAULT NULL,
    after_at       timestamptz DEFAULT NULL,
    after_id       bigint      DEFAULT NULL,
    except_actions text[]      DEFAULT NULL
) RETURNS SETOF audit.report
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    watermark xid8;
    direction text := CASE WHEN before_at IS NOT NULL THEN 'before'
                           WHEN after_at IS NOT NULL THEN 'after'
                           ELSE 'newest' END;
BEGIN
    IF page_size IS NULL OR page_size < 1 OR page_size > 10000 THEN
        RAISE EXCEPTION 'page_size must be between 1 and 10000, not %', page_size
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF (before_at IS NULL) <> (before_id IS NULL) OR (after_at IS NULL) <> (after_id IS NULL)
       OR (before_at IS NOT NULL AND after_at IS NOT NULL) THEN
        RAISE EXCEPTION 'give before_at and before_id (the last row of the previous page), or after_at and after_id, not a part or both'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF since >= until THEN
        RAISE EXCEPTION 'since (%) must be before until (%)', since, until
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT s.watermark INTO watermark FROM audit.summary_state AS s;
    RETURN QUERY EXECUTE
        'SELECT r.* FROM (' || audit.search_plan(
            since IS NOT NULL, until IS NOT NULL,
            CASE WHEN cardinality(actors) > 0 THEN actors END,
            cardinality(entities) > 0, cardinality(actions) > 0,
            cardinality(except_actions) > 0, cardinality(sources) > 0,
            subject IS NOT NULL, table_name IS NOT NULL, tenant IS NOT NULL,
            direction, watermark IS NOT NULL)
        || ') AS p
           CROSS JOIN LATERAL (SELECT * FROM audit.report AS r
                                WHERE r.occurred_at = p.occurred_at AND r.id = p.id) AS r
           ORDER BY r.occurred_at DESC, r.id DESC'
        USING since, until, actors, entities, actions, sources, subject, table_name, tenant,
              page_size, coalesce(before_at, after_at), coalesce(before_id, after_id),
              except_actions, watermark;
END
$$;
