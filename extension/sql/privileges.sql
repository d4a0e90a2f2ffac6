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
