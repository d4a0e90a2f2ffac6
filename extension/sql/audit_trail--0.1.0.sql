-- audit_trail 0.1.0: the install script of version 0.1.0 (main at commit d244036), frozen.
-- Installed beside the current version so that an existing 0.1.0 can be recreated and tested
-- (tests/e2e/upgrade.rs); ALTER EXTENSION audit_trail UPDATE goes on from it to the newest.

-- ---- extension/sql/schema.sql of 0.1.0 ----
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
    tracked_by      text        NOT NULL DEFAULT session_user
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

-- ---- extension/sql/api.sql of 0.1.0 ----
-- audit_trail: capture, attribution, retention and DDL hooks. Runs after schema.sql.

-- Capture ------------------------------------------------------------------------------------

-- Installed by audit.track on each tracked table; not callable directly.
CREATE FUNCTION audit.capture() RETURNS trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'audit_capture';

CREATE FUNCTION audit.track(
    target         regclass,
    entity         text,
    subject_column name   DEFAULT NULL,
    ignore_columns name[] DEFAULT '{}',
    redact_columns name[] DEFAULT '{}'
) RETURNS void
    LANGUAGE c AS 'MODULE_PATHNAME', 'audit_track';
COMMENT ON FUNCTION audit.track(regclass, text, name, name[], name[]) IS
    'Start (or re-configure) capture of a table''s changes as events about entity.';

CREATE FUNCTION audit.untrack(target regclass) RETURNS void
    LANGUAGE c AS 'MODULE_PATHNAME', 'audit_untrack';

CREATE VIEW audit.tracked AS
SELECT relid           AS table_name,
       entity,
       subject_columns,
       ignore_columns,
       redact_columns,
       tracked_at,
       tracked_by
  FROM audit.tracked_tables;

-- Attribution and application events --------------------------------------------------------

-- SET LOCAL helper: the settings vanish at commit or rollback, so a pooled connection never
-- carries one request's actor into the next. NULL source or context resets them.
CREATE FUNCTION audit.set_actor(actor text, source text DEFAULT NULL, context jsonb DEFAULT NULL)
    RETURNS void
    LANGUAGE sql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT set_config('audit.actor', coalesce(actor, ''), true),
           set_config('audit.source', coalesce(source, ''), true),
           set_config('audit.context', coalesce(context::text, ''), true);
$$;

CREATE FUNCTION audit.log_event(
    entity     text,
    action     text,
    subject_id text  DEFAULT NULL,
    details    jsonb DEFAULT NULL
) RETURNS bigint
    LANGUAGE c AS 'MODULE_PATHNAME', 'audit_log_event';

-- Append-only storage and retention ---------------------------------------------------------

CREATE FUNCTION audit.refuse_change() RETURNS trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'audit_refuse_change';

CREATE TRIGGER events_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON audit.events
    FOR EACH STATEMENT EXECUTE FUNCTION audit.refuse_change();
-- ALWAYS: fires even under session_replication_role = replica.
ALTER TABLE audit.events ENABLE ALWAYS TRIGGER events_append_only;

CREATE FUNCTION audit.purge(older_than timestamptz) RETURNS bigint
    LANGUAGE c STRICT AS 'MODULE_PATHNAME', 'audit_purge';
COMMENT ON FUNCTION audit.purge(timestamptz) IS
    'Delete events that occurred before older_than; records an audit_log/purge event.';

-- Keeping settings in step with DDL ---------------------------------------------------------

-- True while audit.track/untrack create or drop capture triggers; set only by their code.
CREATE FUNCTION audit.capture_change_in_progress() RETURNS boolean
    LANGUAGE c AS 'MODULE_PATHNAME', 'audit_capture_change_in_progress';

-- After ALTER TABLE, CREATE TABLE, CREATE/ALTER TRIGGER:
-- * a renamed column keeps its role in the settings. RENAME COLUMN reports the column by
--   table oid and attribute number; the one settings name no longer on the table is its old
--   name;
-- * capture cannot be switched off by hand: disabling, or replacing, a capture trigger of a
--   tracked table is refused (audit.untrack stops capture, and is recorded);
-- * a new partition of a tracked table (CREATE TABLE ... PARTITION OF, ATTACH PARTITION) is
--   tracked with its parent's settings, so writes made straight to it are captured.
CREATE FUNCTION audit.on_ddl_command_end() RETURNS event_trigger
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    command  record;
    settings audit.tracked_tables;
    member   record;
    new_name text;
    stale    text[];
