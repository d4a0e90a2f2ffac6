//! Least privilege: who may read, who may write, and what nobody can do.

use audit_trail_tests::{events, sqlstate, TestDb};

use crate::contacts_db;

/// A login role allowed to write crm.contacts and nothing else.
fn clerk(db: &TestDb) -> String {
    let role = db.create_role("clerk", "LOGIN");
    db.client()
        .batch_execute(&format!(
            "GRANT USAGE ON SCHEMA crm TO {role};
             GRANT SELECT, INSERT, UPDATE, DELETE ON crm.contacts TO {role};
             GRANT USAGE ON SEQUENCE crm.contacts_id_seq TO {role};"
        ))
        .unwrap();
    role
}

#[test]
fn only_audit_admin_members_read_the_audit_data() {
    let (db, _) = contacts_db();
    let clerk = clerk(&db);
    let mut c = db.client_as(&clerk);
    for object in ["audit.events", "audit.tracked", "audit.tracked_tables"] {
        let err = c
            .query(&format!("SELECT * FROM {object}"), &[])
            .unwrap_err();
        assert_eq!(
            sqlstate(&err),
            "42501",
            "{object}: {}",
            audit_trail_tests::error_text(&err)
        );
    }
    let auditor = db.create_role("auditor", "LOGIN IN ROLE audit_admin");
    let mut a = db.client_as(&auditor);
    a.query("SELECT * FROM audit.events", &[]).unwrap();
    a.query("SELECT * FROM audit.tracked", &[]).unwrap();
    let login: bool = a
        .query_one(
            "SELECT rolcanlogin FROM pg_roles WHERE rolname = 'audit_admin'",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(!login, "audit_admin must be NOLOGIN");
}

#[test]
fn a_role_with_only_dml_rights_is_captured() {
    let (db, _) = contacts_db();
    let clerk = clerk(&db);
    let mut c = db.client_as(&clerk);
    c.batch_execute(
        "INSERT INTO crm.contacts (id, name) VALUES (1, 'a');
         UPDATE crm.contacts SET name = 'b';
         DELETE FROM crm.contacts;",
    )
    .unwrap();
    let ev = events(&mut db.client());
    let actions: Vec<_> = ev.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["create", "update", "delete"]);
    assert!(ev.iter().all(|e| e.db_user == clerk && e.actor == clerk));
}

#[test]
fn nobody_can_change_or_delete_an_event() {
    let (db, mut c) = contacts_db();
    c.batch_execute("INSERT INTO crm.contacts (name) VALUES ('a')")
        .unwrap();
    let auditor = db.create_role("auditor", "LOGIN IN ROLE audit_admin");
    let mut a = db.client_as(&auditor);
    for (client, who) in [(&mut c, "superuser"), (&mut a, "audit_admin")] {
        for statement in [
            "UPDATE audit.events SET actor = 'someone else'",
            "DELETE FROM audit.events",
            "TRUNCATE audit.events",
            "DELETE FROM audit.events WHERE false",
        ] {
            let err = client.batch_execute(statement).unwrap_err();
            assert_eq!(
                sqlstate(&err),
                "42501",
                "{who}: {statement}: {}",
                audit_trail_tests::error_text(&err)
            );
        }
    }
    // not even with triggers switched off for replication
    let err = c
        .batch_execute("SET session_replication_role = replica; DELETE FROM audit.events")
        .unwrap_err();
    assert!(
        audit_trail_tests::error_text(&err).contains("append-only"),
        "{}",
        audit_trail_tests::error_text(&err)
    );
    c.batch_execute("RESET session_replication_role").unwrap();
    assert_eq!(events(&mut c).len(), 1);
}

#[test]
fn purge_is_for_superusers_and_leaves_an_event() {
    let (db, mut c) = contacts_db();
    c.batch_execute("INSERT INTO crm.contacts (name) SELECT 'x' FROM generate_series(1, 3)")
        .unwrap();
    let auditor = db.create_role("auditor", "LOGIN IN ROLE audit_admin");
    let err = db
        .client_as(&auditor)
        .query_one("SELECT audit.purge(now() + interval '1 day')", &[])
        .unwrap_err();
    assert_eq!(sqlstate(&err), "42501");
    let purged: i64 = c
        .query_one("SELECT audit.purge(now() + interval '1 day')", &[])
        .unwrap()
        .get(0);
    // The three contacts and the record of tracking crm.contacts.
    assert_eq!(purged, 4);
    let ev = events(&mut c);
    assert_eq!(ev.len(), 1);
    assert_eq!(
        (ev[0].entity.as_str(), ev[0].action.as_str()),
        ("audit_log", "purge")
    );
    assert_eq!(ev[0].details.as_ref().unwrap()["rows"], 4);
    // and the guard is back in force afterwards
    assert!(c.batch_execute("DELETE FROM audit.events").is_err());
}

