-- audit_trail: storage. Runs first (bootstrap); functions and views come in api.sql.

-- Roles are cluster-wide and outlive the extension: create only what is missing, and never
-- drop them (DROP EXTENSION keeps them, as grants in other databases may use them).
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'audit_admin') THEN
        CREATE ROLE audit_admin NOLOGIN;
    END IF;
END
$$;

-- CACHE: each backend takes ids 32 at a time instead of locking the sequence per event. Ids
-- stay unique; across backends they are no longer strictly in capture order, which nothing
-- relies on (the change stream orders by (txid, id), the report by (occurred_at, id)).
CREATE SEQUENCE audit.events_id_seq AS bigint CACHE 32;

-- The append-only event store. Capture writes it directly (not through SQL), filling the
-- columns by name, so the column order here is only what SELECT * shows.
CREATE TABLE audit.events (
    id               bigint      NOT NULL DEFAULT nextval('audit.events_id_seq'),
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
ALTER SEQUENCE audit.events_id_seq OWNED BY audit.events.id;

-- Indexes earn their place: each btree is one more write per captured change, the largest
-- part of capture's cost after the event row itself (see bench/results). So:
-- (occurred_at, id) serves time ranges and the report's newest-first order with keyset
-- pagination; (entity, subject_id) serves "the whole history of contact 42"; (txid, id) is
-- the change stream's order. There is no primary-key index: ids are unique by construction
-- (one sequence, and rows are never updated), and a BRIN index finds an id among the few
-- block ranges that can hold it, since ids grow with the table. Other filters (actor,
-- action, source) are applied within a time range.
CREATE INDEX events_occurred_at_idx ON audit.events (occurred_at, id);
CREATE INDEX events_subject_idx ON audit.events (entity, subject_id);
CREATE INDEX events_txid_idx ON audit.events (txid, id);
CREATE INDEX events_id_brin ON audit.events USING brin (id);
-- Without a key, a publication that replicates deletes (audit.purge) needs the whole row.
ALTER TABLE audit.events REPLICA IDENTITY FULL;

COMMENT ON TABLE audit.events IS
    'Append-only audit log: one row per captured change or application event.';

-- Capture settings of each tracked table; read through the audit.tracked view.
CREATE TABLE audit.tracked_tables (
    relid           regclass    PRIMARY KEY,
    entity          text        NOT NULL CHECK (entity <> ''),
    subject_columns text[]      NOT NULL CHECK (cardinality(subject_columns) > 0),
    ignore_columns  text[]      NOT NULL DEFAULT '{}',
    redact_columns  text[]      NOT NULL DEFAULT '{}',
    tracked_at      timestamptz NOT NULL DEFAULT now(),
    tracked_by      text        NOT NULL DEFAULT session_user,
    -- What the DDL hooks compare against to keep the settings in step (api.sql): the table's
    -- qualified name, and the attribute number of each column named above ({"name": attnum};
    -- null for a redacted name whose column was dropped, so that a column re-added under that
    -- name is redacted again). Names stay the truth: after a restore, attnums are re-learnt.
    table_name      text        NOT NULL,
    column_attnums  jsonb       NOT NULL DEFAULT '{}'
);

-- Durable cursors of change-stream consumers: the last (txid, id) each one has safely
-- delivered. Written by audit-trail follow, as a member of audit_admin.
CREATE TABLE audit.consumers (
    name         text        PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9_.:-]{1,100}$'),
    last_txid    xid8        NOT NULL DEFAULT '0',
    last_id      bigint      NOT NULL DEFAULT 0,
    delivered    bigint      NOT NULL DEFAULT 0,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    updated_by   text        NOT NULL DEFAULT session_user
);

-- pg_dump keeps the audit data and the settings (the extension's own objects are recreated
-- by CREATE EXTENSION on restore).
SELECT pg_catalog.pg_extension_config_dump('audit.events', '');
SELECT pg_catalog.pg_extension_config_dump('audit.events_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('audit.tracked_tables', '');
SELECT pg_catalog.pg_extension_config_dump('audit.consumers', '');
