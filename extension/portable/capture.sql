-- audit_trail, portable install: what only WAL capture needs (docs/wal-capture.md). The
-- publication `audit-trail capture` reads, the key that signs attribution, the position the
-- events written so far reach, and the functions that write events. Everything here is
-- revoked from PUBLIC: PostgreSQL grants EXECUTE on a new function to everyone, and the
-- extension's blanket REVOKE (privileges.sql) ran before these were made.

-- audit_capture: what `audit-trail capture` runs as (with REPLICATION, to read the slot). It
-- alone may write captured events: not audit_service, whose sealer and archiver need no such
-- right. Made if missing; two installs at once may both try (the loser's error is caught).
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'audit_capture') THEN
        CREATE ROLE audit_capture NOLOGIN;
    END IF;
EXCEPTION
    WHEN duplicate_object OR unique_violation THEN
        NULL;
END
$$;

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

-- The role the connection logged in as, when SET SESSION AUTHORIZATION (a superuser's) made
-- the session another role's; NULL when they are the same.
CREATE FUNCTION audit.login_role() RETURNS text
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT nullif((SELECT a.usename::text FROM pg_stat_get_activity(pg_backend_pid()) AS s
                     JOIN pg_user AS a ON a.usesysid = s.usesysid), session_user::text)
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
    login   text := audit.login_role();
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

-- The events of one group of decoded changes: rows of one table changed by one action, in
-- commit order, perhaps of many transactions. `g` is {"table": oid, "action": ...,
-- "columns": [...], "rows": [[old, new], ...], "meta": [[transaction, message], ...]} (no
-- columns or rows for a truncate); `txs` holds, per transaction of the batch, its txid, its
-- commit time and whether it was written already; `who`, per message, the attribution it
-- carries when the install signed it for its transaction (else null). Returns the number
-- of events written.
CREATE FUNCTION audit.wal_record_group(g jsonb, txs jsonb, who jsonb)
    RETURNS bigint
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    target  regclass := (g ->> 'table')::oid::regclass;
    tracked audit.tracked_tables := audit.tracked_table_of(target);
    written bigint;
BEGIN
    IF tracked.relid IS NULL THEN
        -- Untracked since: its publication membership is gone, and with it its settings.
        RAISE WARNING 'changes of % are not recorded: the table is no longer tracked', target;
        RETURN 0;
    END IF;
    INSERT INTO audit.events (occurred_at, txid, actor, db_user, source, client_addr, application_name,
                              entity, action, table_name, subject_id, changed_fields, old_data, new_data,
                              context, tenant)
    SELECT (t ->> 'at')::timestamptz, (t ->> 'txid')::xid8,
           coalesce(a ->> 'actor', a ->> 'db_user', '(not set)'), coalesce(a ->> 'db_user', '(not set)'),
           coalesce(a ->> 'source', 'manual'), (a ->> 'client_addr')::inet, a ->> 'application_name',
           tracked.entity, g ->> 'action', tracked.table_name, c.subject_id, c.changed_fields,
           c.old_data, c.new_data,
           -- The login role when SET SESSION AUTHORIZATION made the session another's; and a
           -- change to another organization's row than the one the transaction acts for (the
           -- row's before or after: an update's old_data holds the column when it changed).
           nullif(coalesce(CASE WHEN jsonb_typeof(a -> 'context') = 'object' THEN a -> 'context' END, '{}')
                  || CASE WHEN a ->> 'authenticated' IS NOT NULL
                          THEN jsonb_build_object('authenticated_role', a ->> 'authenticated') ELSE '{}' END
                  || CASE WHEN tracked.tenant_column IS NOT NULL AND a ->> 'tenant' IS NOT NULL
                               AND (c.new_data ->> tracked.tenant_column <> a ->> 'tenant'
                                    OR c.old_data ->> tracked.tenant_column <> a ->> 'tenant')
                          THEN jsonb_build_object('acting_tenant', a ->> 'tenant') ELSE '{}' END,
                  '{}'),
           coalesce(c.tenant, CASE WHEN tracked.tenant_column IS NULL THEN a ->> 'tenant' END)
      FROM (SELECT NULL::bigint AS ordinal, NULL::text AS subject_id, NULL::text[] AS changed_fields,
                   NULL::jsonb AS old_data, NULL::jsonb AS new_data, NULL::text AS tenant
             WHERE g ->> 'action' = 'truncate'
            UNION ALL
            SELECT w.* FROM audit.wal_changes(target, g ->> 'action', audit.wal_text_array(g -> 'columns'),
                                              g -> 'rows') AS w
             WHERE g ->> 'action' <> 'truncate') AS c
     CROSS JOIN LATERAL (SELECT g -> 'meta' -> coalesce(c.ordinal - 1, 0)::int AS m) AS m
     CROSS JOIN LATERAL (SELECT txs -> (m.m ->> 0)::int AS t) AS t
     CROSS JOIN LATERAL (SELECT CASE WHEN m.m -> 1 <> 'null' THEN who -> (m.m ->> 1)::int END AS a) AS a
     WHERE NOT (t ->> 'done')::boolean
     ORDER BY c.ordinal;
    GET DIAGNOSTICS written = ROW_COUNT;
    RETURN written;
END
$$;

