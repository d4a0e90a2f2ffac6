//! Organizations: every event names the organization it belongs to (the tracked row's, else
//! the transaction's), a write to another organization's row is recorded as such and alerted
//! once, and `export --tenant` / `follow --tenant` never hand out another organization's
//! events.

use audit_trail_tests::sidecar::{command, run};
use audit_trail_tests::{error_text, TestDb};

/// A multi-tenant CRM: contacts and users carry their organization (`account_id`), group
/// memberships do not (a join table), and the application acts for one organization per
/// transaction.
fn crm() -> TestDb {
    let db = TestDb::new();
    db.client()
        .batch_execute(
            "CREATE TABLE contacts (id int PRIMARY KEY, account_id text, name text);
             CREATE TABLE group_members (group_id int, contact_id int,
                                         PRIMARY KEY (group_id, contact_id));
             SELECT audit.track('contacts', 'contact', tenant_column => 'account_id');
             SELECT audit.track('group_members', 'group', subject_column => 'group_id');",
        )
        .expect("set-up");
    db
}

/// An event as these tests look at it: action, subject, tenant, acting tenant.
type Seen = (String, Option<String>, Option<String>, Option<String>);

/// The events of `entity`, oldest first.
fn events_of(db: &TestDb, entity: &str) -> Vec<Seen> {
    db.client()
        .query(
            "SELECT action, subject_id, tenant, context ->> 'acting_tenant'
               FROM audit.events WHERE entity = $1 ORDER BY id",
            &[&entity],
        )
        .expect("events")
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect()
}

fn s(v: &str) -> Option<String> {
    Some(v.to_owned())
}

#[test]
fn events_carry_the_rows_organization_else_the_transactions() {
    let db = crm();
    let mut c = db.client();
    c.batch_execute(
        "BEGIN;
         SELECT audit.set_actor('ann@acme.test', tenant => 'acme');
         INSERT INTO contacts VALUES (1, 'acme', 'Ada'), (2, 'acme', 'Bo');
         INSERT INTO group_members VALUES (7, 1);
         SELECT audit.log_event('contact', 'export', NULL, '{\"rows\": 2}');
         COMMIT;
         -- No organization named anywhere: none recorded.
         INSERT INTO group_members VALUES (8, 2);
         -- A row without one takes the transaction's.
         BEGIN;
         SELECT audit.set_actor('ann@acme.test', tenant => 'acme');
         INSERT INTO contacts VALUES (3, NULL, 'Cy');
         DELETE FROM contacts WHERE id = 2;
         COMMIT;",
    )
    .expect("writes");
    assert_eq!(
        events_of(&db, "contact"),
        [
            ("create".into(), s("1"), s("acme"), None),
            ("create".into(), s("2"), s("acme"), None),
            ("export".into(), None, s("acme"), None),
            ("create".into(), s("3"), s("acme"), None),
            ("delete".into(), s("2"), s("acme"), None),
        ]
    );
    assert_eq!(
        events_of(&db, "group"),
        [
            ("create".into(), s("7"), s("acme"), None),
            ("create".into(), s("8"), None, None),
        ]
    );
    // Transaction-scoped, like the actor: a pooled connection's next transaction, and a
    // session-level SET, name no organization.
    c.batch_execute(
        "SET audit.tenant = 'globex';
         INSERT INTO group_members VALUES (9, 3);
         RESET audit.tenant;",
    )
    .expect("a session setting is ignored");
    let tenant: Option<String> = c
        .query_one(
            "SELECT tenant FROM audit.events WHERE subject_id = '9'",
            &[],
        )
        .expect("event")
        .get(0);
    assert_eq!(tenant, None);
    // The report views show it.
    let shown: i64 = c
        .query_one(
            "SELECT count(*) FROM audit.contact_activity WHERE tenant = 'acme'",
            &[],
        )
        .expect("view")
        .get(0);
    assert_eq!(shown, 4);
}

