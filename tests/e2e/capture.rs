//! The capture rules of docs/contract.md, one test each.

use audit_trail_tests::{events, TestDb};
use serde_json::json;

use crate::contacts_db;

#[test]
fn insert_records_a_create_event_with_the_whole_row() {
    let (_db, mut c) = contacts_db();
    c.batch_execute(
        "INSERT INTO crm.contacts (id, name, email) VALUES (1, 'Ann', 'ann@example.com'), \
         (2, 'Bob', NULL)",
    )
    .unwrap();
    let ev = events(&mut c);
    assert_eq!(ev.len(), 2);
    assert_eq!(ev[0].action, "create");
    assert_eq!(ev[0].entity, "contact");
    assert_eq!(ev[0].table_name.as_deref(), Some("crm.contacts"));
    assert_eq!(ev[0].subject_id.as_deref(), Some("1"));
    assert_eq!(ev[1].subject_id.as_deref(), Some("2"));
    let row = ev[0].new_data.as_ref().unwrap();
    assert_eq!(row["name"], "Ann");
    assert_eq!(row["email"], "ann@example.com");
    assert_eq!(row["id"], 1);
    assert!(ev[0].old_data.is_none() && ev[0].changed_fields.is_none());
    assert_eq!(ev[1].new_data.as_ref().unwrap()["email"], json!(null));
    assert_eq!(ev[0].txid, ev[1].txid, "one statement, one transaction");
}

#[test]
fn update_records_changed_fields_and_only_their_previous_values() {
    let (_db, mut c) = contacts_db();
    c.batch_execute(
        "INSERT INTO crm.contacts (id, name, email, phone) VALUES (7, 'Ann', 'a@x', '1')",
    )
    .unwrap();
    let before: serde_json::Value = c
        .query_one("SELECT to_jsonb(c) FROM crm.contacts c WHERE id = 7", &[])
        .unwrap()
        .get(0);
    c.batch_execute("UPDATE crm.contacts SET email = 'b@x', phone = '2', name = name WHERE id = 7")
        .unwrap();
    let after: serde_json::Value = c
        .query_one("SELECT to_jsonb(c) FROM crm.contacts c WHERE id = 7", &[])
        .unwrap()
        .get(0);
    let ev = events(&mut c);
    let update = ev.last().unwrap();
    assert_eq!(update.action, "update");
    assert_eq!(update.subject_id.as_deref(), Some("7"));
    assert_eq!(
        update.changed_fields.as_deref(),
        Some(&["email".to_string(), "phone".into()][..])
    );
    assert_eq!(update.old_data, Some(json!({"email": "a@x", "phone": "1"})));
    // new_data is the whole row after, password masked
    let mut expected_after = after.clone();
    expected_after["password_hash"] = json!(null);
    assert_eq!(update.new_data.as_ref(), Some(&expected_after));
    // new_data || old_data is exactly the row before
    let merged: serde_json::Value = c
        .query_one(
            "SELECT new_data || old_data FROM audit.events WHERE id = $1",
            &[&update.id],
        )
        .unwrap()
        .get(0);
    assert_eq!(merged, before);
}

#[test]
fn delete_records_the_whole_row_before() {
    let (_db, mut c) = contacts_db();
    c.batch_execute("INSERT INTO crm.contacts (id, name, email) VALUES (3, 'Cy', 'c@x')")
        .unwrap();
    c.batch_execute("DELETE FROM crm.contacts WHERE id = 3")
        .unwrap();
    let ev = events(&mut c);
    let delete = ev.last().unwrap();
    assert_eq!(delete.action, "delete");
    assert_eq!(delete.subject_id.as_deref(), Some("3"));
    assert_eq!(delete.old_data.as_ref().unwrap()["email"], "c@x");
    assert!(delete.new_data.is_none());
}

