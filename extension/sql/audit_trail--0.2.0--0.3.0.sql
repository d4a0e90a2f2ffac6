-- audit_trail 0.2.0 -> 0.3.0 (ALTER EXTENSION audit_trail UPDATE). Generated, do not edit:
-- scripts/upgrade_script.py 0.2.0 0.3.0 writes it from scripts/upgrade/0.2.0--0.3.0.sql (the
-- steps written by hand) and 0.3.0's definitions in extension/sql/, and `make lint` checks it
-- is fresh. Held to a fresh install of 0.3.0 object for object by tests/e2e/upgrade.rs.
-- Frozen once 0.3.0 ships.
--
-- 0.3.0 makes the log keep its word against its own readers (docs/integrity.md):
-- 1. a role for the product's services, audit_service, which alone adds seals and records
--    archives, each through a function that checks it first (keys: superusers);
-- 2. no SQL insert into audit.events once the log is live (audit.log_state), whatever the
--    partition; an upgraded log is live at once;
-- 3. change-stream cursors belong to the role that made them and move only through
--    functions, which record every move that is not a delivery; alerts are recorded only by
--    their consumer's owner;
-- 4. archive records are bound to a digest of the partition's events (records made before
--    have none, and retention no longer relies on them: archive those months again);
-- 5. the purge events a drop removes are carried in its own purge event;
-- 6. audit.integrity shows what in the audit schema no release made (audit.schema_findings)
--    and whether sealing has stalled;
-- 7. the services take turns through locks only they can take (audit.take_service_lock), not
--    advisory locks any role could hold;
-- 8. attribution comes only from the writing transaction: audit.set_actor keeps what it sets
--    where only it writes (extension/src/set_actor.rs);
-- 9. retention relies on an archive only after a recent check of its files
--    (audit.record_archive_check);
-- 10. the report's categories do not overlap: contact_activity, group_activity and
--    user_activity leave exports to export_activity (contract/src/categories.rs); the
--    report's newest page walks the events' time index instead of sorting every event;
-- 11. every event may name its organization (audit.events.tenant): the tracked row's
--    (audit.track's tenant_column) or the transaction's (audit.set_actor's tenant). Events
--    written before keep none.

-- The event triggers must not fire on this script's own DDL with 0.2.0's rules; they are the
-- same objects afterwards, with 0.3.0's function.

-- 11 first: the DDL hooks replaced below read the tenant column of every tracked table.
ALTER TABLE audit.events ADD COLUMN tenant text;
ALTER TABLE audit.tracked_tables ADD COLUMN tenant_column text;

-- 1. Roles ------------------------------------------------------------------------------------

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'audit_service') THEN
        CREATE ROLE audit_service NOLOGIN;
    END IF;
    IF NOT pg_catalog.pg_has_role('audit_service', 'audit_admin', 'MEMBER') THEN
        GRANT audit_admin TO audit_service;
    END IF;
END
$$;

-- 2. A live log takes no SQL insert ------------------------------------------------------------

CREATE TABLE audit.log_state (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    live      boolean NOT NULL DEFAULT false
);
-- Live at once: an install being upgraded has been writing events (or may, from any backend
-- of this library, before this script ran), and a restore goes into a new database.
INSERT INTO audit.log_state (live) VALUES (true);

-- No row enters audit.events through SQL once the log is live (audit.log_state: the extension
-- has written an event, extension/src/event_store.rs), whatever partition the rows would land
-- in: INSERT
-- or COPY could only forge or duplicate events (capture writes without SQL, and fires no
-- statement trigger). Before, it is a restore of a backup, which loads each partition by
-- itself, into an empty one; a data-only restore into a database that already has a log
-- fails loudly instead of mixing two logs.
CREATE OR REPLACE FUNCTION audit.refuse_insert() RETURNS trigger
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
CREATE OR REPLACE FUNCTION audit.on_ddl_command_end() RETURNS event_trigger
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
CREATE OR REPLACE FUNCTION audit.on_sql_drop() RETURNS event_trigger
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

-- Attribution kept where only audit.set_actor writes it ------------------------------------------

DROP FUNCTION audit.set_actor(text, text, jsonb);

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

-- 3. Seals and keys only through the functions that check them ---------------------------------

-- The product's services take turns through locks only they can take (0.2.0 used advisory
-- locks with fixed keys, which any role that can connect may hold: one with no grants
-- stopped sealing, archiving and maintenance). extension/src/service_lock.rs takes a lock on
-- the extension itself, one per service, which no SQL statement of a user can take; it is
-- held until the transaction ends, needs no transaction id (so it holds back no change
-- stream), and shows in pg_locks as an object lock on pg_extension. `wait`: wait for it (at
-- most lock_timeout); else return false at once when another session holds it.
CREATE FUNCTION audit.take_service_lock(service text, wait boolean DEFAULT false) RETURNS boolean
    LANGUAGE c
    SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'audit_take_service_lock';

-- The one way a sealing key is registered, by a superuser (whoever registers a key decides
-- whose seals count: a role that could would seal with a key of its own, and every later
-- verify would report seals by a key the auditor does not hold); recorded as an
-- audit_log/seal_key event, which the alert rules see. Returns the key id.
CREATE FUNCTION audit.register_seal_key(public_key bytea) RETURNS text
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    id     text;
    stored bytea;
BEGIN
    IF public_key IS NULL OR length(public_key) <> 32 THEN
        RAISE EXCEPTION 'a sealing key is a 32-byte Ed25519 public key'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    id := left(encode(sha256(public_key), 'hex'), 16);
    SELECT k.public_key INTO stored FROM audit.seal_keys AS k WHERE k.key_id = id;
    IF FOUND THEN
        IF stored <> public_key THEN
            RAISE EXCEPTION 'the database holds another public key under key id %', id
                USING ERRCODE = 'unique_violation';
        END IF;
        RETURN id;
    END IF;
    INSERT INTO audit.seal_keys (key_id, public_key) VALUES (id, public_key);
    PERFORM audit.record_ddl_event('audit_log', 'seal_key', NULL,
        jsonb_build_object('key_id', id, 'public_key', encode(public_key, 'hex')));
    RETURN id;
END
$$;

-- The one way a seal is stored: extension/src/seals.rs checks that it is the next link of
-- the chain, signed by a registered key, over exactly the committed events after the last
-- seal (recomputing their hashes), before it inserts the row. Returns the seal's number.
CREATE FUNCTION audit.add_seal(checkpoint text, key_id text, signature bytea, digests bytea)
    RETURNS bigint
    LANGUAGE c
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'audit_add_seal';

-- States of the audit schema that could make one reader see other rows than another (row
-- security, policies, rules, view options, triggers added or disabled, ...), for
-- audit.integrity and the dashboard. The query is contract/src/schema.rs' FINDINGS word for
-- word (a test checks it); `audit-trail verify` runs its own copy, not this function, which
-- whoever changed the schema could have changed too.
CREATE FUNCTION audit.schema_findings() RETURNS TABLE (kind text, object text, detail text)
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
WITH ext AS (
    SELECT e.oid, e.extowner FROM pg_catalog.pg_extension AS e WHERE e.extname = 'audit_trail'
    UNION ALL
    -- A WAL capture install (docs/wal-capture.md) is no extension: its owner owns the schema.
    SELECT NULL::pg_catalog.oid, n.nspowner FROM pg_catalog.pg_namespace AS n
     WHERE n.nspname OPERATOR(pg_catalog.=) 'audit'
       AND NOT EXISTS (SELECT FROM pg_catalog.pg_extension AS e WHERE e.extname = 'audit_trail')
       AND pg_catalog.to_regclass('audit.capture_progress') IS NOT NULL
), ns AS (
    SELECT n.oid FROM pg_catalog.pg_namespace AS n WHERE n.nspname = 'audit'
), member AS (
    SELECT d.classid, d.objid
      FROM pg_catalog.pg_depend AS d, ext
     WHERE d.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass
       AND d.refobjid = ext.oid AND d.deptype = 'e'
    UNION ALL
    -- Nothing records a WAL capture install's objects: they are the schema's functions and
    -- relations, but for indexes and the partitions its maintenance adds (not the defaults).
    SELECT 'pg_catalog.pg_class'::pg_catalog.regclass, c.oid
      FROM pg_catalog.pg_class AS c, ext, ns
     WHERE ext.oid IS NULL AND c.relnamespace = ns.oid AND c.relkind NOT IN ('i', 'I')
       AND (NOT c.relispartition
            OR pg_catalog.pg_get_expr(c.relpartbound, c.oid) OPERATOR(pg_catalog.=) 'DEFAULT')
    UNION ALL
    SELECT 'pg_catalog.pg_proc'::pg_catalog.regclass, p.oid
      FROM pg_catalog.pg_proc AS p, ext, ns
     WHERE ext.oid IS NULL AND p.pronamespace = ns.oid
), rel AS (
    SELECT c.oid, 'audit.' OPERATOR(pg_catalog.||) c.relname AS name, c.relkind, c.relowner,
           c.relrowsecurity, c.relforcerowsecurity, c.relam, c.reloptions, c.relispartition,
           EXISTS (SELECT FROM member AS m
                    WHERE m.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
                      AND m.objid = c.oid) AS is_member
      FROM pg_catalog.pg_class AS c, ns
     WHERE c.relnamespace = ns.oid
), used AS (
    SELECT ARRAY['pg_catalog.text', 'pg_catalog.jsonb', 'pg_catalog.xid8', 'pg_catalog.int8',
                 'pg_catalog.int4', 'pg_catalog.numeric', 'pg_catalog.inet', 'pg_catalog._text',
                 'pg_catalog.timestamptz', 'pg_catalog.varbit', 'pg_catalog.name',
                 'pg_catalog.bytea', 'pg_catalog.bool', 'pg_catalog.cstring',
                 'pg_catalog.regclass']::pg_catalog.regtype[]::pg_catalog.oid[] AS types
), guard AS (
    SELECT p.oid FROM pg_catalog.pg_proc AS p, ns
     WHERE p.pronamespace = ns.oid
       AND p.proname OPERATOR(pg_catalog.=) ANY (ARRAY['refuse_change', 'refuse_insert',
           'refuse_seal_change', 'refuse_summary_change', 'refuse_log_state_change']::pg_catalog.name[])
)
SELECT 'extension_missing', 'audit_trail', 'the extension is not installed'
 WHERE NOT EXISTS (SELECT FROM ext)
UNION ALL
SELECT 'row_security', r.name, 'row-level security is enabled on it'
  FROM rel AS r WHERE r.relrowsecurity OR r.relforcerowsecurity
UNION ALL
SELECT 'policy', r.name, 'policy ' OPERATOR(pg_catalog.||) p.polname
  FROM pg_catalog.pg_policy AS p JOIN rel AS r ON r.oid = p.polrelid
UNION ALL
SELECT 'rule', r.name, 'rule ' OPERATOR(pg_catalog.||) w.rulename
  FROM pg_catalog.pg_rewrite AS w JOIN rel AS r ON r.oid = w.ev_class
 WHERE NOT (w.rulename OPERATOR(pg_catalog.=) '_RETURN' AND r.relkind IN ('v', 'm'))
UNION ALL
SELECT 'view_option', r.name, 'options ' OPERATOR(pg_catalog.||) r.reloptions::text
  FROM rel AS r WHERE r.relkind IN ('v', 'm') AND r.reloptions IS NOT NULL
UNION ALL
SELECT 'owner', r.name, 'owned by ' OPERATOR(pg_catalog.||) pg_catalog.pg_get_userbyid(r.relowner)
  FROM rel AS r, ext WHERE r.relowner OPERATOR(pg_catalog.<>) ext.extowner
UNION ALL
SELECT 'access_method', r.name, 'stored by access method ' OPERATOR(pg_catalog.||) a.amname
  FROM rel AS r JOIN pg_catalog.pg_am AS a ON a.oid = r.relam
 WHERE r.relkind = 'r' AND a.amname OPERATOR(pg_catalog.<>) 'heap'
UNION ALL
SELECT 'foreign_table', r.name, 'a foreign table' FROM rel AS r WHERE r.relkind = 'f'
UNION ALL
SELECT 'unexpected_object', r.name, 'not made by the extension or its maintenance'
  FROM rel AS r
 WHERE NOT r.is_member
   AND NOT (r.relkind = 'r' AND r.relispartition)
   AND NOT (r.relkind IN ('i', 'I') AND EXISTS (
           SELECT FROM pg_catalog.pg_index AS i JOIN rel AS t ON t.oid = i.indrelid
            WHERE i.indexrelid = r.oid AND (t.is_member OR t.relispartition)))
