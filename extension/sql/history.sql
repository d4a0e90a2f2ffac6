-- audit_trail: a row's history and the row as it was at any time, rebuilt from its events
-- (docs/undo.md). A row's events are ordered by time (the start of the statement that wrote
-- them), then id: ids are handed out in blocks per connection, so across connections they
-- do not follow time, while one row's writers wait for each other. Every create holds the whole new row, every delete the whole old one, and
-- every update the whole new row plus the previous value of each column it changed, so the
-- row before an update is new_data || old_data. Read as the caller: audit_admin's.

-- The tracked-table settings of `target`, or an error naming it: history and undo work on
-- tracked tables only.
CREATE FUNCTION audit.tracked_table_of(target regclass)
    RETURNS audit.tracked_tables
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    tracked audit.tracked_tables;
BEGIN
    IF target IS NULL THEN
        RAISE EXCEPTION 'a table must be given, not NULL' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT * INTO tracked FROM audit.tracked_tables t WHERE t.relid = target;
    IF tracked.relid IS NULL THEN
        RAISE EXCEPTION 'table % is not tracked', target
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'audit.tracked lists the tracked tables.';
    END IF;
    RETURN tracked;
END
$$;

-- The events of one row (one subject of a tracked table) in the order they happened, with
-- the whole row before and after each: NULL before a create, NULL after a delete or a
-- truncate of the table. Redacted values read "[redacted]", as in the events.
CREATE FUNCTION audit.history(target regclass, subject text)
    RETURNS TABLE (
        event_id       bigint,
        occurred_at    timestamptz,
        txid           xid8,
        actor          text,
        source         text,
        action         text,
        changed_fields text[],
        before         jsonb,
        after          jsonb
    )
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    tracked audit.tracked_tables;
BEGIN
    tracked := audit.tracked_table_of(target);
    -- The row's own events through the (entity, subject_id) index, and the table's
    -- truncates since its first: only those that found the row there are kept.
    RETURN QUERY
    WITH own AS (
        SELECT e.* FROM audit.events e
         WHERE e.entity = tracked.entity AND e.subject_id = subject
           AND e.table_name = tracked.table_name
    ), truncates AS (
        SELECT e.* FROM audit.events e
         WHERE e.entity = tracked.entity AND e.subject_id IS NULL AND e.action = 'truncate'
           AND e.table_name = tracked.table_name
           AND (e.occurred_at, e.id) > (SELECT o.occurred_at, o.id FROM own o ORDER BY o.occurred_at, o.id LIMIT 1)
    ), steps AS (
        SELECT e.id, e.occurred_at, e.txid, e.actor, e.source, e.action, e.changed_fields,
               CASE e.action
                   WHEN 'create' THEN NULL
                   WHEN 'update' THEN e.new_data OPERATOR(pg_catalog.||) e.old_data
                   WHEN 'delete' THEN e.old_data
                   -- A truncate empties the table: the row before it is the last one known.
                   ELSE pg_catalog.lag(e.new_data) OVER (ORDER BY e.occurred_at, e.id)
               END AS before,
               CASE WHEN e.action IN ('create', 'update') THEN e.new_data END AS after
          FROM (SELECT * FROM own UNION ALL SELECT * FROM truncates) e
    )
    SELECT s.* FROM steps s
     WHERE NOT (s.action = 'truncate' AND s.before IS NULL)
     ORDER BY s.occurred_at, s.id;
END
$$;
COMMENT ON FUNCTION audit.history(regclass, text) IS
    'The events of one row of a tracked table, oldest first, with the whole row before and after each.';

-- The whole row as it was at `at` (as of the start of the statements that changed it), or
-- NULL if it did not exist then.
CREATE FUNCTION audit.row_as_of(target regclass, subject text, at timestamptz)
    RETURNS jsonb
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    tracked audit.tracked_tables;
    latest  audit.events;
BEGIN
    IF at IS NULL THEN
        RAISE EXCEPTION 'audit.row_as_of: at must be a time, not NULL'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    tracked := audit.tracked_table_of(target);
    SELECT e.* INTO latest
      FROM audit.events e
     WHERE e.entity = tracked.entity AND e.subject_id = subject
       AND e.table_name = tracked.table_name AND e.occurred_at <= at
     ORDER BY e.occurred_at DESC, e.id DESC
     LIMIT 1;
    IF latest.id IS NULL OR latest.action = 'delete' THEN
        RETURN NULL;
    END IF;
    -- A truncate of the table since then, and before `at`, took the row with it.
    IF EXISTS (SELECT FROM audit.events t
                WHERE t.entity = tracked.entity AND t.table_name = tracked.table_name
                  AND t.action = 'truncate' AND (t.occurred_at, t.id) > (latest.occurred_at, latest.id)
                  AND t.occurred_at <= at) THEN
        RETURN NULL;
    END IF;
    RETURN latest.new_data;
END
$$;
COMMENT ON FUNCTION audit.row_as_of(regclass, text, timestamptz) IS
    'A tracked table''s row as it was at a time, rebuilt from its events; NULL if it did not exist then.';
