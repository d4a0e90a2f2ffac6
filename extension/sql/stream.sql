-- audit_trail: the change stream's cursors and the alert engine's records (docs/follow.md,
-- docs/alerts.md). Runs after integrity.sql.
--
-- A consumer's cursor says which events it has delivered; the alert engine's cursor and its
-- alerts are the engine's whole state. Readers may not write either: a cursor belongs to the
-- role that made it and moves only through these functions, forward over exactly the events
-- its consumer delivered (audit.advance_consumer), or by an explicit move that is recorded
-- as an audit_log/consumer_moved event (audit.move_consumer); alerts are recorded only by
-- their consumer's owner (audit.record_alert), and audit.log_event refuses to forge one.

-- Refuses unless the login role (session_user: the functions below run as the extension's
-- owner, and SET ROLE cannot change it) has the privileges of the consumer's owner. Returns
-- the consumer's row, locked for the rest of the transaction.
CREATE FUNCTION audit.owned_consumer(name text) RETURNS audit.consumers
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c audit.consumers;
BEGIN
    SELECT * INTO c FROM audit.consumers AS k WHERE k.name = owned_consumer.name
       FOR UPDATE NOWAIT;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'consumer "%" does not exist', name
            USING ERRCODE = 'undefined_object';
    END IF;
    IF c.owner IS NULL THEN
        -- A cursor from before 0.3.0: the first role to use it becomes its owner.
        UPDATE audit.consumers AS k SET owner = session_user::regrole
         WHERE k.name = owned_consumer.name
        RETURNING * INTO c;
        PERFORM audit.record_ddl_event('audit_log', 'consumer_moved', NULL,
            jsonb_build_object('consumer', name, 'claimed_by', session_user,
                               'from', jsonb_build_array(c.last_txid::text, c.last_id),
                               'to', jsonb_build_array(c.last_txid::text, c.last_id),
                               'skipped', 0));
    ELSIF NOT pg_has_role(session_user, c.owner, 'USAGE') THEN
        RAISE EXCEPTION 'consumer "%" belongs to role %: only that role moves it', name, c.owner
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN c;
END
$$;

-- Makes the consumer, at the start of the stream and owned by the login role, unless it
-- exists.
CREATE FUNCTION audit.open_consumer(name text) RETURNS void
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    INSERT INTO audit.consumers AS k (name, owner, updated_by)
    VALUES (open_consumer.name, session_user::regrole, session_user)
    ON CONFLICT ON CONSTRAINT consumers_pkey DO NOTHING;
END
$$;

-- The consumer's position, locked until the caller's transaction ends (a second follower of
-- the same consumer is refused rather than made to deliver the same events).
CREATE FUNCTION audit.lock_consumer(name text, OUT last_txid xid8, OUT last_id bigint)
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c audit.consumers := audit.owned_consumer(name);
BEGIN
    last_txid := c.last_txid;
    last_id := c.last_id;
END
$$;

-- Moves the cursor past the events its consumer just delivered: forward only, and over
-- exactly `delivered` events (every event between the two positions), so a cursor can skip
-- nothing this way.
CREATE FUNCTION audit.advance_consumer(name text, to_txid xid8, to_id bigint, delivered bigint)
    RETURNS void
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c       audit.consumers := audit.owned_consumer(name);
    between bigint;