UNION ALL
SELECT 'trigger', r.name, 'trigger ' OPERATOR(pg_catalog.||) t.tgname
  FROM pg_catalog.pg_trigger AS t JOIN rel AS r ON r.oid = t.tgrelid
 WHERE NOT t.tgisinternal AND t.tgfoid NOT IN (SELECT g.oid FROM guard AS g)
UNION ALL
SELECT 'trigger_disabled', r.name, 'trigger ' OPERATOR(pg_catalog.||) t.tgname
       OPERATOR(pg_catalog.||) ' is not enabled ALWAYS'
  FROM pg_catalog.pg_trigger AS t JOIN rel AS r ON r.oid = t.tgrelid
 WHERE NOT t.tgisinternal AND t.tgfoid IN (SELECT g.oid FROM guard AS g)
   AND t.tgenabled OPERATOR(pg_catalog.<>) 'A'
UNION ALL
SELECT 'event_trigger_disabled', e.evtname::text, 'the event trigger is disabled'
  FROM pg_catalog.pg_event_trigger AS e JOIN member AS m
    ON m.classid = 'pg_catalog.pg_event_trigger'::pg_catalog.regclass AND m.objid = e.oid
 WHERE e.evtenabled = 'D'
UNION ALL
SELECT CASE WHEN m.objid IS NULL THEN 'unexpected_object' ELSE 'owner' END,
       'function ' OPERATOR(pg_catalog.||) p.oid::pg_catalog.regprocedure::text,
       CASE WHEN m.objid IS NULL THEN 'not made by the extension'
            ELSE 'owned by ' OPERATOR(pg_catalog.||) pg_catalog.pg_get_userbyid(p.proowner) END
  FROM pg_catalog.pg_proc AS p JOIN ns ON p.pronamespace = ns.oid
  LEFT JOIN member AS m ON m.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass AND m.objid = p.oid
  CROSS JOIN ext
 WHERE m.objid IS NULL OR p.proowner OPERATOR(pg_catalog.<>) ext.extowner
UNION ALL
SELECT 'inheritance', i.inhrelid::pg_catalog.regclass::text,
       'inherits from ' OPERATOR(pg_catalog.||) r.name
  FROM pg_catalog.pg_inherits AS i JOIN rel AS r ON r.oid = i.inhparent
  JOIN pg_catalog.pg_class AS c ON c.oid = i.inhrelid
 WHERE NOT c.relispartition
UNION ALL
SELECT 'partition', t.relid::pg_catalog.regclass::text,
       CASE WHEN c.relnamespace OPERATOR(pg_catalog.<>) ns.oid
            THEN 'a partition of ' OPERATOR(pg_catalog.||) root OPERATOR(pg_catalog.||)
                 ' outside the audit schema'
            ELSE 'a partition of ' OPERATOR(pg_catalog.||) root OPERATOR(pg_catalog.||)
                 ' owned by ' OPERATOR(pg_catalog.||) pg_catalog.pg_get_userbyid(c.relowner) END
  FROM ns, ext,
       (VALUES ('audit.events'), ('audit.event_summary'), ('audit.kind_hours'),
               ('audit.actor_days')) AS p(root),
       LATERAL pg_catalog.pg_partition_tree(pg_catalog.to_regclass(p.root)) AS t
  JOIN pg_catalog.pg_class AS c ON c.oid = t.relid
 WHERE t.level > 0
   AND (c.relnamespace OPERATOR(pg_catalog.<>) ns.oid
        OR c.relowner OPERATOR(pg_catalog.<>) ext.extowner)
UNION ALL
SELECT 'privileges', r.name, 'privileges granted on it: ' OPERATOR(pg_catalog.||) c.relacl::text
  FROM rel AS r JOIN pg_catalog.pg_class AS c ON c.oid = r.oid
 WHERE r.relispartition AND NOT r.is_member
   AND EXISTS (SELECT FROM pg_catalog.aclexplode(c.relacl) AS a
                WHERE a.grantee OPERATOR(pg_catalog.<>) c.relowner)
UNION ALL
SELECT 'privileges', 'schema audit', 'default privileges for the schema''s new objects'
  FROM pg_catalog.pg_default_acl AS d, ns WHERE d.defaclnamespace = ns.oid
UNION ALL
SELECT 'user_cast', pg_catalog.format_type(k.castsource, NULL) OPERATOR(pg_catalog.||) ' AS '
       OPERATOR(pg_catalog.||) pg_catalog.format_type(k.casttarget, NULL),
       'a cast defined by a user, used in place of the built-in conversion'
  FROM pg_catalog.pg_cast AS k, used
 WHERE k.oid >= 16384
   AND (k.castsource OPERATOR(pg_catalog.=) ANY (used.types)
        OR k.casttarget OPERATOR(pg_catalog.=) ANY (used.types))
UNION ALL
SELECT 'subscription', s.srrelid::pg_catalog.regclass::text,
       'written by a logical replication subscription'
  FROM pg_catalog.pg_subscription_rel AS s JOIN pg_catalog.pg_class AS c ON c.oid = s.srrelid, ns
 WHERE c.relnamespace = ns.oid
ORDER BY 1, 2, 3
$$;

-- How far the log is sealed, for admins and the dashboard's status line.
CREATE OR REPLACE VIEW audit.integrity AS
WITH last AS (
    SELECT seq, last_txid, last_id, total, key_id, sealed_at
      FROM audit.seals
     ORDER BY seq DESC
     LIMIT 1
), unsealed AS (
    SELECT pg_catalog.count(*) AS events, pg_catalog.min(e.occurred_at) AS oldest
      FROM audit.events AS e
     WHERE (e.txid, e.id) > coalesce((SELECT (l.last_txid, l.last_id) FROM last AS l),
                                     ('0'::xid8, 0::bigint))
)
SELECT (SELECT l.seq FROM last AS l)                   AS last_seal,
       (SELECT l.sealed_at FROM last AS l)             AS last_sealed_at,
       (SELECT l.last_id FROM last AS l)               AS sealed_through_id,
       (SELECT e.occurred_at
          FROM audit.events AS e, last AS l
         WHERE e.txid = l.last_txid AND e.id = l.last_id) AS sealed_through_time,
       coalesce((SELECT l.total FROM last AS l), 0)    AS sealed_events,
       u.events                                        AS unsealed_events,
       pg_catalog.now() - u.oldest                     AS oldest_unsealed_age,
       (SELECT l.key_id FROM last AS l)                AS active_key,
       -- The oldest unsealed event is older than audit.seal_stall_after (15 min by default;
       -- the setting reads as an interval whether or not the library is loaded).
       coalesce(pg_catalog.now() - u.oldest
                > coalesce(NULLIF(pg_catalog.current_setting('audit.seal_stall_after', true), '')::interval,
                           '15 minutes'), false) AS sealing_stalled,
       ARRAY(SELECT f.kind || ': ' || f.object || ': ' || f.detail
               FROM audit.schema_findings() AS f)     AS schema_findings
  FROM unsealed AS u;

COMMENT ON VIEW audit.integrity IS
    'Sealed through which event and time, events waiting to be sealed and whether sealing has stalled, the last seal and its key, and what in the audit schema no release made.';

-- 4. Cursors and alerts -------------------------------------------------------------------------

-- A cursor made before 0.3.0 has no owner: the first role to use it claims it, which is
-- recorded and alerted (who last moved it says nothing: readers could write that column).
ALTER TABLE audit.consumers ADD COLUMN owner regrole;

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

-- 5. Archives bound to their events, purge events carried -----------------------------------------

ALTER TABLE audit.archives
    ADD COLUMN events_sha256 text CHECK (events_sha256 ~ '^[0-9a-f]{64}$');

-- The partitions of audit.events, oldest first. Bounds are read back from the catalog's own
-- text (which round-trips under any DateStyle); a partition attached by an upgrade from
-- 0.1.0 starts at -infinity.
CREATE OR REPLACE VIEW audit.partitions AS
WITH p AS (
    SELECT c.oid, pg_catalog.format('%I.%I', n.nspname, c.relname) AS partition,
           pg_catalog.pg_get_expr(c.relpartbound, c.oid) AS bound, c.reltuples
      FROM pg_catalog.pg_inherits AS i
      JOIN pg_catalog.pg_class AS c ON c.oid = i.inhrelid
      JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
     WHERE i.inhparent = 'audit.events'::regclass
), b AS (
    SELECT p.*, p.bound = 'DEFAULT' AS is_default,
           CASE WHEN p.bound <> 'DEFAULT'
                THEN coalesce(pg_catalog.substring(p.bound, $r$FROM \('([^']*)'\)$r$)::timestamptz,
                              '-infinity') END AS from_time,
           CASE WHEN p.bound <> 'DEFAULT'
                THEN coalesce(pg_catalog.substring(p.bound, $r$TO \('([^']*)'\)$r$)::timestamptz,
                              'infinity') END AS to_time
      FROM p
)
SELECT b.partition, b.from_time, b.to_time, b.is_default,
       coalesce(b.to_time <= pg_catalog.now(), false) AS closed,
       greatest(b.reltuples, 0)::bigint AS rows_estimate,
       pg_catalog.pg_total_relation_size(b.oid) AS bytes,
       EXISTS (SELECT FROM audit.archives AS a
                WHERE a.partition = b.partition AND a.events_sha256 IS NOT NULL) AS archived,
       EXISTS (SELECT FROM audit.legal_holds AS h
                WHERE h.released_at IS NULL
                  AND (b.is_default OR (h.from_time < b.to_time AND h.to_time > b.from_time)))
           AS held
  FROM b
 ORDER BY b.is_default, b.from_time;

COMMENT ON VIEW audit.partitions IS
    'Partitions of audit.events: time range, size, whether archived and whether a legal hold covers them.';