#[test]
fn ordinary_roles_cannot_track_or_forge_capture() {
    let (db, _) = contacts_db();
    let owner = db.create_role("owner", "LOGIN");
    db.client()
        .batch_execute(&format!("GRANT CREATE ON SCHEMA public TO {owner}"))
        .unwrap();
    let mut o = db.client_as(&owner);
    o.batch_execute("CREATE TABLE mine (id int PRIMARY KEY)")
        .unwrap();
    // track/untrack are not granted to PUBLIC
    let err = o
        .batch_execute("SELECT audit.track('mine', 'thing')")
        .unwrap_err();
    assert_eq!(
        sqlstate(&err),
        "42501",
        "{}",
        audit_trail_tests::error_text(&err)
    );
    // nor is the capture function: an owner cannot attach it to write events of its choosing
    let err = o
        .batch_execute(
            "CREATE TRIGGER fake AFTER INSERT ON mine REFERENCING NEW TABLE AS n
             FOR EACH STATEMENT EXECUTE FUNCTION audit.capture()",
        )
        .unwrap_err();
    assert_eq!(
        sqlstate(&err),
        "42501",
        "{}",
        audit_trail_tests::error_text(&err)
    );
    // a DBA may grant track; it still checks ownership
    db.client()
        .batch_execute(&format!(
            "GRANT EXECUTE ON FUNCTION audit.track(regclass, text, name, name[], name[], name) TO {owner}"
        ))
        .unwrap();
    o.batch_execute("SELECT audit.track('mine', 'thing')")
        .unwrap();
    let err = o
        .batch_execute("SELECT audit.track('crm.contacts', 'x')")
        .unwrap_err();
    assert_eq!(
        sqlstate(&err),
        "42501",
        "{}",
        audit_trail_tests::error_text(&err)
    );
    o.batch_execute("INSERT INTO mine VALUES (1)").unwrap();
    let ev = events(&mut db.client());
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].db_user, owner);
}

#[test]
fn a_hostile_search_path_changes_nothing_in_what_is_captured() {
    let (db, mut c) = contacts_db();
    let clerk = clerk(&db);
    // Look-alikes of everything capture, set_actor and the DDL hooks could resolve by name.
    c.batch_execute(&format!(
        "CREATE SCHEMA evil AUTHORIZATION {clerk};
         CREATE TABLE evil.events (LIKE audit.events);
         CREATE TABLE evil.tracked_tables (LIKE audit.tracked_tables);
         GRANT ALL ON ALL TABLES IN SCHEMA evil TO {clerk};"
    ))
    .unwrap();
    let mut e = db.client_as(&clerk);
    e.batch_execute(
        "CREATE FUNCTION evil.to_jsonb(anyelement) RETURNS jsonb LANGUAGE sql AS $$ SELECT '\"pwned\"'::jsonb $$;
         CREATE FUNCTION evil.nextval(regclass) RETURNS bigint LANGUAGE sql AS $$ SELECT -1::bigint $$;
         CREATE FUNCTION evil.set_config(text, text, boolean) RETURNS text LANGUAGE sql AS $$ SELECT 'pwned' $$;
         CREATE FUNCTION evil.session_user_lookalike() RETURNS text LANGUAGE sql AS $$ SELECT 'pwned' $$;
         CREATE FUNCTION evil.oideq(oid, oid) RETURNS boolean LANGUAGE sql AS $$ SELECT false $$;
         CREATE OPERATOR evil.= (LEFTARG = oid, RIGHTARG = oid, FUNCTION = evil.oideq);
         CREATE FUNCTION evil.regclasseq(regclass, regclass) RETURNS boolean LANGUAGE sql AS $$ SELECT false $$;
         CREATE OPERATOR evil.= (LEFTARG = regclass, RIGHTARG = regclass, FUNCTION = evil.regclasseq);
         SET search_path = evil, pg_catalog, public;
         BEGIN;
         SELECT audit.set_actor('carol@example.com', 'api');
         INSERT INTO crm.contacts (id, name) VALUES (1, 'a');
         UPDATE crm.contacts SET name = 'b';
         COMMIT;",
    )
    .unwrap();
    let stolen: i64 = e
        .query_one("SELECT count(*) FROM evil.events", &[])
        .unwrap()
        .get(0);
    assert_eq!(stolen, 0);
    let ev = events(&mut c);
    assert_eq!(ev.len(), 2);
    assert!(ev
        .iter()
        .all(|x| x.actor == "carol@example.com" && x.source == "api" && x.id > 0));
    assert_eq!(ev[0].new_data.as_ref().unwrap()["name"], "a");
    assert_eq!(
        ev[1].changed_fields.as_deref(),
        Some(&["name".to_string()][..])
    );
}

