-- audit_trail: privileges. Runs last (finalize), once every object exists.

-- Privileges ---------------------------------------------------------------------------------

-- Everyone may call the attribution helpers (hence USAGE on the schema); nobody but
-- audit_admin may read anything, and nobody may write the tables except through capture.
REVOKE ALL ON SCHEMA audit FROM PUBLIC;
GRANT USAGE ON SCHEMA audit TO PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA audit FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA audit FROM PUBLIC;
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA audit FROM PUBLIC;
GRANT EXECUTE ON FUNCTION audit.set_actor(text, text, jsonb, text) TO PUBLIC;
GRANT EXECUTE ON FUNCTION audit.log_event(text, text, text, jsonb) TO PUBLIC;

GRANT USAGE ON SCHEMA audit TO audit_admin;
GRANT SELECT ON ALL TABLES IN SCHEMA audit TO audit_admin;
-- Followers keep their own cursors, through the functions that check whose they are.
GRANT EXECUTE ON FUNCTION audit.open_consumer(text), audit.lock_consumer(text),
                          audit.advance_consumer(text, xid8, bigint, bigint),
                          audit.move_consumer(text, xid8, bigint),
                          audit.record_alert(text, jsonb) TO audit_admin;
-- The product's services (audit_service): seals enter only through the function that checks
-- them; nothing may change one afterwards (append-only triggers). Registering a sealing key,
-- which decides whose seals count, is for superusers (no grant): a service whose password
-- leaked could otherwise seal with a key of its own, and verify would fail for good.
GRANT EXECUTE ON FUNCTION audit.add_seal(text, text, bytea, bytea) TO audit_service;
GRANT EXECUTE ON FUNCTION audit.take_service_lock(text, boolean) TO audit_service;
-- WAL capture (docs/wal-capture.md) turns decoded rows into events through this.
GRANT EXECUTE ON FUNCTION audit.wal_changes(regclass, text, text[], jsonb),
                          audit.wal_check_rows(regclass, text, text[], jsonb, text[]),
                          audit.wal_value_json(regclass, text, text, boolean),
                          audit.wal_base_type(oid, int),
                          audit.wal_text_array(jsonb) TO audit_service;
-- Scheduled maintenance (audit-trail maintain) runs as an admin; it does only what the
-- superuser-set policy says. Admins may place legal holds (they only protect events);
-- changing the policy and releasing a hold are for superusers. Recording an archive, which
-- retention then relies on to drop a month, is for the archive command (audit_service).
GRANT EXECUTE ON FUNCTION audit.maintain() TO audit_admin;
GRANT EXECUTE ON FUNCTION audit.hold(text, text, timestamptz, timestamptz) TO audit_admin;
GRANT EXECUTE ON FUNCTION audit.record_archive(text, bigint, text, jsonb, text),
                          audit.record_archive_check(text, text, text, text),
                          audit.archives_to_check() TO audit_service;
GRANT EXECUTE ON FUNCTION audit.archive_check_window() TO audit_admin;
-- The fast filtered search reads the report as its caller (no more than a reader may).
GRANT EXECUTE ON FUNCTION audit.search(timestamptz, timestamptz, text[], text[], text[], text[],
                                       text, text, text, integer, timestamptz, bigint,
                                       timestamptz, bigint, text[]),
                          audit.search_plan(boolean, boolean, text[], boolean, boolean, boolean,
                                            boolean, boolean, boolean, boolean, text, boolean)
    TO audit_admin;
-- History and undo read the log as their caller, and undo writes the table as its caller:
-- an admin who may not write a table cannot put one of its rows back (docs/undo.md).
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
-- audit.integrity shows what audit.schema_findings() finds.
GRANT EXECUTE ON FUNCTION audit.schema_findings() TO audit_admin;
