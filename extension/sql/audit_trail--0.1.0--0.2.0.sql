-- audit_trail 0.1.0 -> 0.2.0 (ALTER EXTENSION audit_trail UPDATE). Frozen once 0.2.0 shipped.
--
-- 1. The store becomes partitioned without rewriting a row: the 0.1.0 table is renamed and
--    attached, as it is, as the partition of everything up to the end of the month of the
--    upgrade (or of its newest event). Attaching checks that bound with one scan of the
--    table; capture waits for the upgrade's transaction, about as long as that scan takes.
--    The first audit.maintain() afterwards counts the old events into audit.event_summary.
-- 2. The tracked tables' settings gain the name and column numbers the DDL hooks follow.
-- 3. Functions, views, triggers and grants are then defined as in 0.2.0 (CREATE OR REPLACE
--    where 0.1.0 had the object, so that nothing depending on it is dropped).

-- Event triggers are made again below; they must not fire on this script's own DDL with
-- 0.1.0's rules.
DROP EVENT TRIGGER IF EXISTS audit_trail_ddl_command_end;
DROP EVENT TRIGGER IF EXISTS audit_trail_sql_drop;
-- Replaced by audit.record_ddl_event.
DROP FUNCTION IF EXISTS audit.record_table_dropped(text);

-- 1. The store -------------------------------------------------------------------------------

DROP TRIGGER events_append_only ON audit.events;
ALTER TABLE audit.events RENAME TO events_0_1_0;
ALTER INDEX audit.events_occurred_at_idx RENAME TO events_0_1_0_occurred_at_id_idx;
ALTER INDEX audit.events_subject_idx RENAME TO events_0_1_0_entity_subject_id_idx;
ALTER INDEX audit.events_txid_idx RENAME TO events_0_1_0_txid_id_idx;
ALTER INDEX audit.events_id_brin RENAME TO events_0_1_0_id_idx;
-- PostgreSQL 18 keeps each NOT NULL as a constraint named like an index (events_<column>_not_null),
-- and a new one takes a name no constraint of the schema has: renamed with the table, so that
-- the new audit.events gets a fresh install's names. Before 18 there are none to rename.
DO $$
DECLARE
    old name;
BEGIN
    FOR old IN SELECT conname FROM pg_catalog.pg_constraint
                WHERE conrelid = 'audit.events_0_1_0'::pg_catalog.regclass AND contype = 'n'
                  AND conname LIKE 'events\_%'
    LOOP
        EXECUTE pg_catalog.format('ALTER TABLE audit.events_0_1_0 RENAME CONSTRAINT %I TO %I',
                                  old, 'events_0_1_0' || pg_catalog.substr(old, 7));
    END LOOP;
END
$$;
-- A partition is data, not part of the extension: pg_dump must dump it like the partitions
-- audit.maintain() makes (this also takes it off the extension's config-dump list).
ALTER EXTENSION audit_trail DROP TABLE audit.events_0_1_0;

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
) PARTITION BY RANGE (occurred_at);
ALTER SEQUENCE audit.events_id_seq OWNED BY audit.events.id;
CREATE TABLE audit.events_default PARTITION OF audit.events DEFAULT;
ALTER TABLE audit.events REPLICA IDENTITY FULL;
COMMENT ON TABLE audit.events IS
    'Append-only audit log: one row per captured change or application event.';
SELECT pg_catalog.pg_extension_config_dump('audit.events', '');
SELECT pg_catalog.pg_extension_config_dump('audit.events_default', '');

