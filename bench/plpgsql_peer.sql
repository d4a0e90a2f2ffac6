-- The reference peer of `make bench`: the capture contract of docs/contract.md written the way a
-- careful DBA would write it in PL/pgSQL, so that audit_trail is compared with an honest,
-- reasonably efficient alternative rather than a strawman.
--
-- * AFTER ... FOR EACH ROW triggers; the same information per event as audit.events (id from
--   a sequence, occurred_at, txid, actor from the audit.actor setting else session_user,
--   db_user, source, client_addr, application_name, entity, action, table_name, subject_id,
--   changed_fields, old_data, new_data, context), into a table of the same shape with the
--   same three indexes (primary key, (occurred_at, id), (entity, subject_id)).
-- * INSERT: new_data = to_jsonb(NEW). DELETE: old_data = to_jsonb(OLD).
-- * UPDATE: changed_fields = the tracked columns whose values changed; old_data = the previous
--   values of every changed column (ignored ones included, as audit_trail does, so that
--   new_data || old_data is the row before); new_data = to_jsonb(NEW).
-- * An UPDATE that changes nothing, or only ignored columns, is dropped before the trigger
--   is even queued: audit_peer.track generates a WHEN clause comparing the tracked columns.
--   That is the cheapest filter PL/pgSQL offers (evaluated in C, per row, at queue time).
-- * The subject is the (single-column) primary key; TRUNCATE and redaction are not needed by
--   the benchmark and not implemented.
--
-- audit.actor, audit.source and audit.context are read with current_setting(name, true):
-- that works whether or not the audit_trail extension (which reserves the prefix) is loaded.

CREATE SCHEMA audit_peer;

CREATE TABLE audit_peer.events (
    id               bigserial,
    occurred_at      timestamptz NOT NULL DEFAULT statement_timestamp(),
    txid             xid8        NOT NULL DEFAULT pg_current_xact_id(),
    actor            text        NOT NULL,
    db_user          text        NOT NULL DEFAULT session_user,
    source           text        NOT NULL DEFAULT 'manual',
    client_addr      inet                 DEFAULT inet_client_addr(),
    application_name text,
    entity           text        NOT NULL,
    action           text        NOT NULL,
    table_name       text,
    subject_id       text,
    changed_fields   text[],
    old_data         jsonb,
    new_data         jsonb,
    context          jsonb,
    details          jsonb
);
-- The same storage as audit.events (extension/sql/schema.sql): no primary-key index, a
-- BRIN on id, three btrees, ids cached 32 at a time.
ALTER SEQUENCE audit_peer.events_id_seq CACHE 32;
CREATE INDEX events_occurred_at_idx ON audit_peer.events (occurred_at, id);
CREATE INDEX events_subject_idx ON audit_peer.events (entity, subject_id);
CREATE INDEX events_txid_idx ON audit_peer.events (txid, id);
CREATE INDEX events_id_brin ON audit_peer.events USING brin (id);

-- Trigger arguments: entity, subject column, ignored columns (a text[] literal).
CREATE FUNCTION audit_peer.capture() RETURNS trigger
    LANGUAGE plpgsql
AS $$
DECLARE
    o        jsonb;
    n        jsonb;
    changed  text[];
    previous jsonb;
BEGIN
    IF TG_OP = 'INSERT' THEN
        n := to_jsonb(NEW);
    ELSIF TG_OP = 'DELETE' THEN
        o := to_jsonb(OLD);
    ELSE
        o := to_jsonb(OLD);
        n := to_jsonb(NEW);
        SELECT array_agg(e.key) FILTER (WHERE e.key <> ALL (TG_ARGV[2]::text[])),
               jsonb_object_agg(e.key, o -> e.key)
          INTO changed, previous
          FROM jsonb_each(n) AS e
         WHERE e.value IS DISTINCT FROM o -> e.key;
        -- The WHEN clause already dropped updates of ignored columns only; this is the
        -- safety net for values that differ as rows but not as JSON.
        IF changed IS NULL THEN
            RETURN NULL;
        END IF;
    END IF;
    INSERT INTO audit_peer.events
        (actor, source, application_name, entity, action, table_name, subject_id,
         changed_fields, old_data, new_data, context)
    VALUES (coalesce(nullif(current_setting('audit.actor', true), ''), session_user),
            coalesce(nullif(current_setting('audit.source', true), ''), 'manual'),
            nullif(current_setting('application_name'), ''),
            TG_ARGV[0],
            CASE TG_OP WHEN 'INSERT' THEN 'create' WHEN 'UPDATE' THEN 'update' ELSE 'delete' END,
            TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME,
            coalesce(n, o) ->> TG_ARGV[1],
            changed,
            CASE WHEN TG_OP = 'UPDATE' THEN previous ELSE o END,
            n,
            nullif(current_setting('audit.context', true), '')::jsonb);
    RETURN NULL;
END
$$;

-- audit_peer.track('bench.contacts', 'contact', ignore_columns => '{updated_at}')
CREATE FUNCTION audit_peer.track(target regclass, entity text, ignore_columns name[] DEFAULT '{}')
    RETURNS void
    LANGUAGE plpgsql
AS $$
DECLARE
    subject name;
    old_cols text;
    new_cols text;
BEGIN
    SELECT a.attname INTO STRICT subject
      FROM pg_index i
      JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
     WHERE i.indrelid = target AND i.indisprimary AND i.indnatts = 1;
    SELECT string_agg('OLD.' || quote_ident(attname), ', ' ORDER BY attnum),
           string_agg('NEW.' || quote_ident(attname), ', ' ORDER BY attnum)
      INTO old_cols, new_cols
      FROM pg_attribute
     WHERE attrelid = target AND attnum > 0 AND NOT attisdropped
       AND attname <> ALL (ignore_columns);
    EXECUTE format('CREATE TRIGGER audit_peer_insert_delete AFTER INSERT OR DELETE ON %s '
                   'FOR EACH ROW EXECUTE FUNCTION audit_peer.capture(%L, %L, %L)',
                   target, entity, subject, ignore_columns);
    EXECUTE format('CREATE TRIGGER audit_peer_update AFTER UPDATE ON %s FOR EACH ROW '
                   'WHEN (ROW(%s) IS DISTINCT FROM ROW(%s)) '
                   'EXECUTE FUNCTION audit_peer.capture(%L, %L, %L)',
                   target, old_cols, new_cols, entity, subject, ignore_columns);
END
$$;
