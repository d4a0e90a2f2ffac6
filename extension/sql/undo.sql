-- audit_trail: putting a change back (docs/undo.md). audit.revert and audit.revert_transaction
-- (revert.rs) mark what they write as a revert and call audit.undo_event for each event;
-- everything here runs as the caller (SECURITY INVOKER), so PostgreSQL's privileges on the
-- table decide, and in the caller's transaction. Values are always parameters: the row
-- images go through jsonb_populate_record as the table's own row type, names through %I.

-- The primary key columns of `target`, in key order: how a row is found again.
CREATE FUNCTION audit.undo_key(target regclass)
    RETURNS text[]
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
RETURN (SELECT array_agg(a.attname::text ORDER BY k.position)
          FROM pg_index i
         CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, position)
          JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
         WHERE i.indrelid = target AND i.indisprimary);

-- The columns of `target` a row image can set back: those it still has, that are not
-- generated, and that the image holds.
CREATE FUNCTION audit.undo_columns(target regclass, image jsonb)
    RETURNS text[]
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
RETURN (SELECT coalesce(array_agg(a.attname::text ORDER BY a.attnum), '{}')
          FROM pg_attribute a
         WHERE a.attrelid = target AND a.attnum > 0 AND NOT a.attisdropped
           AND a.attgenerated = '' AND image ? a.attname::text);

-- "(l.a, l.b)" for columns a, b of alias l: a row of names, each quoted.
CREATE FUNCTION audit.undo_row(alias text, columns text[])
    RETURNS text
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
RETURN '(' || (SELECT string_agg(format('%I.%I', alias, c), ', ' ORDER BY n)
                 FROM unnest(columns) WITH ORDINALITY AS u(c, n)) || ')';

-- "l.a::text IS NOT DISTINCT FROM r.a::text AND ..." for `columns`: the live row `l` still
-- holds the image `r`'s values (true for none).
CREATE FUNCTION audit.undo_unchanged(columns text[])
    RETURNS text
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
RETURN coalesce((SELECT string_agg(format('l.%1$I::text IS NOT DISTINCT FROM r.%1$I::text', c), ' AND ')
                   FROM unnest(columns) AS c), 'true');

-- Locks the live row whose key the image `image` holds and returns the columns among
-- `columns` whose value is no longer the image's (compared as text, so every type compares,
-- json and arrays included); NULL when no such row exists.
CREATE FUNCTION audit.undo_differences(target regclass, keys text[], columns text[], image jsonb)
    RETURNS text[]
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    differ text[];
BEGIN
    EXECUTE format('SELECT array_remove(ARRAY[%s]::text[], NULL) FROM %s l, jsonb_populate_record(NULL::%s, $1) r
                     WHERE %s = %s FOR UPDATE OF l',
                   coalesce((SELECT string_agg(format('CASE WHEN l.%1$I::text IS DISTINCT FROM r.%1$I::text THEN %1$L END', c), ', ')
                               FROM unnest(columns) AS c), ''),
                   target, target, audit.undo_row('l', keys), audit.undo_row('r', keys))
        INTO differ USING image;
    RETURN differ;
END
$$;

-- What a redacted column means for a revert: its value in `before` (the row as the revert
-- would make it) was never recorded, unless it was NULL. Refused, naming it, unless
-- skip_redacted, which leaves it out (a deleted row comes back with the column's default;
-- an update leaves the column as it is).
CREATE FUNCTION audit.undo_without_redacted(event_id bigint, table_name text, redacted text[],
                                            columns text[], before jsonb, skip_redacted boolean)
    RETURNS text[]
    LANGUAGE plpgsql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    hidden text[] := ARRAY(SELECT c FROM unnest(columns) AS c
                            WHERE c = ANY (redacted) AND before -> c <> 'null'::jsonb);
BEGIN
    IF cardinality(hidden) > 0 AND NOT skip_redacted THEN
        RAISE EXCEPTION 'event % cannot be put back as it was: column % of % is redacted in it, its value was never recorded',
                        event_id, hidden[1], table_name
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'skip_redacted => true puts back the rest (a deleted row with the column''s default).';
    END IF;
    RETURN ARRAY(SELECT c FROM unnest(columns) AS c WHERE c <> ALL (hidden));
END
$$;

