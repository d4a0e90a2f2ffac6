//! The dashboard's Overview: events per day by category, the busiest actors and the latest
//! alerts, each linking into the log; checked in headless Chromium at 1280 and 420 px.

use audit_trail_tests::browser::{Browser, Dashboard, Http};
use audit_trail_tests::sidecar::{command, run};
use audit_trail_tests::TestDb;

const PASSWORD: &str = "an overview password";

/// A small CRM with activity by three actors, one deleted user, and the alerts it raised.
fn crm() -> (TestDb, String) {
    let db = TestDb::new();
    let admin = db.create_role(
        "overview",
        &format!("LOGIN PASSWORD '{PASSWORD}' IN ROLE audit_admin"),
    );
    db.client()
        .batch_execute(
            "CREATE TABLE contacts (id int PRIMARY KEY, name text);
             CREATE TABLE groups (id int PRIMARY KEY, name text);
             CREATE TABLE users (id int PRIMARY KEY, name text, role text);
             SELECT audit.track('contacts', 'contact');
             SELECT audit.track('groups', 'group');
             SELECT audit.track('users', 'user');
             BEGIN; SELECT audit.set_actor('ann@example.com');
             INSERT INTO contacts SELECT g, 'c' FROM generate_series(1, 12) g; COMMIT;
             BEGIN; SELECT audit.set_actor('bob@example.com');
             INSERT INTO groups VALUES (1, 'VIP'); INSERT INTO users VALUES (1, 'Dee', 'agent');
             COMMIT;
             BEGIN; SELECT audit.set_actor('carol@example.com');
             DELETE FROM users WHERE id = 1;
             SELECT audit.log_event('contact', 'export', NULL, '{\"rows\": 12}'); COMMIT;",
        )
        .unwrap();
    let out = run(command().args([
        "alert",
        "--once",
        "--db",
        &db.conninfo("postgres"),
        "--hold-timeout",
        "300",
    ]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    (db, admin)
}

fn count(db: &TestDb, sql: &str) -> i64 {
    db.client().query_one(sql, &[]).unwrap().get(0)
}

#[test]
fn the_overview_shows_the_days_the_busiest_actors_and_the_alerts() {
    let (db, admin) = crm();
    let dash = Dashboard::start(&db);
    let b = Browser::start();
    b.goto(&dash.url("/reports/overview"));
    b.wait_url("the sign-in page", |u| u.contains("/sign-in?next="));
    b.fill("#role", &admin);
    b.fill("#password", PASSWORD);
    b.click("form.stack button[type=submit]");
    b.wait_url("the overview", |u| u.ends_with("/reports/overview"));
    assert_eq!(b.text("main h1"), "Overview");

    // Today's bar: one rect per category with events, totals in the legend as in the log.
    let contacts = count(
        &db,
        "SELECT count(*) FROM audit.events WHERE entity = 'contact' AND action <> 'export'",
    );
    let legend = b.texts(".legend li");
    assert!(
        legend[0].starts_with("Contacts") && legend[0].ends_with(&contacts.to_string()),
        "{legend:?}"
    );
    assert!(
        legend[3].starts_with("Exports") && legend[3].ends_with('1'),
        "{legend:?}"
    );
    assert_eq!(b.find_all("svg.chart rect").len(), 4);

    // Each legend's number is the length of the list its link opens (the contact export is
    // an export, not a contact change, in both).
    let totals: Vec<String> = b.texts(".legend li .muted");
    let links = b.attrs(".legend li a", "href");
    assert_eq!(links.len(), 4);
    for (total, link) in totals.iter().zip(&links) {
        assert!(link.starts_with('/'), "{link}");
        b.goto(&dash.url(link));
        let listed = b.find_all("table.events tbody tr[data-href]").len();
        assert_eq!(listed.to_string(), *total, "{link}");
    }
    b.goto(&dash.url("/reports/overview"));

    // The busiest actor first, linking to their events.
    let busiest: String = db
        .client()
        .query_one(
            "SELECT actor FROM audit.events GROUP BY actor ORDER BY count(*) DESC, actor LIMIT 1",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(b.texts(".ranked .actor")[0], busiest);

    // The alerts the deleted user raised, newest first, each opening its event.
    let alerts = b.texts(".alerts li");
    assert!(
        alerts
            .iter()
            .any(|a| a.contains("user-deleted") && a.contains("carol@example.com")),
        "{alerts:?}"
    );
    b.screenshot("dashboard-overview");
    b.click(".alerts li:first-child a");
    b.wait_url("the alert's event", |u| {
        u.contains("/reports/audit-log/events/")
    });
    assert!(
        b.text("h1.event-title").contains("alert"),
        "{}",
        b.text("h1.event-title")
    );

    // Readable at 420 px: nothing scrolls sideways.
    b.set_size(420, 900);
    b.goto(&dash.url("/reports/overview?range=7d"));
    let overflow = b.script(
        "return document.documentElement.scrollWidth - document.documentElement.clientWidth;",
    );
    assert_eq!(overflow.as_i64(), Some(0), "the overview scrolls sideways");
    assert!(b.displayed("svg.chart"));
    b.screenshot("dashboard-overview-narrow");
}

#[test]
fn an_unknown_range_is_a_clear_refusal() {
    let (db, admin) = crm();
    let dash = Dashboard::start(&db);
    let http = Http::new(&dash);
    let cookie = http.session(&admin, PASSWORD);
    let reply = http.get("/reports/overview?range=1y", Some(&cookie));
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert!(reply.body.contains("7d or 30d"), "{}", reply.body);
}
