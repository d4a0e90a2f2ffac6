//! History and undo (docs/undo.md): a row as it was, and changes put back as the caller,
//! recorded as reverts, refused rather than overwriting a later change.

use audit_trail_tests::{events, TestDb};
use postgres::error::SqlState;
use serde_json::{json, Value};

use crate::contacts_db;

/// The one value `sql` returns, None for SQL NULL or no row.
fn row(c: &mut postgres::Client, sql: &str) -> Option<Value> {
    c.query_opt(sql, &[])
        .unwrap_or_else(|e| panic!("{sql}: {}", message(&e)))
        .and_then(|r| r.get(0))
}

fn exec(c: &mut postgres::Client, sql: &str) {
    c.batch_execute(sql)
        .unwrap_or_else(|e| panic!("{sql}: {}", message(&e)));
}

/// The server's message (postgres::Error's own text is only "db error").
fn message(e: &postgres::Error) -> String {
    e.as_db_error()
        .map_or_else(|| e.to_string(), |db| db.message().to_string())
}

fn contact(c: &mut postgres::Client, id: i64) -> Option<Value> {
    c.query_opt(
        "SELECT to_jsonb(c) - 'updated_at' FROM crm.contacts c WHERE id = $1",
        &[&id],
    )
    .unwrap()
    .and_then(|r| r.get(0))
}

fn last_event_id(c: &mut postgres::Client) -> i64 {
    // Ids are handed out in blocks per connection: the newest is the latest in time.
    c.query_one(
        "SELECT id FROM audit.events ORDER BY occurred_at DESC, id DESC LIMIT 1",
        &[],
    )
    .unwrap()
    .get(0)
}

fn code(e: &postgres::Error) -> SqlState {
    e.code().cloned().unwrap_or(SqlState::INTERNAL_ERROR)
}