-- Admins may place a hold (it only protects events); releasing one is for superusers.
CREATE OR REPLACE FUNCTION audit.hold(name text, reason text, from_time timestamptz, to_time timestamptz)
    RETURNS void
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF name IS NULL OR name !~ '^[A-Za-z0-9_.:-]{1,100}$' THEN
        RAISE EXCEPTION 'hold name % is not valid: use 1 to 100 letters, digits, and _ . : -',
            coalesce(quote_literal(name), 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF coalesce(reason, '') = '' THEN
        RAISE EXCEPTION 'a legal hold needs a reason' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF octet_length(reason) > 4096 THEN
        RAISE EXCEPTION 'a legal hold''s reason is at most 4096 bytes (name the case; keep the file elsewhere)'
            USING ERRCODE = 'program_limit_exceeded';
    END IF;
    IF from_time IS NULL OR to_time IS NULL OR to_time <= from_time THEN
        RAISE EXCEPTION 'a legal hold needs a time range with from_time before to_time'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF EXISTS (SELECT FROM audit.legal_holds AS h
                WHERE h.name = hold.name AND h.released_at IS NULL) THEN
        RAISE EXCEPTION 'legal hold "%" is already active', name
            USING ERRCODE = 'unique_violation';
    END IF;
    INSERT INTO audit.legal_holds (name, reason, from_time, to_time)
    VALUES (hold.name, hold.reason, hold.from_time, hold.to_time);
    PERFORM audit.record_ddl_event('audit_log', 'hold', NULL,
        jsonb_build_object('name', name, 'reason', reason,
                           'from', from_time, 'to', to_time));
END
$$;

COMMENT ON FUNCTION audit.hold(text, text, timestamptz, timestamptz) IS
    'Place a legal hold: nothing in [from_time, to_time) is dropped until it is released.';

DROP FUNCTION audit.record_archive(text, bigint, text, jsonb);
-- For `audit-trail archive`, as a member of audit_service: records that a partition was
-- written to an archive, after checking that the archive holds exactly its events: as many,
-- and the same ones (events_sha256, the digest the archive command computed from the rows it
-- wrote, must be the partition's own, recomputed here). Retention relies on no other record;
-- each one is an audit_log/archive event, which the alert rules see, and `verify --archive`
-- holds the archive to the events the drop relied on it for.
CREATE FUNCTION audit.record_archive(partition text, rows bigint, location text, manifest jsonb,
                                     events_sha256 text)
    RETURNS void
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    info   record;
    stats  record;
    digest text;
BEGIN
    SELECT * INTO info FROM audit.partitions AS p WHERE p.partition = record_archive.partition;
    IF NOT FOUND OR info.is_default THEN
        RAISE EXCEPTION '% is not a partition of audit.events', coalesce(partition, 'NULL')
            USING ERRCODE = 'data_exception';
    END IF;
    IF coalesce(location, '') = '' OR manifest IS NULL THEN
        RAISE EXCEPTION 'an archive needs a location and a manifest'
            USING ERRCODE = 'data_exception';
    END IF;
    EXECUTE format('SELECT count(*) AS rows, min(id) AS first_id, max(id) AS last_id FROM %s',
                   info.partition) INTO stats;
    -- The errors say what differs, never the partition's count or digest: a caller who
    -- could read them back would not need to have written the archive.
    IF stats.rows IS DISTINCT FROM record_archive.rows THEN
        RAISE EXCEPTION 'the archive of % does not hold as many events as the partition',
            info.partition
            USING ERRCODE = 'data_exception';
    END IF;
    digest := audit.events_digest(info.partition::regclass);
    IF digest IS DISTINCT FROM events_sha256 THEN
        RAISE EXCEPTION 'the archive of % does not hold the partition''s events (their digests differ)',
            info.partition
            USING ERRCODE = 'data_exception';
    END IF;
    INSERT INTO audit.archives (partition, from_time, to_time, rows, first_id, last_id,
                                location, manifest, events_sha256)
    VALUES (info.partition, info.from_time, info.to_time, stats.rows, stats.first_id,
            stats.last_id, location, manifest, digest);
    PERFORM audit.record_ddl_event('audit_log', 'archive', NULL,
        jsonb_build_object('partition', info.partition, 'from', info.from_time,
                           'to', info.to_time, 'rows', stats.rows, 'location', location,
                           'events_sha256', digest,
                           'manifest_sha256', encode(sha256(convert_to(manifest::text, 'UTF8')), 'hex')));
END
$$;

-- How recently `audit-trail archive` must have found an archive's files intact for retention
-- to drop the partition it holds: files can be lost, overwritten or altered long after they
-- were recorded, and a drop is the moment the log starts relying on them alone.
-- audit.archives_to_check() lists archives due within the same window, so a daily archive
-- run checks each one before its drop.
CREATE FUNCTION audit.archive_check_window() RETURNS interval
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT interval '7 days'
$$;

-- For `audit-trail archive`: the latest archive record of every archived partition that
-- retention may drop within audit.archive_check_window(), oldest first, whose files the run
-- checks (audit.record_archive_check).
CREATE FUNCTION audit.archives_to_check()
    RETURNS TABLE (partition text, location text, manifest jsonb, events_sha256 text)
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT a.partition, a.location, a.manifest, a.events_sha256
      FROM audit.partitions AS p
      JOIN audit.storage_policy AS s ON s.keep IS NOT NULL AND s.archive_first
      CROSS JOIN LATERAL (SELECT * FROM audit.archives AS a
                           WHERE a.partition = p.partition AND a.events_sha256 IS NOT NULL
                           ORDER BY a.archived_at DESC LIMIT 1) AS a
     WHERE p.archived AND NOT p.is_default
       AND p.to_time <= now() - s.keep + audit.archive_check_window()
     ORDER BY p.from_time
$$;

-- For `audit-trail archive`, as a member of audit_service: records what a check of the files
-- of a partition's latest archive found: intact (as its manifest, recorded with it, says)
-- when `problem` is NULL, else the problem (missing, altered, another database's). Each check
-- is an audit_log/archive_check event naming the partition as its table. Retention drops an
-- archived partition only when the latest check within audit.archive_check_window() found
-- its archive intact.
CREATE FUNCTION audit.record_archive_check(partition text, events_sha256 text, location text,
                                           problem text DEFAULT NULL)
    RETURNS void
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    latest text;
BEGIN
    SELECT a.events_sha256 INTO latest
      FROM audit.archives AS a
     WHERE a.partition = record_archive_check.partition
       AND EXISTS (SELECT FROM audit.partitions AS p WHERE p.partition = a.partition)
     ORDER BY a.archived_at DESC LIMIT 1;
    IF latest IS NULL OR latest IS DISTINCT FROM events_sha256 THEN
        RAISE EXCEPTION 'no archive of % holding these events is recorded',
            coalesce(partition, 'NULL')
            USING ERRCODE = 'data_exception';
    END IF;
    IF coalesce(location, '') = '' THEN
        RAISE EXCEPTION 'a checked archive needs its location' USING ERRCODE = 'data_exception';
    END IF;
    IF octet_length(problem) > 4096 THEN
        problem := left(problem, 4096);
    END IF;
    PERFORM audit.record_ddl_event('audit_log', 'archive_check', partition,
        jsonb_strip_nulls(jsonb_build_object('partition', partition,
                                             'events_sha256', events_sha256,
                                             'location', location, 'intact', problem IS NULL,
                                             'problem', problem)));
END
$$;

-- The digest of a partition's events that an archive record is bound to (extension/src/seals.rs).
CREATE FUNCTION audit.events_digest(part regclass) RETURNS text
    LANGUAGE c STRICT
    SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'audit_events_digest';

-- Events of `source` (audit.events or a partition) of one entity and action that occurred
-- before `before`, each as the values of its canonical encoding (docs/integrity.md), in
-- chain order (extension/src/seals.rs): how a purge event that a later drop removes is
-- carried into that drop's own purge event, so that the records explaining every drop
-- outlive all later ones.
CREATE FUNCTION audit.canonical_events(source regclass, entity text, action text,
                                       before timestamptz)
    RETURNS jsonb
    LANGUAGE c STRICT
    SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'audit_canonical_events';

-- Purge events a later drop removes are kept in a table of their own.
CREATE TABLE audit.carried_events (
    id         bigint      PRIMARY KEY,
    txid       xid8        NOT NULL,
    canonical  text[]      NOT NULL CHECK (pg_catalog.cardinality(canonical) IN (17, 18)),
    carried_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE audit.carried_events IS
    'Purge events that a later drop removed, in their canonical encoding, for verify.';
CREATE TRIGGER carried_events_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON audit.carried_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit.refuse_seal_change();
ALTER TABLE audit.carried_events ENABLE ALWAYS TRIGGER carried_events_append_only;
SELECT pg_catalog.pg_extension_config_dump('audit.carried_events', '');
REVOKE ALL ON audit.carried_events FROM PUBLIC;
GRANT SELECT ON audit.carried_events TO audit_admin;

-- Carries the purge events about to be dropped with `source` before `before` into
-- audit.carried_events (each once, as the values of its canonical encoding), and returns
-- their ids, which the drop's own purge event names. Their copies are not nested in it: a
-- purge event is carried once, whatever the drops after.
CREATE FUNCTION audit.carry_purge_events(source regclass, before timestamptz) RETURNS bigint[]
    LANGUAGE sql
    SET search_path = pg_catalog, pg_temp
AS $$
    WITH carried AS (
        INSERT INTO audit.carried_events (id, txid, canonical)
        SELECT (c.value ->> 0)::bigint, pg_catalog.xid8in(pg_catalog.textout(c.value ->> 2)),
               ARRAY(SELECT v FROM jsonb_array_elements_text(c.value) WITH ORDINALITY AS a(v, k)
                      ORDER BY k)
          FROM jsonb_array_elements(audit.canonical_events(source, 'audit_log', 'purge', before)) AS c
        RETURNING id
    )
    SELECT coalesce(array_agg(id ORDER BY id), '{}') FROM carried;
$$;

-- Drops one partition of audit.events and records it as an audit_log/purge event.
CREATE OR REPLACE FUNCTION audit.drop_events_partition(part regclass, reason text, counted jsonb DEFAULT NULL)
    RETURNS jsonb
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    info    record;
    stats   record;
    gaps      text;
    summary   text;
    companion text;
    bound     text;
    details   jsonb;
    carried   bigint[];
    archive   text;
BEGIN
    PERFORM audit.require_maintenance();
    SELECT * INTO info FROM audit.partitions AS p
     WHERE p.partition = (SELECT format('%I.%I', n.nspname, c.relname)
                            FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
                           WHERE c.oid = part);
    IF NOT FOUND OR info.is_default THEN
        RAISE EXCEPTION '% is not a partition of audit.events that can be dropped', part
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- Counted by the caller under the same lock (retention), or now: from the count to the
    -- drop no event can land in the partition, so the purge event names every one dropped.
    PERFORM audit.require_read_committed();
    IF counted IS NULL THEN
        EXECUTE format('LOCK TABLE %s IN SHARE MODE', part);
        counted := audit.count_events_partition(part);
    END IF;
    SELECT (counted ->> 'rows')::bigint AS rows, (counted ->> 'first_id')::bigint AS first_id,
           (counted ->> 'last_id')::bigint AS last_id
      INTO stats;
    gaps := audit.note_retention_gaps(part, 'infinity', reason);
    carried := audit.carry_purge_events(part, 'infinity');
    archive := (SELECT a.events_sha256 FROM audit.archives AS a
                 WHERE a.partition = info.partition AND a.events_sha256 IS NOT NULL
                   AND a.rows = stats.rows
                 ORDER BY a.archived_at DESC LIMIT 1);
    -- The month's summaries go with it (a summary partition of another range, made before a
    -- change of interval, is cleared row by row instead).
    bound := pg_get_expr((SELECT p.relpartbound FROM pg_class AS p WHERE p.oid = part), part);
    EXECUTE format('DROP TABLE %s', part);
    FOREACH companion IN ARRAY audit.summary_tables() LOOP
        summary := (SELECT format('%I.%I', n.nspname, c.relname)
                      FROM pg_inherits AS i
                      JOIN pg_class AS c ON c.oid = i.inhrelid
                      JOIN pg_namespace AS n ON n.oid = c.relnamespace
                     WHERE i.inhparent = format('audit.%I', companion)::regclass
                       AND pg_get_expr(c.relpartbound, c.oid) = bound);
        IF summary IS NOT NULL THEN
            EXECUTE format('DROP TABLE %s', summary);
        ELSE
            EXECUTE format('DELETE FROM audit.%I AS s WHERE s.%I >= $1 AND s.%I < $2', companion,
                           CASE companion WHEN 'actor_days' THEN 'day' ELSE 'hour' END,
                           CASE companion WHEN 'actor_days' THEN 'day' ELSE 'hour' END)
              USING info.from_time, info.to_time;
        END IF;
    END LOOP;
    details := jsonb_strip_nulls(jsonb_build_object(
        'partition', info.partition, 'from', info.from_time, 'to', info.to_time,
        'before', info.to_time, 'rows', stats.rows, 'first_id', stats.first_id,
        'last_id', stats.last_id, 'reason', reason, 'retention_gaps_sha256', gaps,
        'archived', archive IS NOT NULL, 'archive_events_sha256', archive))
        || CASE WHEN cardinality(carried) > 0
                THEN jsonb_build_object('carried_events', to_jsonb(carried)) ELSE '{}' END;
    PERFORM audit.record_ddl_event('audit_log', 'purge', NULL, details);
    RETURN details;
END
$$;

-- Drops whole partitions that end at or before `before` (for audit.purge, which deletes the
-- rest of the range row by row). Returns the rows dropped.
CREATE OR REPLACE FUNCTION audit.drop_partitions_before(before timestamptz) RETURNS bigint
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    part  record;
    total bigint := 0;
BEGIN
    PERFORM audit.require_maintenance();
    -- One at a time with maintenance: both lock partitions to count them, then to drop them.
    PERFORM set_config('lock_timeout', '10s', true);
    PERFORM audit.take_service_lock('maintenance', true);
    FOR part IN
        SELECT p.partition FROM audit.partitions AS p
         WHERE NOT p.is_default AND p.to_time <= before
         ORDER BY p.from_time
    LOOP
        total := total + (audit.drop_events_partition(part.partition::regclass, 'purge') ->> 'rows')::bigint;
    END LOOP;
    RETURN total;
END
$$;

-- The partitions audit.maintain() makes: for rows waiting in the default partition, and
-- `premake` intervals ahead. Returns them.
CREATE FUNCTION audit.make_partitions_ahead(every interval, premake int) RETURNS jsonb
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    start   timestamptz;
    lo      timestamptz;
    hi      timestamptz;
    other   record;
    created jsonb := '[]';
BEGIN
    PERFORM audit.require_maintenance();
    FOR start IN
        SELECT DISTINCT audit.partition_start(d.occurred_at, every) FROM audit.events_default AS d
        UNION
        SELECT audit.partition_start(now(), every) + every * g
          FROM generate_series(0, premake) AS g
        ORDER BY 1
    LOOP
        lo := start;
        hi := start + every;
        -- Fit between existing partitions (they may have another length, after a change of
        -- interval, or be the range an upgrade from 0.1.0 attached).
        FOR other IN
            SELECT p.from_time, p.to_time FROM audit.partitions AS p
             WHERE NOT p.is_default AND p.from_time < hi AND p.to_time > lo
             ORDER BY p.from_time
        LOOP
            IF other.from_time <= lo THEN
                lo := greatest(lo, other.to_time);
            ELSE
                hi := least(hi, other.from_time);
            END IF;
        END LOOP;
        CONTINUE WHEN lo >= hi;
        created := created || audit.create_events_partition(lo, hi);
    END LOOP;
    RETURN created;
END
$$;

-- Why retention with archive_first may not drop a partition now (NULL: it may): its archive
-- record must hold the rows counted under its lock, and the latest check of the archive's
-- files, made lately (audit.record_archive_check), must have found them intact.
CREATE FUNCTION audit.archive_unfit_for_drop(part text, archived boolean, counted jsonb)
    RETURNS text
    LANGUAGE plpgsql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT EXISTS (SELECT FROM audit.archives AS a
                    WHERE a.partition = part AND a.events_sha256 IS NOT NULL
                      AND a.rows = (counted ->> 'rows')::bigint) THEN
        RETURN CASE WHEN archived THEN 'changed since it was archived' ELSE 'not archived yet' END;
    END IF;
    IF NOT coalesce((
           SELECT (e.details ->> 'intact')::boolean
                  AND e.details ->> 'events_sha256' =
                      (SELECT a.events_sha256 FROM audit.archives AS a
                        WHERE a.partition = part
                        ORDER BY a.archived_at DESC LIMIT 1)
             FROM audit.events AS e
            WHERE e.entity = 'audit_log' AND e.action = 'archive_check'
              AND e.table_name = part
              AND e.occurred_at >= now() - audit.archive_check_window()
            ORDER BY e.id DESC LIMIT 1), false) THEN
        RETURN 'its archive''s files were not found intact by a check in the last '
               || audit.archive_check_window() || ' (audit-trail archive checks them)';
    END IF;
    RETURN NULL;
END
$$;

-- Retention: drops the partitions that ended before now() - keep, unless held or (with
-- archive_first) not safely archived. Returns {dropped, kept}, each partition kept with why.
CREATE FUNCTION audit.apply_retention(keep interval, archive_first boolean) RETURNS jsonb
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    part    record;
    counted jsonb;
    unfit   text;
    dropped jsonb := '[]';
    kept    jsonb := '[]';
BEGIN
    PERFORM audit.require_maintenance();
    FOR part IN
        SELECT p.* FROM audit.partitions AS p
         WHERE NOT p.is_default AND p.to_time <= now() - keep
         ORDER BY p.from_time
    LOOP
        IF part.held THEN
            kept := kept || jsonb_build_object('partition', part.partition,
                'reason', 'held: ' || (SELECT string_agg(h.name, ', ' ORDER BY h.name)
                                         FROM audit.legal_holds AS h
                                        WHERE h.released_at IS NULL
                                          AND h.from_time < part.to_time
                                          AND h.to_time > part.from_time));
            CONTINUE;
        END IF;
        BEGIN
            -- No event can land in the partition from here to its drop (a transaction still
            -- writing into it makes this wait, then give up until the next run), so what is
            -- counted once is what the archive must hold and what is dropped.
            PERFORM audit.require_read_committed();
            EXECUTE format('LOCK TABLE %s IN SHARE MODE', part.partition);
            counted := audit.count_events_partition(part.partition::regclass);
            unfit := CASE WHEN archive_first
                          THEN audit.archive_unfit_for_drop(part.partition, part.archived, counted)
                     END;
            IF unfit IS NOT NULL THEN
                -- Raised, not skipped, so that the block's lock is released with it: a kept
                -- partition stays open to writes for the rest of the run.
                RAISE EXCEPTION USING ERRCODE = 'AT001', MESSAGE = unfit;
            END IF;
            dropped := dropped || audit.drop_events_partition(part.partition::regclass,
                                                              'retention', counted);
        EXCEPTION
            WHEN SQLSTATE 'AT001' OR lock_not_available OR object_not_in_prerequisite_state THEN
                kept := kept || jsonb_build_object('partition', part.partition, 'reason', SQLERRM);
        END;
    END LOOP;
    RETURN jsonb_build_object('dropped', dropped, 'kept', kept);
END
$$;

-- What audit.maintain() does, as the extension's owner: partitions ahead (and for rows
-- waiting in the default partition), then, unless create_only, the summary and retention.
CREATE OR REPLACE FUNCTION audit.run_maintenance(create_only boolean) RETURNS jsonb
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    policy     record;
    created    jsonb;
    summarized bigint;
    retention  jsonb := '{"dropped": [], "kept": []}';
BEGIN
    PERFORM audit.require_maintenance();
    -- Never stall capture behind a lock for long, nor wait for one without a bound: a busy
    -- step is retried by the next run.
    PERFORM set_config('lock_timeout', '10s', true);
    -- One maintenance at a time (a second waits for the first, at most lock_timeout), through
    -- a lock only the extension's own functions can take.
    PERFORM audit.take_service_lock('maintenance', true);
    -- A hold placed while retention runs protects its range too: no hold can be placed or
    -- released until this run ends (audit.hold and audit.release write audit.legal_holds,
    -- which this lock excludes), and one committed before it is seen by the look below.
    IF NOT create_only THEN
        LOCK TABLE audit.legal_holds IN SHARE MODE;
    END IF;
    SELECT coalesce(p.partition_interval, '1 month') AS every, coalesce(p.premake, 3) AS premake,
           p.keep, coalesce(p.archive_first, true) AS archive_first
      INTO policy
      FROM (SELECT) AS one LEFT JOIN audit.storage_policy AS p ON true;

    created := audit.make_partitions_ahead(policy.every, policy.premake);
    IF NOT create_only THEN
        summarized := audit.summarize_events();
        IF policy.keep IS NOT NULL THEN
            retention := audit.apply_retention(policy.keep, policy.archive_first);
        END IF;
    END IF;

    RETURN jsonb_build_object(
        'created', created, 'dropped', retention -> 'dropped', 'kept', retention -> 'kept',
        'retention', CASE WHEN policy.keep IS NULL THEN 'keep forever'
                          ELSE policy.keep::text END,
        'default_partition_rows', (SELECT count(*) FROM audit.events_default),
        'summarized_events', summarized);
END
$$;

-- A partition's privileges are its owner's alone (readers read through audit.events): the
-- table an upgrade from 0.1.0 attached kept the grants it had as the log.
DO $$
DECLARE
    part regclass;
BEGIN
    FOR part IN SELECT t.relid FROM pg_catalog.pg_partition_tree('audit.events') AS t
                 WHERE t.level > 0
                   AND t.relid NOT IN (SELECT d.objid FROM pg_catalog.pg_depend AS d
                                        WHERE d.refclassid = 'pg_catalog.pg_extension'::regclass
                                          AND d.deptype = 'e')
    LOOP
        EXECUTE pg_catalog.format('REVOKE ALL ON %s FROM PUBLIC, audit_admin', part);
    END LOOP;
END
$$;

-- Row images compressed with lz4 from now on, where the server has it (existing ones keep theirs).
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

-- 11. Organizations ------------------------------------------------------------------------------

-- Each organization's events, found through a table maintenance makes (summary.sql), not an
-- index capture would pay for. The months there are get theirs; the events in them have no
-- organization, so there is nothing to fill.
CREATE TABLE audit.tenant_events (
    hour        timestamptz NOT NULL,
    tenant      text        NOT NULL,
    occurred_at timestamptz NOT NULL,
    id          bigint      NOT NULL
) PARTITION BY RANGE (hour);
CREATE TABLE audit.tenant_events_default PARTITION OF audit.tenant_events DEFAULT;
COMMENT ON TABLE audit.tenant_events IS
    'The events of each organization, for every event counted in audit.event_summary that names one.';

-- The summary tables, partitioned as audit.events, partition for partition.
CREATE OR REPLACE FUNCTION audit.summary_tables() RETURNS text[]
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
AS $$ SELECT ARRAY['event_summary', 'kind_hours', 'actor_days', 'tenant_events'] $$;

-- A summary partition's indexes and guard. A filter on actors reads audit.event_summary by
-- (actor, hour); a filter on anything else reads audit.kind_hours, by one index per filter
-- (the hour last, for newest-first reads). The hour alone serves the Overview's ranges.
CREATE OR REPLACE FUNCTION audit.setup_summary_partition(part regclass) RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    name   text := (SELECT c.relname FROM pg_class AS c WHERE c.oid = part);
    parent text := (SELECT p.relname FROM pg_inherits AS i JOIN pg_class AS p ON p.oid = i.inhparent
                     WHERE i.inhrelid = part);
BEGIN
    -- Not attached yet: the table's name says which summary it is.
    parent := coalesce(parent, (SELECT t FROM unnest(audit.summary_tables()) AS t
                                 WHERE name LIKE t || '\_%' ORDER BY length(t) DESC LIMIT 1));
    IF parent = 'event_summary' THEN
        EXECUTE format('CREATE INDEX %I ON %s (hour)', name || '_hour_idx', part);
        EXECUTE format('CREATE INDEX %I ON %s (actor, hour)', name || '_actor_hour_idx', part);
    ELSIF parent = 'kind_hours' THEN
        EXECUTE format('CREATE INDEX %I ON %s (hour)', name || '_hour_idx', part);
        EXECUTE format('CREATE INDEX %I ON %s (source, hour)', name || '_source_hour_idx', part);
        EXECUTE format('CREATE INDEX %I ON %s (entity, action, hour)', name || '_entity_action_hour_idx', part);
        EXECUTE format('CREATE INDEX %I ON %s (table_name, hour)', name || '_table_name_hour_idx', part);
    ELSIF parent = 'tenant_events' THEN
        EXECUTE format('CREATE INDEX %I ON %s (tenant, occurred_at, id)',
                       name || '_tenant_occurred_at_id_idx', part);
    ELSE
        EXECUTE format('CREATE INDEX %I ON %s (day)', name || '_day_idx', part);
    END IF;
    EXECUTE format('CREATE TRIGGER event_summary_maintained
                    BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON %s
                    FOR EACH STATEMENT EXECUTE FUNCTION audit.refuse_summary_change()', part);
    EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER event_summary_maintained', part);
END
$$;

SELECT audit.setup_summary_partition('audit.tenant_events_default');
CREATE TRIGGER tenant_events_maintained
    BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON audit.tenant_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit.refuse_summary_change();
ALTER TABLE audit.tenant_events ENABLE ALWAYS TRIGGER tenant_events_maintained;
SELECT pg_catalog.pg_extension_config_dump('audit.tenant_events_default', '');

DO $$
DECLARE
    part record;
BEGIN
    -- As the other summaries are partitioned (a partition of events kept from 0.1.0 has no
    -- summary partition until maintenance splits it into months).
    FOR part IN SELECT 'tenant_events' || pg_catalog.substr(c.relname, pg_catalog.length('event_summary') + 1)
                           AS relname,
                       pg_catalog.pg_get_expr(c.relpartbound, c.oid) AS bound
                  FROM pg_catalog.pg_inherits AS i
                  JOIN pg_catalog.pg_class AS c ON c.oid = i.inhrelid
                 WHERE i.inhparent = 'audit.event_summary'::regclass
                   AND c.relname <> 'event_summary_default'
    LOOP
        EXECUTE pg_catalog.format('CREATE TABLE audit.%I PARTITION OF audit.tenant_events %s',
                                  part.relname, part.bound);
        PERFORM audit.setup_summary_partition(pg_catalog.format('audit.%I', part.relname)::regclass);
        -- Data, not part of the extension, like the partitions audit.maintain() makes.
        EXECUTE pg_catalog.format('ALTER EXTENSION audit_trail DROP TABLE audit.%I', part.relname);
    END LOOP;
END
$$;

-- Counts the events committed since the last run into audit.event_summary: those with a
-- txid from the old watermark up to the oldest transaction still running (so none can still
-- commit below it, and each event is counted exactly once). Returns the events counted.
CREATE OR REPLACE FUNCTION audit.summarize_events() RETURNS bigint
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    low        xid8 := coalesce((SELECT s.watermark FROM audit.summary_state AS s), '0');
    high       xid8 := pg_snapshot_xmin(pg_current_snapshot());
    counted    bigint := 0;
    first_hour timestamptz;
    last_hour  timestamptz;
BEGIN
    PERFORM audit.require_maintenance();
    IF high <= low THEN
        RETURN 0;
    END IF;
    -- The hours the new events fall in bound the summary rows compared with their counts, so
    -- that only the partitions of those hours are read: an hour's run reads this month's, not
    -- every month's. (Not a temporary table of the counts: maintenance runs as a
    -- security-restricted operation, which may not create one.) Of their hours, not of
    -- occurred_at itself: min(occurred_at) would be planned as a walk of the time index from
    -- the oldest event, filtering on txid, through the whole log (145 s at 100M events).
    SELECT min(n.hour), max(n.hour) INTO first_hour, last_hour
      FROM (SELECT date_trunc('hour', e.occurred_at, 'UTC') AS hour FROM audit.events AS e
             WHERE e.txid >= low AND e.txid < high) AS n;
    -- One row per (hour, actor, source, entity, action, table): added to where it exists,
    -- inserted where not. (No unique index to do it with ON CONFLICT: the summary's indexes
    -- are per partition; maintenance runs one at a time, under its lock. Both parts see the
    -- rows as they were before the statement.)
    IF first_hour IS NOT NULL THEN
        WITH counts AS (
            SELECT date_trunc('hour', e.occurred_at, 'UTC') AS hour,
                   audit.summary_key(e.actor) AS actor, audit.summary_key(e.source) AS source,
                   audit.summary_key(e.entity) AS entity, audit.summary_key(e.action) AS action,
                   audit.summary_key(e.table_name) AS table_name, count(*) AS events
              FROM audit.events AS e
             WHERE e.txid >= low AND e.txid < high
             GROUP BY 1, 2, 3, 4, 5, 6
        ), updated AS (
            UPDATE audit.event_summary AS s
               SET events = s.events + c.events
              FROM counts AS c
             WHERE s.hour >= first_hour AND s.hour <= last_hour
               AND s.hour = c.hour AND s.actor = c.actor AND s.source = c.source
               AND s.entity = c.entity AND s.action = c.action
               AND s.table_name IS NOT DISTINCT FROM c.table_name
        ), inserted AS (
            INSERT INTO audit.event_summary (hour, actor, source, entity, action, table_name, events)
            SELECT c.* FROM counts AS c
             WHERE NOT EXISTS (SELECT FROM audit.event_summary AS s
                                WHERE s.hour >= first_hour AND s.hour <= last_hour
                                  AND s.hour = c.hour AND s.actor = c.actor
                                  AND s.source = c.source AND s.entity = c.entity
                                  AND s.action = c.action
                                  AND s.table_name IS NOT DISTINCT FROM c.table_name)
        ), kinds AS (
            SELECT c.hour, c.source, c.entity, c.action, c.table_name,
                   sum(c.events)::bigint AS events
              FROM counts AS c GROUP BY 1, 2, 3, 4, 5
        ), kinds_updated AS (
            UPDATE audit.kind_hours AS s
               SET events = s.events + k.events
              FROM kinds AS k
             WHERE s.hour >= first_hour AND s.hour <= last_hour
               AND s.hour = k.hour AND s.source = k.source AND s.entity = k.entity
               AND s.action = k.action AND s.table_name IS NOT DISTINCT FROM k.table_name
        ), kinds_inserted AS (
            INSERT INTO audit.kind_hours (hour, source, entity, action, table_name, events)
            SELECT k.* FROM kinds AS k
             WHERE NOT EXISTS (SELECT FROM audit.kind_hours AS s
                                WHERE s.hour >= first_hour AND s.hour <= last_hour
                                  AND s.hour = k.hour AND s.source = k.source
                                  AND s.entity = k.entity AND s.action = k.action
                                  AND s.table_name IS NOT DISTINCT FROM k.table_name)
        ), actors AS (
            SELECT date_trunc('day', c.hour, 'UTC') AS day, c.actor, sum(c.events)::bigint AS events
              FROM counts AS c GROUP BY 1, 2
        ), actors_updated AS (
            UPDATE audit.actor_days AS s
               SET events = s.events + a.events
              FROM actors AS a
             WHERE s.day >= date_trunc('day', first_hour, 'UTC') AND s.day <= last_hour
               AND s.day = a.day AND s.actor = a.actor
        ), actors_inserted AS (
            INSERT INTO audit.actor_days (day, actor, events)
            SELECT a.* FROM actors AS a
             WHERE NOT EXISTS (SELECT FROM audit.actor_days AS s
                                WHERE s.day >= date_trunc('day', first_hour, 'UTC')
                                  AND s.day <= last_hour
                                  AND s.day = a.day AND s.actor = a.actor)
        ), tenants_inserted AS (
            INSERT INTO audit.tenant_events (hour, tenant, occurred_at, id)
            SELECT date_trunc('hour', e.occurred_at, 'UTC'), e.tenant, e.occurred_at, e.id
              FROM audit.events AS e
             WHERE e.txid >= low AND e.txid < high AND e.tenant IS NOT NULL
        )
        SELECT coalesce(sum(c.events), 0) INTO counted FROM counts AS c;
    END IF;
    INSERT INTO audit.summary_state AS st (watermark) VALUES (high)
    ON CONFLICT (singleton) DO UPDATE SET watermark = excluded.watermark, summarized_at = now();
    RETURN counted;
END
$$;

-- Readies a partition of audit.events: its indexes, its guards, its replica identity.
--
-- Indexes earn their place: each btree is one more write per captured change, the largest
-- part of capture's cost after the event row itself (see bench/results). So:
-- (occurred_at, id) serves time ranges and the report's newest-first order with keyset
-- pagination; (entity, subject_id) serves "the whole history of contact 42"; (txid, id) is
-- the change stream's order. There is no primary-key index: ids are unique by construction
-- (one sequence, and rows are never updated), and a BRIN index finds an id among the few
-- block ranges that can hold it, since ids grow with the table. One organization's events
-- are found through audit.tenant_events, which maintenance makes (summary.sql): an index on
-- tenant here cost capture a tenth of its throughput. The other filters (actor,
-- action, source, table) find their hours in audit.event_summary and audit.kind_hours, made
-- by maintenance at no cost to capture: an index on actor alone cost capture about a tenth of its time.
--
-- The indexes are the partition's own, not partitions of indexes on audit.events: the
-- parent is made by CREATE EXTENSION, so indexes on it would exist before a restore attaches
-- the partitions pg_dump saved, be built on each as it is attached, and collide with the
-- partition's own indexes that pg_dump creates next.
--
-- Statement triggers fire only for the table a statement names, so each partition refuses
-- changes and SQL inserts itself.
CREATE OR REPLACE FUNCTION audit.setup_events_partition(part regclass) RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    name text := (SELECT c.relname FROM pg_class AS c WHERE c.oid = part);
BEGIN
    EXECUTE format('CREATE INDEX %I ON %s (occurred_at, id)', name || '_occurred_at_id_idx', part);
    EXECUTE format('CREATE INDEX %I ON %s (entity, subject_id)', name || '_entity_subject_id_idx', part);
    EXECUTE format('CREATE INDEX %I ON %s (txid, id)', name || '_txid_id_idx', part);
    EXECUTE format('CREATE INDEX %I ON %s USING brin (id)', name || '_id_idx', part);
    -- A table's truncates (rare), for a row's history: without it they are found among the
    -- entity's subject-less events (its exports, say), a scan of up to all of them.
    EXECUTE format('CREATE INDEX %I ON %s (table_name, occurred_at, id) WHERE action = %L',
                   name || '_truncates_idx', part, 'truncate');
    PERFORM audit.guard_events_partition(part);
END
$$;

-- The partitions there are get the index of truncates new ones get (a row's history).
DO $$
DECLARE
    part regclass;
BEGIN
    FOR part IN SELECT t.relid FROM pg_catalog.pg_partition_tree('audit.events') AS t
                 WHERE t.level > 0 AND t.isleaf
    LOOP
        EXECUTE pg_catalog.format('CREATE INDEX %I ON %s (table_name, occurred_at, id) WHERE action = %L',
                                  (SELECT c.relname FROM pg_catalog.pg_class AS c WHERE c.oid = part)
                                      OPERATOR(pg_catalog.||) '_truncates_idx',
                                  part, 'truncate');
    END LOOP;
END
$$;

DROP FUNCTION audit.track(regclass, text, name, name[], name[]);

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

DROP VIEW audit.tracked;

-- capturing: all four capture triggers are in place and enabled. False only where they were
-- never created: after a restore that stopped before its post-data section, or one that
-- left out triggers; audit.track() on the table again puts them back.
CREATE OR REPLACE VIEW audit.tracked AS
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

-- 6. The report: its newest page by index; categories that do not overlap -------------

-- Every event, with a one-line summary and whole row images. Order by
-- occurred_at DESC, id DESC for newest first.
CREATE OR REPLACE VIEW audit.report AS
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
           -- What audit.revert wrote: the change it put back, by the event's own action.
           WHEN e.source = 'revert' AND e.context ? 'reverts' AND e.action IN ('create', 'update', 'delete')
               THEN pg_catalog.format('%s reverted %s %s''s %s', e.actor, e.entity, e.subject_id,
                                      CASE e.action WHEN 'create' THEN 'deletion'
                                                    WHEN 'delete' THEN 'creation'
                                                    ELSE 'update' END)
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
           WHEN e.action = 'alter' AND e.details ? 'settings'
                AND e.details -> 'settings' @> '[{"table_renamed": []}]'
               THEN pg_catalog.format('%s renamed %s table %s (%s)', e.actor, e.entity, e.table_name,
                                      coalesce(e.details ->> 'command', 'DDL'))
           WHEN e.action = 'alter'
               THEN pg_catalog.format('%s altered %s table %s (%s)', e.actor, e.entity, e.table_name,
                                      coalesce(e.details ->> 'command', 'DDL'))
           WHEN e.action = 'track' AND e.entity = 'audit_log'
               THEN pg_catalog.format('%s %s %s as %s', e.actor,
                                      CASE WHEN e.details -> 'previous' = 'null'
                                           THEN 'started tracking' ELSE 're-tracked' END,
                                      e.table_name, e.details ->> 'entity')
           WHEN e.action = 'untrack' AND e.entity = 'audit_log'
               THEN pg_catalog.format('%s stopped tracking %s', e.actor,
                                      coalesce(e.table_name, e.details ->> 'table'))
           WHEN e.action = 'sign_in' AND e.entity = 'audit_log'
               THEN pg_catalog.format('%s signed in to the dashboard from %s', e.actor,
                                      coalesce(e.details ->> 'from', 'an unknown address'))
           WHEN e.action = 'alert' AND e.entity = 'audit_log'
               THEN pg_catalog.format('alert %s (%s): %s, by %s (%s events)',
                                      e.details ->> 'rule', e.details ->> 'severity',
                                      coalesce(e.details ->> 'description', 'see details'),
                                      e.details ->> 'actor', e.details ->> 'count')
           WHEN e.action = 'verify_failed' AND e.entity = 'audit_log'
               THEN pg_catalog.format('%s found the audit log altered: %s', e.actor,
                                      coalesce(e.details -> 'findings' -> 0 ->> 'message', 'see details'))
           WHEN e.action = 'table_dropped' AND e.entity = 'audit_log'
               THEN pg_catalog.format('%s dropped tracked table %s', e.actor,
                                      coalesce(e.table_name, e.details ->> 'table'))
           ELSE pg_catalog.format('%s: %s %s%s', e.actor, e.action, e.entity,
                                  coalesce(' ' || e.subject_id, ''))
       END
       || CASE WHEN e.source NOT IN ('manual', 'revert') THEN pg_catalog.format(' (%s)', e.source) ELSE '' END
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
       e.txid,
       e.tenant
  FROM audit.events AS e
  -- Tables tracked under another entity's subject (group_members under its group, a user's
  -- permission rows under the user): their events read "added ... to" and "removed ...
  -- from", naming the rest of the row's primary key. A subquery, not a CTE: a view with a
  -- CTE is never merged into the query that reads it, so "the newest 50 of the report"
  -- would summarize and sort every event first; merged, it walks the events' time index and
  -- costs what the same page of audit.events does.
  LEFT JOIN (
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
  ) AS l ON l.table_name = e.table_name
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

-- The categories of the Audit Log Report, as contract/src/categories.rs defines them (a test
-- compares): they do not overlap, so an export of contacts is in export_activity only.
CREATE OR REPLACE VIEW audit.contact_activity AS
SELECT * FROM audit.report WHERE entity = 'contact' AND action <> 'export';

CREATE OR REPLACE VIEW audit.group_activity AS
SELECT * FROM audit.report WHERE entity = 'group' AND action <> 'export';

CREATE OR REPLACE VIEW audit.user_activity AS
SELECT * FROM audit.report WHERE entity = 'user' AND action <> 'export';

-- Contacts exported, audit log exported: every export, whatever was exported.
CREATE OR REPLACE VIEW audit.export_activity AS SELECT * FROM audit.report WHERE action = 'export';

-- The fast filtered search (contract/src/search.rs) -------------------------------------------

-- The SQL of one page of audit.search, from which filters are given (contract/src/
-- search.rs): never a value, only their presence and the actors' distinct positions.
CREATE FUNCTION audit.search_plan(
    since          boolean,
    until          boolean,
    actors         text[],
    entities       boolean,
    actions        boolean,
    except_actions boolean,
    sources        boolean,
    subject        boolean,
    table_name     boolean,
    tenant         boolean,
    direction      text,
    summarized     boolean
) RETURNS text
    LANGUAGE c IMMUTABLE
AS 'MODULE_PATHNAME', 'audit_search_plan';

-- One page of the report's events matching the filters, newest first: what the dashboard,
-- the API and SQL users page through. Every argument is optional; a filter left NULL (or an
-- empty list) matches everything. The next page: before_at and before_id of the last row.
-- The page before it (newer): after_at and after_id of the first row. Found through the
-- hourly summary, an organization's own index or the time index (contract/src/search.rs),
-- so a filter that matches rarely reads a few index entries, not the whole log.
CREATE FUNCTION audit.search(
    since          timestamptz DEFAULT NULL,
    until          timestamptz DEFAULT NULL,
    actors         text[]      DEFAULT NULL,
    entities       text[]      DEFAULT NULL,
    actions        text[]      DEFAULT NULL,
    sources        text[]      DEFAULT NULL,
    subject        text        DEFAULT NULL,
    table_name     text        DEFAULT NULL,
    tenant         text        DEFAULT NULL,
    page_size      integer     DEFAULT 50,
    before_at      timestamptz DEFAULT NULL,
    before_id      bigint      DEFAULT NULL,
    after_at       timestamptz DEFAULT NULL,
    after_id       bigint      DEFAULT NULL,
    except_actions text[]      DEFAULT NULL
) RETURNS SETOF audit.report
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    watermark xid8;
    direction text := CASE WHEN before_at IS NOT NULL THEN 'before'
                           WHEN after_at IS NOT NULL THEN 'after'
                           ELSE 'newest' END;
BEGIN
    IF page_size IS NULL OR page_size < 1 OR page_size > 10000 THEN
        RAISE EXCEPTION 'page_size must be between 1 and 10000, not %', page_size
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF (before_at IS NULL) <> (before_id IS NULL) OR (after_at IS NULL) <> (after_id IS NULL)
       OR (before_at IS NOT NULL AND after_at IS NOT NULL) THEN
        RAISE EXCEPTION 'give before_at and before_id (the last row of the previous page), or after_at and after_id, not a part or both'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF since >= until THEN
        RAISE EXCEPTION 'since (%) must be before until (%)', since, until
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT s.watermark INTO watermark FROM audit.summary_state AS s;
    RETURN QUERY EXECUTE
        'SELECT r.* FROM (' || audit.search_plan(
            since IS NOT NULL, until IS NOT NULL,
            CASE WHEN cardinality(actors) > 0 THEN actors END,
            cardinality(entities) > 0, cardinality(actions) > 0,
            cardinality(except_actions) > 0, cardinality(sources) > 0,
            subject IS NOT NULL, table_name IS NOT NULL, tenant IS NOT NULL,
            direction, watermark IS NOT NULL)
        || ') AS p
           CROSS JOIN LATERAL (SELECT * FROM audit.report AS r
                                WHERE r.occurred_at = p.occurred_at AND r.id = p.id) AS r
           ORDER BY r.occurred_at DESC, r.id DESC'
        USING since, until, actors, entities, actions, sources, subject, table_name, tenant,
              page_size, coalesce(before_at, after_at), coalesce(before_id, after_id),
              except_actions, watermark;
END
$$;

-- History and undo (docs/undo.md) ---------------------------------------------------------------

-- The tracked-table settings of `target`, or an error naming it: history and undo work on
-- tracked tables only.
CREATE FUNCTION audit.tracked_table_of(target regclass)
    RETURNS audit.tracked_tables
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    tracked audit.tracked_tables;
BEGIN
    IF target IS NULL THEN
        RAISE EXCEPTION 'a table must be given, not NULL' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT * INTO tracked FROM audit.tracked_tables t WHERE t.relid = target;
    IF tracked.relid IS NULL THEN
        RAISE EXCEPTION 'table % is not tracked', target
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'audit.tracked lists the tracked tables.';
    END IF;
    RETURN tracked;
END
$$;

-- The events of one row (one subject of a tracked table) in the order they happened, with
-- the whole row before and after each: NULL before a create, NULL after a delete or a
-- truncate of the table. Redacted values read "[redacted]", as in the events.
CREATE FUNCTION audit.history(target regclass, subject text)
    RETURNS TABLE (
        event_id       bigint,
        occurred_at    timestamptz,
        txid           xid8,
        actor          text,
        source         text,
        action         text,
        changed_fields text[],
        before         jsonb,
        after          jsonb
    )
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    tracked audit.tracked_tables;
BEGIN
    tracked := audit.tracked_table_of(target);
    -- The row's own events through the (entity, subject_id) index, and the table's
    -- truncates since its first: only those that found the row there are kept.
    RETURN QUERY
    WITH own AS (
        SELECT e.* FROM audit.events e
         WHERE e.entity = tracked.entity AND e.subject_id = subject
           AND e.table_name = tracked.table_name
    ), truncates AS (
        SELECT e.* FROM audit.events e
         WHERE e.entity = tracked.entity AND e.subject_id IS NULL AND e.action = 'truncate'
           AND e.table_name = tracked.table_name
           AND (e.occurred_at, e.id) > (SELECT o.occurred_at, o.id FROM own o ORDER BY o.occurred_at, o.id LIMIT 1)
    ), steps AS (
        SELECT e.id, e.occurred_at, e.txid, e.actor, e.source, e.action, e.changed_fields,
               CASE e.action
                   WHEN 'create' THEN NULL
                   WHEN 'update' THEN e.new_data OPERATOR(pg_catalog.||) e.old_data
                   WHEN 'delete' THEN e.old_data
                   -- A truncate empties the table: the row before it is the last one known.
                   ELSE pg_catalog.lag(e.new_data) OVER (ORDER BY e.occurred_at, e.id)
               END AS before,
               CASE WHEN e.action IN ('create', 'update') THEN e.new_data END AS after
          FROM (SELECT * FROM own UNION ALL SELECT * FROM truncates) e
    )
    SELECT s.* FROM steps s
     WHERE NOT (s.action = 'truncate' AND s.before IS NULL)
     ORDER BY s.occurred_at, s.id;
END
$$;
COMMENT ON FUNCTION audit.history(regclass, text) IS
    'The events of one row of a tracked table, oldest first, with the whole row before and after each.';

-- The whole row as it was at `at` (as of the start of the statements that changed it), or
-- NULL if it did not exist then.
CREATE FUNCTION audit.row_as_of(target regclass, subject text, at timestamptz)
    RETURNS jsonb
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    tracked audit.tracked_tables;
    latest  audit.events;
BEGIN
    IF at IS NULL THEN
        RAISE EXCEPTION 'audit.row_as_of: at must be a time, not NULL'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    tracked := audit.tracked_table_of(target);
    SELECT e.* INTO latest
      FROM audit.events e
     WHERE e.entity = tracked.entity AND e.subject_id = subject
       AND e.table_name = tracked.table_name AND e.occurred_at <= at
     ORDER BY e.occurred_at DESC, e.id DESC
     LIMIT 1;
    IF latest.id IS NULL OR latest.action = 'delete' THEN
        RETURN NULL;
    END IF;
    -- A truncate of the table since then, and before `at`, took the row with it.
    IF EXISTS (SELECT FROM audit.events t
                WHERE t.entity = tracked.entity AND t.table_name = tracked.table_name
                  AND t.action = 'truncate' AND (t.occurred_at, t.id) > (latest.occurred_at, latest.id)
                  AND t.occurred_at <= at) THEN
        RETURN NULL;
    END IF;
    RETURN latest.new_data;
END
$$;
COMMENT ON FUNCTION audit.row_as_of(regclass, text, timestamptz) IS
    'A tracked table''s row as it was at a time, rebuilt from its events; NULL if it did not exist then.';

-- The primary key columns of `target`, in key order: how a row is found again.
CREATE FUNCTION audit.undo_key(target regclass)
    RETURNS text[]
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
RETURN (SELECT array_agg(a.attname::text ORDER BY k.position)
          FROM pg_index i
         CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, position)
          JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
         WHERE i.indrelid = target AND i.indisprimary);

-- The columns of `target` a row image can set back: those it still has, that are not
-- generated, and that the image holds.
CREATE FUNCTION audit.undo_columns(target regclass, image jsonb)
    RETURNS text[]
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
RETURN (SELECT coalesce(array_agg(a.attname::text ORDER BY a.attnum), '{}')
          FROM pg_attribute a
         WHERE a.attrelid = target AND a.attnum > 0 AND NOT a.attisdropped
           AND a.attgenerated = '' AND image ? a.attname::text);

-- "(l.a, l.b)" for columns a, b of alias l: a row of names, each quoted.
CREATE FUNCTION audit.undo_row(alias text, columns text[])
    RETURNS text
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
RETURN '(' || (SELECT string_agg(format('%I.%I', alias, c), ', ' ORDER BY n)
                 FROM unnest(columns) WITH ORDINALITY AS u(c, n)) || ')';

-- "l.a::text IS NOT DISTINCT FROM r.a::text AND ..." for `columns`: the live row `l` still
-- holds the image `r`'s values (true for none).
CREATE FUNCTION audit.undo_unchanged(columns text[])
    RETURNS text
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
RETURN coalesce((SELECT string_agg(format('l.%1$I::text IS NOT DISTINCT FROM r.%1$I::text', c), ' AND ')
                   FROM unnest(columns) AS c), 'true');

-- Locks the live row whose key the image `image` holds and returns the columns among
-- `columns` whose value is no longer the image's (compared as text, so every type compares,
-- json and arrays included); NULL when no such row exists.
CREATE FUNCTION audit.undo_differences(target regclass, keys text[], columns text[], image jsonb)
    RETURNS text[]
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    differ text[];
BEGIN
    EXECUTE format('SELECT array_remove(ARRAY[%s]::text[], NULL) FROM %s l, jsonb_populate_record(NULL::%s, $1) r
                     WHERE %s = %s FOR UPDATE OF l',
                   coalesce((SELECT string_agg(format('CASE WHEN l.%1$I::text IS DISTINCT FROM r.%1$I::text THEN %1$L END', c), ', ')
                               FROM unnest(columns) AS c), ''),
                   target, target, audit.undo_row('l', keys), audit.undo_row('r', keys))
        INTO differ USING image;
    RETURN differ;
