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
