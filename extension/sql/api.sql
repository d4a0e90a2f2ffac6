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
    redact_columns name[] DEFAULT '{}',
    tenant_column  name   DEFAULT NULL
) RETURNS void
    LANGUAGE c AS 'MODULE_PATHNAME', 'audit_track';
COMMENT ON FUNCTION audit.track(regclass, text, name, name[], name[], name) IS
    'Start (or re-configure) capture of a table''s changes as events about entity.';

CREATE FUNCTION audit.untrack(target regclass) RETURNS void
    LANGUAGE c AS 'MODULE_PATHNAME', 'audit_untrack';

-- capturing: all four capture triggers are in place and enabled. False only where they were
-- never created: after a restore that stopped before its post-data section, or one that
-- left out triggers; audit.track() on the table again puts them back.
CREATE VIEW audit.tracked AS
SELECT s.relid           AS table_name,
       s.entity,
       s.subject_columns,
       s.ignore_columns,
       s.redact_columns,
       s.tenant_column,
       s.tracked_at,
       s.tracked_by,
       (SELECT count(*) = 4
          FROM pg_catalog.pg_trigger AS t
         WHERE t.tgrelid = s.relid
           AND t.tgname IN ('audit_trail_insert', 'audit_trail_update',
                            'audit_trail_delete', 'audit_trail_truncate')
           AND t.tgenabled = 'O'
           AND t.tgfoid = 'audit.capture()'::regprocedure) AS capturing
  FROM audit.tracked_tables AS s;

-- Attribution and application events --------------------------------------------------------

