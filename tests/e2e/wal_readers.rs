//! The readers on a WAL capture install (docs/wal-capture.md): what `audit-trail capture`
//! wrote is exported, followed and browsed as the triggers' events are, by an audit admin of
//! a database where no superuser installed anything.

use audit_trail_tests::browser::{Dashboard, Http};
use audit_trail_tests::sidecar::{command, run};
use audit_trail_tests::wal::WalDb;

const PASSWORD: &str = "wal-reader-pass-7";

#[test]
fn export_follow_and_the_dashboard_read_what_wal_capture_wrote() {
    let wal = WalDb::new();
    let db = &wal.db;
    let admin = db.create_role(
        "wal_admin",
        &format!("LOGIN PASSWORD '{PASSWORD}' IN ROLE audit_admin"),
    );
    wal.owner_client()
        .batch_execute(
            "CREATE TABLE contacts (id int PRIMARY KEY, name text, email text);
             SELECT audit.track('contacts', 'contact', redact_columns => '{email}');
             BEGIN; SELECT audit.set_actor('ann@acme.test', 'ui');
             INSERT INTO contacts SELECT g, 'Name ' || g, g || '@x.test' FROM generate_series(1, 30) g;
             UPDATE contacts SET name = 'Renamed' WHERE id = 3;
             COMMIT;
             BEGIN; SELECT audit.set_actor('bob@acme.test', 'api');
             DELETE FROM contacts WHERE id = 4;
             COMMIT;",
        )
        .unwrap();
    wal.capture();
    let events: i64 = db
        .client()
        .query_one("SELECT count(*) FROM audit.events", &[])
        .unwrap()
        .get(0);
    assert_eq!(events, 33, "the track event and 32 changes");

    // Export: the filtered search runs on the portable planner.
    let export = run(command().args([
        "export",
        "--db",
        &db.conninfo(&admin),
        "--entity",
        "contact",
        "--actor",
        "bob@acme.test",
    ]));
    assert_eq!(export.code, 0, "{}", export.stderr);
    let rows: Vec<&str> = export.stdout.lines().skip(1).collect();
    assert_eq!(rows.len(), 1, "{}", export.stdout);
    assert!(rows[0].contains(",bob@acme.test,") && rows[0].contains(",delete,4,"));
    assert!(rows[0].contains("[redacted]"), "{}", rows[0]);

    // Follow: every event once, in commit order.
    let follow = run(command().args([
        "follow",
        "--db",
        &db.conninfo(&admin),
        "--once",
        "--stdout",
        "--consumer",
        "wal_reader",
    ]));
    assert_eq!(follow.code, 0, "{}", follow.stderr);
    let lines: Vec<serde_json::Value> = follow
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // (The export's own two events, its start and its end, are in the log now too.)
    assert_eq!(lines.len() as i64, events + 2);
    assert!(lines
        .iter()
        .any(|l| l["actor"] == "bob@acme.test" && l["action"] == "delete"));

    // The dashboard: signed in as the admin, the log shows the captured events, and the
    // integrity line finds nothing wrong with the install's schema.
    let dash = Dashboard::start(db);
    let http = Http::new(&dash);
    let session = http.session(&admin, PASSWORD);
    let page = http.get(
        "/reports/audit-log?range=all&actor=ann%40acme.test",
        Some(&session),
    );
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("ann@acme.test"), "{}", page.body);
    assert!(
        !page.body.contains("bob@acme.test changed"),
        "{}",
        page.body
    );
    assert!(!page.body.contains("was changed"), "{}", page.body);
}