END
$$;

-- What a redacted column means for a revert: its value in `before` (the row as the revert
-- would make it) was never recorded, unless it was NULL. Refused, naming it, unless
-- skip_redacted, which leaves it out (a deleted row comes back with the column's default;
-- an update leaves the column as it is).
CREATE FUNCTION audit.undo_without_redacted(event_id bigint, table_name text, redacted text[],
                                            columns text[], before jsonb, skip_redacted boolean)
    RETURNS text[]
    LANGUAGE plpgsql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    hidden text[] := ARRAY(SELECT c FROM unnest(columns) AS c
                            WHERE c = ANY (redacted) AND before -> c <> 'null'::jsonb);
BEGIN
    IF cardinality(hidden) > 0 AND NOT skip_redacted THEN
        RAISE EXCEPTION 'event % cannot be put back as it was: column % of % is redacted in it, its value was never recorded',
                        event_id, hidden[1], table_name
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'skip_redacted => true puts back the rest (a deleted row with the column''s default).';
    END IF;
    RETURN ARRAY(SELECT c FROM unnest(columns) AS c WHERE c <> ALL (hidden));
END
$$;

-- The event, checked to be one a revert can put back: a create, update or delete of a
-- tracked table. With its transaction known, found through the (txid, id) index; by id
-- alone, through the id's block-range index.
CREATE FUNCTION audit.undo_checked_event(event_id bigint, txid xid8 DEFAULT NULL)
    RETURNS audit.events
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    ev audit.events;
BEGIN
    IF txid IS NULL THEN
        SELECT * INTO ev FROM audit.events e WHERE e.id = event_id;
    ELSE
        SELECT * INTO ev FROM audit.events e WHERE e.txid = undo_checked_event.txid AND e.id = event_id;
    END IF;
    IF ev.id IS NULL THEN
        RAISE EXCEPTION 'no event % in the audit log', event_id USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF ev.action NOT IN ('create', 'update', 'delete') OR ev.table_name IS NULL OR ev.entity = 'audit_log' THEN
        RAISE EXCEPTION 'event % (% %) cannot be reverted: only a tracked table''s create, update or delete can',
                        event_id, ev.entity, ev.action
            USING ERRCODE = 'feature_not_supported';
    END IF;
    RETURN ev;