-- The event, checked to be one a revert can put back: a create, update or delete of a
-- tracked table. With its transaction known, found through the (txid, id) index; by id
-- alone, through the id's block-range index.
CREATE FUNCTION audit.undo_checked_event(event_id bigint, txid xid8 DEFAULT NULL)
    RETURNS audit.events
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    ev audit.events;
BEGIN
    IF txid IS NULL THEN
        SELECT * INTO ev FROM audit.events e WHERE e.id = event_id;
    ELSE
        SELECT * INTO ev FROM audit.events e WHERE e.txid = undo_checked_event.txid AND e.id = event_id;
    END IF;
    IF ev.id IS NULL THEN
        RAISE EXCEPTION 'no event % in the audit log', event_id USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF ev.action NOT IN ('create', 'update', 'delete') OR ev.table_name IS NULL OR ev.entity = 'audit_log' THEN
        RAISE EXCEPTION 'event % (% %) cannot be reverted: only a tracked table''s create, update or delete can',
                        event_id, ev.entity, ev.action
            USING ERRCODE = 'feature_not_supported';
    END IF;
    RETURN ev;
END
$$;

-- The table the event changed, still tracked under the same name, with a primary key.
CREATE FUNCTION audit.undo_table(ev audit.events)
    RETURNS audit.tracked_tables
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    tracked audit.tracked_tables;
BEGIN
    SELECT * INTO tracked FROM audit.tracked_tables t
     WHERE t.table_name = ev.table_name AND t.entity = ev.entity;
    IF tracked.relid IS NULL THEN
        RAISE EXCEPTION 'event % cannot be reverted: its table % is no longer tracked as %', ev.id,
                        ev.table_name, ev.entity
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'It was untracked, renamed or dropped since; audit.tracked lists the tracked tables.';
    END IF;
    IF audit.undo_key(tracked.relid) IS NULL THEN
        RAISE EXCEPTION 'event % cannot be reverted: table % has no primary key to find the row by',
                        ev.id, tracked.relid
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    RETURN tracked;
END
$$;

-- Why a revert of a create or update (event `event_id`) wrote nothing: the row is gone, or
-- columns among `compared` no longer hold the image's values (raised, naming them); or, when
-- it had to write, it changed while being reverted.
CREATE FUNCTION audit.undo_refused(event_id bigint, target regclass, keys text[], compared text[],
                                   image jsonb, had_to_write boolean)
    RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    differ text[] := audit.undo_differences(target, keys, compared, image);
    key    jsonb := (SELECT jsonb_object_agg(k, image -> k) FROM unnest(keys) AS k);
BEGIN
    IF differ IS NULL THEN
        RAISE EXCEPTION 'event % cannot be reverted: the row with key % is no longer in %', event_id, key, target
            USING ERRCODE = 'object_not_in_prerequisite_state';
    ELSIF cardinality(differ) > 0 THEN
        RAISE EXCEPTION 'event % cannot be reverted: % of % changed since (the row % no longer holds what the event wrote)',
                        event_id, array_to_string(differ, ', '), target, key
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Revert the later events first, newest first, or change the row by hand.';
    ELSIF had_to_write THEN
        RAISE EXCEPTION 'event % cannot be reverted now: the row % changed while it was being reverted', event_id, key
            USING ERRCODE = 'serialization_failure', HINT = 'Try again.';
    END IF;
    -- Nothing to set back (every changed column redacted and left out): the row is there.
END
$$;

-- One event put back on its live table (see the top of this file). Called directly, the
-- change it makes is recorded as an ordinary one; through audit.revert, as a revert. `txid`,
-- the event's transaction when the caller knows it, finds it faster.
CREATE FUNCTION audit.undo_event(event_id bigint, skip_redacted boolean DEFAULT false,
                                 txid xid8 DEFAULT NULL)
    RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    ev       audit.events := audit.undo_checked_event(event_id, txid);
    tracked  audit.tracked_tables := audit.undo_table(ev);
    target   regclass := tracked.relid;
    keys     text[] := audit.undo_key(tracked.relid);
    -- The row as the event left it (a deleted row as it was): its key finds the live row.
    image    jsonb := CASE ev.action WHEN 'delete' THEN ev.old_data ELSE ev.new_data END;
    key      jsonb := (SELECT jsonb_object_agg(k, image -> k) FROM unnest(keys) AS k);
    columns  text[] := audit.undo_columns(target, image);
    compared text[];
    written  bigint := 0;
    key_deferrable boolean := (SELECT c.condeferrable FROM pg_constraint c
                            WHERE c.conrelid = target AND c.contype = 'p');