#[test]
fn a_write_to_another_organizations_row_names_both_and_alerts_once() {
    let db = crm();
    let mut c = db.client();
    c.batch_execute(
        "INSERT INTO contacts SELECT g, CASE WHEN g <= 50 THEN 'acme' ELSE 'globex' END, 'c' || g
           FROM generate_series(1, 100) g;
         BEGIN;
         SELECT audit.set_actor('ann@acme.test', tenant => 'acme');
         UPDATE contacts SET name = name || '!' WHERE id <= 50;
         COMMIT;
         -- acme's actor edits globex's contacts, and moves one of them into acme.
         BEGIN;
         SELECT audit.set_actor('ann@acme.test', tenant => 'acme');
         UPDATE contacts SET name = 'stolen' WHERE id BETWEEN 51 AND 60;
         UPDATE contacts SET account_id = 'acme' WHERE id = 61;
         COMMIT;",
    )
    .expect("writes");
    let crossed: Vec<Seen> = events_of(&db, "contact")
        .into_iter()
        .filter(|e| e.3.is_some())
        .collect();
    assert_eq!(crossed.len(), 11, "{crossed:?}");
    assert!(crossed[..10]
        .iter()
        .all(|e| e.2 == s("globex") && e.3 == s("acme")));
    // The move is recorded under the new organization, the old one in old_data.
    let (tenant, changed, old): (Option<String>, Vec<String>, serde_json::Value) = c
        .query_one(
            "SELECT tenant, changed_fields, old_data FROM audit.events
              WHERE entity = 'contact' AND subject_id = '61' AND action = 'update'",
            &[],
        )
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .expect("the move");
    assert_eq!(
        (tenant, changed),
        (s("acme"), vec!["account_id".to_owned()])
    );
    assert_eq!(old["account_id"], "globex");
    // An application cannot forge or hide the mark: the key is capture's.
    let err = c
        .batch_execute(
            "BEGIN;
             SELECT audit.set_actor('x', context => '{\"acting_tenant\": \"acme\"}');",
        )
        .expect_err("reserved key");
    assert!(
        error_text(&err).contains("reserved"),
        "{}",
        error_text(&err)
    );
    c.batch_execute("ROLLBACK").expect("rollback");

    let out = run(command()
        .args(["alert", "--db", &db.conninfo("postgres"), "--once"])
        .args(["--hold-timeout", "300", "--stdout"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let cross: Vec<serde_json::Value> = out
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|a| a["rule"] == "cross-tenant")
        .collect();
    // One burst of globex's data changed by acme's actor, one of acme's data (the moved
    // row) changed from globex's: each organization's window is its own.
    assert_eq!(cross.len(), 2, "{}", out.stdout);
    assert_eq!(cross[0]["severity"], "critical");
    let mut tenants: Vec<&str> = cross.iter().filter_map(|a| a["tenant"].as_str()).collect();
    tenants.sort();
    assert_eq!(tenants, ["acme", "globex"]);
    let counts: i64 = cross.iter().filter_map(|a| a["count"].as_i64()).sum();
    assert_eq!(counts, 11);
}

#[test]
fn export_and_follow_hand_out_one_organizations_events_only() {
    let db = crm();
    db.client()
        .batch_execute(
            "INSERT INTO contacts SELECT g, CASE WHEN g % 3 = 0 THEN 'globex' ELSE 'acme' END,
                                         'c' || g
               FROM generate_series(1, 30) g;
             INSERT INTO group_members VALUES (1, 1);",
        )
        .expect("writes");
    let out = run(command()
        .args(["export", "--db", &db.conninfo("postgres")])
        .args(["--tenant", "globex", "--entity", "contact"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let mut lines = out.stdout.lines();
    let header = lines.next().expect("header");
    assert!(header.ends_with(",txid,tenant"), "{header}");
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 10, "{}", out.stdout);
    assert!(rows.iter().all(|r| r.ends_with(",globex")), "{rows:?}");

    let out = run(command()
        .args([
            "follow",
            "--db",
            &db.conninfo("postgres"),
            "--once",
            "--stdout",
        ])
        .args(["--consumer", "globex-feed", "--tenant", "globex"])
        .args(["--hold-timeout", "300"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let followed: Vec<serde_json::Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    assert_eq!(followed.len(), 10, "{}", out.stdout);
    assert!(followed.iter().all(|e| e["tenant"] == "globex"));
    // The cursor passed every event, so nothing is delivered twice and a quiet organization
    // does not re-read the stream.
    let again = run(command()
        .args([
            "follow",
            "--db",
            &db.conninfo("postgres"),
            "--once",
            "--stdout",
        ])
        .args(["--consumer", "globex-feed", "--tenant", "globex"])
        .args(["--hold-timeout", "300"]));
    assert_eq!(
        (again.code, again.stdout.as_str()),
        (0, ""),
        "{}",
        again.stderr
    );
    let empty = run(command().args(["export", "--db", &db.conninfo("postgres"), "--tenant", ""]));
    assert_eq!(empty.code, 2, "{}", empty.stderr);
}

#[test]
fn the_tenant_column_is_checked_kept_in_step_and_cannot_be_dropped() {
    let db = crm();
    let mut c = db.client();
    let err = c
        .batch_execute("SELECT audit.track('contacts', 'contact', tenant_column => 'nope')")
        .expect_err("unknown column");
    assert!(
        error_text(&err).contains("\"nope\""),
        "{}",
        error_text(&err)
    );
    let err = c
        .batch_execute(
            "SELECT audit.track('contacts', 'contact', tenant_column => 'account_id',
                                redact_columns => '{account_id}')",
        )
        .expect_err("redacted organization");
    assert!(
        error_text(&err).contains("tenant column and redacted"),
        "{}",
        error_text(&err)
    );
    c.batch_execute("ALTER TABLE contacts RENAME COLUMN account_id TO org")
        .expect("rename");
    let column: Option<String> = c
        .query_one(
            "SELECT tenant_column FROM audit.tracked WHERE table_name = 'contacts'::regclass",
            &[],
        )
        .expect("settings")
        .get(0);
    assert_eq!(column, s("org"));
    c.batch_execute("INSERT INTO contacts VALUES (1, 'acme', 'Ada')")
        .expect("insert");
    let created: Vec<_> = events_of(&db, "contact")
        .into_iter()
        .filter(|e| e.0 == "create")
        .collect();
    assert_eq!(created, [("create".into(), s("1"), s("acme"), None)]);
    let err = c
        .batch_execute("ALTER TABLE contacts DROP COLUMN org")
        .expect_err("dropping the organization column");
    assert!(
        error_text(&err).contains("name their organization by it"),
        "{}",
        error_text(&err)
    );
    // A value too long to be an organization's name is refused, not truncated.
    let err = c
        .batch_execute("INSERT INTO contacts VALUES (2, repeat('x', 100000), 'Big')")
        .expect_err("a huge organization");
    assert!(
        error_text(&err).contains("the tenant column is"),
        "{}",
        error_text(&err)
    );
}

/// Code the writer did not run cannot choose the organization: a table owner's trigger that
/// sets audit.tenant fails the statement, as one that sets the actor does, and a default of
/// the database is refused where it is made.
#[test]
fn a_trigger_or_a_default_cannot_choose_the_organization() {
    let db = crm();
    let mut c = db.client();
    c.batch_execute(
        "CREATE FUNCTION public.pick_org() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN PERFORM set_config('audit.tenant', 'globex', true); RETURN NULL; END $$;
         CREATE TRIGGER pick_org BEFORE INSERT ON group_members
             FOR EACH STATEMENT EXECUTE FUNCTION public.pick_org();",
    )
    .expect("the owner's trigger");
    let err = c
        .batch_execute("INSERT INTO group_members VALUES (1, 1)")
        .expect_err("set from a trigger");
    assert!(
        error_text(&err).contains("cannot be set inside a trigger"),
        "{}",
        error_text(&err)
    );
    let err = c
        .batch_execute(
            "DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET audit.tenant = %L',
                                        current_database(), 'globex'); END $$",
        )
        .expect_err("a database default");
    assert!(
        error_text(&err).contains("never as a default"),
        "{}",
        error_text(&err)
    );
    let none: i64 = c
        .query_one(
            "SELECT count(*) FROM audit.events WHERE tenant = 'globex'",
            &[],
        )
        .expect("count")
        .get(0);
    assert_eq!(none, 0);
}