END
$$;

-- The table the event changed, still tracked under the same name, with a primary key.
CREATE FUNCTION audit.undo_table(ev audit.events)
    RETURNS audit.tracked_tables
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    tracked audit.tracked_tables;
BEGIN
    SELECT * INTO tracked FROM audit.tracked_tables t
     WHERE t.table_name = ev.table_name AND t.entity = ev.entity;
    IF tracked.relid IS NULL THEN
        RAISE EXCEPTION 'event % cannot be reverted: its table % is no longer tracked as %', ev.id,
                        ev.table_name, ev.entity
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'It was untracked, renamed or dropped since; audit.tracked lists the tracked tables.';
    END IF;
    IF audit.undo_key(tracked.relid) IS NULL THEN
        RAISE EXCEPTION 'event % cannot be reverted: table % has no primary key to find the row by',
                        ev.id, tracked.relid
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    RETURN tracked;
END
$$;

-- Why a revert of a create or update (event `event_id`) wrote nothing: the row is gone, or
-- columns among `compared` no longer hold the image's values (raised, naming them); or, when
-- it had to write, it changed while being reverted.
CREATE FUNCTION audit.undo_refused(event_id bigint, target regclass, keys text[], compared text[],
                                   image jsonb, had_to_write boolean)
    RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    differ text[] := audit.undo_differences(target, keys, compared, image);
    key    jsonb := (SELECT jsonb_object_agg(k, image -> k) FROM unnest(keys) AS k);