BEGIN
    IF ev.action = 'delete' THEN
        columns := audit.undo_without_redacted(event_id, ev.table_name, tracked.redact_columns,
                                               columns, image, skip_redacted);
        -- Only a row with the key stops it (ON CONFLICT on the key); any other unique
        -- constraint raises its own error. A deferrable key cannot arbitrate: looked up first.
        IF key_deferrable AND audit.undo_differences(target, keys, '{}', image) IS NOT NULL THEN
            written := 0;
        ELSE
            EXECUTE format('INSERT INTO %s (%s) OVERRIDING SYSTEM VALUE SELECT %s FROM jsonb_populate_record(NULL::%s, $1) r %s',
                           target, (SELECT string_agg(format('%I', c), ', ') FROM unnest(columns) AS c),
                           (SELECT string_agg(format('r.%I', c), ', ') FROM unnest(columns) AS c), target,
                           CASE WHEN NOT key_deferrable
                                THEN format('ON CONFLICT (%s) DO NOTHING',
                                            (SELECT string_agg(format('%I', k), ', ') FROM unnest(keys) AS k)) ELSE '' END)
                USING image;
            GET DIAGNOSTICS written = ROW_COUNT;
        END IF;
        IF written = 0 THEN
            RAISE EXCEPTION 'event % cannot be reverted: a row with its key % is in % again', event_id, key, target
                USING ERRCODE = 'unique_violation';
        END IF;
        RETURN;
    END IF;
    -- A create is put back by deleting the row, an update by setting the columns it changed
    -- back; either only if the row still holds what the event wrote in them.
    IF ev.action = 'update' THEN
        columns := audit.undo_without_redacted(event_id, ev.table_name, tracked.redact_columns,
                                               ARRAY(SELECT c FROM unnest(ev.changed_fields) AS c
                                                      WHERE c = ANY (columns)),
                                               ev.new_data || ev.old_data, skip_redacted);
    ELSE
        columns := ARRAY(SELECT c FROM unnest(columns) AS c
                          WHERE c <> ALL (tracked.ignore_columns || tracked.redact_columns));
    END IF;
    -- A redacted value the event wrote cannot be compared: only a NULL one can.
    compared := ARRAY(SELECT c FROM unnest(columns) AS c
                       WHERE c <> ALL (tracked.redact_columns) OR image -> c = 'null'::jsonb);
    -- One statement checks and writes (a row changed concurrently is checked again as it is
    -- then); only when it writes nothing is the row read again, to say why.
    IF ev.action = 'create' THEN
        EXECUTE format('DELETE FROM %s l USING jsonb_populate_record(NULL::%s, $1) r WHERE %s = %s AND %s',
                       target, target, audit.undo_row('l', keys), audit.undo_row('r', keys),
                       audit.undo_unchanged(compared))
            USING image;
        GET DIAGNOSTICS written = ROW_COUNT;
    ELSIF cardinality(columns) > 0 THEN
        EXECUTE format('UPDATE %s l SET %s FROM jsonb_populate_record(NULL::%s, $1) b, jsonb_populate_record(NULL::%s, $2) r
                         WHERE %s = %s AND %s',
                       target, (SELECT string_agg(format('%1$I = b.%1$I', c), ', ') FROM unnest(columns) AS c),
                       target, target, audit.undo_row('l', keys), audit.undo_row('r', keys),
                       audit.undo_unchanged(compared))
            USING ev.new_data || ev.old_data, image;
        GET DIAGNOSTICS written = ROW_COUNT;
    END IF;
    IF written = 0 THEN
        PERFORM audit.undo_refused(event_id, target, keys, compared, image,
                                   ev.action = 'create' OR cardinality(columns) > 0);
    END IF;
END
$$;

-- The changes of one transaction a revert puts back, newest first: the events of tracked
-- tables it wrote. A truncate among them refuses the whole; so does a transaction that
-- changed no tracked row.
CREATE FUNCTION audit.transaction_changes(txid xid8)
    RETURNS SETOF bigint
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    truncated bigint;
BEGIN
    SELECT e.id INTO truncated FROM audit.events e
     WHERE e.txid = transaction_changes.txid AND e.action = 'truncate' AND e.entity <> 'audit_log'
     LIMIT 1;
    IF truncated IS NOT NULL THEN
        RAISE EXCEPTION 'transaction % cannot be reverted: it emptied a table (event %), whose rows were never recorded',
                        txid, truncated
            USING ERRCODE = 'feature_not_supported';
    END IF;
    RETURN QUERY SELECT e.id FROM audit.events e
                  WHERE e.txid = transaction_changes.txid AND e.entity <> 'audit_log'
                    AND e.table_name IS NOT NULL AND e.action IN ('create', 'update', 'delete')
                  ORDER BY e.id DESC;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'transaction % changed no tracked row: nothing to revert', txid
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
END
$$;

CREATE FUNCTION audit.revert(event_id bigint, skip_redacted boolean DEFAULT false)
    RETURNS void
    LANGUAGE c
    SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'audit_revert';
COMMENT ON FUNCTION audit.revert(bigint, boolean) IS
    'Puts back what one event changed, as the caller, recorded as a revert; refused if the row changed since.';

CREATE FUNCTION audit.revert_transaction(txid xid8, skip_redacted boolean DEFAULT false)
    RETURNS bigint
    LANGUAGE c
    SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'audit_revert_transaction';
COMMENT ON FUNCTION audit.revert_transaction(xid8, boolean) IS
    'Puts back every change of one transaction, newest first, all or nothing; returns how many events.';
