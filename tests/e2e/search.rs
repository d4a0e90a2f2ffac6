//! `audit.search`: the fast filtered search, as a DBA calls it in SQL. Paging by
//! `before_at`/`before_id` returns every matching event once, newest first, whichever way
//! the page is found (the time index, an organization's index, the hourly summary), and only
//! admins may call it.

use audit_trail_tests::sidecar::{command, run};
use audit_trail_tests::{error_text, sqlstate, TestDb};

/// 3,000 contacts over three organizations, a tenth updated by another actor, summarized
/// (maintenance) and then some more events that the summary has not counted yet.
fn crm() -> TestDb {
    let db = TestDb::new();
    db.client()
        .batch_execute(
            "CREATE TABLE contacts (id int PRIMARY KEY, account_id text, name text);
             SELECT audit.track('contacts', 'contact', tenant_column => 'account_id');
             INSERT INTO contacts SELECT g, 'org' || (g % 3), 'c' || g
               FROM generate_series(1, 3000) g;
             BEGIN;
             SELECT audit.set_actor('bob@example.com', source => 'import');
             UPDATE contacts SET name = name || '!' WHERE id % 10 = 0;
             COMMIT;
             SELECT audit.maintain();
             BEGIN;
             SELECT audit.set_actor('bob@example.com', source => 'import');
             UPDATE contacts SET name = name || '?' WHERE id % 100 = 0;
             COMMIT;",
        )
        .expect("set-up");
    db
}

/// Every id `audit.search` returns for `args`, page by page of `size`.
fn paged(db: &TestDb, args: &str, size: i32) -> Vec<i64> {
    let mut c = db.client();
    let mut out = Vec::new();
    let mut cursor: Option<(std::time::SystemTime, i64)> = None;
    loop {
        let rows = match cursor {
            None => c.query(
                &format!("SELECT id, occurred_at FROM audit.search({args} page_size => $1)"),
                &[&size],
            ),
            Some((at, id)) => c.query(
                &format!(
                    "SELECT id, occurred_at FROM audit.search({args} page_size => $1,
                                                          before_at => $2, before_id => $3)"
                ),
                &[&size, &at, &id],
            ),
        }
        .expect("a page");
        for r in &rows {
            out.push(r.get(0));
        }
        match rows.last() {
            Some(last) if rows.len() == size as usize => cursor = Some((last.get(1), last.get(0))),
            _ => return out,
        }
    }
}

/// The ids the same filter selects from audit.events, newest first.
fn expected(db: &TestDb, condition: &str) -> Vec<i64> {
    db.client()
        .query(
            &format!(
                "SELECT id FROM audit.events WHERE {condition}
                  ORDER BY occurred_at DESC, id DESC"
            ),
            &[],
        )
        .expect("events")
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[test]
fn paging_returns_every_match_once_newest_first_whichever_way_it_is_found() {
    let db = crm();
    for (args, condition) in [
        ("", "true"),
        ("tenant => 'org1',", "tenant = 'org1'"),
        (
            "actors => '{bob@example.com}',",
            "actor = 'bob@example.com'",
        ),
        (
            "actors => '{bob@example.com, bob@example.com}', actions => '{update}',",
            "actor = 'bob@example.com' AND action = 'update'",
        ),
        (
            "entities => '{contact}', except_actions => '{create}',",
            "entity = 'contact' AND action <> 'create'",
        ),
        (
            "sources => '{import}', tenant => 'org2',",
            "source = 'import' AND tenant = 'org2'",
        ),
        ("subject => '300',", "subject_id = '300'"),
        (
            "actors => '{nobody@example.com}',",
            "actor = 'nobody@example.com'",
        ),
    ] {
        let want = expected(&db, condition);
        assert_eq!(paged(&db, args, 97), want, "{args}");
        assert_eq!(paged(&db, args, 1000), want, "{args}");
    }
    assert!(expected(&db, "tenant = 'org1'").len() > 1000);
}

/// The export streams every match oldest first from its own scan (one snapshot, row images
/// and all), while `audit.search` pages through the hourly summary or an organization's
/// index: the same filters must select the same events either way.
#[test]
fn export_selects_the_events_search_pages_through() {
    let db = crm();
    for (flags, args) in [
        (&["--tenant", "org1"][..], "tenant => 'org1',"),
        (
            &["--actor", "bob@example.com"],
            "actors => '{bob@example.com}',",
        ),
        (
            &[
                "--actor",
                "bob@example.com",
                "--action",
                "update",
                "--tenant",
                "org0",
            ],
            "actors => '{bob@example.com}', actions => '{update}', tenant => 'org0',",
        ),
        (
            &["--entity", "contact", "--except-action", "create"],
            "entities => '{contact}', except_actions => '{create}',",
        ),
        (
            &["--source", "import", "--tenant", "org2"],
            "sources => '{import}', tenant => 'org2',",
        ),
        (&["--subject", "300"], "subject => '300',"),
        (
            &["--table", "public.contacts", "--action", "update"],
            "table_name => 'public.contacts', actions => '{update}',",
        ),
        (
            &["--actor", "nobody@example.com"],
            "actors => '{nobody@example.com}',",
        ),
    ] {
        let out = run(command()
            .args([
                "export",
                "--db",
                &db.conninfo("postgres"),
                "--format",
                "jsonl",
            ])
            .args(flags));
        assert_eq!(out.code, 0, "{flags:?}: {}", out.stderr);
        let mut exported: Vec<i64> = out
            .stdout
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).expect("JSON");
                v["id"].as_i64().expect("an id")
            })
            .collect();
        exported.reverse();
        assert_eq!(
            exported.is_empty(),
            flags.contains(&"nobody@example.com"),
            "{flags:?}"
        );
        assert_eq!(exported, paged(&db, args, 500), "{flags:?}");
    }
}