BEGIN
    IF differ IS NULL THEN
        RAISE EXCEPTION 'event % cannot be reverted: the row with key % is no longer in %', event_id, key, target
            USING ERRCODE = 'object_not_in_prerequisite_state';
    ELSIF cardinality(differ) > 0 THEN
        RAISE EXCEPTION 'event % cannot be reverted: % of % changed since (the row % no longer holds what the event wrote)',
                        event_id, array_to_string(differ, ', '), target, key
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Revert the later events first, newest first, or change the row by hand.';
    ELSIF had_to_write THEN
        RAISE EXCEPTION 'event % cannot be reverted now: the row % changed while it was being reverted', event_id, key
            USING ERRCODE = 'serialization_failure', HINT = 'Try again.';
    END IF;
    -- Nothing to set back (every changed column redacted and left out): the row is there.
END
$$;

-- One event put back on its live table (see the top of this file). Called directly, the
-- change it makes is recorded as an ordinary one; through audit.revert, as a revert. `txid`,
-- the event's transaction when the caller knows it, finds it faster.
CREATE FUNCTION audit.undo_event(event_id bigint, skip_redacted boolean DEFAULT false,
                                 txid xid8 DEFAULT NULL)
    RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    ev       audit.events := audit.undo_checked_event(event_id, txid);
    tracked  audit.tracked_tables := audit.undo_table(ev);
    target   regclass := tracked.relid;
    keys     text[] := audit.undo_key(tracked.relid);
    -- The row as the event left it (a deleted row as it was): its key finds the live row.
    image    jsonb := CASE ev.action WHEN 'delete' THEN ev.old_data ELSE ev.new_data END;
    key      jsonb := (SELECT jsonb_object_agg(k, image -> k) FROM unnest(keys) AS k);
    columns  text[] := audit.undo_columns(target, image);
    compared text[];
    written  bigint := 0;
    key_deferrable boolean := (SELECT c.condeferrable FROM pg_constraint c
                            WHERE c.conrelid = target AND c.contype = 'p');
