-- audit_trail: storage. Runs first (bootstrap); functions and views come in api.sql.

-- Roles are cluster-wide and outlive the extension: create only what is missing, and never
-- drop them (DROP EXTENSION keeps them, as grants in other databases may use them).
-- audit_admin reads the log; audit_service is what the product's own services run as
-- (seal, archive, the alert engine): it may also add seals, register sealing keys and record
-- archives, which readers may not, so that no reader can stop sealing or make retention
-- drop a month no archive holds (docs/integrity.md). It reads as audit_admin does.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'audit_admin') THEN
        CREATE ROLE audit_admin NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'audit_service') THEN
        CREATE ROLE audit_service NOLOGIN;
    END IF;
    IF NOT pg_catalog.pg_has_role('audit_service', 'audit_admin', 'MEMBER') THEN
        GRANT audit_admin TO audit_service;
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
    details          jsonb,
    -- The organization the event belongs to: the tracked row's (audit.track's tenant_column),
    -- else the writing transaction's (audit.set_actor's tenant); NULL when neither.
    tenant           text
) PARTITION BY RANGE (occurred_at);
ALTER SEQUENCE audit.events_id_seq OWNED BY audit.events.id;

-- Partitions by time (monthly by default; extension/sql/partitions.sql) let retention drop a
-- month at once and let every index stay the size of a month. They are made by
-- audit.maintain(), not here: objects made by this script belong to the extension, and
-- pg_dump would then leave their definitions out. The default partition catches what no
-- partition covers yet, so capture never fails when maintenance has not run; maintenance
-- later moves such rows into partitions of their own.
CREATE TABLE audit.events_default PARTITION OF audit.events DEFAULT;

-- Row images compressed with lz4 where the server was built with it: it compresses and reads
-- back several times faster than pglz, PostgreSQL's default. (A value that does not compress,
-- random or already compressed data, is stored as it is either way.) Partitions take their
-- columns' compression with them (audit.create_events_partition).
DO $$
DECLARE
    part regclass;
BEGIN
    -- The parent (which new partitions copy) and the partitions there are: the setting is
    -- not passed down.
    FOR part IN SELECT t.relid FROM pg_catalog.pg_partition_tree('audit.events') AS t LOOP
        EXECUTE pg_catalog.format(
            'ALTER TABLE %s ALTER COLUMN old_data SET COMPRESSION lz4,
                            ALTER COLUMN new_data SET COMPRESSION lz4,
                            ALTER COLUMN details SET COMPRESSION lz4,
                            ALTER COLUMN context SET COMPRESSION lz4', part);
    END LOOP;
EXCEPTION
    WHEN feature_not_supported THEN
        NULL;
END
$$;

-- Without a key, a publication that replicates deletes (audit.purge) needs the whole row;
-- each partition is set the same way when it is made (audit.setup_events_partition).
ALTER TABLE audit.events REPLICA IDENTITY FULL;

COMMENT ON TABLE audit.events IS
    'Append-only audit log: one row per captured change or application event.';

-- Whether this database's log is live: set for good by the first event the extension writes
-- (capture or a recorded event, extension/src/event_store.rs). SQL may add rows to
-- audit.events only while it is not: that is a restore, which loads the log's rows by COPY
-- and writes no event (a restored table's capture triggers come after its data).
-- Deliberately not in pg_dump's data, so a restore starts with a log that is not live yet.
CREATE TABLE audit.log_state (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    live      boolean NOT NULL DEFAULT false
);
INSERT INTO audit.log_state DEFAULT VALUES;

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
    column_attnums  jsonb       NOT NULL DEFAULT '{}',
    -- The column that names a row's organization (audit.events.tenant); NULL: the table has
    -- none, and its events take the transaction's.
    tenant_column   text
);

-- Durable cursors of change-stream consumers: the last (txid, id) each one has safely
-- delivered. Written only through the functions of extension/sql/stream.sql, for the role
-- that owns the cursor (before 0.3.0 no owner was kept: such a cursor is claimed by the
-- first role that uses it).
CREATE TABLE audit.consumers (
    name         text        PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9_.:-]{1,100}$'),
    last_txid    xid8        NOT NULL DEFAULT '0',
    last_id      bigint      NOT NULL DEFAULT 0,
    delivered    bigint      NOT NULL DEFAULT 0,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    updated_by   text        NOT NULL DEFAULT session_user,
    owner        regrole
);

-- pg_dump keeps the audit data and the settings (the extension's own objects are recreated
-- by CREATE EXTENSION on restore).
SELECT pg_catalog.pg_extension_config_dump('audit.events', '');
SELECT pg_catalog.pg_extension_config_dump('audit.events_default', '');
SELECT pg_catalog.pg_extension_config_dump('audit.events_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('audit.tracked_tables', '');
SELECT pg_catalog.pg_extension_config_dump('audit.consumers', '');