#[test]
fn history_and_row_as_of_rebuild_every_version_of_a_row() {
    let (_db, mut c) = contacts_db();
    exec(
        &mut c,
        "INSERT INTO crm.contacts (id, name, email) VALUES (1, 'Ann', 'a@x')",
    );
    exec(&mut c, "UPDATE crm.contacts SET email = 'b@x' WHERE id = 1");
    exec(
        &mut c,
        "UPDATE crm.contacts SET name = 'Anne', phone = '5' WHERE id = 1",
    );
    exec(&mut c, "DELETE FROM crm.contacts WHERE id = 1");
    // Another row's events are not this one's.
    exec(
        &mut c,
        "INSERT INTO crm.contacts (id, name) VALUES (2, 'Bob')",
    );
    let steps = c
        .query(
            "SELECT action, before - 'updated_at', after - 'updated_at', occurred_at
               FROM audit.history('crm.contacts', '1')",
            &[],
        )
        .unwrap();
    let actions: Vec<String> = steps.iter().map(|r| r.get(0)).collect();
    assert_eq!(actions, ["create", "update", "update", "delete"]);
    let version = |name: &str, email: &str, phone: Option<&str>| json!({"id": 1, "name": name, "email": email, "phone": phone, "password_hash": null});
    let before: Vec<Option<Value>> = steps.iter().map(|r| r.get(1)).collect();
    let after: Vec<Option<Value>> = steps.iter().map(|r| r.get(2)).collect();
    assert_eq!(before[0], None);
    assert_eq!(after[0], Some(version("Ann", "a@x", None)));
    assert_eq!(before[1], after[0]);
    assert_eq!(after[1], Some(version("Ann", "b@x", None)));
    assert_eq!(
        before[2], after[1],
        "the row before an update is new_data || old_data"
    );
    assert_eq!(after[2], Some(version("Anne", "b@x", Some("5"))));
    assert_eq!(before[3], after[2]);
    assert_eq!(after[3], None);

    // row_as_of at each event's time is the row it left; before the first, nothing.
    for (i, step) in steps.iter().enumerate() {
        let at: std::time::SystemTime = step.get(3);
        let then: Option<Value> = c
            .query_one(
                "SELECT audit.row_as_of('crm.contacts', '1', $1) - 'updated_at'",
                &[&at],
            )
            .unwrap()
            .get(0);
        // The delete's own time: the row is gone.
        assert_eq!(then, after[i], "as of event {i}");
    }
    let first: std::time::SystemTime = steps[0].get(3);
    let earlier = first - std::time::Duration::from_secs(1);
    assert_eq!(
        row(
            &mut c,
            &format!(
                "SELECT audit.row_as_of('crm.contacts', '1', to_timestamp({}))",
                earlier
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_secs_f64()
            )
        ),
        None
    );
    // A truncate takes the row with it.
    exec(&mut c, "TRUNCATE crm.contacts");
    assert_eq!(
        row(&mut c, "SELECT audit.row_as_of('crm.contacts', '2', now())"),
        None
    );
    let last: Vec<String> = c
        .query("SELECT action FROM audit.history('crm.contacts', '2')", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(last, ["create", "truncate"]);
    // An untracked table is named.
    exec(&mut c, "CREATE TABLE crm.notes (id int PRIMARY KEY)");
    let err = c
        .query("SELECT * FROM audit.history('crm.notes', '1')", &[])
        .unwrap_err();
    assert_eq!(code(&err), SqlState::INVALID_PARAMETER_VALUE);
    assert!(message(&err).contains("crm.notes is not tracked"), "{err}");
}

#[test]
fn a_reverted_delete_comes_back_exactly_and_reads_as_a_revert() {
    let db = TestDb::new();
    let mut c = db.client();
    exec(
        &mut c,
        "CREATE TYPE mood AS ENUM ('calm', 'busy');
         CREATE TABLE deals (
             id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
             amount    numeric(12, 4),
             ratio     double precision,
             tags      text[],
             extra     jsonb,
             closes_at timestamptz,
             blob      bytea,
             mood      mood,
             dims      int[],
             doubled   numeric GENERATED ALWAYS AS (amount * 2) STORED
         );
         SELECT audit.track('deals', 'deal');
         INSERT INTO deals (amount, ratio, tags, extra, closes_at, blob, mood, dims)
         VALUES (1234.5600, 0.1, '{a,\"b c\",NULL}', '{\"k\": [1, {\"x\": null}], \"n\": 1.50}',
                 '2026-03-01 10:00:00.123456+02', '\\x00ff10', 'busy', '{{1,2},{3,4}}');",
    );
    let before = row(&mut c, "SELECT to_jsonb(d) FROM deals d").unwrap();
    exec(&mut c, "DELETE FROM deals");
    let deleted = last_event_id(&mut c);
    exec(&mut c, &format!(
        "SELECT audit.set_actor('ann', 'crm', '{{\"request\": \"r1\"}}'); SELECT audit.revert({deleted})"
    ));
    assert_eq!(row(&mut c, "SELECT to_jsonb(d) FROM deals d"), Some(before));

    let ev = events(&mut c);
    let revert = ev.last().unwrap();
    assert_eq!(revert.action, "create");
    assert_eq!(revert.source, "revert");
    assert_eq!(revert.actor, "ann", "the caller's actor");
    assert_eq!(
        revert.context,
        Some(json!({"request": "r1", "reverts": deleted}))
    );
    let said: String = c
        .query_one(
            "SELECT summary FROM audit.report WHERE id = $1",
            &[&revert.id],
        )
        .unwrap()
        .get(0);
    assert_eq!(said, "ann reverted deal 1's deletion");
    // Put back once: a second revert of the same deletion finds the row there.
    let err = c
        .batch_execute(&format!("SELECT audit.revert({deleted})"))
        .unwrap_err();
    assert_eq!(code(&err), SqlState::UNIQUE_VIOLATION, "{err}");
}

#[test]
fn an_update_is_put_back_only_over_what_it_wrote() {
    let (_db, mut c) = contacts_db();
    exec(
        &mut c,
        "INSERT INTO crm.contacts (id, name, email) VALUES (2, 'Ann', 'a@x')",
    );
    exec(
        &mut c,
        "UPDATE crm.contacts SET name = 'Bob', email = 'b@x' WHERE id = 2",
    );
    let first = last_event_id(&mut c);
    exec(&mut c, "UPDATE crm.contacts SET email = 'c@x' WHERE id = 2");
    let second = last_event_id(&mut c);
    let now = contact(&mut c, 2);
    let err = c
        .batch_execute(&format!("SELECT audit.revert({first})"))
        .unwrap_err();
    assert_eq!(code(&err), SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE);
    let message = err.as_db_error().unwrap().message().to_string();
    assert!(
        message.contains("email of crm.contacts changed since"),
        "{message}"
    );
    assert!(
        !message.contains("name,"),
        "only the column changed since: {message}"
    );
    assert_eq!(contact(&mut c, 2), now, "a refused revert changes nothing");

    // Newest first, each goes back.
    exec(&mut c, &format!("SELECT audit.revert({second})"));
    assert_eq!(contact(&mut c, 2).unwrap()["email"], "b@x");
    exec(&mut c, &format!("SELECT audit.revert({first})"));
    let back = contact(&mut c, 2).unwrap();
    assert_eq!(
        (&back["name"], &back["email"]),
        (&json!("Ann"), &json!("a@x"))
    );
    let ev = events(&mut c);
    let reverts: Vec<_> = ev.iter().filter(|e| e.source == "revert").collect();
    assert_eq!(reverts.len(), 2);
    assert_eq!(
        reverts[1].changed_fields.as_deref(),
        Some(&["name".to_string(), "email".into()][..])
    );
    let said: String = c
        .query_one(
            "SELECT summary FROM audit.report WHERE id = $1",
            &[&reverts[1].id],
        )
        .unwrap()
        .get(0);
    assert!(said.ends_with("reverted contact 2's update"), "{said}");
}

#[test]
fn a_create_is_put_back_by_deleting_an_unchanged_row_only() {
    let (_db, mut c) = contacts_db();
    exec(
        &mut c,
        "INSERT INTO crm.contacts (id, name) VALUES (3, 'Ann'), (4, 'Bob')",
    );
    let ids: Vec<i64> = c
        .query(
            "SELECT id FROM audit.events WHERE action = 'create' ORDER BY id",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    exec(&mut c, &format!("SELECT audit.revert({})", ids[0]));
    assert_eq!(contact(&mut c, 3), None);
    // The ignored column may move; a tracked one may not.
    exec(
        &mut c,
        "UPDATE crm.contacts SET updated_at = now() + interval '1 day' WHERE id = 4",
    );
    exec(&mut c, "UPDATE crm.contacts SET phone = '9' WHERE id = 4");
    let err = c
        .batch_execute(&format!("SELECT audit.revert({})", ids[1]))
        .unwrap_err();
    assert!(
        message(&err).contains("phone of crm.contacts changed since"),
        "{err}"
    );
    assert!(contact(&mut c, 4).is_some());
    // A row already gone is named.
    let err = c
        .batch_execute(&format!("SELECT audit.revert({})", ids[0]))
        .unwrap_err();
    assert!(
        message(&err).contains("is no longer in crm.contacts"),
        "{err}"
    );
}

#[test]
fn a_deletion_comes_back_under_a_deferrable_key_and_only_once() {
    // A deferrable primary key cannot arbitrate ON CONFLICT: the revert looks the key up.
    let db = TestDb::new();
    let mut c = db.client();
    exec(
        &mut c,
        "CREATE TABLE tags (id int PRIMARY KEY DEFERRABLE INITIALLY DEFERRED, label text);
         SELECT audit.track('tags', 'tag');
         INSERT INTO tags VALUES (1, 'red');
         DELETE FROM tags;",
    );
    let deleted = last_event_id(&mut c);
    exec(&mut c, &format!("SELECT audit.revert({deleted})"));
    assert_eq!(
        row(&mut c, "SELECT to_jsonb(t) FROM tags t"),
        Some(json!({"id": 1, "label": "red"}))
    );
    let err = c
        .batch_execute(&format!("SELECT audit.revert({deleted})"))
        .unwrap_err();
    assert_eq!(code(&err), SqlState::UNIQUE_VIOLATION, "{err}");
}

#[test]
fn redacted_values_are_not_made_up_and_truncates_and_log_events_are_refused() {
    let (_db, mut c) = contacts_db();
    exec(
        &mut c,
        "INSERT INTO crm.contacts (id, name, password_hash) VALUES (5, 'Ann', 'secret'), (6, 'Bob', NULL);
         DELETE FROM crm.contacts WHERE id IN (5, 6);",
    );
    let deletes: Vec<(i64, String)> = c
        .query(
            "SELECT id, subject_id FROM audit.events WHERE action = 'delete' ORDER BY subject_id",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let err = c
        .batch_execute(&format!("SELECT audit.revert({})", deletes[0].0))
        .unwrap_err();
    assert!(
        message(&err).contains("column password_hash of crm.contacts is redacted"),
        "{err}"
    );
    assert_eq!(contact(&mut c, 5), None);
    exec(
        &mut c,
        &format!(
            "SELECT audit.revert({}, skip_redacted => true)",
            deletes[0].0
        ),
    );
    assert_eq!(contact(&mut c, 5).unwrap()["password_hash"], Value::Null);
    assert_eq!(contact(&mut c, 5).unwrap()["name"], "Ann");
    // A NULL was recorded as NULL: nothing is missing.
    exec(&mut c, &format!("SELECT audit.revert({})", deletes[1].0));
    assert_eq!(contact(&mut c, 6).unwrap()["name"], "Bob");

    exec(&mut c, "TRUNCATE crm.contacts");
    let truncate = last_event_id(&mut c);
    let err = c
        .batch_execute(&format!("SELECT audit.revert({truncate})"))
        .unwrap_err();
    assert_eq!(code(&err), SqlState::FEATURE_NOT_SUPPORTED, "{err}");
    let logged: i64 = c
        .query_one("SELECT audit.log_event('contact', 'export')", &[])
        .unwrap()
        .get(0);
    let err = c
        .batch_execute(&format!("SELECT audit.revert({logged})"))
        .unwrap_err();
    assert_eq!(code(&err), SqlState::FEATURE_NOT_SUPPORTED, "{err}");
    let err = c.batch_execute("SELECT audit.revert(NULL)").unwrap_err();
    assert_eq!(code(&err), SqlState::NULL_VALUE_NOT_ALLOWED, "{err}");
    let err = c.batch_execute("SELECT audit.revert(-1)").unwrap_err();
    assert!(message(&err).contains("no event -1"), "{err}");
}

#[test]
fn only_a_revert_reads_as_one_and_only_who_may_write_the_table_reverts() {
    let (db, mut c) = contacts_db();
    // An application cannot make its change look like a revert.
    let err = c
        .batch_execute("SELECT audit.set_actor('ann', 'revert')")
        .unwrap_err();
    assert!(message(&err).contains("reserved"), "{err}");
    let err = c
        .batch_execute("SELECT audit.set_actor('ann', 'crm', '{\"reverts\": 1}')")
        .unwrap_err();
    assert!(message(&err).contains("reserved"), "{err}");
    let err = c
        .batch_execute(
            "BEGIN; SET LOCAL audit.source = 'revert'; INSERT INTO crm.contacts (name) VALUES ('x'); COMMIT",
        )
        .unwrap_err();
    assert!(message(&err).contains("reserved"), "{err}");
    c.batch_execute("ROLLBACK").ok();

    exec(
        &mut c,
        "INSERT INTO crm.contacts (id, name) VALUES (7, 'Ann'); DELETE FROM crm.contacts",
    );
    let deleted = last_event_id(&mut c);
    // An admin who may read the log but not write the table; a writer who may not read it.
    let admin = db.create_role("undo_admin", "LOGIN IN ROLE audit_admin");
    let writer = db.create_role("undo_writer", "LOGIN");
    exec(
        &mut c,
        &format!("GRANT USAGE ON SCHEMA crm TO {writer}; GRANT ALL ON crm.contacts TO {writer};"),
    );
    for role in [&admin, &writer] {
        let err = db
            .client_as(role)
            .batch_execute(&format!("SELECT audit.revert({deleted})"))
            .unwrap_err();
        assert_eq!(
            code(&err),
            SqlState::INSUFFICIENT_PRIVILEGE,
            "{role}: {err}"
        );
    }
    assert_eq!(contact(&mut c, 7), None);
    exec(&mut c, &format!("GRANT audit_admin TO {writer}"));
    exec(
        &mut db.client_as(&writer),
        &format!("SELECT audit.revert({deleted})"),
    );
    let latest = last_event_id(&mut c);
    let db_user: String = c
        .query_one("SELECT db_user FROM audit.events WHERE id = $1", &[&latest])
        .unwrap()
        .get(0);
    assert_eq!(db_user, writer);
    // The undo step called directly writes an ordinary change.
    exec(&mut c, "DELETE FROM crm.contacts");
    let again = last_event_id(&mut c);
    exec(&mut c, &format!("SELECT audit.undo_event({again})"));
    let latest = last_event_id(&mut c);
    let latest = c
        .query_one(
            "SELECT source, context FROM audit.events WHERE id = $1",
            &[&latest],
        )
        .unwrap();
    assert_eq!(latest.get::<_, String>(0), "manual");
    assert_eq!(latest.get::<_, Option<Value>>(1), None);
}

#[test]
fn a_whole_import_is_reverted_in_one_statement_or_not_at_all() {
    let (_db, mut c) = contacts_db();
    exec(
        &mut c,
        "INSERT INTO crm.contacts (id, name, phone) VALUES (1, 'Ann', '1')",
    );
    let before: Value = row(
        &mut c,
        "SELECT jsonb_agg(to_jsonb(c) - 'updated_at' ORDER BY id) FROM crm.contacts c",
    )
    .unwrap();
    let import: i64 = c
        .query_one(
            "WITH i AS (INSERT INTO crm.contacts (id, name)
                        SELECT g, 'imported ' || g FROM generate_series(100, 1099) g),
                  u AS (UPDATE crm.contacts SET phone = '2' WHERE id = 1)
             SELECT pg_current_xact_id()::text::bigint",
            &[],
        )
        .unwrap_or_else(|e| panic!("the import: {}", message(&e)))
        .get(0);
    // A later change to one imported row: the whole revert is refused.
    exec(
        &mut c,
        "UPDATE crm.contacts SET name = 'kept' WHERE id = 555",
    );
    let err = c
        .batch_execute(&format!("SELECT audit.revert_transaction('{import}')"))
        .unwrap_err();
    assert!(message(&err).contains("changed since"), "{}", message(&err));
    let count: i64 = c
        .query_one("SELECT count(*) FROM crm.contacts", &[])
        .unwrap()
        .get(0);
    assert_eq!(count, 1001, "nothing was reverted");
    exec(
        &mut c,
        "UPDATE crm.contacts SET name = 'imported 555' WHERE id = 555",
    );

    let reverted: i64 = c
        .query_one(&format!("SELECT audit.revert_transaction('{import}')"), &[])
        .unwrap()
        .get(0);
    assert_eq!(reverted, 1001);
    assert_eq!(
        row(
            &mut c,
            "SELECT jsonb_agg(to_jsonb(c) - 'updated_at' ORDER BY id) FROM crm.contacts c"
        ),
        Some(before)
    );
    let marked: i64 = c
        .query_one(
            "SELECT count(*) FROM audit.events WHERE source = 'revert'
                AND (context ->> 'reverts')::bigint IN (SELECT id FROM audit.events WHERE txid = $1::text::xid8)",
            &[&import.to_string()],
        )
        .unwrap()
        .get(0);
    assert_eq!(marked, 1001, "each revert names the event it put back");
    let err = c
        .batch_execute("SELECT audit.revert_transaction('1')")
        .unwrap_err();
    assert!(message(&err).contains("changed no tracked row"), "{err}");
}

#[test]
fn the_command_shows_a_dry_run_then_reverts_and_says_what_it_did() {
    use audit_trail_tests::sidecar::{command, run};
    let (db, mut c) = contacts_db();
    exec(
        &mut c,
        "INSERT INTO crm.contacts (id, name) VALUES (2, 'Ann')",
    );
    exec(&mut c, "UPDATE crm.contacts SET name = 'Bob' WHERE id = 2");
    let update = last_event_id(&mut c).to_string();
    let revert = |extra: &[&str]| {
        run(command()
            .args([
                "revert",
                "--db",
                &db.conninfo("postgres"),
                "--event",
                &update,
            ])
            .args(extra))
    };
    let line = "postgres reverted contact 2's update: name: \"Bob\" -> \"Ann\"\n";

    let dry = revert(&["--dry-run"]);
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    assert_eq!(dry.stdout, line);
    assert!(dry.stderr.contains("would revert event"), "{}", dry.stderr);
    assert_eq!(
        contact(&mut c, 2).unwrap()["name"],
        "Bob",
        "a dry run changes nothing"
    );
    let reverts: i64 = c
        .query_one(
            "SELECT count(*) FROM audit.events WHERE source = 'revert'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(reverts, 0, "nor records anything");

    let done = revert(&[]);
    assert_eq!(done.code, 0, "{}", done.stderr);
    assert_eq!(done.stdout, line);
    assert_eq!(contact(&mut c, 2).unwrap()["name"], "Ann");
    // Once put back, the row no longer holds what the event wrote: one line, exit 1.
    let again = revert(&[]);
    assert_eq!(again.code, 1, "{}", again.stderr);
    assert_eq!(again.stderr.lines().count(), 1, "{}", again.stderr);
    assert!(
        again.stderr.contains("name of crm.contacts changed since"),
        "{}",
        again.stderr
    );

    // An event that does not exist, or one no revert can put back, is bad input: exit 2.
    for (id, says) in [
        ("999999999", "no event 999999999"),
        ("1", "cannot be reverted"),
    ] {
        exec(&mut c, "SELECT audit.log_event('contact', 'export')");
        let id = if id == "1" {
            last_event_id(&mut c).to_string()
        } else {
            id.to_owned()
        };
        let bad = run(command().args(["revert", "--db", &db.conninfo("postgres"), "--event", &id]));
        assert_eq!(bad.code, 2, "{}", bad.stderr);
        assert_eq!(bad.stderr.lines().count(), 1, "{}", bad.stderr);
        assert!(bad.stderr.contains(says), "{}", bad.stderr);
    }

    let both = run(command().args([
        "revert",
        "--db",
        &db.conninfo("postgres"),
        "--event",
        "1",
        "--transaction",
        "2",
    ]));
    assert_eq!(both.code, 2, "{}", both.stderr);
    let neither = run(command().args(["revert", "--db", &db.conninfo("postgres")]));
    assert_eq!(neither.code, 2, "{}", neither.stderr);
    let stranger = db.create_role("undo_stranger", "LOGIN");
    let refused = run(command().args([
        "revert",
        "--db",
        &db.conninfo(&stranger),
        "--event",
        &update,
    ]));
    assert_eq!(refused.code, 3, "{}", refused.stderr);
}

#[test]
fn an_admin_puts_a_deleted_contact_back_from_its_event_page() {
    use audit_trail_tests::browser::{Browser, Dashboard};
    const PASSWORD: &str = "correct-horse-7";
    let (db, mut c) = contacts_db();
    let admin = db.create_role(
        "revert_admin",
        &format!("LOGIN PASSWORD '{PASSWORD}' IN ROLE audit_admin"),
    );
    exec(
        &mut c,
        &format!(
            "GRANT USAGE ON SCHEMA crm TO {admin}; GRANT ALL ON crm.contacts TO {admin};
             INSERT INTO crm.contacts (id, name, email) VALUES (9, 'Zoe', 'zoe@example.com');
             UPDATE crm.contacts SET phone = '+1 555 0109' WHERE id = 9;"
        ),
    );
    exec(&mut c, "DELETE FROM crm.contacts WHERE id = 9");
    let deleted = last_event_id(&mut c);
    let dash = Dashboard::start(&db);
    let b = Browser::start();
    b.goto(&dash.url(&format!("/reports/audit-log/events/{deleted}")));
    b.wait_url("the sign-in page", |u| u.contains("/sign-in"));
    b.fill("#role", &admin);
    b.fill("#password", PASSWORD);
    b.click("form.stack button[type=submit]");
    b.wait_url("the event", |u| u.ends_with(&format!("/events/{deleted}")));
    // The row's versions: created, updated, deleted, newest first.
    let versions = b.texts("table.versions tbody tr td:nth-child(3)");
    assert_eq!(versions.len(), 3, "{versions:?}");
    assert!(versions[0].starts_with("delete"), "{versions:?}");
    assert!(versions[1].contains("phone"), "{versions:?}");

    b.click("#revert");
    b.wait_url("the confirmation", |u| u.ends_with("/revert"));
    let planned = b.text("#revert-changes");
    assert!(planned.contains("the row comes back"), "{planned}");
    assert!(planned.contains("Zoe"), "{planned}");
    assert!(
        contact(&mut c, 9).is_none(),
        "showing what would change changes nothing"
    );
    b.screenshot("dashboard-revert-confirm");
    b.click("#revert-confirm");
    b.wait_url("the revert's own event", |u| {
        u.contains("/events/")
            && !u.ends_with(&format!("/events/{deleted}"))
            && !u.ends_with("/revert")
    });
    assert_eq!(
        b.text("main h1"),
        format!("{admin} reverted contact 9's deletion")
    );
    let back = contact(&mut c, 9).expect("the contact is back");
    assert_eq!(
        (&back["name"], &back["phone"]),
        (&json!("Zoe"), &json!("+1 555 0109"))
    );

    // Again: the database refuses, and the page says why, with no button.
    b.goto(&dash.url(&format!("/reports/audit-log/events/{deleted}/revert")));
    assert!(b
        .text("#revert-refused")
        .contains("is in crm.contacts again"));
    assert!(b.find_all("#revert-confirm").is_empty());
    assert!(
        b.find_all("#revert-skip-redacted").is_empty(),
        "not a redaction"
    );

    // A row with a redacted value: refused, and the rest offered without it.
    exec(
        &mut c,
        "INSERT INTO crm.contacts (id, name, password_hash) VALUES (10, 'Yan', 'secret');
         DELETE FROM crm.contacts WHERE id = 10;",
    );
    let redacted = last_event_id(&mut c);
    b.goto(&dash.url(&format!("/reports/audit-log/events/{redacted}/revert")));
    assert!(b
        .text("#revert-refused")
        .contains("column password_hash of crm.contacts is redacted"));
    b.click("#revert-skip-redacted");
    b.wait_url("the choice without redacted values", |u| {
        u.ends_with("?skip_redacted=1")
    });
    assert!(b.displayed("#revert-without-redacted"));
    assert!(contact(&mut c, 10).is_none(), "a dry run again");
    b.click("#revert-confirm");
    b.wait_url("the revert's own event", |u| !u.contains("/revert"));
    let back = contact(&mut c, 10).expect("the rest of the contact is back");
    assert_eq!(
        (&back["name"], &back["password_hash"]),
        (&json!("Yan"), &Value::Null)
    );
}

#[test]
fn an_organizations_viewer_gets_neither_history_nor_revert() {
    use audit_trail_tests::browser::Http;
    use audit_trail_tests::viewers::{claims, token, TwoOrgs};
    let orgs = TwoOrgs::new();
    let dash = orgs.serve(&[]);
    let http = Http::new(&dash);
    let opened = http.get(
        &format!("/embed?token={}", token(&claims("acme", "Ann Admin", None))),
        None,
    );
    assert_eq!(opened.status, 303, "{}", opened.body);
    let cookie = format!(
        "audit_trail_embed={}",
        opened.cookie("audit_trail_embed").expect("a session")
    );
    let mut c = orgs.db.client();
    let created: i64 = c
        .query_one(
            "SELECT min(id) FROM audit.events WHERE tenant = 'acme' AND action = 'create'",
            &[],
        )
        .unwrap()
        .get(0);
    let page = http.get(
        &format!("/reports/audit-log/events/{created}"),
        Some(&cookie),
    );
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        !page.body.contains("id=\"revert\""),
        "no Revert for a viewer"
    );
    assert!(
        !page.body.contains("class=\"versions\""),
        "no history for a viewer"
    );
    let confirm = http.get(
        &format!("/reports/audit-log/events/{created}/revert"),
        Some(&cookie),
    );
    assert_eq!(confirm.status, 403, "{}", confirm.body);
    let post = http.post(
        &format!("/reports/audit-log/events/{created}/revert"),
        Some(&cookie),
        &[("csrf", "anything")],
        &[],
    );
    assert_eq!(post.status, 403, "{}", post.body);
    assert!(
        post.body.contains("own admins"),
        "refused as a viewer: {}",
        post.body
    );
    let count: i64 = c
        .query_one(
            "SELECT count(*) FROM audit.events WHERE source = 'revert'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(count, 0);
}

#[test]
fn a_deleted_row_with_a_100_mb_value_comes_back_whole() {
    let (_db, mut c) = contacts_db();
    exec(
        &mut c,
        "INSERT INTO crm.contacts (id, name, email)
         SELECT 1, string_agg(md5(g::text), '' ORDER BY g), 'big@example.com'
           FROM generate_series(1, 3276800) g",
    );
    let digest = |c: &mut postgres::Client| -> Option<(String, i32)> {
        c.query_opt(
            "SELECT md5(name), octet_length(name) FROM crm.contacts WHERE id = 1",
            &[],
        )
        .unwrap()
        .map(|r| (r.get(0), r.get(1)))
    };
    let before = digest(&mut c).expect("the row");
    assert_eq!(before.1, 104_857_600);
    exec(&mut c, "DELETE FROM crm.contacts WHERE id = 1");
    let deleted = last_event_id(&mut c);
    exec(&mut c, &format!("SELECT audit.revert({deleted})"));
    assert_eq!(digest(&mut c), Some(before));
}
