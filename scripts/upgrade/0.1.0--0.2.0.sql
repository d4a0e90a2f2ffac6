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