#[test]
fn truncate_records_one_event() {
    let (_db, mut c) = contacts_db();
    c.batch_execute(
        "INSERT INTO crm.contacts (name) SELECT 'n' || g FROM generate_series(1, 50) g",
    )
    .unwrap();
    c.batch_execute("TRUNCATE crm.contacts").unwrap();
    let ev = events(&mut c);
    assert_eq!(ev.len(), 51);
    let t = ev.last().unwrap();
    assert_eq!(
        (t.action.as_str(), t.entity.as_str()),
        ("truncate", "contact")
    );
    assert_eq!(t.table_name.as_deref(), Some("crm.contacts"));
    assert!(t.subject_id.is_none() && t.old_data.is_none());
}

#[test]
fn update_that_changes_no_value_records_nothing() {
    let (_db, mut c) = contacts_db();
    c.batch_execute(
        "INSERT INTO crm.contacts (name, email) SELECT 'n' || g, 'e' || g FROM generate_series(1, 20) g",
    )
    .unwrap();
    c.batch_execute("UPDATE crm.contacts SET email = email, name = name")
        .unwrap();
    c.batch_execute("UPDATE crm.contacts SET email = 'x' WHERE false")
        .unwrap();
    assert_eq!(events(&mut c).len(), 20);
}

#[test]
fn update_of_ignored_columns_only_records_nothing_and_ignored_never_listed() {
    let (_db, mut c) = contacts_db();
    c.batch_execute(
        "INSERT INTO crm.contacts (id, name) SELECT g, 'n' || g FROM generate_series(1, 10) g",
    )
    .unwrap();
    c.batch_execute("UPDATE crm.contacts SET updated_at = now() + interval '1 day'")
        .unwrap();
    assert_eq!(
        events(&mut c).len(),
        10,
        "ignored-only update recorded something"
    );

    c.batch_execute(
        "UPDATE crm.contacts SET updated_at = now() - interval '1 day', name = 'x' WHERE id = 4",
    )
    .unwrap();
    let ev = events(&mut c);
    assert_eq!(ev.len(), 11);
    let update = &ev[10];
    assert_eq!(
        update.changed_fields.as_deref(),
        Some(&["name".to_string()][..])
    );
    // The ignored column's previous value is kept so that new_data || old_data is the row before.
    assert!(update
        .old_data
        .as_ref()
        .unwrap()
        .get("updated_at")
        .is_some());
}