BEGIN
    IF ev.action = 'delete' THEN
        columns := audit.undo_without_redacted(event_id, ev.table_name, tracked.redact_columns,
                                               columns, image, skip_redacted);
        -- Only a row with the key stops it (ON CONFLICT on the key); any other unique
        -- constraint raises its own error. A deferrable key cannot arbitrate: looked up first.
        IF key_deferrable AND audit.undo_differences(target, keys, '{}', image) IS NOT NULL THEN
            written := 0;
        ELSE
            EXECUTE format('INSERT INTO %s (%s) OVERRIDING SYSTEM VALUE SELECT %s FROM jsonb_populate_record(NULL::%s, $1) r %s',
                           target, (SELECT string_agg(format('%I', c), ', ') FROM unnest(columns) AS c),
                           (SELECT string_agg(format('r.%I', c), ', ') FROM unnest(columns) AS c), target,
                           CASE WHEN NOT key_deferrable
                                THEN format('ON CONFLICT (%s) DO NOTHING',
                                            (SELECT string_agg(format('%I', k), ', ') FROM unnest(keys) AS k)) ELSE '' END)
                USING image;
            GET DIAGNOSTICS written = ROW_COUNT;
        END IF;
        IF written = 0 THEN
            RAISE EXCEPTION 'event % cannot be reverted: a row with its key % is in % again', event_id, key, target
                USING ERRCODE = 'unique_violation';
        END IF;
        RETURN;
    END IF;
    -- A create is put back by deleting the row, an update by setting the columns it changed
    -- back; either only if the row still holds what the event wrote in them.
    IF ev.action = 'update' THEN
        columns := audit.undo_without_redacted(event_id, ev.table_name, tracked.redact_columns,
                                               ARRAY(SELECT c FROM unnest(ev.changed_fields) AS c
                                                      WHERE c = ANY (columns)),
                                               ev.new_data || ev.old_data, skip_redacted);
    ELSE
        columns := ARRAY(SELECT c FROM unnest(columns) AS c
                          WHERE c <> ALL (tracked.ignore_columns || tracked.redact_columns));
    END IF;
    -- A redacted value the event wrote cannot be compared: only a NULL one can.
    compared := ARRAY(SELECT c FROM unnest(columns) AS c
                       WHERE c <> ALL (tracked.redact_columns) OR image -> c = 'null'::jsonb);
    -- One statement checks and writes (a row changed concurrently is checked again as it is
    -- then); only when it writes nothing is the row read again, to say why.
    IF ev.action = 'create' THEN
        EXECUTE format('DELETE FROM %s l USING jsonb_populate_record(NULL::%s, $1) r WHERE %s = %s AND %s',
                       target, target, audit.undo_row('l', keys), audit.undo_row('r', keys),
                       audit.undo_unchanged(compared))
            USING image;
        GET DIAGNOSTICS written = ROW_COUNT;
    ELSIF cardinality(columns) > 0 THEN
        EXECUTE format('UPDATE %s l SET %s FROM jsonb_populate_record(NULL::%s, $1) b, jsonb_populate_record(NULL::%s, $2) r
                         WHERE %s = %s AND %s',
                       target, (SELECT string_agg(format('%1$I = b.%1$I', c), ', ') FROM unnest(columns) AS c),
                       target, target, audit.undo_row('l', keys), audit.undo_row('r', keys),
                       audit.undo_unchanged(compared))
            USING ev.new_data || ev.old_data, image;
        GET DIAGNOSTICS written = ROW_COUNT;
    END IF;
    IF written = 0 THEN
        PERFORM audit.undo_refused(event_id, target, keys, compared, image,
                                   ev.action = 'create' OR cardinality(columns) > 0);
    END IF;
END
$$;

-- The changes of one transaction a revert puts back, newest first: the events of tracked
-- tables it wrote. A truncate among them refuses the whole; so does a transaction that
-- changed no tracked row.
CREATE FUNCTION audit.transaction_changes(txid xid8)
    RETURNS SETOF bigint
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    truncated bigint;
BEGIN
    SELECT e.id INTO truncated FROM audit.events e
     WHERE e.txid = transaction_changes.txid AND e.action = 'truncate' AND e.entity <> 'audit_log'
     LIMIT 1;
    IF truncated IS NOT NULL THEN
        RAISE EXCEPTION 'transaction % cannot be reverted: it emptied a table (event %), whose rows were never recorded',
                        txid, truncated
            USING ERRCODE = 'feature_not_supported';
    END IF;
    RETURN QUERY SELECT e.id FROM audit.events e
                  WHERE e.txid = transaction_changes.txid AND e.entity <> 'audit_log'
                    AND e.table_name IS NOT NULL AND e.action IN ('create', 'update', 'delete')
                  ORDER BY e.id DESC;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'transaction % changed no tracked row: nothing to revert', txid
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
END
$$;

-- A type with its domains taken off (the innermost domain's typmod kept when it has one):
-- reading a value as its domain would run the domain's CHECK expressions, code of whoever
-- made the domain, as the capture role; the value was checked when it was written.
CREATE FUNCTION audit.wal_base_type(typ oid, typmod int, OUT base oid, OUT base_typmod int)
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    base := typ;
    base_typmod := typmod;
    WHILE (SELECT t.typtype = 'd' FROM pg_type t WHERE t.oid = base) LOOP
        SELECT t.typbasetype, CASE WHEN t.typtypmod >= 0 THEN t.typtypmod ELSE base_typmod END
          INTO base, base_typmod
          FROM pg_type t WHERE t.oid = base;
    END LOOP;
END
$$;

-- The expression that turns text value `value` of column `column_name` of `target` into the
-- JSON of an event, as the trigger's to_jsonb(row) renders the column: JSON null for NULL,
-- "[redacted]" for a redacted column's value, else the value read as its type, domains taken
-- off (arrays of them too). A type of the database's own with a function cast to json (or
-- arrays of one) goes in as its text, as the trigger writes it: to_jsonb would call the cast,
-- code of the type's owner. Composite types, and ranges of a domain, whose reading would run
-- such code too, are refused: not captured from the WAL yet. NULL: no such column.
CREATE FUNCTION audit.wal_value_json(target regclass, column_name text, value text, redacted boolean)
    RETURNS text
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    col   pg_attribute;
    b     record;
    elem  record;
    read  oid;
BEGIN
    SELECT * INTO col FROM pg_attribute a
     WHERE a.attrelid = target AND a.attname = column_name AND a.attnum > 0 AND NOT a.attisdropped;
    IF col.attrelid IS NULL THEN
        RETURN NULL;
    ELSIF redacted THEN
        RETURN format('CASE WHEN %1$s IS NULL THEN ''null''::jsonb ELSE ''"[redacted]"''::jsonb END', value);
    END IF;
    b := audit.wal_base_type(col.atttypid, col.atttypmod);
    -- An array: its elements' type, domains off; the array read as an array of that.
    elem := audit.wal_base_type(coalesce(nullif((SELECT t.typelem FROM pg_type t
                                                  WHERE t.oid = b.base AND t.typcategory = 'A'), 0), b.base), -1);
    read := CASE WHEN elem.base = b.base THEN b.base
                 ELSE (SELECT t.typarray FROM pg_type t WHERE t.oid = elem.base) END;
    IF EXISTS (SELECT FROM pg_type t WHERE t.oid = elem.base AND t.typtype = 'c')
       OR EXISTS (SELECT FROM pg_range r JOIN pg_type s ON s.oid = r.rngsubtype
                   WHERE (r.rngtypid = elem.base OR r.rngmultitypid = elem.base) AND s.typtype = 'd') THEN
        RAISE EXCEPTION 'column % of % has type %, which WAL capture does not read yet (a composite type, or a range of a domain)',
                        column_name, target, format_type(col.atttypid, col.atttypmod)
            USING ERRCODE = 'feature_not_supported';
    END IF;
    IF elem.base >= 16384 AND EXISTS (SELECT FROM pg_cast c
                                       WHERE c.castsource = elem.base AND c.casttarget = 'json'::regtype
                                         AND c.castmethod = 'f') THEN
        RETURN format('coalesce(to_jsonb(%1$s), ''null''::jsonb)', value);
    END IF;
    RETURN format('coalesce(to_jsonb((%1$s)::%2$s), ''null''::jsonb)', value, format_type(read, b.base_typmod));