BEGIN
    IF (to_txid, to_id) < (c.last_txid, c.last_id) THEN
        RAISE EXCEPTION 'consumer "%" is at (%, %): it cannot advance back to (%, %)',
            name, c.last_txid, c.last_id, to_txid, to_id
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'audit.move_consumer moves a cursor back (a replay), and records it.';
    END IF;
    IF to_txid >= pg_snapshot_xmin(pg_current_snapshot())
       OR NOT EXISTS (SELECT FROM audit.events AS e WHERE e.txid = to_txid AND e.id = to_id) THEN
        RAISE EXCEPTION 'consumer "%" cannot advance to (%, %): no committed event is there',
            name, to_txid, to_id
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT count(*) INTO between FROM audit.events AS e
     WHERE (e.txid, e.id) > (c.last_txid, c.last_id) AND (e.txid, e.id) <= (to_txid, to_id);
    IF between <> delivered THEN
        RAISE EXCEPTION 'consumer "%" delivered % events, but % lie between its position and (%, %)',
            name, delivered, between, to_txid, to_id
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'audit.move_consumer skips events, and records it.';
    END IF;
    UPDATE audit.consumers AS k
       SET last_txid = to_txid, last_id = to_id, delivered = k.delivered + advance_consumer.delivered,
           updated_at = now(), updated_by = session_user
     WHERE k.name = advance_consumer.name;
END
$$;

-- Moves a cursor anywhere (a replay from an earlier point, or a skip), making it first if
-- need be, and records the move as an audit_log/consumer_moved event: how many events it
-- skips (at most counted to a million and one) or will deliver again. A skip is what the
-- built-in stream-skipped alert fires on.
CREATE FUNCTION audit.move_consumer(name text, to_txid xid8, to_id bigint) RETURNS void
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c       audit.consumers;
    skipped bigint := 0;
    again   bigint := 0;
BEGIN
    PERFORM audit.open_consumer(name);
    c := audit.owned_consumer(name);
    -- Only where the stream is: its start, or a committed transaction that wrote events (a
    -- position past them would skip every event to come, and count none skipped).
    IF (to_txid, to_id) <> ('0'::xid8, 0::bigint)
       AND NOT EXISTS (SELECT FROM audit.events AS e WHERE e.txid = to_txid) THEN
        RAISE EXCEPTION 'consumer "%" cannot move to (%, %): no committed transaction wrote events there',
            name, to_txid, to_id
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF (to_txid, to_id) > (c.last_txid, c.last_id) THEN
        SELECT count(*) INTO skipped FROM (
            SELECT FROM audit.events AS e
             WHERE (e.txid, e.id) > (c.last_txid, c.last_id) AND (e.txid, e.id) <= (to_txid, to_id)
             LIMIT 1000001) AS s;
    ELSE
        SELECT count(*) INTO again FROM (
            SELECT FROM audit.events AS e
             WHERE (e.txid, e.id) > (to_txid, to_id) AND (e.txid, e.id) <= (c.last_txid, c.last_id)
             LIMIT 1000001) AS s;
    END IF;
    UPDATE audit.consumers AS k
       SET last_txid = to_txid, last_id = to_id, delivered = 0,
           updated_at = now(), updated_by = session_user
     WHERE k.name = move_consumer.name;
    PERFORM audit.record_ddl_event('audit_log', 'consumer_moved', NULL,
        jsonb_build_object('consumer', name,
                           'from', jsonb_build_array(c.last_txid::text, c.last_id),
                           'to', jsonb_build_array(to_txid::text, to_id),
                           'skipped', skipped, 'replayed', again));
END
$$;

-- Records an alert of the engine that reads the stream as `consumer`, in the caller's
-- transaction (the one that advances that cursor): only the consumer's owner may, so that no
-- reader can record an alert in the engine's name and silence a rule with it. Returns the
-- alert event's id.
CREATE FUNCTION audit.record_alert(consumer text, details jsonb) RETURNS bigint
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM audit.owned_consumer(consumer);
    IF jsonb_typeof(details) IS DISTINCT FROM 'object' THEN
        RAISE EXCEPTION 'an alert''s details are a JSON object'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- An alert lists at most 100 event ids: a megabyte is far above any, far below harm.
    IF pg_column_size(details) > 1048576 THEN
        RAISE EXCEPTION 'an alert''s details are at most 1 MB'
            USING ERRCODE = 'program_limit_exceeded';
    END IF;
    RETURN audit.record_ddl_event('audit_log', 'alert', NULL,
                                  details || jsonb_build_object('consumer', consumer));
END
$$;