BEGIN
    IF audit.capture_change_in_progress() THEN
        RETURN;
    END IF;
    FOR command IN
        SELECT objid, objsubid, object_type FROM pg_event_trigger_ddl_commands()
    LOOP
        IF command.object_type = 'table column' AND command.objsubid > 0 THEN
            SELECT * INTO settings FROM audit.tracked_tables WHERE relid = command.objid;
            CONTINUE WHEN NOT FOUND;
            SELECT attname INTO new_name
              FROM pg_attribute
             WHERE attrelid = command.objid AND attnum = command.objsubid;
            SELECT array_agg(DISTINCT n) INTO stale
              FROM unnest(settings.subject_columns || settings.ignore_columns
                          || settings.redact_columns) AS n
             WHERE NOT EXISTS (SELECT FROM pg_attribute a
                                WHERE a.attrelid = command.objid AND a.attname = n
                                  AND a.attnum > 0 AND NOT a.attisdropped);
            CONTINUE WHEN stale IS NULL OR cardinality(stale) <> 1;
            UPDATE audit.tracked_tables
               SET subject_columns = array_replace(subject_columns, stale[1], new_name),
                   ignore_columns  = array_replace(ignore_columns, stale[1], new_name),
                   redact_columns  = array_replace(redact_columns, stale[1], new_name)
             WHERE relid = command.objid;
        ELSIF command.object_type IN ('table', 'trigger') THEN
            -- Every tracked table touched by the command must still have its four capture
            -- triggers, by name, enabled, calling audit.capture(), and no other trigger may
            -- call it (a renamed capture trigger could otherwise be disabled or dropped).
            IF EXISTS (
                SELECT FROM audit.tracked_tables s
                 WHERE s.relid::oid IN (SELECT command.objid
                                        UNION ALL
                                        SELECT tgrelid FROM pg_trigger WHERE oid = command.objid)
                   AND ((SELECT count(*) FROM pg_trigger t
                          WHERE t.tgrelid = s.relid
                            AND t.tgname IN ('audit_trail_insert', 'audit_trail_update',
                                             'audit_trail_delete', 'audit_trail_truncate')
                            AND t.tgenabled = 'O'
                            AND t.tgfoid = 'audit.capture()'::regprocedure) <> 4
                        OR EXISTS (SELECT FROM pg_trigger t
                                    WHERE t.tgrelid = s.relid
                                      AND t.tgfoid = 'audit.capture()'::regprocedure
                                      AND t.tgname NOT IN ('audit_trail_insert', 'audit_trail_update',
                                                           'audit_trail_delete', 'audit_trail_truncate')))
            ) THEN
                RAISE EXCEPTION 'the audit capture triggers of a tracked table cannot be disabled, renamed or replaced'
                    USING ERRCODE = 'insufficient_privilege',
                          HINT = 'audit.untrack() stops capture, and records that it did.';
            END IF;
            CONTINUE WHEN command.object_type <> 'table';
            -- The table itself (CREATE TABLE ... PARTITION OF) or, for ATTACH PARTITION
            -- (reported as ALTER TABLE of the parent), its partitions.
            FOR member IN
                SELECT i.inhrelid AS partition, s.entity, s.subject_columns, s.ignore_columns,
                       s.redact_columns
                  FROM pg_inherits i
                  JOIN audit.tracked_tables s ON s.relid = i.inhparent
                  JOIN pg_class c ON c.oid = i.inhrelid
                 WHERE (i.inhrelid = command.objid OR i.inhparent = command.objid)
                   AND c.relispartition
                   AND NOT EXISTS (SELECT FROM audit.tracked_tables t WHERE t.relid = i.inhrelid)
            LOOP
                PERFORM audit.track(member.partition::regclass, member.entity,
                                    CASE WHEN cardinality(member.subject_columns) = 1
                                         THEN member.subject_columns[1] END,
                                    member.ignore_columns::name[], member.redact_columns::name[]);
            END LOOP;
        END IF;
    END LOOP;
END
$$;

CREATE EVENT TRIGGER audit_trail_ddl_command_end ON ddl_command_end
    WHEN TAG IN ('ALTER TABLE', 'CREATE TABLE', 'CREATE TRIGGER', 'ALTER TRIGGER')
    EXECUTE FUNCTION audit.on_ddl_command_end();

-- Records that a tracked table was dropped; for the event trigger below only.
CREATE FUNCTION audit.record_table_dropped(table_name text) RETURNS bigint
    LANGUAGE c AS 'MODULE_PATHNAME', 'audit_record_table_dropped';