END
$$;

-- A JSON array of strings and nulls as text[]; NULL for JSON null (a row that is not there).
CREATE FUNCTION audit.wal_text_array(a jsonb)
    RETURNS text[]
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
RETURN CASE WHEN a IS NOT NULL AND a <> 'null'::jsonb
            THEN ARRAY(SELECT e FROM jsonb_array_elements_text(a) WITH ORDINALITY AS x(e, i) ORDER BY i) END;

-- Refuses rows that would make an event up: an action other than a row change, a row
-- missing where the action has one (or present where it has none), a row with another number
-- of values than `columns`, and `columns` without a column the table has (a publication's
-- column list, say) or without the columns named in `needed` (the subject's, the tenant's).
-- Generated columns are not in the logical stream before PostgreSQL 18: they may be absent.
CREATE FUNCTION audit.wal_check_rows(target regclass, action text, columns text[], rows jsonb,
                                     needed text[])
    RETURNS void
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    missing text := (SELECT a.attname FROM pg_attribute a
                      WHERE a.attrelid = target AND a.attnum > 0 AND NOT a.attisdropped
                        AND a.attgenerated = '' AND a.attname <> ALL (columns)
                      UNION ALL
                     SELECT c FROM unnest(needed) AS c WHERE c IS NOT NULL AND c <> ALL (columns)
                      LIMIT 1);
BEGIN
    IF action NOT IN ('create', 'update', 'delete') THEN
        RAISE EXCEPTION 'a row change is a create, update or delete, not %', action
            USING ERRCODE = 'invalid_parameter_value';
    ELSIF missing IS NOT NULL THEN
        RAISE EXCEPTION 'the values of % come without column % (a publication''s column list leaves it out?)', target, missing
            USING ERRCODE = 'invalid_parameter_value';
    ELSIF jsonb_typeof(rows) <> 'array' OR EXISTS (
            SELECT FROM jsonb_array_elements(rows) AS x(v)
             WHERE jsonb_typeof(x.v) <> 'array' OR jsonb_array_length(x.v) <> 2
                OR (jsonb_typeof(x.v -> 0) = 'array') <> (action <> 'create')
                OR (jsonb_typeof(x.v -> 1) = 'array') <> (action <> 'delete')
                OR jsonb_typeof(x.v -> 0) = 'array' AND jsonb_array_length(x.v -> 0) <> cardinality(columns)
                OR jsonb_typeof(x.v -> 1) = 'array' AND jsonb_array_length(x.v -> 1) <> cardinality(columns)) THEN
        RAISE EXCEPTION 'the rows given for % of % are not [old values, new values] pairs of % values each, as a % has',
                        action, target, cardinality(columns), action
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
END
$$;

-- The rows of one tracked table that one statement of a committed transaction changed, as
-- events would hold them. `columns` names the values of each row, in the order the server
-- sent them; `rows` is a JSON array, one element a row: [old values, new values], each an
-- array of text (JSON null for NULL; the old row null for a create, the new one for a
-- delete). An update that changed only ignored columns gives no event, as with the trigger.
-- `ordinal` is the row's place in `rows`.
CREATE FUNCTION audit.wal_changes(target regclass, action text, columns text[], rows jsonb)
    RETURNS TABLE (
        ordinal        bigint,
        subject_id     text,
        changed_fields text[],
        old_data       jsonb,
        new_data       jsonb,
        tenant         text
    )
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    tracked  audit.tracked_tables := audit.tracked_table_of(target);
    n        int := cardinality(columns);
    unknown  text := (SELECT c FROM unnest(columns) AS c
                       WHERE audit.wal_value_json(target, c, 'x', false) IS NULL LIMIT 1);
    -- Per column (1-based place i): its JSON in the old row and in the new one.
    old_json text;
    new_json text;
    position int[];
BEGIN
    IF unknown IS NOT NULL THEN
        RAISE EXCEPTION 'column % is not a column of % (the table changed since the change was decoded)', unknown, target
            USING ERRCODE = 'undefined_column';
    END IF;
    PERFORM audit.wal_check_rows(target, action, columns, rows,
                                 tracked.subject_columns || tracked.tenant_column);
    SELECT string_agg(audit.wal_value_json(target, c, format('t.o[%s]', i), c = ANY (tracked.redact_columns)), ', ' ORDER BY i),
           string_agg(audit.wal_value_json(target, c, format('t.n[%s]', i), c = ANY (tracked.redact_columns)), ', ' ORDER BY i)
      INTO old_json, new_json
      FROM unnest(columns) WITH ORDINALITY AS u(c, i);
    -- Where the subject and tenant columns are among the values.
    position := ARRAY(SELECT array_position(columns, s) FROM unnest(tracked.subject_columns) AS s);
    RETURN QUERY EXECUTE format(
        $q$
        -- Each row's values read once (MATERIALIZED, OFFSET 0): inlined, every use of a row's
        -- arrays below would read them again, several times per column.
        WITH r AS MATERIALIZED (
            SELECT t.ord, t.o, t.n,
                   ARRAY[%1$s]::jsonb[] AS oj, ARRAY[%2$s]::jsonb[] AS nj,
                   ARRAY(SELECT i FROM generate_series(1, %3$s) AS i
                          WHERE t.o[i] IS DISTINCT FROM t.n[i]) AS changed
              FROM (SELECT x.ord, audit.wal_text_array(x.v -> 0) AS o, audit.wal_text_array(x.v -> 1) AS n
                      FROM jsonb_array_elements($1) WITH ORDINALITY AS x(v, ord)
                    OFFSET 0) AS t
        )
        SELECT r.ord,
               CASE WHEN cardinality($3) = 1 THEN (coalesce(r.n, r.o))[$3[1]]
                    ELSE (SELECT jsonb_agg((CASE WHEN r.n IS NULL THEN r.oj ELSE r.nj END)[p] ORDER BY k)
                            FROM unnest($3) WITH ORDINALITY AS s(p, k))::text END,
               CASE WHEN $4 = 'update' THEN ARRAY(SELECT $2[i] FROM unnest(r.changed) AS i
                                                    WHERE $2[i] <> ALL ($5)) END,
               CASE $4 WHEN 'delete' THEN (SELECT jsonb_object_agg($2[i], r.oj[i]) FROM generate_series(1, %3$s) AS i)
                       WHEN 'update' THEN coalesce((SELECT jsonb_object_agg($2[i], r.oj[i]) FROM unnest(r.changed) AS i), '{}')
               END,
               CASE WHEN $4 <> 'delete' THEN (SELECT jsonb_object_agg($2[i], r.nj[i]) FROM generate_series(1, %3$s) AS i) END,
               coalesce(r.n[array_position($2, $6)], r.o[array_position($2, $6)])
          FROM r
         WHERE $4 <> 'update' OR EXISTS (SELECT FROM unnest(r.changed) AS i WHERE $2[i] <> ALL ($5))
         ORDER BY r.ord
        $q$,
        CASE WHEN action = 'create' THEN 'NULL::jsonb' ELSE old_json END,
        CASE WHEN action = 'delete' THEN 'NULL::jsonb' ELSE new_json END,
        n)
        USING rows, columns, position, action, tracked.ignore_columns, tracked.tenant_column;
END
$$;
COMMENT ON FUNCTION audit.wal_changes(regclass, text, text[], jsonb) IS
    'WAL capture: decoded rows of a tracked table as events would hold them (subject, changed fields, row images, organization).';

CREATE FUNCTION audit.revert(event_id bigint, skip_redacted boolean DEFAULT false)
    RETURNS void
    LANGUAGE c
    SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'audit_revert';
COMMENT ON FUNCTION audit.revert(bigint, boolean) IS
    'Puts back what one event changed, as the caller, recorded as a revert; refused if the row changed since.';

CREATE FUNCTION audit.revert_transaction(txid xid8, skip_redacted boolean DEFAULT false)
    RETURNS bigint
    LANGUAGE c
    SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'audit_revert_transaction';
COMMENT ON FUNCTION audit.revert_transaction(xid8, boolean) IS
    'Puts back every change of one transaction, newest first, all or nothing; returns how many events.';

-- 7. Privileges ----------------------------------------------------------------------------------

REVOKE INSERT ON audit.seals, audit.seal_keys FROM audit_admin;
REVOKE INSERT, UPDATE, DELETE ON audit.consumers FROM audit_admin;
REVOKE ALL ON audit.log_state FROM PUBLIC;
GRANT SELECT ON audit.log_state TO audit_admin;
GRANT SELECT ON audit.tracked TO audit_admin;
REVOKE ALL ON audit.tenant_events, audit.tenant_events_default FROM PUBLIC;
GRANT SELECT ON audit.tenant_events, audit.tenant_events_default TO audit_admin;
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA audit FROM PUBLIC;
GRANT EXECUTE ON FUNCTION audit.set_actor(text, text, jsonb, text) TO PUBLIC;
GRANT EXECUTE ON FUNCTION audit.log_event(text, text, text, jsonb) TO PUBLIC;
GRANT EXECUTE ON FUNCTION audit.add_seal(text, text, bytea, bytea) TO audit_service;
GRANT EXECUTE ON FUNCTION audit.take_service_lock(text, boolean) TO audit_service;
-- WAL capture (docs/wal-capture.md) turns decoded rows into events through this.
GRANT EXECUTE ON FUNCTION audit.wal_changes(regclass, text, text[], jsonb),
                          audit.wal_check_rows(regclass, text, text[], jsonb, text[]),
                          audit.wal_value_json(regclass, text, text, boolean),
                          audit.wal_base_type(oid, int),
                          audit.wal_text_array(jsonb) TO audit_service;
GRANT EXECUTE ON FUNCTION audit.open_consumer(text), audit.lock_consumer(text),
                          audit.advance_consumer(text, xid8, bigint, bigint),
                          audit.move_consumer(text, xid8, bigint),
                          audit.record_alert(text, jsonb) TO audit_admin;
GRANT EXECUTE ON FUNCTION audit.record_archive(text, bigint, text, jsonb, text),
                          audit.record_archive_check(text, text, text, text),
                          audit.archives_to_check() TO audit_service;
GRANT EXECUTE ON FUNCTION audit.archive_check_window() TO audit_admin;
GRANT EXECUTE ON FUNCTION audit.schema_findings() TO audit_admin;
GRANT EXECUTE ON FUNCTION audit.search(timestamptz, timestamptz, text[], text[], text[], text[],
                                       text, text, text, integer, timestamptz, bigint,
                                       timestamptz, bigint, text[]),
                          audit.search_plan(boolean, boolean, text[], boolean, boolean, boolean,
                                            boolean, boolean, boolean, boolean, text, boolean)
    TO audit_admin;
GRANT EXECUTE ON FUNCTION audit.history(regclass, text),
                          audit.row_as_of(regclass, text, timestamptz),
                          audit.tracked_table_of(regclass),
                          audit.revert(bigint, boolean),
                          audit.revert_transaction(xid8, boolean),
                          audit.undo_event(bigint, boolean, xid8),
                          audit.undo_checked_event(bigint, xid8),
                          audit.undo_table(audit.events),
                          audit.undo_key(regclass),
                          audit.undo_columns(regclass, jsonb),
                          audit.undo_row(text, text[]),
                          audit.undo_unchanged(text[]),
                          audit.undo_differences(regclass, text[], text[], jsonb),
                          audit.undo_refused(bigint, regclass, text[], text[], jsonb, boolean),
                          audit.undo_without_redacted(bigint, text, text[], text[], jsonb, boolean),
                          audit.transaction_changes(xid8)
    TO audit_admin;