#[test]
fn redacted_column_is_masked_but_listed_as_changed() {
    let (_db, mut c) = contacts_db();
    c.batch_execute(
        "INSERT INTO crm.contacts (id, name, password_hash) VALUES (1, 'Ann', 'secret-1')",
    )
    .unwrap();
    c.batch_execute("UPDATE crm.contacts SET password_hash = 'secret-2' WHERE id = 1")
        .unwrap();
    c.batch_execute("DELETE FROM crm.contacts").unwrap();
    let ev = events(&mut c);
    assert_eq!(
        ev[0].new_data.as_ref().unwrap()["password_hash"],
        "[redacted]"
    );
    assert_eq!(
        ev[1].changed_fields.as_deref(),
        Some(&["password_hash".to_string()][..])
    );
    assert_eq!(ev[1].old_data, Some(json!({"password_hash": "[redacted]"})));
    assert_eq!(
        ev[1].new_data.as_ref().unwrap()["password_hash"],
        "[redacted]"
    );
    assert_eq!(
        ev[2].old_data.as_ref().unwrap()["password_hash"],
        "[redacted]"
    );
    let leaked: i64 = c
        .query_one(
            "SELECT count(*) FROM audit.events WHERE events::text LIKE '%secret-%'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(leaked, 0, "a redacted value reached audit.events");
}

#[test]
fn subject_column_puts_membership_rows_in_the_group_history() {
    let db = TestDb::new();
    let mut c = db.client();
    c.batch_execute(
        "CREATE TABLE groups (id int PRIMARY KEY, name text);
         CREATE TABLE group_members (group_id int REFERENCES groups, contact_id int,
                                     PRIMARY KEY (group_id, contact_id));
         SELECT audit.track('groups', 'group');
         SELECT audit.track('group_members', 'group', subject_column => 'group_id');
         INSERT INTO groups VALUES (5, 'VIP');
         INSERT INTO group_members VALUES (5, 100), (5, 101);
         DELETE FROM group_members WHERE contact_id = 100;",
    )
    .unwrap();
    let ev = events(&mut c);
    assert_eq!(ev.len(), 4);
    assert!(ev
        .iter()
        .all(|e| e.entity == "group" && e.subject_id.as_deref() == Some("5")));
    assert_eq!(ev[3].action, "delete");
    assert_eq!(ev[3].table_name.as_deref(), Some("public.group_members"));
    assert_eq!(ev[3].old_data.as_ref().unwrap()["contact_id"], 100);
}

#[test]
fn composite_primary_key_gives_a_json_array_subject() {
    let db = TestDb::new();
    let mut c = db.client();
    c.batch_execute(
        "CREATE TABLE permissions (user_id int, perm text, granted bool,
                                   PRIMARY KEY (perm, user_id));
         SELECT audit.track('permissions', 'user');
         INSERT INTO permissions VALUES (9, 'export', true);
         UPDATE permissions SET granted = false;",
    )
    .unwrap();
    let ev = events(&mut c);
    // key order is the primary key's, not the table's
    assert_eq!(ev[0].subject_id.as_deref(), Some(r#"["export", 9]"#));
    assert_eq!(ev[1].subject_id.as_deref(), Some(r#"["export", 9]"#));
    let settings: Vec<String> = c
        .query_one(
            "SELECT subject_columns FROM audit.tracked WHERE table_name = 'permissions'::regclass",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(settings, ["perm", "user_id"]);
}

#[test]
fn rolled_back_transaction_leaves_no_event() {
    let (_db, mut c) = contacts_db();
    let mut tx = c.transaction().unwrap();
    tx.batch_execute("INSERT INTO crm.contacts (name) VALUES ('ghost')")
        .unwrap();
    assert_eq!(
        events(&mut tx).len(),
        1,
        "the event is visible inside its transaction"
    );
    tx.rollback().unwrap();
    assert!(events(&mut c).is_empty());
}

#[test]
fn rolled_back_savepoint_leaves_none_of_its_events() {
    let (_db, mut c) = contacts_db();
    c.batch_execute(
        "BEGIN;
         INSERT INTO crm.contacts (id, name) VALUES (1, 'kept');
         SAVEPOINT s;
         INSERT INTO crm.contacts (id, name) VALUES (2, 'dropped');
         UPDATE crm.contacts SET name = 'dropped too' WHERE id = 1;
         ROLLBACK TO SAVEPOINT s;
         INSERT INTO crm.contacts (id, name) VALUES (3, 'kept too');
         COMMIT;",
    )
    .unwrap();
    let subjects: Vec<_> = events(&mut c)
        .into_iter()
        .map(|e| e.subject_id.unwrap())
        .collect();
    assert_eq!(subjects, ["1", "3"]);
}

#[test]
fn actor_source_and_context_come_from_set_local_and_vanish_after_commit() {
    let (_db, mut c) = contacts_db();
    c.batch_execute(
        "BEGIN;
         SET LOCAL audit.actor = 'alice@example.com';
         SET LOCAL audit.source = 'import';
         SET LOCAL audit.context = '{\"request_id\": \"r-1\"}';
         INSERT INTO crm.contacts (name) VALUES ('imported');
         COMMIT;
         INSERT INTO crm.contacts (name) VALUES ('typed by hand');",
    )
    .unwrap();
    let ev = events(&mut c);
    assert_eq!(ev[0].actor, "alice@example.com");
    assert_eq!(ev[0].source, "import");
    assert_eq!(ev[0].context, Some(json!({"request_id": "r-1"})));
    assert_eq!(ev[0].db_user, "postgres");
    // same connection, next transaction: nothing carried over (pool safety)
    assert_eq!(ev[1].actor, "postgres");
    assert_eq!(ev[1].source, "manual");
    assert_eq!(ev[1].context, None);
}

#[test]
fn set_actor_helper_sets_all_three_for_the_transaction() {
    let (db, _) = contacts_db();
    let clerk = db.create_role("clerk", "LOGIN");
    let mut admin = db.client();
    admin
        .batch_execute(&format!("GRANT USAGE ON SCHEMA crm TO {clerk}; GRANT INSERT ON crm.contacts TO {clerk}; GRANT USAGE ON SEQUENCE crm.contacts_id_seq TO {clerk}"))
        .unwrap();
    let mut c = db.client_as(&clerk);
    c.batch_execute(
        "BEGIN;
         SELECT audit.set_actor('bob@example.com', 'api', '{\"ip\": \"203.0.113.9\"}');
         INSERT INTO crm.contacts (name) VALUES ('via api');
         COMMIT;
         INSERT INTO crm.contacts (name) VALUES ('later');",
    )
    .unwrap();
    let ev = events(&mut admin);
    assert_eq!(
        (ev[0].actor.as_str(), ev[0].source.as_str()),
        ("bob@example.com", "api")
    );
    assert_eq!(ev[0].context, Some(json!({"ip": "203.0.113.9"})));
    assert_eq!(ev[0].db_user, clerk);
    assert_eq!(
        (ev[1].actor.as_str(), ev[1].source.as_str()),
        (clerk.as_str(), "manual")
    );
}

#[test]
fn set_role_does_not_change_db_user() {
    let (db, _) = contacts_db();
    let mut admin = db.client();
    let other = db.create_role("other", "NOLOGIN");
    admin
        .batch_execute(&format!(
            "GRANT USAGE ON SCHEMA crm TO {other}; GRANT ALL ON crm.contacts, crm.contacts_id_seq TO {other};
             SET ROLE {other};
             INSERT INTO crm.contacts (name) VALUES ('as other');
             RESET ROLE;"
        ))
        .unwrap();
    let ev = events(&mut admin);
    assert_eq!(ev[0].db_user, "postgres");
    assert_eq!(ev[0].actor, "postgres");
}

#[test]
fn tables_in_other_schemas_with_quoted_mixed_case_names() {
    let db = TestDb::new();
    let mut c = db.client();
    c.batch_execute(
        r#"CREATE SCHEMA "Sales Team";
           CREATE TABLE "Sales Team"."Contact List" ("Contact ID" int PRIMARY KEY, "E-mail" text);
           SELECT audit.track('"Sales Team"."Contact List"', 'contact', ignore_columns => '{}',
                              redact_columns => '{"E-mail"}');
           INSERT INTO "Sales Team"."Contact List" VALUES (1, 'x@y');
           UPDATE "Sales Team"."Contact List" SET "E-mail" = 'z@y';"#,
    )
    .unwrap();
    let ev = events(&mut c);
    assert_eq!(
        ev[0].table_name.as_deref(),
        Some(r#""Sales Team"."Contact List""#)
    );
    assert_eq!(ev[0].subject_id.as_deref(), Some("1"));
    assert_eq!(
        ev[0].new_data,
        Some(json!({"Contact ID": 1, "E-mail": "[redacted]"}))
    );
    assert_eq!(
        ev[1].changed_fields.as_deref(),
        Some(&["E-mail".to_string()][..])
    );
}

#[test]
fn insert_on_conflict_records_what_happened() {
    let (_db, mut c) = contacts_db();
    c.batch_execute(
        "INSERT INTO crm.contacts (id, name) VALUES (1, 'a'), (2, 'b');
         INSERT INTO crm.contacts (id, name) VALUES (1, 'a2'), (3, 'c')
             ON CONFLICT (id) DO UPDATE SET name = excluded.name;
         INSERT INTO crm.contacts (id, name) VALUES (2, 'ignored') ON CONFLICT DO NOTHING;",
    )
    .unwrap();
    let ev: Vec<_> = events(&mut c)
        .into_iter()
        .map(|e| (e.action, e.subject_id.unwrap()))
        .collect();
    let expected = [
        ("create", "1"),
        ("create", "2"),
        ("create", "3"),
        ("update", "1"),
    ];
    let mut sorted = ev.clone();
    sorted.sort();
    assert_eq!(sorted.len(), 4, "{ev:?}");
    for (action, subject) in expected {
        assert!(
            sorted.contains(&(action.to_string(), subject.to_string())),
            "{ev:?}"
        );
    }
}

#[test]
fn partitioned_table_captures_rows_of_every_partition_and_moves() {
    let db = TestDb::new();
    let mut c = db.client();
    c.batch_execute(
        "CREATE TABLE accounts (id int, region text, balance int, PRIMARY KEY (id, region))
             PARTITION BY LIST (region);
         CREATE TABLE accounts_eu PARTITION OF accounts FOR VALUES IN ('eu');
         CREATE TABLE accounts_us PARTITION OF accounts FOR VALUES IN ('us');
         SELECT audit.track('accounts', 'account', subject_column => 'id');
         INSERT INTO accounts VALUES (1, 'eu', 10), (2, 'us', 20);
         UPDATE accounts SET region = 'us' WHERE id = 1;",
    )
    .unwrap();
    let ev = events(&mut c);
    assert_eq!(ev.len(), 3);
    assert_eq!(ev[2].action, "update");
    assert_eq!(ev[2].subject_id.as_deref(), Some("1"));
    assert_eq!(
        ev[2].changed_fields.as_deref(),
        Some(&["region".to_string()][..])
    );
    assert_eq!(ev[2].old_data, Some(json!({"region": "eu"})));
    assert_eq!(ev[2].table_name.as_deref(), Some("public.accounts"));
}

#[test]
fn bulk_statements_apply_every_rule_row_by_row() {
    let (_db, mut c) = contacts_db();
    c.batch_execute(
        "INSERT INTO crm.contacts (id, name, email, password_hash)
             SELECT g, 'n' || g, 'e' || g, 'pw' || g FROM generate_series(1, 5000) g;
         UPDATE crm.contacts SET email = 'new' || id WHERE id % 2 = 0;
         UPDATE crm.contacts SET updated_at = now() + interval '1 hour';
         UPDATE crm.contacts SET password_hash = 'changed' WHERE id <= 10;
         DELETE FROM crm.contacts WHERE id > 4990;",
    )
    .unwrap();
    let counts: Vec<(String, i64)> = c
        .query(
            "SELECT action, count(*) FROM audit.events WHERE action <> 'track' \
              GROUP BY 1 ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        counts,
        [
            ("create".to_string(), 5000),
            ("delete".into(), 10),
            ("update".into(), 2510)
        ]
    );
    // each update event pairs the right old and new row
    let mismatched: i64 = c
        .query_one(
            "SELECT count(*) FROM audit.events
              WHERE action = 'update' AND 'email' = ANY (changed_fields)
                AND (old_data->>'email' <> 'e' || subject_id
                     OR new_data->>'email' <> 'new' || subject_id
                     OR (new_data->>'id')::text <> subject_id)",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(mismatched, 0);
    let unmasked: i64 = c
        .query_one(
            "SELECT count(*) FROM audit.events WHERE events::text ~ '\"pw[0-9]|changed\"'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(unmasked, 0);
}

#[test]
fn untrack_stops_capture_and_removes_triggers() {
    let (_db, mut c) = contacts_db();
    c.batch_execute("INSERT INTO crm.contacts (name) VALUES ('before')")
        .unwrap();
    c.batch_execute("SELECT audit.untrack('crm.contacts')")
        .unwrap();
    c.batch_execute("INSERT INTO crm.contacts (name) VALUES ('after'); DELETE FROM crm.contacts")
        .unwrap();
    let ev = events(&mut c);
    assert_eq!(ev.len(), 2, "{ev:#?}");
    // stopping capture is itself recorded
    assert_eq!(
        (ev[1].entity.as_str(), ev[1].action.as_str()),
        ("audit_log", "untrack")
    );
    assert_eq!(ev[1].details, Some(json!({"table": "crm.contacts"})));
    let triggers: i64 = c
        .query_one("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'crm.contacts'::regclass AND tgname LIKE 'audit_trail_%'", &[])
        .unwrap()
        .get(0);
    assert_eq!(triggers, 0);
    let tracked: i64 = c
        .query_one("SELECT count(*) FROM audit.tracked", &[])
        .unwrap()
        .get(0);
    assert_eq!(tracked, 0);
}

#[test]
fn track_again_replaces_the_settings() {
    let (_db, mut c) = contacts_db();
    c.batch_execute(
        "INSERT INTO crm.contacts (id, name, phone) VALUES (1, 'a', '1');
         SELECT audit.track('crm.contacts', 'person', redact_columns => '{phone}');
         UPDATE crm.contacts SET phone = '2', updated_at = now() + interval '1 day';",
    )
    .unwrap();
    let ev = events(&mut c);
    assert_eq!(ev.len(), 2);
    assert_eq!(ev[1].entity, "person");
    // updated_at is no longer ignored, password_hash no longer redacted, phone now is
    assert_eq!(
        ev[1].changed_fields.as_deref(),
        Some(&["phone".to_string(), "updated_at".into()][..])
    );
    assert_eq!(ev[1].new_data.as_ref().unwrap()["phone"], "[redacted]");
}

#[test]
fn drop_extension_then_create_extension_works() {
    let (db, mut c) = contacts_db();
    // The log holds the record of tracking crm.contacts: dropping it must be confirmed.
    c.batch_execute("SET audit.allow_drop_extension = on")
        .unwrap();
    let err = c.batch_execute("DROP EXTENSION audit_trail").unwrap_err();
    assert!(
        audit_trail_tests::error_text(&err).contains("depend"),
        "{}",
        audit_trail_tests::error_text(&err)
    );
    c.batch_execute("DROP EXTENSION audit_trail CASCADE")
        .unwrap();
    c.batch_execute("INSERT INTO crm.contacts (name) VALUES ('not captured')")
        .unwrap();
    let admin_role: i64 = c
        .query_one(
            "SELECT count(*) FROM pg_roles WHERE rolname = 'audit_admin'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(
        admin_role, 1,
        "DROP EXTENSION must keep the audit_admin role"
    );
    c.batch_execute(
        "CREATE EXTENSION audit_trail;
         SELECT audit.track('crm.contacts', 'contact');
         INSERT INTO crm.contacts (name) VALUES ('captured again');",
    )
    .unwrap();
    // a second connection, which never saw the first installation, also captures
    let mut other = db.client();
    other
        .batch_execute("INSERT INTO crm.contacts (name) VALUES ('from another backend')")
        .unwrap();
    let ev = events(&mut c);
    assert_eq!(ev.len(), 2);
    assert_eq!(ev[0].new_data.as_ref().unwrap()["name"], "captured again");
}

#[test]
fn log_event_records_application_events_with_attribution() {
    let (_db, mut c) = contacts_db();
    let id: i64 = c
        .query_one(
            "SELECT audit.log_event('contact', 'export', NULL, '{\"rows\": 5000, \"group\": \"VIP\"}')",
            &[],
        )
        .unwrap()
        .get(0);
    let ev = events(&mut c);
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].id, id);
    assert_eq!(
        (ev[0].entity.as_str(), ev[0].action.as_str()),
        ("contact", "export")
    );
    assert_eq!(ev[0].details, Some(json!({"rows": 5000, "group": "VIP"})));
    assert_eq!(ev[0].table_name, None);
    for reserved in ["create", "update", "delete", "truncate", "purge", "untrack"] {
        let err = c
            .query_one("SELECT audit.log_event('contact', $1)", &[&reserved])
            .unwrap_err();
        assert!(
            audit_trail_tests::error_text(&err).contains("reserved"),
            "{reserved}: {}",
            audit_trail_tests::error_text(&err)
        );
    }
    // look-alikes of reserved words are not words at all
    for odd in [
        "DELETE",
        "create\u{200b}",
        "\u{441}reate",
        "",
        "1st",
        "has space",
    ] {
        let err = c
            .query_one("SELECT audit.log_event('contact', $1)", &[&odd])
            .unwrap_err();
        assert_eq!(err.code().map(|c| c.code()), Some("22023"), "{odd:?}");
    }
}

#[test]
fn pg_dump_keeps_the_audit_data_and_settings() {
    let (db, mut c) = contacts_db();
    c.batch_execute("INSERT INTO crm.contacts (name) VALUES ('dumped')")
        .unwrap();
    let out = std::process::Command::new(db.cluster.bindir().join("pg_dump"))
        .args(["-d", &db.conninfo("postgres")])
        .output()
        .expect("run pg_dump");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dump = String::from_utf8_lossy(&out.stdout);
    assert!(
        dump.contains("COPY audit.events"),
        "no audit.events data in the dump"
    );
    assert!(dump.contains("\"name\": \"dumped\""));
    assert!(dump.contains("COPY audit.tracked_tables"));
}

#[test]
fn writes_straight_to_partitions_are_captured_including_new_and_attached_ones() {
    let db = TestDb::new();
    let mut c = db.client();
    c.batch_execute(
        "CREATE TABLE accounts (id int, region text, PRIMARY KEY (id, region))
             PARTITION BY LIST (region);
         CREATE TABLE accounts_eu PARTITION OF accounts FOR VALUES IN ('eu');
         SELECT audit.track('accounts', 'account', subject_column => 'id');
         CREATE TABLE accounts_us PARTITION OF accounts FOR VALUES IN ('us');
         CREATE TABLE accounts_asia (id int, region text, PRIMARY KEY (id, region));
         ALTER TABLE accounts ATTACH PARTITION accounts_asia FOR VALUES IN ('asia');
         INSERT INTO accounts VALUES (1, 'eu');
         INSERT INTO accounts_eu VALUES (2, 'eu');
         INSERT INTO accounts_us VALUES (3, 'us');
         UPDATE accounts_asia SET id = id;
         INSERT INTO accounts_asia VALUES (4, 'asia');
         DELETE FROM accounts_us;",
    )
    .unwrap();
    let ev: Vec<(String, String, String)> = events(&mut c)
        .into_iter()
        .map(|e| (e.action, e.table_name.unwrap(), e.subject_id.unwrap()))
        .collect();
    let expect = |a: &str, t: &str, s: &str| (a.to_string(), t.to_string(), s.to_string());
    assert_eq!(
        ev,
        [
            expect("create", "public.accounts", "1"),
            expect("create", "public.accounts_eu", "2"),
            expect("create", "public.accounts_us", "3"),
            expect("create", "public.accounts_asia", "4"),
            expect("delete", "public.accounts_us", "3"),
        ]
    );
}

#[test]
fn two_phase_commit_works_on_tracked_tables() {
    let (_db, mut c) = contacts_db();
    c.batch_execute(
        "BEGIN;
         INSERT INTO crm.contacts (id, name) VALUES (1, 'prepared');
         PREPARE TRANSACTION 'audit_2pc';",
    )
    .unwrap();
    assert!(
        events(&mut c).is_empty(),
        "not visible before COMMIT PREPARED"
    );
    c.batch_execute("COMMIT PREPARED 'audit_2pc'").unwrap();
    let ev = events(&mut c);
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].subject_id.as_deref(), Some("1"));
}