DO $$
DECLARE
    upper timestamptz := date_trunc('month', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
                         + interval '1 month';
    newest timestamptz := (SELECT max(occurred_at) FROM audit.events_0_1_0);
BEGIN
    IF newest >= upper THEN
        upper := date_trunc('month', newest AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
                 + interval '1 month';
    END IF;
    EXECUTE format('ALTER TABLE audit.events ATTACH PARTITION audit.events_0_1_0
                    FOR VALUES FROM (MINVALUE) TO (%L)', upper);
END
$$;

-- 2. Settings --------------------------------------------------------------------------------

ALTER TABLE audit.tracked_tables ADD COLUMN table_name text;
ALTER TABLE audit.tracked_tables ADD COLUMN column_attnums jsonb NOT NULL DEFAULT '{}';
UPDATE audit.tracked_tables AS s
   SET table_name = (SELECT format('%I.%I', n.nspname, c.relname)
                       FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
                      WHERE c.oid = s.relid),
       column_attnums = (SELECT coalesce(jsonb_object_agg(m.name, a.attnum), '{}')
                           FROM unnest(s.subject_columns || s.ignore_columns
                                       || s.redact_columns) AS m(name)
                           LEFT JOIN pg_attribute AS a
                             ON a.attrelid = s.relid AND a.attname = m.name
                            AND a.attnum > 0 AND NOT a.attisdropped);
ALTER TABLE audit.tracked_tables ALTER COLUMN table_name SET NOT NULL;

-- 3. Definitions of 0.2.0 --------------------------------------------------------------------

-- ---- extension/sql/api.sql of 0.2.0 ----
-- audit_trail: capture, attribution, retention and DDL hooks. Runs after schema.sql.

-- Capture ------------------------------------------------------------------------------------

-- Installed by audit.track on each tracked table; not callable directly.
CREATE OR REPLACE FUNCTION audit.capture() RETURNS trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'audit_capture';

CREATE OR REPLACE FUNCTION audit.track(
    target         regclass,
    entity         text,
    subject_column name   DEFAULT NULL,
    ignore_columns name[] DEFAULT '{}',
    redact_columns name[] DEFAULT '{}'
) RETURNS void
    LANGUAGE c AS 'MODULE_PATHNAME', 'audit_track';
COMMENT ON FUNCTION audit.track(regclass, text, name, name[], name[]) IS
    'Start (or re-configure) capture of a table''s changes as events about entity.';

CREATE OR REPLACE FUNCTION audit.untrack(target regclass) RETURNS void
    LANGUAGE c AS 'MODULE_PATHNAME', 'audit_untrack';

-- capturing: all four capture triggers are in place and enabled. False only where they were
-- never created: after a restore that stopped before its post-data section, or one that
-- left out triggers; audit.track() on the table again puts them back.
CREATE OR REPLACE VIEW audit.tracked AS
SELECT s.relid           AS table_name,
       s.entity,
       s.subject_columns,
       s.ignore_columns,
       s.redact_columns,
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

-- SET LOCAL helper: the settings vanish at commit or rollback, so a pooled connection never
-- carries one request's actor into the next. NULL source or context resets them.
CREATE OR REPLACE FUNCTION audit.set_actor(actor text, source text DEFAULT NULL, context jsonb DEFAULT NULL)
    RETURNS void
    LANGUAGE sql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT set_config('audit.actor', coalesce(actor, ''), true),
           set_config('audit.source', coalesce(source, ''), true),
           set_config('audit.context', coalesce(context::text, ''), true);
$$;

CREATE OR REPLACE FUNCTION audit.log_event(
    entity     text,
    action     text,
    subject_id text  DEFAULT NULL,
    details    jsonb DEFAULT NULL
) RETURNS bigint
    LANGUAGE c AS 'MODULE_PATHNAME', 'audit_log_event';

-- Append-only storage and retention ---------------------------------------------------------

CREATE OR REPLACE FUNCTION audit.refuse_change() RETURNS trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'audit_refuse_change';

CREATE TRIGGER events_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON audit.events
    FOR EACH STATEMENT EXECUTE FUNCTION audit.refuse_change();
-- ALWAYS: fires even under session_replication_role = replica.
ALTER TABLE audit.events ENABLE ALWAYS TRIGGER events_append_only;

-- No row enters audit.events through SQL once it holds events: INSERT or COPY into it
-- could only forge or duplicate them (capture writes without SQL, and fires no statement
-- trigger). Into an empty table it is a restore of a backup, which is allowed: a data-only
-- restore into a database that already has a log fails loudly instead of mixing two logs.
CREATE OR REPLACE FUNCTION audit.refuse_insert() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    filled boolean;
BEGIN
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

CREATE TRIGGER events_no_sql_insert
    BEFORE INSERT ON audit.events
    FOR EACH STATEMENT EXECUTE FUNCTION audit.refuse_insert();
ALTER TABLE audit.events ENABLE ALWAYS TRIGGER events_no_sql_insert;

CREATE OR REPLACE FUNCTION audit.purge(older_than timestamptz) RETURNS bigint
    LANGUAGE c STRICT AS 'MODULE_PATHNAME', 'audit_purge';
COMMENT ON FUNCTION audit.purge(timestamptz) IS
    'Delete events that occurred before older_than; records an audit_log/purge event.';

-- Keeping settings in step with DDL ---------------------------------------------------------

-- True while audit.track/untrack create or drop capture triggers; set only by their code.
CREATE OR REPLACE FUNCTION audit.capture_change_in_progress() RETURNS boolean
    LANGUAGE c AS 'MODULE_PATHNAME', 'audit_capture_change_in_progress';

-- True only while audit.maintain or audit.purge run the maintenance functions
-- (extension/sql/lifetime.sql): the hooks let them, and nothing else, create, fill, attach
-- and drop partitions of audit.events.
CREATE OR REPLACE FUNCTION audit.maintenance_in_progress() RETURNS boolean
    LANGUAGE c AS 'MODULE_PATHNAME', 'audit_maintenance_in_progress';

-- The name of the table a reported DDL command attaches as a partition, when that is all
-- it does (extension/src/ddl_command.rs).
CREATE OR REPLACE FUNCTION audit.ddl_attached_partition(command pg_ddl_command) RETURNS text
    LANGUAGE c STRICT AS 'MODULE_PATHNAME', 'audit_ddl_attached_partition';

-- Records an event of the extension's own (a tracked table altered, renamed or dropped); for
-- the event triggers below only (PUBLIC may not call it, and audit.log_event refuses these
-- actions).
CREATE OR REPLACE FUNCTION audit.record_ddl_event(entity text, action text, table_name text, details jsonb)
    RETURNS bigint
    LANGUAGE c AS 'MODULE_PATHNAME', 'audit_record_ddl_event';

-- Whether a reported DDL command can change a table's rows or shape (extension/src/ddl_command.rs).
CREATE OR REPLACE FUNCTION audit.ddl_changes_table(command pg_ddl_command) RETURNS boolean
    LANGUAGE c STRICT AS 'MODULE_PATHNAME', 'audit_ddl_changes_table';

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
DECLARE
    offender  record;
    member    record;
    entry     record;
    altered   record;
    live      int2;
    new_name  text;
    notes     jsonb := '{}';
BEGIN
    -- DROP EXTENSION drops the settings table too; then there is nothing to check.
    IF to_regclass('audit.tracked_tables') IS NULL OR audit.capture_change_in_progress()
       OR audit.maintenance_in_progress() THEN
        RETURN;
    END IF;

    -- 0. The log's own tables keep their shape and their guards: no ALTER TABLE (no
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
                   to_regclass('audit.retention_gaps'))
       AND NOT (d.classid = 'pg_class'::regclass AND d.objid = 'audit.events'::regclass
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
    -- Partitions: no guard switched off, no other trigger (one could rewrite events as
    -- capture writes them).
    SELECT t.relid::regclass AS partition INTO offender
      FROM pg_partition_tree('audit.events') AS t
      JOIN pg_trigger AS g ON g.tgrelid = t.relid
     WHERE t.relid <> 'audit.events'::regclass
       AND g.tgparentid = 0 AND NOT g.tgisinternal
       AND (g.tgfoid NOT IN ('audit.refuse_change()'::regprocedure,
                             'audit.refuse_insert()'::regprocedure)
            OR g.tgenabled = 'D')
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'triggers on partition % of audit.events are refused: only its guards may be there, and none disabled',
            offender.partition
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'audit.maintain() manages the partitions of audit.events.';
    END IF;

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

    -- 3. New partitions of tracked tables (at any depth: a partition tracked here is itself a
    -- tracked parent on the next pass of the loop's query).
    LOOP
        SELECT i.inhrelid AS partition, s.entity, s.subject_columns, s.ignore_columns,
               s.redact_columns
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
                                                    AND NOT a.attisdropped))::name[]);
    END LOOP;

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

CREATE EVENT TRIGGER audit_trail_ddl_command_end ON ddl_command_end
    EXECUTE FUNCTION audit.on_ddl_command_end();

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
    target      regclass;
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
            CONTINUE WHEN audit.capture_change_in_progress()
                       OR dropped.address_names[3] NOT LIKE 'audit\_trail\_%';
            -- NULL when the table itself is being dropped.
            target := to_regclass(format('%I.%I', dropped.address_names[1],
                                         dropped.address_names[2]));
            CONTINUE WHEN target IS NULL
                       OR NOT EXISTS (SELECT FROM audit.tracked_tables WHERE relid = target);
            -- A superuser who confirmed dropping the log (as pg_restore --clean does before it
            -- drops the extension) may drop capture triggers too; it is recorded.
            IF coalesce(current_setting('audit.allow_drop_extension', true), 'off') = 'on' THEN
                PERFORM audit.record_ddl_event('audit_log', 'untrack', target::text,
                                               jsonb_build_object('trigger', dropped.address_names[3],
                                                                  'statement', current_query()));
                CONTINUE;
            END IF;
            RAISE EXCEPTION 'cannot drop trigger % of %: it captures changes for the audit log',
                dropped.address_names[3], target
                USING ERRCODE = 'insufficient_privilege',
                      HINT = 'audit.untrack() stops capture, and records that it did.';
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
    END LOOP;
END
$$;

CREATE EVENT TRIGGER audit_trail_sql_drop ON sql_drop
    EXECUTE FUNCTION audit.on_sql_drop();

-- DROP EXTENSION audit_trail (or DROP SCHEMA audit) deletes the log: refused while it
-- holds events unless the session sets audit.allow_drop_extension (extension/src/drop_guard.rs).
CREATE OR REPLACE FUNCTION audit.on_ddl_command_start() RETURNS event_trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'audit_on_ddl_command_start';

CREATE EVENT TRIGGER audit_trail_ddl_command_start ON ddl_command_start
    WHEN TAG IN ('DROP EXTENSION', 'DROP SCHEMA')
    EXECUTE FUNCTION audit.on_ddl_command_start();

-- ALWAYS: the hooks hold under session_replication_role = replica too.
ALTER EVENT TRIGGER audit_trail_ddl_command_start ENABLE ALWAYS;
ALTER EVENT TRIGGER audit_trail_ddl_command_end ENABLE ALWAYS;
ALTER EVENT TRIGGER audit_trail_sql_drop ENABLE ALWAYS;

-- ---- extension/sql/integrity.sql of 0.2.0 ----
-- audit_trail: tamper evidence (docs/integrity.md). Runs after api.sql.
--
-- The seals of the hash chain over committed events, and the public keys they name. The
-- private key never comes here: `audit-trail seal` signs outside the database, and
-- `audit-trail verify` trusts only the key file it is given, so a superuser who rewrites
-- these tables is caught, not trusted.

CREATE TABLE audit.seal_keys (
    key_id        text        PRIMARY KEY CHECK (key_id ~ '^[0-9a-f]{16}$'),
    public_key    bytea       NOT NULL CHECK (length(public_key) = 32),
    registered_at timestamptz NOT NULL DEFAULT now(),
    registered_by text        NOT NULL DEFAULT session_user
);

COMMENT ON TABLE audit.seal_keys IS
    'Public keys of the sealers, for reference: verify trusts only the key file it is given.';

CREATE TABLE audit.seals (
    seq        bigint      PRIMARY KEY CHECK (seq > 0),
    first_txid xid8        NOT NULL,
    first_id   bigint      NOT NULL,
    last_txid  xid8        NOT NULL,
    last_id    bigint      NOT NULL,
    events     integer     NOT NULL CHECK (events > 0),
    total      bigint      NOT NULL CHECK (total >= events),
    prev_head  bytea       NOT NULL CHECK (length(prev_head) = 32),
    batch_root bytea       NOT NULL CHECK (length(batch_root) = 32),
    head       bytea       NOT NULL CHECK (length(head) = 32),
    -- txid, id and the first 8 bytes of each event's hash: 24 bytes an event.
    digests    bytea       NOT NULL CHECK (length(digests) = 24 * events),
    key_id     text        NOT NULL,
    checkpoint text        NOT NULL,
    signature  bytea       NOT NULL CHECK (length(signature) = 64),
    sealed_at  timestamptz NOT NULL DEFAULT now(),
    sealed_by  text        NOT NULL DEFAULT session_user
);

COMMENT ON TABLE audit.seals IS
    'Append-only hash chain over committed events: one signed seal per batch (docs/integrity.md).';

-- Append-only, like audit.events: a seal or key that could be changed would prove nothing
-- (verify would catch the change, but it should not be one UPDATE away).
CREATE OR REPLACE FUNCTION audit.refuse_seal_change() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RAISE EXCEPTION 'audit.% is append-only', TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER seals_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON audit.seals
    FOR EACH STATEMENT EXECUTE FUNCTION audit.refuse_seal_change();
ALTER TABLE audit.seals ENABLE ALWAYS TRIGGER seals_append_only;
CREATE TRIGGER seal_keys_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON audit.seal_keys
    FOR EACH STATEMENT EXECUTE FUNCTION audit.refuse_seal_change();
ALTER TABLE audit.seal_keys ENABLE ALWAYS TRIGGER seal_keys_append_only;

SELECT pg_catalog.pg_extension_config_dump('audit.seal_keys', '');
SELECT pg_catalog.pg_extension_config_dump('audit.seals', '');

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
       (SELECT l.key_id FROM last AS l)                AS active_key
  FROM unsealed AS u;

COMMENT ON VIEW audit.integrity IS
    'Sealed through which event and time, events waiting to be sealed, the last seal and its key.';

-- ---- extension/sql/lifetime.sql of 0.2.0 ----
-- audit_trail: the log's lifetime (docs/storage.md). Runs after integrity.sql.
--
-- audit.events is partitioned by time. audit.maintain() makes partitions ahead, moves rows
-- out of the default partition, and applies the retention policy by dropping whole
-- partitions, never those a legal hold covers, and (by default) only once they are
-- archived. Every change to the policy, every hold and release, every archive and every drop
-- is an audit_log event.

-- The policy. One row at most; none means the defaults (monthly partitions, three made
-- ahead, keep forever). No row is inserted here, so that a restore, which copies the row a
-- site set, never collides with one made by CREATE EXTENSION.
CREATE TABLE audit.storage_policy (
    singleton          boolean     PRIMARY KEY DEFAULT true CHECK (singleton),
    partition_interval interval    NOT NULL DEFAULT '1 month',
    premake            integer     NOT NULL DEFAULT 3 CHECK (premake BETWEEN 1 AND 120),
    keep               interval    CHECK (keep > '0'),
    archive_first      boolean     NOT NULL DEFAULT true,
    updated_at         timestamptz NOT NULL DEFAULT now(),
    updated_by         text        NOT NULL DEFAULT session_user
);

COMMENT ON TABLE audit.storage_policy IS
    'Partition interval and retention of audit.events; set by audit.set_retention and audit.set_partition_interval.';

-- Legal holds: history kept, a released hold stays as a row.
CREATE TABLE audit.legal_holds (
    name        text        NOT NULL CHECK (name ~ '^[A-Za-z0-9_.:-]{1,100}$'),
    reason      text        NOT NULL CHECK (reason <> ''),
    from_time   timestamptz NOT NULL,
    to_time     timestamptz NOT NULL,
    placed_at   timestamptz NOT NULL DEFAULT now(),
    placed_by   text        NOT NULL DEFAULT session_user,
    released_at timestamptz,
    released_by text,
    CHECK (to_time > from_time),
    -- Keys make a second copy of a row (a data-only restore over a log) fail loudly.
    UNIQUE (name, placed_at)
);
CREATE UNIQUE INDEX legal_holds_active_name ON audit.legal_holds (name) WHERE released_at IS NULL;

CREATE OR REPLACE VIEW audit.holds AS
SELECT name, reason, from_time, to_time, placed_at, placed_by, released_at, released_by,
       released_at IS NULL AS active
  FROM audit.legal_holds;

COMMENT ON VIEW audit.holds IS
    'Legal holds: no event in an active hold''s time range is dropped, by retention or by audit.purge.';

-- Archives written by `audit-trail archive` (docs/archive.md): one row per archived partition.
CREATE TABLE audit.archives (
    partition   text        NOT NULL,
    from_time   timestamptz NOT NULL,
    to_time     timestamptz NOT NULL,
    rows        bigint      NOT NULL CHECK (rows >= 0),
    first_id    bigint,
    last_id     bigint,
    location    text        NOT NULL,
    manifest    jsonb       NOT NULL,
    archived_at timestamptz NOT NULL DEFAULT now(),
    archived_by text        NOT NULL DEFAULT session_user,
    PRIMARY KEY (partition, archived_at)
);

COMMENT ON TABLE audit.archives IS
    'Partitions of audit.events written to Parquet by audit-trail archive, with their manifests.';

-- Which sealed events retention dropped, so that `audit-trail verify` can tell them from
-- events deleted behind its back (docs/integrity.md): for a seal, `dropped` has one bit per
-- event of the seal in chain order, or is NULL when all of them went. The purge event that
-- dropped them carries the SHA-256 of its rows here, and is sealed in its turn.
CREATE TABLE audit.retention_gaps (
    seq      bigint      NOT NULL,
    source   text        NOT NULL,
    dropped  bit varying,
    reason   text        NOT NULL,
    noted_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (seq, source, noted_at)
);

COMMENT ON TABLE audit.retention_gaps IS
    'Sealed events dropped by retention or audit.purge, per seal (one bit per event, NULL for all).';

-- Which hours hold events of each actor, source, entity, action and table, and how many:
-- what the dashboard's filters and Overview read instead of scanning months of events, made
-- by audit.maintain() from the events committed since its last run (so capture pays
-- nothing for it). Every event with txid below audit.summary_state.watermark is counted
-- once; later ones (the tail) are read directly.
CREATE TABLE audit.event_summary (
    hour       timestamptz NOT NULL,
    actor      text        NOT NULL,
    source     text        NOT NULL,
    entity     text        NOT NULL,
    action     text        NOT NULL,
    table_name text,
    events     bigint      NOT NULL CHECK (events > 0)
) PARTITION BY RANGE (hour);
-- Partitioned as audit.events is, partition for partition (audit.create_events_partition), so
-- that retention drops a month's summary with its events, writing no WAL for its rows; its
-- indexes are each partition's own, for the reason audit.setup_events_partition gives.
CREATE TABLE audit.event_summary_default PARTITION OF audit.event_summary DEFAULT;

COMMENT ON TABLE audit.event_summary IS
    'Events per hour by actor, source, entity, action and table, for every event with txid below audit.summary_state.watermark.';

CREATE TABLE audit.summary_state (
    singleton     boolean     PRIMARY KEY DEFAULT true CHECK (singleton),
    watermark     xid8        NOT NULL,
    summarized_at timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE audit.summary_state IS
    'Events with txid below watermark are counted in audit.event_summary; later ones are not yet.';

-- Rollups of the summary. audit.kind_hours: events per hour by everything but the actor
-- (source, entity, action, table): a few dozen rows an hour however busy the hour, so filters
-- without an actor and the Overview's categories read it in time bounded by the hours, not the
-- events. audit.actor_days: events per UTC day by actor (the Overview's busiest actors). Made
-- with the summary, partitioned alike.
CREATE TABLE audit.kind_hours (
    hour       timestamptz NOT NULL,
    source     text        NOT NULL,
    entity     text        NOT NULL,
    action     text        NOT NULL,
    table_name text,
    events     bigint      NOT NULL CHECK (events > 0)
) PARTITION BY RANGE (hour);
CREATE TABLE audit.kind_hours_default PARTITION OF audit.kind_hours DEFAULT;

CREATE TABLE audit.actor_days (
    day    timestamptz NOT NULL,
    actor  text        NOT NULL,
    events bigint      NOT NULL CHECK (events > 0)
) PARTITION BY RANGE (day);
CREATE TABLE audit.actor_days_default PARTITION OF audit.actor_days DEFAULT;

COMMENT ON TABLE audit.kind_hours IS
    'Events per UTC hour by source, entity, action and table, for every event counted in audit.event_summary.';
COMMENT ON TABLE audit.actor_days IS
    'Events per UTC day by actor, for every event counted in audit.event_summary.';

-- Only maintenance writes the summary (a changed summary would hide events from filters),
-- but for a restore, which loads each table while it is empty.
CREATE OR REPLACE FUNCTION audit.refuse_summary_change() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    filled boolean;
BEGIN
    IF TG_OP = 'INSERT' THEN
        EXECUTE format('SELECT EXISTS (SELECT FROM %I.%I)', TG_TABLE_SCHEMA, TG_TABLE_NAME)
           INTO filled;
    END IF;
    IF NOT audit.maintenance_in_progress() AND (TG_OP <> 'INSERT' OR filled) THEN
        RAISE EXCEPTION 'audit.% is written only by audit.maintain()', TG_TABLE_NAME
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER event_summary_maintained
    BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON audit.event_summary
    FOR EACH STATEMENT EXECUTE FUNCTION audit.refuse_summary_change();
ALTER TABLE audit.event_summary ENABLE ALWAYS TRIGGER event_summary_maintained;

-- The summary tables, partitioned as audit.events, partition for partition.
CREATE OR REPLACE FUNCTION audit.summary_tables() RETURNS text[]
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
AS $$ SELECT ARRAY['event_summary', 'kind_hours', 'actor_days'] $$;

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
    ELSE
        EXECUTE format('CREATE INDEX %I ON %s (day)', name || '_day_idx', part);
    END IF;
    EXECUTE format('CREATE TRIGGER event_summary_maintained
                    BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON %s
                    FOR EACH STATEMENT EXECUTE FUNCTION audit.refuse_summary_change()', part);
    EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER event_summary_maintained', part);
END
$$;

CREATE TRIGGER kind_hours_maintained
    BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON audit.kind_hours
    FOR EACH STATEMENT EXECUTE FUNCTION audit.refuse_summary_change();
ALTER TABLE audit.kind_hours ENABLE ALWAYS TRIGGER kind_hours_maintained;
CREATE TRIGGER actor_days_maintained
    BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON audit.actor_days
    FOR EACH STATEMENT EXECUTE FUNCTION audit.refuse_summary_change();
ALTER TABLE audit.actor_days ENABLE ALWAYS TRIGGER actor_days_maintained;
CREATE TRIGGER summary_state_maintained
    BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON audit.summary_state
    FOR EACH STATEMENT EXECUTE FUNCTION audit.refuse_summary_change();
ALTER TABLE audit.summary_state ENABLE ALWAYS TRIGGER summary_state_maintained;

CREATE TRIGGER archives_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON audit.archives
    FOR EACH STATEMENT EXECUTE FUNCTION audit.refuse_seal_change();
ALTER TABLE audit.archives ENABLE ALWAYS TRIGGER archives_append_only;
CREATE TRIGGER retention_gaps_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON audit.retention_gaps
    FOR EACH STATEMENT EXECUTE FUNCTION audit.refuse_seal_change();
ALTER TABLE audit.retention_gaps ENABLE ALWAYS TRIGGER retention_gaps_append_only;

SELECT pg_catalog.pg_extension_config_dump('audit.storage_policy', '');
SELECT pg_catalog.pg_extension_config_dump('audit.legal_holds', '');
SELECT pg_catalog.pg_extension_config_dump('audit.archives', '');
SELECT pg_catalog.pg_extension_config_dump('audit.retention_gaps', '');
SELECT pg_catalog.pg_extension_config_dump('audit.event_summary_default', '');
SELECT pg_catalog.pg_extension_config_dump('audit.kind_hours_default', '');
SELECT pg_catalog.pg_extension_config_dump('audit.actor_days_default', '');
SELECT pg_catalog.pg_extension_config_dump('audit.summary_state', '');

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
       EXISTS (SELECT FROM audit.archives AS a WHERE a.partition = b.partition) AS archived,
       EXISTS (SELECT FROM audit.legal_holds AS h
                WHERE h.released_at IS NULL
                  AND (b.is_default OR (h.from_time < b.to_time AND h.to_time > b.from_time)))
           AS held
  FROM b
 ORDER BY b.is_default, b.from_time;

COMMENT ON VIEW audit.partitions IS
    'Partitions of audit.events: time range, size, whether archived and whether a legal hold covers them.';

-- The start of the partition that holds time t, for partitions `every` long: whole months
-- (1, 2, 3, 4, 6 or 12) counted from January, whole weeks from Monday, or whole days, in UTC.
CREATE OR REPLACE FUNCTION audit.partition_start(t timestamptz, every interval) RETURNS timestamptz
    LANGUAGE plpgsql STABLE STRICT
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    months int := extract(year FROM every)::int * 12 + extract(month FROM every)::int;
    days   int := extract(day FROM every)::int;
    utc    timestamp := t AT TIME ZONE 'UTC';
    m      int;
    d      bigint;
BEGIN
    IF months > 0 THEN
        m := extract(year FROM utc)::int * 12 + extract(month FROM utc)::int - 1;
        m := m - m % months;
        RETURN make_timestamptz(m / 12, m % 12 + 1, 1, 0, 0, 0, 'UTC');
    END IF;
    d := floor(extract(epoch FROM date_trunc('day', utc)) / 86400)::bigint;
    -- Day 0 (1970-01-01) was a Thursday: weeks start 3 days earlier, on Monday.
    d := CASE WHEN days % 7 = 0 THEN d - (d + 3) % days ELSE d - d % days END;
    RETURN to_timestamp(d * 86400);
END
$$;

-- Policy ------------------------------------------------------------------------------------

-- How long events are kept (NULL: forever, the default), and whether a partition must be
-- archived (audit.archives) before retention drops it. Superusers only (no grant).
CREATE OR REPLACE FUNCTION audit.set_retention(keep interval, archive_first boolean DEFAULT true)
    RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    before jsonb := (SELECT jsonb_build_object('keep', p.keep, 'archive_first', p.archive_first)
                       FROM audit.storage_policy AS p);
BEGIN
    IF keep IS NOT NULL AND keep < interval '1 day' THEN
        RAISE EXCEPTION 'retention of % is too short: keep at least one day of events', keep
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF archive_first IS NULL THEN
        RAISE EXCEPTION 'archive_first must be true or false'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    INSERT INTO audit.storage_policy AS p (keep, archive_first)
    VALUES (set_retention.keep, set_retention.archive_first)
    ON CONFLICT (singleton) DO UPDATE
       SET keep = excluded.keep, archive_first = excluded.archive_first,
           updated_at = now(), updated_by = session_user;
    PERFORM audit.record_ddl_event('audit_log', 'retention', NULL,
        jsonb_build_object('before', coalesce(before, '{"keep": null, "archive_first": true}'),
                           'after', jsonb_build_object('keep', keep,
                                                       'archive_first', archive_first)));
END
$$;

COMMENT ON FUNCTION audit.set_retention(interval, boolean) IS
    'Keep events this long (NULL: forever); with archive_first, drop a partition only once archived.';

-- The length of partitions made from now on (existing ones keep theirs). Superusers only.
CREATE OR REPLACE FUNCTION audit.set_partition_interval(every interval) RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    months int := extract(year FROM every)::int * 12 + extract(month FROM every)::int;
    days   int := extract(day FROM every)::int;
BEGIN
    IF every IS NULL
       OR extract(epoch FROM every - justify_days(date_trunc('day', every))) <> 0
       OR NOT ((months IN (1, 2, 3, 4, 6, 12) AND days = 0)
               OR (months = 0 AND days BETWEEN 1 AND 28 AND (days < 7 OR days % 7 = 0))) THEN
        RAISE EXCEPTION 'partition interval % is not supported', coalesce(every::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Use whole months (1, 2, 3, 4, 6 or 12), whole weeks, or 1 to 6 days.';
    END IF;
    INSERT INTO audit.storage_policy AS p (partition_interval) VALUES (every)
    ON CONFLICT (singleton) DO UPDATE
       SET partition_interval = excluded.partition_interval,
           updated_at = now(), updated_by = session_user;
    PERFORM audit.record_ddl_event('audit_log', 'retention', NULL,
        jsonb_build_object('partition_interval', every));
END
$$;

-- Legal holds -------------------------------------------------------------------------------

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

CREATE OR REPLACE FUNCTION audit.release(name text) RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    held audit.legal_holds;
BEGIN
    UPDATE audit.legal_holds AS h
       SET released_at = now(), released_by = session_user
     WHERE h.name = release.name AND h.released_at IS NULL
    RETURNING * INTO held;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no active legal hold is named %', coalesce(quote_literal(name), 'NULL')
            USING ERRCODE = 'no_data_found';
    END IF;
    PERFORM audit.record_ddl_event('audit_log', 'release', NULL,
        jsonb_build_object('name', held.name, 'reason', held.reason,
                           'from', held.from_time, 'to', held.to_time,
                           'placed_by', held.placed_by));
END
$$;

-- Maintenance -------------------------------------------------------------------------------

-- Raises unless called from the extension's own maintenance.
CREATE OR REPLACE FUNCTION audit.require_maintenance() RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT audit.maintenance_in_progress() THEN
        RAISE EXCEPTION 'partitions of audit.events are managed by audit.maintain()'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
END
$$;

-- Makes the partition [from_time, to_time), moving into it any rows the default partition
-- holds for that range (the move happens before the attach, which would otherwise fail).
CREATE OR REPLACE FUNCTION audit.create_events_partition(from_time timestamptz, to_time timestamptz)
    RETURNS jsonb
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    name      text := 'events_' || to_char(from_time AT TIME ZONE 'UTC', 'YYYYMMDD');
    summary   text;
    companion text;
    key       text;
    moved     bigint := 0;
BEGIN
    PERFORM audit.require_maintenance();
    IF to_regclass(format('audit.%I', name)) IS NOT NULL THEN
        name := name || to_char(from_time AT TIME ZONE 'UTC', '"_"HH24MISS');
    END IF;
    EXECUTE format('CREATE TABLE audit.%I (LIKE audit.events INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE INCLUDING COMPRESSION)', name);
    IF EXISTS (SELECT FROM audit.events_default AS d
                WHERE d.occurred_at >= from_time AND d.occurred_at < to_time) THEN
        EXECUTE format('INSERT INTO audit.%I SELECT * FROM audit.events_default AS d
                         WHERE d.occurred_at >= $1 AND d.occurred_at < $2', name)
          USING from_time, to_time;
        GET DIAGNOSTICS moved = ROW_COUNT;
        DELETE FROM audit.events_default AS d
         WHERE d.occurred_at >= from_time AND d.occurred_at < to_time;
    END IF;
    PERFORM audit.setup_events_partition(format('audit.%I', name)::regclass);
    EXECUTE format('ALTER TABLE audit.events ATTACH PARTITION audit.%I FOR VALUES FROM (%L) TO (%L)',
                   name, from_time, to_time);
    -- Its summaries, alike (audit.event_summary_YYYYMMDD for audit.events_YYYYMMDD, ...).
    FOREACH companion IN ARRAY audit.summary_tables() LOOP
        key := CASE companion WHEN 'actor_days' THEN 'day' ELSE 'hour' END;
        summary := companion || '_' || substr(name, length('events_') + 1);
        EXECUTE format('CREATE TABLE audit.%I (LIKE audit.%I INCLUDING DEFAULTS INCLUDING CONSTRAINTS)',
                       summary, companion);
        EXECUTE format('WITH moved AS (DELETE FROM audit.%I AS d WHERE d.%I >= $1 AND d.%I < $2 RETURNING d.*)
                        INSERT INTO audit.%I SELECT * FROM moved',
                       companion || '_default', key, key, summary)
          USING from_time, to_time;
        PERFORM audit.setup_summary_partition(format('audit.%I', summary)::regclass);
        EXECUTE format('ALTER TABLE audit.%I ATTACH PARTITION audit.%I FOR VALUES FROM (%L) TO (%L)',
                       companion, summary, from_time, to_time);
    END LOOP;
    RETURN jsonb_strip_nulls(jsonb_build_object(
        'partition', 'audit.' || name, 'from', from_time, 'to', to_time,
        'moved_from_default', nullif(moved, 0)));
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
-- block ranges that can hold it, since ids grow with the table. The other filters (actor,
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
    PERFORM audit.guard_events_partition(part);
END
$$;

CREATE OR REPLACE FUNCTION audit.guard_events_partition(part regclass) RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    EXECUTE format('ALTER TABLE %s REPLICA IDENTITY FULL', part);
    EXECUTE format('CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON %s
                    FOR EACH STATEMENT EXECUTE FUNCTION audit.refuse_change()', part);
    EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER events_append_only', part);
    EXECUTE format('CREATE TRIGGER events_no_sql_insert BEFORE INSERT ON %s
                    FOR EACH STATEMENT EXECUTE FUNCTION audit.refuse_insert()', part);
    EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER events_no_sql_insert', part);
END
$$;

-- Notes which sealed events are about to be dropped: those of `source` (audit.events or
-- one of its partitions) before `before`. Refuses when some are not sealed yet, since a
-- dropped event that was never sealed would leave no trace in the chain. Returns the
-- SHA-256 of the rows it wrote (NULL when nothing is sealed: no chain to keep).
CREATE OR REPLACE FUNCTION audit.note_retention_gaps(source regclass, before timestamptz, reason text)
    RETURNS text
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    sealed  record;
    lo      record;
    hi      record;
    digest  text;
BEGIN
    PERFORM audit.require_maintenance();
    SELECT s.seq, s.last_txid, s.last_id INTO sealed
      FROM audit.seals AS s ORDER BY s.seq DESC LIMIT 1;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    EXECUTE format('SELECT e.txid, e.id FROM %s AS e WHERE e.occurred_at < $1
                     ORDER BY e.txid, e.id LIMIT 1', source) INTO lo USING before;
    IF lo.txid IS NULL THEN
        RETURN NULL;
    END IF;
    EXECUTE format('SELECT e.txid, e.id FROM %s AS e WHERE e.occurred_at < $1
                     ORDER BY e.txid DESC, e.id DESC LIMIT 1', source) INTO hi USING before;
    IF (hi.txid, hi.id) > (sealed.last_txid, sealed.last_id) THEN
        RAISE EXCEPTION 'events of % before % are not all sealed yet', source, before
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Run audit-trail seal first: retention keeps the hash chain verifiable.';
    END IF;
    EXECUTE format($q$
        WITH noted AS (
            INSERT INTO audit.retention_gaps (seq, source, dropped, reason)
            SELECT s.seq, $7,
                   CASE WHEN bool_and(d.hit) THEN NULL
                        ELSE string_agg(CASE WHEN d.hit THEN '1' ELSE '0' END, '' ORDER BY d.k)::varbit
                   END,
                   $3
              FROM audit.seals AS s
             CROSS JOIN LATERAL (
                   SELECT k, EXISTS (SELECT FROM %s AS e
                                      WHERE e.txid = r.txid AND e.id = r.id
                                        AND e.occurred_at < $4) AS hit
                     FROM generate_series(0, s.events - 1) AS k,
                          LATERAL (SELECT (('x' || encode(substring(s.digests FROM k * 24 + 1 FOR 8), 'hex'))::bit(64)::bigint)::text::xid8 AS txid,
                                          ('x' || encode(substring(s.digests FROM k * 24 + 9 FOR 8), 'hex'))::bit(64)::bigint AS id) AS r
                  ) AS d
             WHERE (s.last_txid, s.last_id) >= ($1::xid8, $2::bigint)
               AND (s.first_txid, s.first_id) <= ($5::xid8, $6::bigint)
             GROUP BY s.seq
            HAVING bool_or(d.hit)
            RETURNING seq, dropped
        )
        SELECT encode(sha256(convert_to(coalesce(string_agg(seq || ':' || coalesce(dropped::text, '*'), ',' ORDER BY seq), ''), 'UTF8')), 'hex')
          FROM noted
    $q$, source) INTO digest USING lo.txid, lo.id, reason, before, hi.txid, hi.id,
                                   source::text;
    RETURN digest;
END
$$;

-- Dropping a partition counts its events after locking it, and the count must see every
-- event committed before the lock: only a READ COMMITTED transaction takes its snapshot after
-- the lock (REPEATABLE READ and SERIALIZABLE took theirs at their first statement).
CREATE OR REPLACE FUNCTION audit.require_read_committed() RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'audit.maintain and audit.purge drop partitions only in a READ COMMITTED transaction, not %',
                        upper(current_setting('transaction_isolation'))
            USING ERRCODE = 'invalid_transaction_state',
                  HINT = 'Run them outside an explicit transaction, or with BEGIN ISOLATION LEVEL READ COMMITTED.';
    END IF;
END
$$;

-- How many events a partition holds and its first and last id, for the purge event that
-- records its drop: one pass over the partition (its time index, once vacuumed).
CREATE OR REPLACE FUNCTION audit.count_events_partition(part regclass) RETURNS jsonb
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    counted jsonb;
BEGIN
    EXECUTE format('SELECT pg_catalog.jsonb_build_object(''rows'', count(*), ''first_id'', min(id),
                                                         ''last_id'', max(id)) FROM %s', part)
       INTO counted;
    RETURN counted;
END
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
        'archived', info.archived));
    PERFORM audit.record_ddl_event('audit_log', 'purge', NULL, details);
    RETURN details;
END
$$;

-- A value as the summary keys it. Capture bounds actors and sources (2 kB) so that they fit
-- an index entry (about 2.7 kB); a longer value from before that bound, or put in by SQL
-- while the log was empty, is cut short here rather than stopping maintenance (a filter on
-- its full value then finds no hour for it).
--
-- It is called five times per event summarized, so it must be inlined into the query: no
-- SET clause (a function with one is called through the GUC save and restore each time, five
-- times slower), and every name, operators too, qualified instead. It runs with the
-- caller's rights (maintenance's), so a caller's search_path only ever misleads itself.
CREATE OR REPLACE FUNCTION audit.summary_key(value text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE WHEN pg_catalog.octet_length(value) OPERATOR(pg_catalog.<=) 2048 THEN value
                ELSE pg_catalog.left(value, 512) END
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
        )
        SELECT coalesce(sum(c.events), 0) INTO counted FROM counts AS c;
    END IF;
    INSERT INTO audit.summary_state AS st (watermark) VALUES (high)
    ON CONFLICT (singleton) DO UPDATE SET watermark = excluded.watermark, summarized_at = now();
    RETURN counted;
END
$$;

-- What audit.maintain() does, as the extension's owner: partitions ahead (and for rows
-- waiting in the default partition), then, unless create_only, retention.
CREATE OR REPLACE FUNCTION audit.run_maintenance(create_only boolean) RETURNS jsonb
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    policy  record;
    every   interval;
    start   timestamptz;
    lo      timestamptz;
    hi      timestamptz;
    other   record;
    part    record;
    cutoff  timestamptz;
    counted jsonb;
    summarized bigint;
    created jsonb := '[]';
    dropped jsonb := '[]';
    kept    jsonb := '[]';
BEGIN
    PERFORM audit.require_maintenance();
    -- One maintenance at a time (a second waits for the first).
    PERFORM pg_advisory_xact_lock(hashtext('audit_trail maintenance'));
    -- Never stall capture behind a lock for long: a busy step is retried by the next run.
    PERFORM set_config('lock_timeout', '10s', true);
    SELECT coalesce(p.partition_interval, '1 month') AS every, coalesce(p.premake, 3) AS premake,
           p.keep, coalesce(p.archive_first, true) AS archive_first
      INTO policy
      FROM (SELECT) AS one LEFT JOIN audit.storage_policy AS p ON true;
    every := policy.every;

    FOR start IN
        SELECT DISTINCT audit.partition_start(d.occurred_at, every) FROM audit.events_default AS d
        UNION
        SELECT audit.partition_start(now(), every) + every * g
          FROM generate_series(0, policy.premake) AS g
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

    IF NOT create_only THEN
        summarized := audit.summarize_events();
    END IF;

    IF policy.keep IS NOT NULL AND NOT create_only THEN
        cutoff := now() - policy.keep;
        FOR part IN
            SELECT p.* FROM audit.partitions AS p
             WHERE NOT p.is_default AND p.to_time <= cutoff
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
                -- No event can land in the partition from here to its drop (a transaction
                -- still writing into it makes this wait, then give up until the next run), so
                -- what is counted once is what the archive must hold and what is dropped.
                PERFORM audit.require_read_committed();
                EXECUTE format('LOCK TABLE %s IN SHARE MODE', part.partition);
                counted := audit.count_events_partition(part.partition::regclass);
                IF policy.archive_first AND NOT EXISTS (
                       SELECT FROM audit.archives AS a
                        WHERE a.partition = part.partition
                          AND a.rows = (counted ->> 'rows')::bigint) THEN
                    -- Raised, not skipped, so that the block's lock is released with it: a
                    -- kept partition stays open to writes for the rest of the run.
                    RAISE EXCEPTION USING ERRCODE = 'AT001',
                        MESSAGE = CASE WHEN part.archived THEN 'changed since it was archived'
                                       ELSE 'not archived yet' END;
                END IF;
                dropped := dropped || audit.drop_events_partition(part.partition::regclass,
                                                                  'retention', counted);
            EXCEPTION
                WHEN SQLSTATE 'AT001' OR lock_not_available OR object_not_in_prerequisite_state THEN
                    kept := kept || jsonb_build_object('partition', part.partition,
                                                       'reason', SQLERRM);
            END;
        END LOOP;
    END IF;

    RETURN jsonb_build_object(
        'created', created, 'dropped', dropped, 'kept', kept,
        'retention', CASE WHEN policy.keep IS NULL THEN 'keep forever'
                          ELSE policy.keep::text END,
        'default_partition_rows', (SELECT count(*) FROM audit.events_default),
        'summarized_events', summarized);
END
$$;

CREATE OR REPLACE FUNCTION audit.maintain() RETURNS jsonb
    LANGUAGE c AS 'MODULE_PATHNAME', 'audit_maintain';

COMMENT ON FUNCTION audit.maintain() IS
    'Create partitions ahead, move rows out of the default partition, apply retention; returns what it did.';

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
    PERFORM pg_advisory_xact_lock(hashtext('audit_trail maintenance'));
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

-- For `audit-trail archive`: records that a partition was written to an archive, after
-- checking that the archive holds every one of its events.
CREATE OR REPLACE FUNCTION audit.record_archive(partition text, rows bigint, location text, manifest jsonb)
    RETURNS void
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    info  record;
    stats record;
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
    IF stats.rows IS DISTINCT FROM record_archive.rows THEN
        RAISE EXCEPTION 'the archive of % holds % events, the partition %',
            info.partition, coalesce(record_archive.rows::text, 'NULL'), stats.rows
            USING ERRCODE = 'data_exception';
    END IF;
    INSERT INTO audit.archives (partition, from_time, to_time, rows, first_id, last_id,
                                location, manifest)
    VALUES (info.partition, info.from_time, info.to_time, stats.rows, stats.first_id,
            stats.last_id, location, manifest);
    PERFORM audit.record_ddl_event('audit_log', 'archive', NULL,
        jsonb_build_object('partition', info.partition, 'from', info.from_time,
                           'to', info.to_time, 'rows', stats.rows, 'location', location,
                           'manifest_sha256', encode(sha256(convert_to(manifest::text, 'UTF8')), 'hex')));
END
$$;

-- The default partitions, made with their tables, get their indexes and guards here.
SELECT audit.setup_events_partition('audit.events_default');
SELECT audit.setup_summary_partition('audit.event_summary_default');
SELECT audit.setup_summary_partition('audit.kind_hours_default');
SELECT audit.setup_summary_partition('audit.actor_days_default');

-- ---- extension/sql/report.sql of 0.2.0 ----
-- audit_trail: the report views admins read. Runs after api.sql.

-- Every event, with a one-line summary and whole row images. Order by
-- occurred_at DESC, id DESC for newest first.
CREATE OR REPLACE VIEW audit.report AS
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
CREATE OR REPLACE VIEW audit.contact_activity AS SELECT * FROM audit.report WHERE entity = 'contact';
CREATE OR REPLACE VIEW audit.group_activity AS SELECT * FROM audit.report WHERE entity = 'group';
CREATE OR REPLACE VIEW audit.user_activity AS SELECT * FROM audit.report WHERE entity = 'user';
-- Contacts exported, audit log exported: every export, whatever was exported.
CREATE OR REPLACE VIEW audit.export_activity AS SELECT * FROM audit.report WHERE action = 'export';

-- ---- extension/sql/privileges.sql of 0.2.0 ----
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
-- Sealers (audit-trail seal, as an audit_admin member) add seals and register their public
-- key; nothing may change either afterwards (append-only triggers).
GRANT INSERT ON audit.seals, audit.seal_keys TO audit_admin;
-- Scheduled maintenance (audit-trail maintain) runs as an admin; it does only what the
-- superuser-set policy says. Admins may place legal holds (they only protect events) and
-- record archives (audit.record_archive checks the archive is complete); changing the
-- policy and releasing a hold are for superusers.
GRANT EXECUTE ON FUNCTION audit.maintain() TO audit_admin;
GRANT EXECUTE ON FUNCTION audit.hold(text, text, timestamptz, timestamptz) TO audit_admin;
GRANT EXECUTE ON FUNCTION audit.record_archive(text, bigint, text, jsonb) TO audit_admin;

-- The 0.1.0 table, now a partition, gets the guards every partition has.
SELECT audit.guard_events_partition('audit.events_0_1_0');