#[test]
fn rows_are_the_reports_and_values_are_never_sql() {
    let db = crm();
    let mut c = db.client();
    let row = c
        .query_one(
            "SELECT summary, tenant, before ->> 'name'
               FROM audit.search(subject => '3000', actions => '{update}', page_size => 1)",
            &[],
        )
        .expect("one row");
    let (summary, tenant, before): (String, String, String) = (row.get(0), row.get(1), row.get(2));
    assert_eq!(
        summary,
        "bob@example.com updated contact 3000: name (import)"
    );
    assert_eq!((tenant.as_str(), before.as_str()), ("org0", "c3000!"));
    let none: i64 = c
        .query_one(
            "SELECT count(*) FROM audit.search(actors => ARRAY['x'''' OR true --'],
                                             tenant => 'x'' OR ''1''=''1')",
            &[],
        )
        .expect("a quoted value")
        .get(0);
    assert_eq!(none, 0);
    // A newer page: the rows just after a cursor, still newest first.
    let ids = expected(&db, "tenant = 'org1'");
    let (at, id): (std::time::SystemTime, i64) = c
        .query_one(
            "SELECT occurred_at, id FROM audit.events WHERE id = $1",
            &[&ids[10]],
        )
        .map(|r| (r.get(0), r.get(1)))
        .expect("cursor");
    let newer: Vec<i64> = c
        .query(
            "SELECT id FROM audit.search(tenant => 'org1', page_size => 4,
                                         after_at => $1, after_id => $2)",
            &[&at, &id],
        )
        .expect("newer")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(newer, ids[6..10]);
}

#[test]
fn bad_arguments_are_named_and_only_admins_may_search() {
    let db = crm();
    let mut c = db.client();
    for (call, needle) in [
        (
            "audit.search(page_size => 0)",
            "page_size must be between 1 and 10000",
        ),
        (
            "audit.search(page_size => 10001)",
            "page_size must be between",
        ),
        (
            "audit.search(before_at => now())",
            "give before_at and before_id",
        ),
        (
            "audit.search(before_at => now(), before_id => 1, after_at => now(), after_id => 1)",
            "not a part or both",
        ),
        (
            "audit.search(since => '2026-02-01', until => '2026-01-01')",
            "must be before until",
        ),
    ] {
        let err = c
            .query(&format!("SELECT * FROM {call}"), &[])
            .expect_err(call);
        assert!(
            error_text(&err).contains(needle),
            "{call}: {}",
            error_text(&err)
        );
        assert_eq!(sqlstate(&err), "22023", "{call}");
    }
    let nobody = db.create_role("nobody", "LOGIN");
    let err = db
        .client_as(&nobody)
        .query("SELECT * FROM audit.search()", &[])
        .expect_err("not an admin");
    assert_eq!(sqlstate(&err), "42501", "{}", error_text(&err));
    let admin = db.create_role("admin", "LOGIN IN ROLE audit_admin");
    let rows = db
        .client_as(&admin)
        .query("SELECT id FROM audit.search(tenant => 'org0')", &[])
        .expect("an admin searches");
    assert_eq!(rows.len(), 50);
}