-- A dropped table leaves the settings, and its drop is recorded; a dropped ignored or
-- redacted column leaves its list; dropping a subject column is refused, since later events
-- could no longer name their subject; dropping a capture trigger by hand is refused.
CREATE FUNCTION audit.on_sql_drop() RETURNS event_trigger
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    dropped     record;
    column_name text;
    target      regclass;
BEGIN
    -- DROP EXTENSION drops the settings table too; then there is nothing to keep in step.
    IF to_regclass('audit.tracked_tables') IS NULL THEN
        RETURN;
    END IF;
    FOR dropped IN
        SELECT objid, objsubid, object_type, address_names
          FROM pg_event_trigger_dropped_objects()
         WHERE object_type IN ('table', 'table column', 'trigger')
    LOOP
        IF dropped.object_type = 'table' THEN
            IF EXISTS (SELECT FROM audit.tracked_tables WHERE relid::oid = dropped.objid) THEN
                DELETE FROM audit.tracked_tables WHERE relid::oid = dropped.objid;
                PERFORM audit.record_table_dropped(format('%I.%I', dropped.address_names[1],
                                                          dropped.address_names[2]));
            END IF;
            CONTINUE;
        END IF;
        IF dropped.object_type = 'trigger' THEN
            CONTINUE WHEN audit.capture_change_in_progress()
                       OR dropped.address_names[3] NOT LIKE 'audit\_trail\_%';
            -- NULL when the table itself is being dropped.
            target := to_regclass(format('%I.%I', dropped.address_names[1],
                                         dropped.address_names[2]));
            IF target IS NOT NULL
               AND EXISTS (SELECT FROM audit.tracked_tables WHERE relid = target) THEN
                RAISE EXCEPTION 'cannot drop trigger % of %: it captures changes for the audit log',
                    dropped.address_names[3], target
                    USING ERRCODE = 'insufficient_privilege',
                          HINT = 'audit.untrack() stops capture, and records that it did.';
            END IF;
            CONTINUE;
        END IF;
        column_name := dropped.address_names[cardinality(dropped.address_names)];
        IF EXISTS (SELECT FROM audit.tracked_tables
                    WHERE relid::oid = dropped.objid
                      AND column_name = ANY (subject_columns)) THEN
            RAISE EXCEPTION 'cannot drop column "%" of %: audit events name their subject by it',
                column_name, dropped.objid::regclass
                USING ERRCODE = 'dependent_objects_still_exist',
                      HINT = 'Run audit.track on the table with another subject_column first.';
        END IF;
        UPDATE audit.tracked_tables
           SET ignore_columns = array_remove(ignore_columns, column_name),
               redact_columns = array_remove(redact_columns, column_name)
         WHERE relid::oid = dropped.objid;
    END LOOP;
END
$$;

CREATE EVENT TRIGGER audit_trail_sql_drop ON sql_drop
    EXECUTE FUNCTION audit.on_sql_drop();

-- ---- extension/sql/report.sql of 0.1.0 ----
-- audit_trail: the report views admins read. Runs after api.sql.