#[test]
fn public_has_no_privilege_on_any_audit_table_and_only_the_helpers_are_executable() {
    let db = TestDb::new();
    let mut c = db.client();
    let table_grants: i64 = c
        .query_one(
            "SELECT count(*) FROM information_schema.role_table_grants
              WHERE table_schema = 'audit' AND grantee = 'PUBLIC'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(table_grants, 0);
    let public_functions: Vec<String> = c
        .query(
            "SELECT p.proname::text FROM pg_proc p
              WHERE p.pronamespace = 'audit'::regnamespace
                AND has_function_privilege('public', p.oid, 'EXECUTE') ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(public_functions, ["log_event", "set_actor"]);
    // every SECURITY DEFINER function pins its search_path
    let unpinned: i64 = c
        .query_one(
            "SELECT count(*) FROM pg_proc p
              WHERE p.pronamespace = 'audit'::regnamespace AND p.prosecdef
                AND NOT coalesce(p.proconfig::text LIKE '%search_path=pg_catalog, pg_temp%', false)",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(unpinned, 0);
}

#[test]
fn a_table_owner_cannot_switch_capture_off_by_hand() {
    let (db, _) = contacts_db();
    let owner = db.create_role("owner", "LOGIN");
    let mut admin = db.client();
    admin
        .batch_execute(&format!(
            "ALTER TABLE crm.contacts OWNER TO {owner}; GRANT USAGE ON SCHEMA crm TO {owner}"
        ))
        .unwrap();
    let mut o = db.client_as(&owner);
    for statement in [
        "DROP TRIGGER audit_trail_update ON crm.contacts",
        "ALTER TABLE crm.contacts DISABLE TRIGGER audit_trail_insert",
        "ALTER TABLE crm.contacts DISABLE TRIGGER ALL",
        "ALTER TABLE crm.contacts ENABLE REPLICA TRIGGER audit_trail_delete",
        "ALTER TRIGGER audit_trail_update ON crm.contacts RENAME TO harmless",
        "CREATE OR REPLACE TRIGGER audit_trail_insert AFTER INSERT ON crm.contacts
             REFERENCING NEW TABLE AS n FOR EACH STATEMENT
             EXECUTE FUNCTION suppress_redundant_updates_trigger()",
    ] {
        let err = o.batch_execute(statement).unwrap_err();
        assert_eq!(
            sqlstate(&err),
            "42501",
            "{statement}: {}",
            audit_trail_tests::error_text(&err)
        );
    }
    o.batch_execute("INSERT INTO crm.contacts (name) VALUES ('still captured')")
        .unwrap();
    assert_eq!(events(&mut admin).len(), 1);
    // Dropping the table is the owner's right; it is recorded.
    o.batch_execute("DROP TABLE crm.contacts").unwrap();
    let ev = events(&mut admin);
    let last = ev.last().unwrap();
    assert_eq!(
        (last.entity.as_str(), last.action.as_str()),
        ("audit_log", "table_dropped")
    );
    assert_eq!(last.db_user, owner);
    assert_eq!(last.details.as_ref().unwrap()["table"], "crm.contacts");
}

#[test]
fn only_audit_admins_may_record_audit_log_events() {
    let (db, _) = contacts_db();
    let clerk = clerk(&db);
    let err = db
        .client_as(&clerk)
        .query_one(
            "SELECT audit.log_event('audit_log', 'export', NULL, '{\"rows\": 1}')",
            &[],
        )
        .unwrap_err();
    assert_eq!(sqlstate(&err), "42501");
    // nor by a look-alike name (surrounding spaces are trimmed: that is the real name)
    for (entity, code) in [
        ("Audit_Log", "22023"),
        ("audit\u{200b}_log", "22023"),
        ("audit_log ", "42501"),
    ] {
        let err = db
            .client_as(&clerk)
            .query_one("SELECT audit.log_event($1, 'export')", &[&entity])
            .unwrap_err();
        assert_eq!(sqlstate(&err), code, "{entity:?}");
    }
    // their own application events are fine
    db.client_as(&clerk)
        .query_one(
            "SELECT audit.log_event('contact', 'export', NULL, '{\"rows\": 1}')",
            &[],
        )
        .unwrap();
    let auditor = db.create_role("auditor", "LOGIN IN ROLE audit_admin");
    db.client_as(&auditor)
        .query_one("SELECT audit.log_event('audit_log', 'export')", &[])
        .unwrap();
}
