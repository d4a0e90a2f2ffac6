-- audit_trail, portable install: what only WAL capture needs (docs/wal-capture.md). The
-- publication `audit-trail capture` reads, the key that signs attribution, the position the
-- events written so far reach, and the functions that write events. Everything here is
-- revoked from PUBLIC: PostgreSQL grants EXECUTE on a new function to everyone, and the
-- extension's blanket REVOKE (privileges.sql) ran before these were made.

-- The tables audit.track adds, and nothing else. Partitions' changes are published as
-- their root's, which is the table tracked.
CREATE PUBLICATION audit_trail WITH (publish_via_partition_root = true);

-- The key audit.set_actor signs its WAL messages with: 64 random bytes (four version-4
-- UUIDs' worth of strong randomness, without pgcrypto). Readable by the install's owner
-- only; whoever can read it can make attribution up, which the owner could anyway.
CREATE TABLE audit.wal_attribution_key (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    key       bytea   NOT NULL CHECK (octet_length(key) = 64)
);
INSERT INTO audit.wal_attribution_key (key)
SELECT decode(string_agg(replace(gen_random_uuid()::text, '-', ''), ''), 'hex')
  FROM generate_series(1, 4);

-- How far each slot's changes are in audit.events: written in the transaction that writes
-- their events, so after a crash between that commit and the slot's advance the service
-- skips what it already wrote (exactly once).
CREATE TABLE audit.capture_progress (
    slot        text        PRIMARY KEY,
    end_lsn     pg_lsn      NOT NULL,
    commit_time timestamptz NOT NULL,
    xid         bigint      NOT NULL,
    events      bigint      NOT NULL DEFAULT 0,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- A keyed hash of a message (NMAC over SHA-256 with two independent 32-byte keys, which
-- needs no XOR of bytea): sha256(k2 || sha256(k1 || message)), hex.
CREATE FUNCTION audit.wal_mac(message text) RETURNS text
    LANGUAGE sql STABLE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT encode(sha256(substring(k.key FROM 33 FOR 32)
                         || sha256(substring(k.key FROM 1 FOR 32) || convert_to(message, 'UTF8'))), 'hex')
      FROM audit.wal_attribution_key AS k
$$;

-- The content of an attribution message: its MAC, a newline, the JSON.
CREATE FUNCTION audit.wal_sign(attribution jsonb) RETURNS text
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT audit.wal_mac(attribution::text) || E'\n' || attribution::text
$$;

-- The attribution a message carries, when the install signed it for this transaction
-- (`xid`, the 32-bit id the WAL names it by); NULL for one that was made up or replayed.
CREATE FUNCTION audit.wal_attribution(message text, xid bigint) RETURNS jsonb
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    mac  text := split_part(message, E'\n', 1);
    body text := substr(message, length(mac) + 2);
    a    jsonb;
BEGIN
    IF message IS NULL OR mac !~ '^[0-9a-f]{64}$' OR mac <> audit.wal_mac(body) THEN
        RETURN NULL;
    END IF;
    a := body::jsonb;
    IF (a ->> 'xid')::numeric % 4294967296 <> xid THEN
        RETURN NULL;
    END IF;
    RETURN a;
END
$$;

-- Appends one event in the caller's transaction, with the attribution of its audit.*
-- settings (set by audit.set_actor): the tracking of a table, an application's event. Only
-- functions of this install call it.
CREATE FUNCTION audit.append_event(entity text, action text, subject_id text, table_name text,
                                   details jsonb)
    RETURNS bigint
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    context jsonb := nullif(current_setting('audit.context', true), '')::jsonb;
    login   text := nullif((SELECT a.usename FROM pg_stat_get_activity(pg_backend_pid()) AS s
                              JOIN pg_user AS a ON a.usesysid = s.usesysid), session_user);
    id      bigint;
BEGIN
    IF login IS NOT NULL THEN
        context := coalesce(context, '{}') || jsonb_build_object('authenticated_role', login);
    END IF;
    PERFORM set_config('audit.appending', 'on', true);
    INSERT INTO audit.events AS e (actor, db_user, source, application_name, entity, action, table_name,
                                   subject_id, context, details, tenant)
    VALUES (coalesce(nullif(current_setting('audit.actor', true), ''), session_user), session_user,
            coalesce(nullif(current_setting('audit.source', true), ''), 'manual'),
            nullif(current_setting('application_name'), ''), entity, action, table_name, subject_id,
            context, details, nullif(current_setting('audit.tenant', true), ''))
    RETURNING e.id INTO id;
    PERFORM set_config('audit.appending', '', true);
    RETURN id;
END
$$;

-- The events of one decoded group of changes: rows of one table changed by one action under
-- one attribution, in commit order. `changes` is what `audit-trail capture` sends:
-- {"table": oid, "action": ..., "columns": [...], "rows": [[old, new], ...], "message": ...}
-- (no columns or rows for a truncate). Returns the number of events written.
CREATE FUNCTION audit.wal_record_group(xid bigint, txid xid8, commit_time timestamptz, change jsonb)
    RETURNS bigint
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    target  regclass := (change ->> 'table')::oid::regclass;
    tracked audit.tracked_tables := audit.tracked_table_of(target);
    a       jsonb := audit.wal_attribution(change ->> 'message', xid);
    context jsonb := a -> 'context';
    written bigint;
BEGIN
    IF tracked.relid IS NULL THEN
        -- Untracked since: its publication membership is gone, and with it its settings.
        RAISE WARNING 'changes of % are not recorded: the table is no longer tracked', target;
        RETURN 0;
    END IF;
    IF a ->> 'authenticated' IS NOT NULL THEN
        context := coalesce(context, '{}') || jsonb_build_object('authenticated_role', a ->> 'authenticated');
    END IF;
    IF jsonb_typeof(context) <> 'object' THEN
        context := NULL;
    END IF;
    IF change ->> 'action' = 'truncate' THEN
        INSERT INTO audit.events (occurred_at, txid, actor, db_user, source, client_addr, application_name,
                                  entity, action, table_name, context, tenant)
        VALUES (commit_time, txid, coalesce(a ->> 'actor', a ->> 'db_user', '(not set)'),
                coalesce(a ->> 'db_user', '(not set)'), coalesce(a ->> 'source', 'manual'),
                (a ->> 'client_addr')::inet, a ->> 'application_name', tracked.entity, 'truncate',
                tracked.table_name, context, a ->> 'tenant');
        RETURN 1;
    END IF;
    INSERT INTO audit.events (occurred_at, txid, actor, db_user, source, client_addr, application_name,
                              entity, action, table_name, subject_id, changed_fields, old_data, new_data,
                              context, tenant)
    SELECT commit_time, txid, coalesce(a ->> 'actor', a ->> 'db_user', '(not set)'),
           coalesce(a ->> 'db_user', '(not set)'), coalesce(a ->> 'source', 'manual'),
           (a ->> 'client_addr')::inet, a ->> 'application_name', tracked.entity, change ->> 'action',
           tracked.table_name, c.subject_id, c.changed_fields, c.old_data, c.new_data,
           -- A change to another organization's row than the one the transaction acts for.
           -- (the row's before or after: an update's old_data holds the column when it changed).
           CASE WHEN tracked.tenant_column IS NOT NULL AND a ->> 'tenant' IS NOT NULL
                     AND (c.new_data ->> tracked.tenant_column <> a ->> 'tenant'
                          OR c.old_data ->> tracked.tenant_column <> a ->> 'tenant')
                THEN coalesce(context, '{}') || jsonb_build_object('acting_tenant', a ->> 'tenant')
                ELSE context END,
           coalesce(c.tenant, CASE WHEN tracked.tenant_column IS NULL THEN a ->> 'tenant' END)
      FROM audit.wal_changes(target, change ->> 'action', audit.wal_text_array(change -> 'columns'),
                             change -> 'rows') AS c
     ORDER BY c.ordinal;
    GET DIAGNOSTICS written = ROW_COUNT;
    RETURN written;
END
$$;

-- Writes the events of (a part of) one committed transaction, and, with its last part, the
-- slot's position after it. A transaction at or before the recorded position was written
-- already (the slot was not advanced before a crash): nothing is written again. `xid` is the
-- 32-bit id pgoutput sends; events get the 64-bit one of its epoch (the one before, when that
-- would put it in the future). Executable by audit_service; runs as the install's owner,
-- whose functions alone may add rows to the log.
CREATE FUNCTION audit.wal_record(slot text, xid bigint, end_lsn pg_lsn, commit_time timestamptz,
                                 changes jsonb, last_part boolean DEFAULT true)
    RETURNS bigint
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    done    pg_lsn;
    now_x   bigint := pg_current_xact_id()::text::bigint;
    full_x  bigint := (now_x >> 32 << 32) | xid;
    written bigint := 0;
    change  jsonb;
BEGIN
    IF xid < 0 OR xid > 4294967295 OR jsonb_typeof(changes) <> 'array' THEN
        RAISE EXCEPTION 'audit.wal_record: xid must be a 32-bit transaction id and changes a JSON array'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- The slot's row, locked: a second service on the same slot waits here, then finds the
    -- transaction written and writes nothing.
    INSERT INTO audit.capture_progress AS p (slot, end_lsn, commit_time, xid)
    VALUES (wal_record.slot, '0/0', '-infinity', 0)
    ON CONFLICT ON CONSTRAINT capture_progress_pkey DO NOTHING;
    SELECT p.end_lsn INTO done FROM audit.capture_progress AS p WHERE p.slot = wal_record.slot FOR UPDATE;
    IF wal_record.end_lsn <= done THEN
        RETURN 0;
    END IF;
    IF full_x > now_x THEN
        full_x := full_x - 4294967296;
    END IF;
    PERFORM set_config('audit.appending', 'on', true);
    FOR change IN SELECT c FROM jsonb_array_elements(changes) AS c LOOP
        written := written + audit.wal_record_group(xid, full_x::text::xid8, commit_time, change);
    END LOOP;
    PERFORM set_config('audit.appending', '', true);
    UPDATE audit.capture_progress AS p
       SET events = p.events + written, updated_at = now(),
           end_lsn = CASE WHEN last_part THEN wal_record.end_lsn ELSE p.end_lsn END,
           commit_time = CASE WHEN last_part THEN wal_record.commit_time ELSE p.commit_time END,
           xid = CASE WHEN last_part THEN wal_record.xid ELSE p.xid END
     WHERE p.slot = wal_record.slot;
    RETURN written;
END
$$;

REVOKE ALL ON FUNCTION audit.wal_mac(text), audit.wal_sign(jsonb), audit.wal_attribution(text, bigint),
                       audit.append_event(text, text, text, text, jsonb),
                       audit.wal_record_group(bigint, xid8, timestamptz, jsonb),
                       audit.wal_record(text, bigint, pg_lsn, timestamptz, jsonb, boolean),
                       audit.check_trackable(regclass, boolean),
                       audit.privilege_fields_unwatched(text[], jsonb, text, text[])
    FROM PUBLIC;
REVOKE ALL ON audit.wal_attribution_key, audit.capture_progress FROM PUBLIC;
GRANT EXECUTE ON FUNCTION audit.wal_record(text, bigint, pg_lsn, timestamptz, jsonb, boolean) TO audit_service;
GRANT SELECT ON audit.capture_progress TO audit_admin, audit_service;
