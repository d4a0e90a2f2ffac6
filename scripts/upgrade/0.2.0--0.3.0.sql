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

@@R_refuse_insert@@

@@N_mark_log_live@@

@@N_refuse_log_state_change@@

CREATE TRIGGER log_state_one_way
    BEFORE UPDATE OR DELETE ON audit.log_state
    FOR EACH ROW EXECUTE FUNCTION audit.refuse_log_state_change();
ALTER TABLE audit.log_state ENABLE ALWAYS TRIGGER log_state_one_way;
CREATE TRIGGER log_state_no_truncate
    BEFORE TRUNCATE ON audit.log_state
    FOR EACH STATEMENT EXECUTE FUNCTION audit.refuse_log_state_change();
ALTER TABLE audit.log_state ENABLE ALWAYS TRIGGER log_state_no_truncate;

@@N_ddl_refuse_log_table_changes@@

@@N_ddl_refuse_guards_off@@

@@N_ddl_refuse_rules_record_triggers@@

@@N_ddl_refuse_reader_views@@

@@N_ddl_refuse_capture_bypass@@

@@N_ddl_track_new_partitions@@

@@N_ddl_follow_columns@@

@@N_ddl_record_changes@@

@@R_on_ddl_command_end@@

@@N_ddl_trigger_dropped@@

@@R_on_sql_drop@@

-- Attribution kept where only audit.set_actor writes it ------------------------------------------

DROP FUNCTION audit.set_actor(text, text, jsonb);

@@N_set_actor@@

-- 3. Seals and keys only through the functions that check them ---------------------------------

@@N_take_service_lock@@

@@N_register_seal_key@@

@@N_add_seal@@

@@N_schema_findings@@

@@V_integrity@@

-- 4. Cursors and alerts -------------------------------------------------------------------------

-- A cursor made before 0.3.0 has no owner: the first role to use it claims it, which is
-- recorded and alerted (who last moved it says nothing: readers could write that column).
ALTER TABLE audit.consumers ADD COLUMN owner regrole;

@@N_owned_consumer@@

@@N_open_consumer@@

@@N_lock_consumer@@

@@N_advance_consumer@@

@@N_move_consumer@@

@@N_record_alert@@

-- 5. Archives bound to their events, purge events carried -----------------------------------------

ALTER TABLE audit.archives
    ADD COLUMN events_sha256 text CHECK (events_sha256 ~ '^[0-9a-f]{64}$');

@@V_partitions@@

@@R_hold@@

DROP FUNCTION audit.record_archive(text, bigint, text, jsonb);
@@N_record_archive@@

@@N_archive_check_window@@

@@N_archives_to_check@@

@@N_record_archive_check@@

@@N_events_digest@@

@@N_canonical_events@@

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

@@N_carry_purge_events@@

@@R_drop_events_partition@@

@@R_drop_partitions_before@@

@@N_make_partitions_ahead@@

@@N_archive_unfit_for_drop@@

@@N_apply_retention@@

@@R_run_maintenance@@

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

@@R_summary_tables@@

@@R_setup_summary_partition@@

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

@@R_summarize_events@@

@@R_setup_events_partition@@

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

@@N_track@@

DROP VIEW audit.tracked;

@@V_tracked@@

-- 6. The report: its newest page by index; categories that do not overlap -------------

@@V_report@@

@@V_contact_activity@@

@@V_group_activity@@

@@V_user_activity@@

@@V_export_activity@@

-- The fast filtered search (contract/src/search.rs) -------------------------------------------

@@N_search_plan@@

@@N_search@@

-- History and undo (docs/undo.md) ---------------------------------------------------------------

@@N_tracked_table_of@@

@@N_history@@

@@N_row_as_of@@

@@N_undo_key@@

@@N_undo_columns@@

@@N_undo_row@@

@@N_undo_unchanged@@

@@N_undo_differences@@

@@N_undo_without_redacted@@

@@N_undo_checked_event@@

@@N_undo_table@@

@@N_undo_refused@@

@@N_undo_event@@

@@N_transaction_changes@@

@@N_wal_base_type@@

@@N_wal_value_json@@

@@N_wal_text_array@@

@@N_wal_check_rows@@

@@N_wal_changes@@

@@N_revert@@

@@N_revert_transaction@@

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
