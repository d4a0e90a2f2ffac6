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

-- A renamed column keeps its role in the settings. ALTER TABLE ... RENAME COLUMN reports the
-- column by table oid and attribute number; the one settings name that no longer exists on
-- the table is its old name.
CREATE FUNCTION audit.on_ddl_command_end() RETURNS event_trigger
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    command  record;
    settings audit.tracked_tables;
    new_name text;
    stale    text[];
BEGIN
    FOR command IN
        SELECT objid, objsubid
          FROM pg_event_trigger_ddl_commands()
         WHERE object_type = 'table column' AND objsubid > 0
    LOOP
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
    END LOOP;
END
$$;

CREATE EVENT TRIGGER audit_trail_ddl_command_end ON ddl_command_end
    WHEN TAG IN ('ALTER TABLE')
    EXECUTE FUNCTION audit.on_ddl_command_end();

-- A dropped table leaves the settings; a dropped ignored or redacted column leaves its list;
-- dropping a subject column is refused, since later events could no longer name their subject.
CREATE FUNCTION audit.on_sql_drop() RETURNS event_trigger
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    dropped record;
    column_name text;
BEGIN
    -- DROP EXTENSION drops the settings table too; then there is nothing to keep in step.
    IF to_regclass('audit.tracked_tables') IS NULL THEN
        RETURN;
    END IF;
    FOR dropped IN
        SELECT objid, objsubid, object_type, address_names
          FROM pg_event_trigger_dropped_objects()
         WHERE object_type IN ('table', 'table column')
    LOOP
        IF dropped.object_type = 'table' THEN
            DELETE FROM audit.tracked_tables WHERE relid::oid = dropped.objid;
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