-- Every event, with a one-line summary and whole row images. Order by
-- occurred_at DESC, id DESC for newest first.
CREATE VIEW audit.report AS
WITH link_tables AS MATERIALIZED (
    -- Tables tracked under another entity's subject (group_members under its group, a
    -- user's permission rows under the user): their events read "added ... to" and
    -- "removed ... from", naming the rest of the row's primary key.
    SELECT pg_catalog.format('%I.%I', n.nspname, c.relname) AS table_name,
           ARRAY(
               SELECT a.attname::text
                 FROM pg_catalog.pg_index AS i
                CROSS JOIN LATERAL pg_catalog.unnest(i.indkey) WITH ORDINALITY AS k (attnum, n)
                 JOIN pg_catalog.pg_attribute AS a
                   ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                WHERE i.indrelid = t.relid
                  AND i.indisprimary
                  AND a.attname::text <> ALL (t.subject_columns)
                ORDER BY k.n
           ) AS member_columns
      FROM audit.tracked_tables AS t
      JOIN pg_catalog.pg_class AS c ON c.oid = t.relid
      JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
)
SELECT e.id,
       e.occurred_at,
       e.actor,
       e.db_user,
       e.source,
       e.client_addr,
       e.application_name,
       e.entity,
       e.action,
       e.table_name,
       e.subject_id,
       e.changed_fields,
       CASE
           WHEN e.action = 'create' AND m.member IS NOT NULL
               THEN pg_catalog.format('%s added %s to %s %s', e.actor, m.member, e.entity, e.subject_id)
           WHEN e.action = 'create'
               THEN pg_catalog.format('%s created %s %s', e.actor, e.entity, e.subject_id)
           WHEN e.action = 'delete' AND m.member IS NOT NULL
               THEN pg_catalog.format('%s removed %s from %s %s', e.actor, m.member, e.entity, e.subject_id)
           WHEN e.action = 'delete'
               THEN pg_catalog.format('%s deleted %s %s', e.actor, e.entity, e.subject_id)
           WHEN e.action = 'update' AND e.entity = 'user'
                AND e.changed_fields OPERATOR(pg_catalog.&&) '{role,roles,permission,permissions}'::text[]
               THEN pg_catalog.format('%s changed the role of user %s: %s', e.actor, e.subject_id,
                                      pg_catalog.array_to_string(e.changed_fields, ', '))
           WHEN e.action = 'update'
               THEN pg_catalog.format('%s updated %s %s: %s', e.actor, e.entity, e.subject_id,
                                      pg_catalog.array_to_string(e.changed_fields, ', '))
           WHEN e.action = 'truncate'
               THEN pg_catalog.format('%s emptied %s (every %s in it deleted)', e.actor, e.table_name, e.entity)
           WHEN e.action = 'export' AND e.entity = 'audit_log'
               THEN pg_catalog.format('%s exported %s audit events', e.actor,
                                      coalesce(e.details ->> 'rows', 'the'))
           WHEN e.action = 'export'
               THEN pg_catalog.format('%s exported %s %ss', e.actor, coalesce(e.details ->> 'rows', 'the'),
                                      pg_catalog.regexp_replace(e.entity, 'y$', 'ie'))
           WHEN e.action = 'purge'
               THEN pg_catalog.format('%s purged %s audit events older than %s', e.actor,
                                      e.details ->> 'rows', e.details ->> 'before')
           ELSE pg_catalog.format('%s: %s %s%s', e.actor, e.action, e.entity,
                                  coalesce(' ' || e.subject_id, ''))
       END
       || CASE WHEN e.source <> 'manual' THEN pg_catalog.format(' (%s)', e.source) ELSE '' END
           AS summary,
       CASE e.action
           WHEN 'update' THEN e.new_data || e.old_data
           WHEN 'delete' THEN e.old_data
       END AS before,
       CASE WHEN e.action IN ('create', 'update') THEN e.new_data END AS after,
       e.old_data,
       e.new_data,
       e.context,
       e.details,
       e.txid
  FROM audit.events AS e
  LEFT JOIN link_tables AS l ON l.table_name = e.table_name
  LEFT JOIN LATERAL (
      SELECT pg_catalog.string_agg(
                 pg_catalog.format('%s %s', col,
                     coalesce(CASE e.action WHEN 'delete' THEN e.old_data ELSE e.new_data END ->> col,
                              'null')),
                 ', ') AS member
        FROM pg_catalog.unnest(l.member_columns) AS col
       WHERE e.action IN ('create', 'delete')
  ) AS m ON true;

COMMENT ON VIEW audit.report IS
    'Every audit event with a readable summary; before/after are whole row images.';

-- The report restricted to one category of the Audit Log Report.
CREATE VIEW audit.contact_activity AS SELECT * FROM audit.report WHERE entity = 'contact';
CREATE VIEW audit.group_activity AS SELECT * FROM audit.report WHERE entity = 'group';
CREATE VIEW audit.user_activity AS SELECT * FROM audit.report WHERE entity = 'user';
-- Contacts exported, audit log exported: every export, whatever was exported.
CREATE VIEW audit.export_activity AS SELECT * FROM audit.report WHERE action = 'export';

-- ---- extension/sql/privileges.sql of 0.1.0 ----
-- audit_trail: privileges. Runs last (finalize), once every object exists.

-- Privileges ---------------------------------------------------------------------------------

-- Everyone may call the attribution helpers (hence USAGE on the schema); nobody but
-- audit_admin may read anything, and nobody may write the tables except through capture.
REVOKE ALL ON SCHEMA audit FROM PUBLIC;
GRANT USAGE ON SCHEMA audit TO PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA audit FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA audit FROM PUBLIC;
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA audit FROM PUBLIC;
GRANT EXECUTE ON FUNCTION audit.set_actor(text, text, jsonb) TO PUBLIC;
GRANT EXECUTE ON FUNCTION audit.log_event(text, text, text, jsonb) TO PUBLIC;

GRANT USAGE ON SCHEMA audit TO audit_admin;
GRANT SELECT ON ALL TABLES IN SCHEMA audit TO audit_admin;
-- Followers keep their own cursors.
GRANT INSERT, UPDATE, DELETE ON audit.consumers TO audit_admin;