-- Writes the events of a batch of committed transactions (or of a part of one), and the
-- slot's position after the last transaction the batch completes. `batch` is what
-- `audit-trail capture` sends: {"transactions": [{"xid", "end_lsn", "commit_time"}, ...],
-- "messages": [{"transaction", "content"}, ...], "groups": [...], "progress": index of the
-- last transaction completed, or null}. A transaction at or before the recorded position was
-- written already (the slot was not advanced before a crash): it is not written again.
-- `xid` is the 32-bit id pgoutput sends; events get the 64-bit one of its epoch (the one
-- before, when that would put it in the future). Executable by audit_capture; runs as the
-- install's owner, whose functions alone may add rows to the log.
CREATE FUNCTION audit.wal_record(slot text, batch jsonb)
    RETURNS bigint
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    done    pg_lsn;
    now_x   bigint := pg_current_xact_id()::text::bigint;
    txs     jsonb;
    who     jsonb;
    last    jsonb;
    written bigint := 0;
    g       jsonb;
BEGIN
    IF jsonb_typeof(batch -> 'transactions') IS DISTINCT FROM 'array'
       OR jsonb_typeof(batch -> 'groups') IS DISTINCT FROM 'array'
       OR jsonb_typeof(batch -> 'messages') IS DISTINCT FROM 'array' THEN
        RAISE EXCEPTION 'audit.wal_record: a batch has transactions, messages and groups'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- The slot's row, locked: a second service on the same slot waits here, then finds the
    -- transactions written and writes nothing.
    INSERT INTO audit.capture_progress AS p (slot, end_lsn, commit_time, xid)
    VALUES (wal_record.slot, '0/0', '-infinity', 0)
    ON CONFLICT ON CONSTRAINT capture_progress_pkey DO NOTHING;
    SELECT p.end_lsn INTO done FROM audit.capture_progress AS p WHERE p.slot = wal_record.slot FOR UPDATE;
    SELECT jsonb_agg(jsonb_build_object(
               'txid', CASE WHEN (now_x >> 32 << 32) | x.xid > now_x THEN ((now_x >> 32 << 32) | x.xid) - 4294967296
                            ELSE (now_x >> 32 << 32) | x.xid END,
               'at', x.commit_time, 'end_lsn', x.end_lsn, 'xid', x.xid,
               'done', x.end_lsn::pg_lsn <= done) ORDER BY x.i)
      INTO txs
      FROM jsonb_array_elements(batch -> 'transactions') WITH ORDINALITY AS e(t, i),
           LATERAL (SELECT e.i, (e.t ->> 'xid')::bigint AS xid, e.t ->> 'commit_time' AS commit_time,
                           e.t ->> 'end_lsn' AS end_lsn) AS x;
    IF EXISTS (SELECT FROM jsonb_array_elements(txs) AS t
                WHERE (t ->> 'xid')::bigint NOT BETWEEN 0 AND 4294967295) THEN
        RAISE EXCEPTION 'audit.wal_record: an xid is a 32-bit transaction id'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- Each message's attribution, once: null unless the install signed it for its transaction.
    SELECT coalesce(jsonb_agg(audit.wal_attribution(m ->> 'content',
                                                    (txs -> (m ->> 'transaction')::int ->> 'xid')::bigint)
                              ORDER BY i), '[]')
      INTO who
      FROM jsonb_array_elements(batch -> 'messages') WITH ORDINALITY AS e(m, i);
    PERFORM set_config('audit.appending', 'on', true);
    FOR g IN SELECT e.g FROM jsonb_array_elements(batch -> 'groups') AS e(g) LOOP
        written := written + audit.wal_record_group(g, txs, who);
    END LOOP;
    PERFORM set_config('audit.appending', '', true);
    last := txs -> (batch ->> 'progress')::int;
    UPDATE audit.capture_progress AS p
       SET events = p.events + written, updated_at = now(),
           end_lsn = CASE WHEN last IS NOT NULL AND (last ->> 'end_lsn')::pg_lsn > p.end_lsn
                          THEN (last ->> 'end_lsn')::pg_lsn ELSE p.end_lsn END,
           commit_time = CASE WHEN last IS NOT NULL AND (last ->> 'end_lsn')::pg_lsn > p.end_lsn
                              THEN (last ->> 'at')::timestamptz ELSE p.commit_time END,
           xid = CASE WHEN last IS NOT NULL AND (last ->> 'end_lsn')::pg_lsn > p.end_lsn
                      THEN (last ->> 'xid')::bigint ELSE p.xid END
     WHERE p.slot = wal_record.slot;
    RETURN written;
END
$$;

REVOKE ALL ON FUNCTION audit.wal_mac(text), audit.wal_sign(jsonb), audit.wal_attribution(text, bigint),
                       audit.append_event(text, text, text, text, jsonb),
                       audit.wal_record_group(jsonb, jsonb, jsonb),
                       audit.wal_record(text, jsonb),
                       audit.check_trackable(regclass, boolean), audit.login_role(),
                       audit.set_replica_identity_full(regclass),
                       audit.privilege_fields_unwatched(text[], jsonb, text, text[])
    FROM PUBLIC;
REVOKE ALL ON audit.wal_attribution_key, audit.capture_progress FROM PUBLIC;
GRANT EXECUTE ON FUNCTION audit.wal_record(text, jsonb) TO audit_capture;
GRANT SELECT ON audit.capture_progress TO audit_admin, audit_capture;