-- The application names who is acting, for the rest of its transaction (extension/src/
-- set_actor.rs): kept where only this function writes, so code the writer did not run (a
-- table owner's trigger) cannot change whom an event names, and set as SET LOCAL too. Undone
-- at commit or rollback (and by a rolled-back savepoint), so a pooled connection never
-- carries one request's actor into the next. NULL source or context resets them. tenant is
-- the organization the transaction acts for: events of tables without a tenant_column take
-- it, and a change to another organization's row is a cross-organization write. Refused
-- inside a trigger.
CREATE FUNCTION audit.set_actor(actor text, source text DEFAULT NULL, context jsonb DEFAULT NULL,
                                tenant text DEFAULT NULL)
    RETURNS void
    LANGUAGE c
    SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'audit_set_actor';

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

-- No row enters audit.events through SQL once the log is live (audit.log_state: the extension
-- has written an event, extension/src/event_store.rs), whatever partition the rows would land
-- in: INSERT
-- or COPY could only forge or duplicate events (capture writes without SQL, and fires no
-- statement trigger). Before, it is a restore of a backup, which loads each partition by
-- itself, into an empty one; a data-only restore into a database that already has a log
-- fails loudly instead of mixing two logs.
CREATE FUNCTION audit.refuse_insert() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    filled boolean;
BEGIN
    -- A missing row (deleted behind the guards' back) counts as live: the guard fails closed.
    IF coalesce((SELECT s.live FROM audit.log_state AS s), true) THEN
        RAISE EXCEPTION 'the audit log is live: rows cannot be added to %.% by INSERT or COPY',
            TG_TABLE_SCHEMA, TG_TABLE_NAME
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Restore a backup of the audit log into a new database, where audit.events starts empty.';
    END IF;
    -- On a partition (pg_restore loads each one by itself), that partition must be empty.
    EXECUTE format('SELECT EXISTS (SELECT FROM %I.%I)', TG_TABLE_SCHEMA, TG_TABLE_NAME) INTO filled;
    IF filled THEN
        RAISE EXCEPTION '%.% already holds events: rows cannot be added to it by INSERT or COPY',
            TG_TABLE_SCHEMA, TG_TABLE_NAME
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Restore a backup of the audit log into a new database, where audit.events starts empty.';
    END IF;
    RETURN NULL;
END
$$;

-- Marks the log live, for good (audit.log_state); a no-op once it is.
CREATE FUNCTION audit.mark_log_live() RETURNS void
    LANGUAGE sql
    SET search_path = pg_catalog, pg_temp
AS $$
    UPDATE audit.log_state SET live = true WHERE NOT live;
$$;

-- audit.log_state only ever goes from not live to live.
CREATE FUNCTION audit.refuse_log_state_change() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF TG_OP <> 'UPDATE' OR (OLD.live AND NOT NEW.live) OR NEW.singleton IS DISTINCT FROM OLD.singleton THEN
        RAISE EXCEPTION 'audit.log_state only goes from not live to live'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER log_state_one_way
    BEFORE UPDATE OR DELETE ON audit.log_state
    FOR EACH ROW EXECUTE FUNCTION audit.refuse_log_state_change();
ALTER TABLE audit.log_state ENABLE ALWAYS TRIGGER log_state_one_way;
CREATE TRIGGER log_state_no_truncate
    BEFORE TRUNCATE ON audit.log_state
    FOR EACH STATEMENT EXECUTE FUNCTION audit.refuse_log_state_change();
ALTER TABLE audit.log_state ENABLE ALWAYS TRIGGER log_state_no_truncate;

CREATE TRIGGER events_no_sql_insert
    BEFORE INSERT ON audit.events
    FOR EACH STATEMENT EXECUTE FUNCTION audit.refuse_insert();
ALTER TABLE audit.events ENABLE ALWAYS TRIGGER events_no_sql_insert;

CREATE FUNCTION audit.purge(older_than timestamptz) RETURNS bigint
    LANGUAGE c STRICT AS 'MODULE_PATHNAME', 'audit_purge';
COMMENT ON FUNCTION audit.purge(timestamptz) IS
    'Delete events that occurred before older_than; records an audit_log/purge event.';

-- Keeping settings in step with DDL ---------------------------------------------------------

-- True while audit.track/untrack create or drop capture triggers; set only by their code.
CREATE FUNCTION audit.capture_change_in_progress() RETURNS boolean
    LANGUAGE c AS 'MODULE_PATHNAME', 'audit_capture_change_in_progress';

-- True only while audit.maintain or audit.purge run the maintenance functions
-- (extension/sql/maintenance.sql): the hooks let them, and nothing else, create, fill, attach
-- and drop partitions of audit.events.
CREATE FUNCTION audit.maintenance_in_progress() RETURNS boolean
    LANGUAGE c AS 'MODULE_PATHNAME', 'audit_maintenance_in_progress';

-- The name of the table a reported DDL command attaches as a partition, when that is all
-- it does (extension/src/ddl_command.rs).
CREATE FUNCTION audit.ddl_attached_partition(command pg_ddl_command) RETURNS text
    LANGUAGE c STRICT AS 'MODULE_PATHNAME', 'audit_ddl_attached_partition';

-- Records an event of the extension's own (a tracked table altered, renamed or dropped); for
-- the event triggers below only (PUBLIC may not call it, and audit.log_event refuses these
-- actions).
CREATE FUNCTION audit.record_ddl_event(entity text, action text, table_name text, details jsonb)
    RETURNS bigint
    LANGUAGE c AS 'MODULE_PATHNAME', 'audit_record_ddl_event';

-- Whether a reported DDL command can change a table's rows or shape (extension/src/ddl_command.rs).
CREATE FUNCTION audit.ddl_changes_table(command pg_ddl_command) RETURNS boolean
    LANGUAGE c STRICT AS 'MODULE_PATHNAME', 'audit_ddl_changes_table';

-- The checks and bookkeeping of audit.on_ddl_command_end, in the order it runs them. They
-- run as its owner, called by it alone (PUBLIC may not call them), and read the commands
-- of the statement it fires for (pg_event_trigger_ddl_commands).

CREATE FUNCTION audit.ddl_refuse_log_table_changes() RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    offender record;
BEGIN
    -- The log's own tables keep their shape and their guards: no ALTER TABLE (no
    -- disabling their append-only triggers, no column changes, no partition detached) and no
    -- trigger changes on them outside the extension's own scripts and audit.maintain(), for
    -- every role, superusers included. (A superuser can still disable this event trigger
    -- first: docs/integrity.md says how the seals catch what follows.) What a restore runs
    -- is let through: attaching an empty table as a partition (its rows are loaded after),
    -- and a partition's guard triggers, which only add protection.
    SELECT d.command_tag, d.object_identity INTO offender
      FROM pg_event_trigger_ddl_commands() AS d
     WHERE NOT d.in_extension
       AND CASE d.classid
               WHEN 'pg_class'::regclass THEN d.objid
               WHEN 'pg_trigger'::regclass THEN (SELECT t.tgrelid FROM pg_trigger AS t
                                                  WHERE t.oid = d.objid)
           END IN (to_regclass('audit.events'), to_regclass('audit.seals'),
                   to_regclass('audit.seal_keys'), to_regclass('audit.archives'),
                   to_regclass('audit.retention_gaps'), to_regclass('audit.log_state'),
                   to_regclass('audit.carried_events'), to_regclass('audit.consumers'),
                   to_regclass('audit.legal_holds'), to_regclass('audit.tracked_tables'),
                   to_regclass('audit.storage_policy'), to_regclass('audit.event_summary'),
                   to_regclass('audit.kind_hours'), to_regclass('audit.actor_days'),
                   to_regclass('audit.summary_state'))
       AND NOT (d.classid = 'pg_class'::regclass
                AND d.objid IN (to_regclass('audit.events'), to_regclass('audit.event_summary'),
                                to_regclass('audit.kind_hours'), to_regclass('audit.actor_days'))
                AND audit.ddl_attached_partition(d.command) IS NOT NULL)
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION '% of % is refused: the audit log''s own tables cannot be altered',
            offender.command_tag, offender.object_identity
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'ALTER EXTENSION audit_trail UPDATE changes them; audit.maintain() manages partitions.';
    END IF;
    -- No rows arrive by attaching a filled table (every partition of that name is checked:
    -- the statement's schema is not at hand).
    SELECT pg_catalog.format('attaching %s to audit.events', i.inhrelid::regclass) AS what
      INTO offender
      FROM pg_event_trigger_ddl_commands() AS d
      JOIN pg_inherits AS i ON i.inhparent = 'audit.events'::regclass
      JOIN pg_class AS c ON c.oid = i.inhrelid
     WHERE NOT d.in_extension
       AND d.classid = 'pg_class'::regclass AND d.objid = 'audit.events'::regclass
       AND c.relname = audit.ddl_attached_partition(d.command)
       AND EXISTS (SELECT FROM audit.events AS e WHERE e.tableoid = i.inhrelid)
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION '% is refused: it holds rows, which would enter the log without capture',
            offender.what
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'audit.maintain() manages the partitions of audit.events.';
    END IF;
END
$$;

CREATE FUNCTION audit.ddl_refuse_guards_off() RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    offender record;
BEGIN
    -- Partitions: no guard switched off, no other trigger (one could rewrite events as
    -- capture writes them).
    SELECT t.relid::regclass AS partition INTO offender
      FROM pg_partition_tree('audit.events') AS t
      JOIN pg_trigger AS g ON g.tgrelid = t.relid
     WHERE t.relid <> 'audit.events'::regclass
       AND g.tgparentid = 0 AND NOT g.tgisinternal
       AND (g.tgfoid NOT IN ('audit.refuse_change()'::regprocedure,
                             'audit.refuse_insert()'::regprocedure)
            OR g.tgenabled IN ('D', 'R'))
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'triggers on partition % of audit.events are refused: only its guards may be there, and none disabled',
            offender.partition
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'audit.maintain() manages the partitions of audit.events.';
    END IF;
    -- No guard of any relation of the schema (the summaries' too) switched off, or on only
    -- for replication (ENABLE REPLICA: skipped by every ordinary session). A guard just
    -- created is enabled ORIGIN until the next command makes it ALWAYS: a restore runs those
    -- two commands one after the other. (verify holds every guard to ALWAYS.)
    SELECT pg_catalog.format('trigger %s of %s', g.tgname, g.tgrelid::regclass) AS what
      INTO offender
      FROM pg_trigger AS g JOIN pg_class AS c ON c.oid = g.tgrelid
     WHERE c.relnamespace = 'audit'::regnamespace AND NOT g.tgisinternal
       AND g.tgenabled IN ('D', 'R')
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'switching off % is refused: the audit log''s guards stay on', offender.what
            USING ERRCODE = 'insufficient_privilege';
    END IF;
END
$$;

CREATE FUNCTION audit.ddl_refuse_rules_record_triggers() RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    offender record;
    altered record;
BEGIN
    -- A tracked table keeps no rule (one could rewrite the writer's statements, or set whom
    -- they name before capture runs) and every trigger added to or changed on it is recorded,
    -- once the log is live (a restore creates the restored tables' triggers, which must not
    -- add events to the log it restores).
    SELECT s.relid, w.rulename INTO offender
      FROM pg_event_trigger_ddl_commands() AS d
      JOIN pg_rewrite AS w ON d.classid = 'pg_rewrite'::regclass AND w.oid = d.objid
      JOIN audit.tracked_tables AS s ON s.relid = w.ev_class
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'rule % on tracked table % is refused: the writer''s statements are recorded as written',
            offender.rulename, offender.relid
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF coalesce((SELECT s.live FROM audit.log_state AS s), true) THEN
        FOR altered IN
            SELECT DISTINCT s.entity, s.table_name, d.command_tag, t.tgname::text AS trigger
              FROM pg_event_trigger_ddl_commands() AS d
              JOIN pg_trigger AS t ON d.classid = 'pg_trigger'::regclass AND t.oid = d.objid
              JOIN audit.tracked_tables AS s ON s.relid = t.tgrelid
             WHERE t.tgfoid <> 'audit.capture()'::regprocedure
        LOOP
            PERFORM audit.record_ddl_event(altered.entity, 'alter', altered.table_name,
                jsonb_build_object('command', altered.command_tag, 'trigger', altered.trigger,
                                   'statement', current_query()));
        END LOOP;
    END IF;
END
$$;

CREATE FUNCTION audit.ddl_refuse_reader_views(tag text) RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    offender record;
BEGIN
    -- No command may leave the audit schema in a state that would let one reader see other
    -- rows than another, the ones verify reports (audit.schema_findings): row security and
    -- policies, rules, view options, other storage, triggers that are not guards, tables
    -- inheriting from the log's, grants on partitions or default privileges, casts between
    -- the types readers convert, subscriptions writing into it, partitions moved out of it.
    -- (An object the extension did not make is reported by verify, not refused: a restore
    -- creates partitions before it attaches them.) The extension's own scripts are let be,
    -- and so are DROPs, which report no command here and remove rather than add.
    IF EXISTS (SELECT FROM pg_event_trigger_ddl_commands())
       AND NOT EXISTS (SELECT FROM pg_event_trigger_ddl_commands() AS d WHERE d.in_extension) THEN
        SELECT f.kind, f.object, f.detail INTO offender
          FROM audit.schema_findings() AS f
         WHERE f.kind IN ('row_security', 'policy', 'rule', 'view_option', 'access_method',
                          'foreign_table', 'trigger', 'inheritance', 'privileges', 'user_cast',
                          'subscription')
            OR (f.kind = 'partition' AND f.detail LIKE '%outside the audit schema')
         LIMIT 1;
        IF FOUND THEN
            RAISE EXCEPTION '% is refused: it leaves % with %', tag, offender.object, offender.detail
                USING ERRCODE = 'insufficient_privilege',
                      HINT = 'docs/integrity.md, "What readers read", lists what the audit schema may not hold.';
        END IF;
    END IF;
END
$$;

CREATE FUNCTION audit.ddl_refuse_capture_bypass() RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    offender record;
BEGIN
    -- 1. Capture triggers intact.
    SELECT s.relid INTO offender
      FROM audit.tracked_tables AS s
      JOIN pg_trigger AS t ON t.tgrelid = s.relid
     WHERE (t.tgname IN ('audit_trail_insert', 'audit_trail_update',
                         'audit_trail_delete', 'audit_trail_truncate')
            OR t.tgfoid = 'audit.capture()'::regprocedure)
       AND (t.tgenabled <> 'O'
            OR t.tgfoid <> 'audit.capture()'::regprocedure
            OR t.tgname NOT IN ('audit_trail_insert', 'audit_trail_update',
                                'audit_trail_delete', 'audit_trail_truncate'))
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'the audit capture triggers of tracked table % cannot be disabled, renamed or replaced',
            offender.relid
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'audit.untrack() stops capture, and records that it did.';
    END IF;

    -- 2. No way around capture through another table.
    SELECT s.relid, i.inhrelid::regclass AS child, i.inhparent::regclass AS parent
      INTO offender
      FROM audit.tracked_tables AS s
      JOIN pg_inherits AS i ON s.relid::oid IN (i.inhrelid, i.inhparent)
      JOIN pg_class AS c ON c.oid = i.inhrelid
     WHERE NOT c.relispartition
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'table inheritance between % and % is refused: % is tracked, and writes made through the other table would not be captured',
            offender.child, offender.parent, offender.relid
            USING ERRCODE = 'feature_not_supported',
                  HINT = 'Use declarative partitioning; partitions of a tracked table are tracked with it.';
    END IF;
    SELECT s.relid, i.inhparent::regclass AS parent INTO offender
      FROM audit.tracked_tables AS s
      JOIN pg_inherits AS i ON i.inhrelid = s.relid
     WHERE NOT EXISTS (SELECT FROM audit.tracked_tables AS p WHERE p.relid = i.inhparent)
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'tracked table % cannot be a partition of %, which is not tracked: writes made through it would not be captured',
            offender.relid, offender.parent
            USING ERRCODE = 'feature_not_supported',
                  HINT = pg_catalog.format('Track %s first (its partitions are tracked with it).', offender.parent);
    END IF;
END
$$;

CREATE FUNCTION audit.ddl_track_new_partitions() RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    member record;
BEGIN
    -- 3. New partitions of tracked tables (at any depth: a partition tracked here is itself a
    -- tracked parent on the next pass of the loop's query).
    LOOP
        SELECT i.inhrelid AS partition, s.entity, s.subject_columns, s.ignore_columns,
               s.redact_columns, s.tenant_column
          INTO member
          FROM pg_inherits AS i
          JOIN audit.tracked_tables AS s ON s.relid = i.inhparent
          JOIN pg_class AS c ON c.oid = i.inhrelid
         WHERE c.relispartition
           AND c.relkind IN ('r', 'p')
           AND NOT EXISTS (SELECT FROM audit.tracked_tables AS t WHERE t.relid = i.inhrelid)
         LIMIT 1;
        EXIT WHEN NOT FOUND;
        PERFORM audit.track(member.partition::regclass, member.entity,
                            CASE WHEN cardinality(member.subject_columns) = 1
                                 THEN member.subject_columns[1] END,
                            member.ignore_columns::name[],
                            -- Names kept for dropped redacted columns may not exist here.
                            ARRAY(SELECT r FROM unnest(member.redact_columns) AS r
                                   WHERE EXISTS (SELECT FROM pg_attribute AS a
                                                  WHERE a.attrelid = member.partition
                                                    AND a.attname = r AND a.attnum > 0
                                                    AND NOT a.attisdropped))::name[],
                            member.tenant_column::name);
    END LOOP;
END
$$;

-- Returns what it changed in the settings, per table oid, for the alter events.
CREATE FUNCTION audit.ddl_follow_columns() RETURNS jsonb
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    entry record;
    live int2;
    new_name text;
    notes jsonb := '{}';
BEGIN
    -- 4. Settings follow their columns. Only entries out of step are visited.
    FOR entry IN
        SELECT s.relid, m.key AS name, (m.value #>> '{}')::int2 AS attnum
          FROM audit.tracked_tables AS s
         CROSS JOIN LATERAL jsonb_each(s.column_attnums) AS m
         WHERE NOT EXISTS (SELECT FROM pg_attribute AS a
                            WHERE a.attrelid = s.relid AND a.attname = m.key
                              AND a.attnum = (m.value #>> '{}')::int2 AND NOT a.attisdropped)
    LOOP
        -- The name is on a live column (a restore renumbered the columns, or a redacted
        -- column was re-added): the name is the truth.
        SELECT a.attnum INTO live
          FROM pg_attribute AS a
         WHERE a.attrelid = entry.relid AND a.attname = entry.name
           AND a.attnum > 0 AND NOT a.attisdropped;
        IF FOUND THEN
            UPDATE audit.tracked_tables
               SET column_attnums = column_attnums || jsonb_build_object(entry.name, live)
             WHERE relid = entry.relid;
            CONTINUE;
        END IF;
        CONTINUE WHEN entry.attnum IS NULL;   -- a redacted name waiting for its column
        SELECT a.attname INTO new_name
          FROM pg_attribute AS a
         WHERE a.attrelid = entry.relid AND a.attnum = entry.attnum AND NOT a.attisdropped;
        IF FOUND THEN
            UPDATE audit.tracked_tables
               SET subject_columns = array_replace(subject_columns, entry.name, new_name),
                   ignore_columns  = array_replace(ignore_columns, entry.name, new_name),
                   redact_columns  = array_replace(redact_columns, entry.name, new_name),
                   tenant_column   = CASE WHEN tenant_column = entry.name THEN new_name
                                          ELSE tenant_column END,
                   column_attnums  = (column_attnums - entry.name)
                                     || jsonb_build_object(new_name, entry.attnum)
             WHERE relid = entry.relid;
            notes := jsonb_set(notes, ARRAY[entry.relid::oid::text],
                               coalesce(notes -> (entry.relid::oid::text), '[]')
                               || jsonb_build_object('column_renamed',
                                                     jsonb_build_array(entry.name, new_name)));
        ELSE
            UPDATE audit.tracked_tables
               SET ignore_columns = array_remove(ignore_columns, entry.name),
                   column_attnums = CASE WHEN entry.name = ANY (redact_columns)
                                         THEN column_attnums || jsonb_build_object(entry.name, NULL)
                                         ELSE column_attnums - entry.name END
             WHERE relid = entry.relid;
        END IF;
    END LOOP;
    RETURN notes;
END
$$;

CREATE FUNCTION audit.ddl_record_changes(notes jsonb) RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    altered record;
BEGIN
    -- 5. Record what changed tracked tables: each command's table (a column, or the row type
    -- of the table, may be what the command reports), once per table.
    FOR altered IN
        SELECT DISTINCT ON (s.relid) s.relid, s.entity, s.table_name AS old_name,
               pg_catalog.format('%I.%I', n.nspname, c.relname) AS new_name, d.command_tag
          FROM pg_event_trigger_ddl_commands() AS d
          JOIN audit.tracked_tables AS s
            ON CASE WHEN d.classid = 'pg_class'::regclass THEN s.relid::oid = d.objid
                    -- A type: the table's own row type, or the type of one of its columns
                    -- (directly, as array elements, or under a domain): renaming an enum
                    -- value changes what every row holding it reads.
                    ELSE s.relid::oid = (SELECT t.typrelid FROM pg_type AS t WHERE t.oid = d.objid)
                         OR EXISTS (SELECT FROM pg_attribute AS a
                                      JOIN pg_type AS t ON t.oid = a.atttypid
                                     WHERE a.attrelid = s.relid AND a.attnum > 0
                                       AND NOT a.attisdropped
                                       AND d.objid IN (t.oid, t.typelem, t.typbasetype)) END
          JOIN pg_class AS c ON c.oid = s.relid
          JOIN pg_namespace AS n ON n.oid = c.relnamespace
         WHERE d.classid IN ('pg_class'::regclass, 'pg_type'::regclass)
           AND audit.ddl_changes_table(d.command)
         ORDER BY s.relid
    LOOP
        IF altered.old_name <> altered.new_name THEN
            UPDATE audit.tracked_tables SET table_name = altered.new_name
             WHERE relid = altered.relid;
            notes := jsonb_set(notes, ARRAY[altered.relid::oid::text],
                               coalesce(notes -> (altered.relid::oid::text), '[]')
                               || jsonb_build_object('table_renamed',
                                                     jsonb_build_array(altered.old_name,
                                                                       altered.new_name)));
        END IF;
        PERFORM audit.record_ddl_event(
            altered.entity, 'alter', altered.new_name,
            jsonb_strip_nulls(jsonb_build_object(
                'command', altered.command_tag,
                'statement', current_query(),
                'settings', notes -> (altered.relid::oid::text))));
        notes := notes - (altered.relid::oid::text);
    END LOOP;
    -- Settings changed by a command that reported no tracked table (e.g. a rename made on a
    -- partitioned table and carried to its partitions).
    FOR altered IN
        SELECT s.relid, s.entity, s.table_name, m.value AS settings
          FROM jsonb_each(notes) AS m
          JOIN audit.tracked_tables AS s ON s.relid::oid = m.key::oid
    LOOP
        PERFORM audit.record_ddl_event(
            altered.entity, 'alter', altered.table_name,
            jsonb_build_object('statement', current_query(), 'settings', altered.settings));
    END LOOP;
END
$$;

-- After every DDL command (no tag filter: a table can be created or changed by CREATE SCHEMA,
-- ALTER VIEW, ALTER TYPE, ALTER FOREIGN TABLE, ... as well as by ALTER TABLE), whatever the
-- command was, the tracked tables are checked as a whole:
-- 1. capture cannot be switched off by hand: every capture trigger of a tracked table is
--    enabled, keeps its name and calls audit.capture(), and no other trigger calls it.
--    (Dropping one is refused by audit.on_sql_drop. A missing one is not refused here: a
--    restore creates a tracked table's triggers after its settings, one command at a time;
--    audit.tracked shows whether each table is capturing.)
-- 2. no write can reach a tracked table through a table that is not tracked: table
--    inheritance is refused on either side of a tracked table, and a tracked table may be a
--    partition only of a tracked table (statement triggers fire only for the table a
--    statement names);
-- 3. a new partition of a tracked table, however created or attached, is tracked with its
--    parent's settings, so writes made straight to it are captured;
-- 4. settings follow their columns by attribute number: a rename (by any command, and on
--    every partition) carries the column's role to its new name; a dropped ignored column
--    leaves the list; a dropped redacted column's name stays redacted, so a column re-added
--    under that name is redacted too;
-- 5. every command that can change a tracked table's rows or columns (a type change, a
--    dropped or added column, a rewrite, a rename, a move to another schema, a partition
--    attached or detached, a renamed value of an enum a column uses) is recorded as
--    an 'alter' event of the table's entity, with the statement, so data changed by DDL
--    leaves a trace. Constraints, indexes, ownership and the like are not: a restore runs
--    those after loading the data, and must not add events to the log it restores.
CREATE FUNCTION audit.on_ddl_command_end() RETURNS event_trigger
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- DROP EXTENSION drops the settings table too; then there is nothing to check.
    IF to_regclass('audit.tracked_tables') IS NULL OR audit.capture_change_in_progress()
       OR audit.maintenance_in_progress() THEN
        RETURN;
    END IF;
    -- The log's own tables and guards, then the tracked tables' rules and triggers, then what
    -- readers read: refused first, before anything is recorded or changed.
    PERFORM audit.ddl_refuse_log_table_changes();
    PERFORM audit.ddl_refuse_guards_off();
    PERFORM audit.ddl_refuse_rules_record_triggers();
    PERFORM audit.ddl_refuse_reader_views(TG_TAG);
    -- 1., 2.
    PERFORM audit.ddl_refuse_capture_bypass();
    -- 3.
    PERFORM audit.ddl_track_new_partitions();
    -- 4. and 5.
    PERFORM audit.ddl_record_changes(audit.ddl_follow_columns());
END
$$;

CREATE EVENT TRIGGER audit_trail_ddl_command_end ON ddl_command_end
    EXECUTE FUNCTION audit.on_ddl_command_end();

-- A trigger other than the log's guards dropped (for audit.on_sql_drop; names: schema, table,
-- trigger): a capture trigger only when the log itself goes, another trigger of a tracked
-- table recorded.
CREATE FUNCTION audit.ddl_trigger_dropped(names text[]) RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    target regclass;
BEGIN
    IF audit.capture_change_in_progress() THEN
        RETURN;
    END IF;
    -- NULL when the table itself is being dropped.
    target := to_regclass(format('%I.%I', names[1], names[2]));
    IF target IS NULL OR NOT EXISTS (SELECT FROM audit.tracked_tables WHERE relid = target) THEN
        RETURN;
    END IF;
    -- Another trigger of a tracked table dropped: recorded (once the log is live), as
    -- its creation is (audit.on_ddl_command_end).
    IF names[3] NOT LIKE 'audit\_trail\_%' THEN
        IF coalesce((SELECT s.live FROM audit.log_state AS s), true) THEN
            PERFORM audit.record_ddl_event(
                (SELECT t.entity FROM audit.tracked_tables AS t WHERE t.relid = target),
                'alter', target::text,
                jsonb_build_object('command', 'DROP TRIGGER',
                                   'trigger', names[3],
                                   'statement', current_query()));
        END IF;
        RETURN;
    END IF;
    -- A superuser who confirmed dropping the log (as pg_restore --clean does before it
    -- drops the extension) may drop capture triggers too; it is recorded.
    IF coalesce(current_setting('audit.allow_drop_extension', true), 'off') = 'on' THEN
        PERFORM audit.record_ddl_event('audit_log', 'untrack', target::text,
                                       jsonb_build_object('trigger', names[3],
                                                          'statement', current_query()));
        RETURN;
    END IF;
    RAISE EXCEPTION 'cannot drop trigger % of %: it captures changes for the audit log',
        names[3], target
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'audit.untrack() stops capture, and records that it did.';
END
$$;

-- A dropped table leaves the settings, and its drop is recorded; dropping a subject column
-- is refused, since later events could no longer name their subject; dropping a capture
-- trigger by hand is refused. (Ignored and redacted columns are kept in step by
-- audit.on_ddl_command_end, which runs right after.)
CREATE FUNCTION audit.on_sql_drop() RETURNS event_trigger
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    dropped     record;
    settings    audit.tracked_tables;
    column_name text;
BEGIN
    -- DROP EXTENSION drops the settings table too; then there is nothing to keep in step.
    -- audit.maintain() drops partitions of audit.events under the retention policy.
    IF to_regclass('audit.tracked_tables') IS NULL OR audit.maintenance_in_progress() THEN
        RETURN;
    END IF;
    FOR dropped IN
        SELECT objid, objsubid, object_type, address_names
          FROM pg_event_trigger_dropped_objects()
         WHERE object_type IN ('table', 'table column', 'trigger')
    LOOP
        -- A partition of audit.events (made by audit.maintain, named events_...): only
        -- retention or audit.purge drop one, and record it; a superuser who confirmed
        -- dropping the log (as pg_restore --clean does first) may too.
        IF dropped.object_type IN ('table', 'trigger')
           AND dropped.address_names[1] = 'audit'
           AND (dropped.address_names[2] LIKE 'events\_%'
                OR dropped.address_names[2] LIKE 'event\_summary\_%'
                OR dropped.address_names[2] LIKE 'kind\_hours\_%'
                OR dropped.address_names[2] LIKE 'actor\_days\_%')
           AND coalesce(current_setting('audit.allow_drop_extension', true), 'off') <> 'on' THEN
            RAISE EXCEPTION 'cannot drop %: it is part of the audit log',
                CASE dropped.object_type
                    WHEN 'table' THEN 'partition audit.' || quote_ident(dropped.address_names[2])
                    ELSE pg_catalog.format('trigger %s of audit.%s', dropped.address_names[3],
                                           dropped.address_names[2]) END
                USING ERRCODE = 'insufficient_privilege',
                      HINT = 'Old events leave through retention (audit.set_retention, audit.maintain) or audit.purge(), which record it.';
        END IF;
        IF dropped.object_type = 'table' THEN
            DELETE FROM audit.tracked_tables WHERE relid::oid = dropped.objid
                RETURNING * INTO settings;
            IF FOUND THEN
                PERFORM audit.record_ddl_event('audit_log', 'table_dropped', settings.table_name,
                                               jsonb_build_object('table', settings.table_name,
                                                                  'entity', settings.entity,
                                                                  'statement', current_query()));
            END IF;
            CONTINUE;
        END IF;
        IF dropped.object_type = 'trigger'
           AND dropped.address_names[1] = 'audit'
           AND dropped.address_names[2] IN ('events', 'seals', 'seal_keys') THEN
            RAISE EXCEPTION 'cannot drop trigger % of audit.%: it guards the audit log',
                dropped.address_names[3], dropped.address_names[2]
                USING ERRCODE = 'insufficient_privilege';
        END IF;
        IF dropped.object_type = 'trigger' THEN
            PERFORM audit.ddl_trigger_dropped(dropped.address_names);
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
        IF EXISTS (SELECT FROM audit.tracked_tables
                    WHERE relid::oid = dropped.objid AND tenant_column = column_name) THEN
            RAISE EXCEPTION 'cannot drop column "%" of %: audit events name their organization by it',
                column_name, dropped.objid::regclass
                USING ERRCODE = 'dependent_objects_still_exist',
                      HINT = 'Run audit.track on the table with another tenant_column (or none) first.';
        END IF;
    END LOOP;
END
$$;

CREATE EVENT TRIGGER audit_trail_sql_drop ON sql_drop
    EXECUTE FUNCTION audit.on_sql_drop();

-- DROP EXTENSION audit_trail (or DROP SCHEMA audit) deletes the log: refused while it
-- holds events unless the session sets audit.allow_drop_extension (extension/src/drop_guard.rs).
CREATE FUNCTION audit.on_ddl_command_start() RETURNS event_trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'audit_on_ddl_command_start';

CREATE EVENT TRIGGER audit_trail_ddl_command_start ON ddl_command_start
    WHEN TAG IN ('DROP EXTENSION', 'DROP SCHEMA')
    EXECUTE FUNCTION audit.on_ddl_command_start();

-- ALWAYS: the hooks hold under session_replication_role = replica too.
ALTER EVENT TRIGGER audit_trail_ddl_command_start ENABLE ALWAYS;
ALTER EVENT TRIGGER audit_trail_ddl_command_end ENABLE ALWAYS;
ALTER EVENT TRIGGER audit_trail_sql_drop ENABLE ALWAYS;
