//! `audit-trail serve`: the real binary on a free port against the throwaway cluster, driven by
//! headless Chromium (sign in, filter, open an event, export) and by plain HTTP requests
//! (refusals, CSRF, sessions).

use audit_trail_tests::browser::{screenshot_dir, Browser, Dashboard, Http};
use audit_trail_tests::sidecar::{command, run};
use audit_trail_tests::{events, Cluster, TestDb};

const PASSWORD: &str = "correct-horse-7";
/// Shown in an actor and a contact's name: must appear as text, never become markup.
const HTML_ACTOR: &str = "<script>window.__xss = 1</script><b>mallory</b>";
const HTML_NAME: &str = "<img src=x onerror=\"window.__xss = 2\">Eve <i>Evil</i>";

struct Crm {
    db: TestDb,
    /// A member of audit_admin, with PASSWORD.
    admin: String,
    /// A role that may log in but is not an audit admin, with PASSWORD.
    clerk: String,
}

/// A small CRM with tracked contacts, groups, memberships and users, some activity by several
/// actors (and one with HTML in it), an application export event, and three events from 40
/// days ago (outside the default 30-day range).
fn crm() -> Crm {
    let db = TestDb::new();
    let admin = db.create_role(
        "admin",
        &format!("LOGIN PASSWORD '{PASSWORD}' IN ROLE audit_admin"),
    );
    let clerk = db.create_role("clerk", &format!("LOGIN PASSWORD '{PASSWORD}'"));
    let mut c = db.client();
    c.batch_execute(
        "CREATE SCHEMA crm;
         CREATE TABLE crm.contacts (id bigint PRIMARY KEY, name text NOT NULL, email text,
                                    phone text, updated_at timestamptz NOT NULL DEFAULT now());
         CREATE TABLE crm.groups (id bigint PRIMARY KEY, name text NOT NULL);
         CREATE TABLE crm.group_members (group_id bigint, contact_id bigint,
                                         PRIMARY KEY (group_id, contact_id));
         CREATE TABLE crm.users (id bigint PRIMARY KEY, name text, email text, role text,
                                 password_hash text);
         -- History from before: written while audit.events is still empty (the only time
         -- SQL may add rows to it, as a restore does).
         INSERT INTO audit.events (occurred_at, actor, entity, action, subject_id, new_data)
         SELECT now() - interval '40 days' + g * interval '1 minute', 'old@example.com',
                'contact', 'create', (100 + g)::text, jsonb_build_object('id', 100 + g)
           FROM generate_series(1, 3) AS g;
         SELECT audit.track('crm.contacts', 'contact', ignore_columns => '{updated_at}');
         SELECT audit.track('crm.groups', 'group');
         SELECT audit.track('crm.group_members', 'group', subject_column => 'group_id');
         SELECT audit.track('crm.users', 'user', redact_columns => '{password_hash}');",
    )
    .expect("CRM schema");
    let mut act = |actor: &str, source: &str, sql: &str| {
        let mut tx = c.transaction().expect("begin");
        tx.execute(
            "SELECT audit.set_actor($1, $2, '{\"request_id\": \"r-1\"}')",
            &[&actor, &source],
        )
        .expect("set_actor");
        tx.batch_execute(sql).expect(sql);
        tx.commit().expect("commit");
    };
    act(
        "alice@example.com",
        "manual",
        "INSERT INTO crm.contacts (id, name, email, phone) VALUES
             (1, 'Ann Archer', 'ann@example.com', '+1 555 0101'),
             (2, 'Bob Baker', 'bob@example.com', NULL)",
    );
    act(
        "bob@example.com",
        "import",
        "INSERT INTO crm.contacts (id, name, email) VALUES (3, 'Cara Cole', 'cara@example.com')",
    );
    act(
        "alice@example.com",
        "manual",
        "UPDATE crm.contacts SET email = 'ann.archer@example.org', phone = '+1 555 0199'
          WHERE id = 1",
    );
    act(
        "carol@example.com",
        "manual",
        "INSERT INTO crm.groups VALUES (1, 'VIP');
         INSERT INTO crm.group_members VALUES (1, 1), (1, 2);",
    );
    act(
        "carol@example.com",
        "manual",
        "DELETE FROM crm.group_members WHERE contact_id = 2",
    );
    act(
        "root@example.com",
        "api",
        "INSERT INTO crm.users VALUES (1, 'Dana', 'dana@example.com', 'editor', 'x1')",
    );
    act(
        "root@example.com",
        "api",
        "UPDATE crm.users SET role = 'admin', password_hash = 'x2' WHERE id = 1",
    );
    act(
        "alice@example.com",
        "manual",
        "DELETE FROM crm.contacts WHERE id = 3",
    );
    act(
        HTML_ACTOR,
        "manual",
        &format!(
            "INSERT INTO crm.contacts (id, name) VALUES (4, '{}')",
            HTML_NAME.replace('\'', "''")
        ),
    );
    act(
        "alice@example.com",
        "api",
        "SELECT audit.log_event('contact', 'export', NULL, '{\"rows\": 2, \"group\": \"VIP\"}')",
    );
    Crm { db, admin, clerk }
}

/// Event ids matching `condition`, newest first (the dashboard's order).
fn newest_first(db: &TestDb, condition: &str) -> Vec<i64> {
    let ids: Vec<i64> = db
        .client()
        .query(
            &format!(
                "SELECT id FROM audit.events WHERE {condition} ORDER BY occurred_at DESC, id DESC"
            ),
            &[],
        )
        .expect("ids")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(!ids.is_empty(), "{condition} selects nothing: a weak test");
    ids
}

/// The ids of the events in the page's table, top to bottom.
fn listed(b: &Browser) -> Vec<i64> {
    b.attrs("table.events tbody tr", "data-href")
        .iter()
        .map(|href| event_id(href))
        .collect()
}

fn event_id(href: &str) -> i64 {
    let rest = href
        .split("/events/")
        .nth(1)
        .unwrap_or_else(|| panic!("not an event link: {href}"));
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().expect("an event id")
}

fn path_and_query(url: &str) -> String {
    url.splitn(4, '/')
        .nth(3)
        .map(|p| format!("/{p}"))
        .unwrap_or_default()
}

fn tab_key() -> String {
    char::from(fantoccini::key::Key::Tab).to_string()
}

#[test]
fn an_admin_signs_in_filters_opens_an_event_and_exports_in_a_browser() {
    let crm = crm();
    let db = &crm.db;
    let dash = Dashboard::start(db);
    let b = Browser::start();
    sign_in_comes_back_to_the_view_asked_for(&b, &dash, &crm);
    let updates = filters_tabs_and_ranges_live_in_the_url(&b, &dash, db);
    the_event_page_shows_the_change_and_the_subject_history(&b, &dash, db, &updates);
    export_is_the_filtered_log_as_the_cli_writes_it_and_is_recorded(&b, &dash, &crm);
    keyboard_and_a_narrow_window_reach_everything(&b, &dash, updates[0]);
    signing_out_ends_the_session(&b, &dash);
}

fn sign_in_comes_back_to_the_view_asked_for(b: &Browser, dash: &Dashboard, crm: &Crm) {
    let db = &crm.db;
    // Not signed in: the sign-in page, which comes back to the view asked for.
    b.goto(&dash.url("/reports/audit-log?range=7d&entity=contact"));
    b.wait_url("the sign-in page", |u| u.contains("/sign-in?next="));
    b.screenshot("dashboard-sign-in");
    // A role that is not an audit admin is refused as a wrong password would be (the page
    // must not tell a stranger that a guessed password was right), and stays on the form.
    b.fill("#role", &crm.clerk);
    b.fill("#password", PASSWORD);
    b.click("form.stack button[type=submit]");
    b.wait_text(
        "#sign-in-error",
        "The role or password is not correct, or the role may not read the audit log.",
    );
    b.screenshot("dashboard-not-admin");
    b.fill("#role", &crm.admin);
    b.fill("#password", PASSWORD);
    b.click("form.stack button[type=submit]");
    b.wait_url("the view asked for", |u| {
        path_and_query(u) == "/reports/audit-log?range=7d&entity=contact"
    });
    assert_eq!(b.text("main h1"), "Audit Log");
    assert!(b.text(".account").contains(&crm.admin));
    assert_eq!(
        listed(b),
        newest_first(
            db,
            "entity = 'contact' AND occurred_at >= now() - interval '7 days'"
        )
    );
}

/// Returns the ids of alice's contact updates, newest first.
fn filters_tabs_and_ranges_live_in_the_url(b: &Browser, dash: &Dashboard, db: &TestDb) -> Vec<i64> {
    // The whole log (default: last 30 days), as people first see it.
    b.goto(&dash.url("/reports/audit-log"));
    let recent = newest_first(db, "occurred_at >= now() - interval '30 days'");
    assert_eq!(listed(b), recent);
    assert_eq!(
        b.texts("table.events thead th"),
        [
            "TIME (UTC)",
            "ACTOR",
            "ACTION",
            "ENTITY",
            "SUBJECT",
            "SOURCE",
            "SUMMARY"
        ]
    );
    let shot = b.screenshot("dashboard-audit-log");
    assert!(shot.exists());

    // Filter with the form: contact updates by alice.
    b.select("#entity", "contact");
    b.select("#action", "update");
    b.fill("#actor", "alice@example.com");
    b.click("form.filters button[type=submit]");
    b.wait_url("the filtered view", |u| u.contains("action=update"));
    let url = b.url();
    for part in [
        "entity=contact",
        "action=update",
        "actor=alice%40example.com",
        "range=30d",
    ] {
        assert!(url.contains(part), "{part} not kept in the URL {url}");
    }
    let updates = newest_first(
        db,
        "entity = 'contact' AND action = 'update' AND actor = 'alice@example.com' \
         AND occurred_at >= now() - interval '30 days'",
    );
    assert_eq!(listed(b), updates);
    // The URL is the view: loading it again shows the same.
    b.goto(&url);
    assert_eq!(listed(b), updates);

    // A category tab keeps the other filters and replaces entity and action.
    b.click(".tabs a[href*='entity=group']");
    b.wait_url("the Groups tab", |u| u.contains("entity=group"));
    assert_eq!(b.text(".tabs a.current"), "Groups");
    b.click(".chip a[aria-label*='Actor']");
    b.wait_url("the actor filter removed", |u| !u.contains("actor="));
    assert_eq!(
        listed(b),
        newest_first(
            db,
            "entity = 'group' AND action <> 'export' AND occurred_at >= now() - interval '30 days'"
        )
    );
    // Custom date range with nothing in it: a clear empty state.
    b.goto(&dash.url("/reports/audit-log?range=custom&from=2001-01-01&to=2001-01-31"));
    assert_eq!(b.text(".state h2"), "No events match");
    assert!(b.find_all("table.events").is_empty());
    b.screenshot("dashboard-empty");
    // An unreadable date: said so, and no export of a view that cannot be read.
    b.goto(&dash.url("/reports/audit-log?range=custom&from=2001-13-45"));
    assert!(b.text(".state-error").contains("is not a date"));
    assert_eq!(
        b.attr("#export-button", "disabled").as_deref(),
        Some("true")
    );

    updates
}

fn the_event_page_shows_the_change_and_the_subject_history(
    b: &Browser,
    dash: &Dashboard,
    db: &TestDb,
    updates: &[i64],
) {
    // The event detail of the contact update: field | before | after.
    b.goto(&dash.url("/reports/audit-log?range=all&entity=contact&action=update"));
    b.click("table.events tbody tr:first-child a.row-link");
    b.wait_url("the event page", |u| {
        u.contains("/reports/audit-log/events/")
    });
    assert_eq!(event_id(&b.url()), updates[0]);
    assert_eq!(
        b.texts("table.diff tbody tr.changed th code"),
        ["email", "phone"]
    );
    assert_eq!(
        b.texts("table.diff tbody tr.changed td.before"),
        ["ann@example.com", "+1 555 0101"]
    );
    assert_eq!(
        b.texts("table.diff tbody tr.changed td.after"),
        ["ann.archer@example.org", "+1 555 0199"]
    );
    // unchanged fields follow, for context
    assert_eq!(
        b.texts("table.diff tbody tr.same th code"),
        ["id", "name", "updated_at"]
    );
    assert!(b
        .text("h1.event-title")
        .contains("alice@example.com updated contact 1"));
    let blocks = b.texts("details.json summary");
    assert_eq!(blocks, ["old_data", "new_data", "context"]);
    assert!(b
        .text("details.json:nth-of-type(3) pre")
        .contains("\"request_id\": \"r-1\""));
    b.screenshot("dashboard-event-detail");

    // The subject's whole history.
    b.click(".page-actions a[href*='subject=1']");
    b.wait_url("the contact's history", |u| u.contains("subject=1"));
    assert_eq!(
        listed(b),
        newest_first(db, "entity = 'contact' AND subject_id = '1'")
    );
}

fn export_is_the_filtered_log_as_the_cli_writes_it_and_is_recorded(
    b: &Browser,
    dash: &Dashboard,
    crm: &Crm,
) {
    let db = &crm.db;
    // Export at the top right: exactly the filtered events, as the CLI writes them.
    b.goto(&dash.url("/reports/audit-log?range=all&entity=contact"));
    let button = b.find("#export-button");
    let rect = b.script(
        "const r = document.getElementById('export-button').getBoundingClientRect(); \
         return [r.right, r.top, window.innerWidth];",
    );
    let (right, top, width) = (
        rect[0].as_f64().unwrap(),
        rect[1].as_f64().unwrap(),
        rect[2].as_f64().unwrap(),
    );
    assert!(
        width - right < 60.0 && top < 160.0,
        "Export is not at the top right: {rect}"
    );
    drop(button);
    b.click("#export-button");
    let file = b.wait_download();
    assert!(
        file.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("audit-log-"),
        "{file:?}"
    );
    let downloaded = std::fs::read(&file).expect("the download");
    let mut reader = csv::Reader::from_reader(downloaded.as_slice());
    assert_eq!(
        reader
            .headers()
            .unwrap()
            .iter()
            .take(12)
            .collect::<Vec<_>>(),
        [
            "id",
            "occurred_at",
            "actor",
            "db_user",
            "source",
            "entity",
            "action",
            "subject_id",
            "table_name",
            "changed_fields",
            "old_data",
            "new_data"
        ]
    );
    let ids: Vec<i64> = reader
        .records()
        .map(|r| r.expect("a CSV row")[0].parse().expect("an id"))
        .collect();
    let mut expected = newest_first(db, "entity = 'contact'");
    expected.reverse();
    assert_eq!(ids, expected);

    // Recorded as an audit_log/export event of the signed-in role, via the dashboard, before
    // the first row, and its end after the last.
    let (recorded, end) = audit_trail_tests::last_export(&mut db.client());
    assert_eq!(
        (recorded.entity.as_str(), recorded.action.as_str()),
        ("audit_log", "export")
    );
    assert_eq!(recorded.db_user, crm.admin);
    assert_eq!(recorded.actor, crm.admin);
    assert_eq!(recorded.source, "dashboard");
    let details = recorded.details.expect("export details");
    assert_eq!(details["via"], "dashboard");
    assert_eq!(details["rows"], expected.len());
    assert_eq!(details["status"], "started");
    let end = end
        .expect("the export's end is recorded")
        .details
        .expect("details");
    assert_eq!(end["rows"], expected.len());
    assert_eq!(end["complete"], true);
    assert_eq!(details["format"], "csv");
    assert_eq!(
        details["filters"]["entities"],
        serde_json::json!(["contact"])
    );

    // Same code path: byte for byte what `audit-trail export` writes for the same filter.
    let cli = run(command().args([
        "export",
        "--db",
        &db.conninfo("postgres"),
        "--entity",
        "contact",
    ]));
    assert_eq!(cli.code, 0, "{}", cli.stderr);
    assert_eq!(String::from_utf8_lossy(&downloaded), cli.stdout);
}

fn keyboard_and_a_narrow_window_reach_everything(b: &Browser, dash: &Dashboard, event: i64) {
    // Keyboard: the first Tab reaches the skip link, which leads to the page, whose first
    // control is Export.
    b.goto(&dash.url("/reports/audit-log"));
    b.script("document.activeElement && document.activeElement.blur(); return null;");
    b.keys(&tab_key());
    assert_eq!(
        b.script("return document.activeElement.className;"),
        "skip-link"
    );
    b.keys(&char::from(fantoccini::key::Key::Enter).to_string());
    b.keys(&tab_key());
    assert_eq!(
        b.script("return document.activeElement.id;"),
        "export-button"
    );

    // A narrow window: no sideways scrolling, Export still there.
    b.set_size(420, 900);
    b.goto(&dash.url("/reports/audit-log"));
    let overflow = b.script(
        "return document.documentElement.scrollWidth - document.documentElement.clientWidth;",
    );
    assert_eq!(overflow.as_i64(), Some(0), "the page scrolls sideways");
    assert!(b.displayed("#export-button"));
    b.screenshot("dashboard-audit-log-narrow");
    b.goto(&dash.url(&format!("/reports/audit-log/events/{}", event)));
    let overflow = b.script(
        "return document.documentElement.scrollWidth - document.documentElement.clientWidth;",
    );
    assert_eq!(
        overflow.as_i64(),
        Some(0),
        "the event page scrolls sideways"
    );
    b.screenshot("dashboard-event-detail-narrow");
    b.script("document.getElementById('diff-title').scrollIntoView(); return null;");
    b.screenshot("dashboard-event-detail-narrow-changes");
    b.set_size(1280, 900);
}

fn signing_out_ends_the_session(b: &Browser, dash: &Dashboard) {
    // Sign out: the session is gone.
    b.click(".account button[type=submit]");
    b.wait_url("signed out", |u| u.contains("/sign-in?notice=signed-out"));
    b.goto(&dash.url("/reports/audit-log"));
    b.wait_url("the sign-in page", |u| u.contains("/sign-in"));

    let log = dash.log();
    assert!(!log.contains(PASSWORD), "the password is in the log: {log}");
    assert!(log.contains("signed in"), "{log}");
    assert!(screenshot_dir().join("dashboard-event-detail.png").exists());
}

#[test]
fn html_in_the_log_is_shown_as_text_never_run() {
    let crm = crm();
    let db = &crm.db;
    let dash = Dashboard::start(db);
    let b = Browser::start();
    b.goto(&dash.url("/sign-in"));
    b.fill("#role", &crm.admin);
    b.fill("#password", PASSWORD);
    b.click("form.stack button[type=submit]");
    b.wait_url("the log", |u| u.contains("/reports/audit-log"));

    b.goto(&dash.url("/reports/audit-log?entity=contact&subject=4"));
    let ids = listed(&b);
    assert_eq!(
        ids,
        newest_first(db, "entity = 'contact' AND subject_id = '4'")
    );
    assert_eq!(b.text("table.events tbody td.actor"), HTML_ACTOR);
    assert!(b
        .text("table.events tbody td.summary")
        .starts_with(HTML_ACTOR));
    let injected =
        "return [document.querySelectorAll('main script, main img, main b, main i').length, \
                    typeof window.__xss];";
    assert_eq!(b.script(injected), serde_json::json!([0, "undefined"]));

    b.click("table.events tbody tr:first-child a.row-link");
    b.wait_url("the event page", |u| u.contains("/events/"));
    let rows = b.texts("table.diff tbody tr th code");
    let name_row = rows.iter().position(|f| f == "name").expect("a name row");
    assert_eq!(b.texts("table.diff tbody td.after")[name_row], HTML_NAME);
    assert!(b.text("details.json pre").contains("<img src=x"));
    assert_eq!(b.script(injected), serde_json::json!([0, "undefined"]));
    // The filter form shows typed HTML back as text too.
    b.goto(&dash.url("/reports/audit-log?actor=%22%3E%3Cscript%3Ewindow.__xss%3D3%3C%2Fscript%3E"));
    assert_eq!(
        b.attr("#actor", "value").as_deref(),
        Some("\"><script>window.__xss=3</script>")
    );
    assert_eq!(b.script(injected), serde_json::json!([0, "undefined"]));
}

#[test]
fn a_non_admin_and_a_wrong_password_are_refused_and_failures_are_rate_limited() {
    let crm = crm();
    let dash = Dashboard::start(&crm.db);
    let http = Http::new(&dash);

    // The right password of a role that is no audit admin, an unknown role and a wrong
    // password get the same answer, without a session: the page is no password oracle.
    let mut pages = Vec::new();
    for (role, password) in [
        (crm.clerk.as_str(), PASSWORD),
        ("no_such_role", PASSWORD),
        (crm.admin.as_str(), "wrong-password"),
    ] {
        let reply = http.sign_in(role, password);
        assert_eq!(reply.status, 401, "{role}: {}", reply.body);
        assert!(reply.body.contains(
            "The role or password is not correct, or the role may not read the audit log."
        ));
        assert_eq!(reply.cookie("audit_trail_session"), None);
        assert!(!reply.body.contains(password), "the password is echoed");
        // The same page but for the role typed (echoed back) and the form's fresh token.
        let token = reply.hidden_field("csrf").expect("a CSRF token");
        pages.push(reply.body.replace(&token, "TOKEN").replace(role, "ROLE"));
    }
    assert!(pages.windows(2).all(|w| w[0] == w[1]), "{pages:#?}");
    let log = dash.log();
    assert!(log.contains("not a member of audit_admin"), "{log}");
    // More failures for this role from this address: each makes the next attempt wait a
    // little longer (tests/e2e/signin_throttle.rs has the rest). Wrong passwords, waiting
    // out the short waits, until one of at least 2 s: then even the right password waits.
    for _ in 0..20 {
        let reply = http.sign_in(&crm.admin, "still-wrong");
        if reply.status == 401 {
            continue;
        }
        assert_eq!(reply.status, 429, "{}", reply.body);
        let wait: u64 = reply
            .header("retry-after")
            .and_then(|v| v.parse().ok())
            .expect("Retry-After");
        if wait >= 2 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_secs(wait));
    }
    let reply = http.sign_in(&crm.admin, PASSWORD);
    assert_eq!(reply.status, 429, "{}", reply.body);
    assert!(reply.body.contains("Too many failed sign-ins"));
    assert!(reply.header("retry-after").is_some());
    assert_eq!(reply.cookie("audit_trail_session"), None);

    // A fresh server (limits are per process): the admin gets in.
    drop(dash);
    let dash = Dashboard::start(&crm.db);
    let reply = Http::new(&dash).sign_in(&crm.admin, PASSWORD);
    assert_eq!(reply.status, 303, "{}", reply.body);
    let cookie = reply
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("audit_trail_session="))
        .expect("a session cookie")
        .to_owned();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attribute), "{attribute} missing: {cookie}");
    }
    let log = dash.log();
    assert!(
        !log.contains(PASSWORD) && !log.contains("still-wrong"),
        "{log}"
    );
}

#[test]
fn requests_without_a_session_or_with_a_forged_csrf_token_are_refused() {
    let crm = crm();
    let db = &crm.db;
    let dash = Dashboard::start(db);
    let http = Http::new(&dash);
    let exports = || {
        events(&mut db.client())
            .iter()
            .filter(|e| e.entity == "audit_log" && e.action == "export")
            .count()
    };

    // No session: pages go to sign-in, the export is refused.
    let reply = http.get("/reports/audit-log?entity=contact", None);
    assert_eq!(reply.status, 303);
    assert_eq!(
        reply.header("location"),
        Some("/sign-in?next=%2Freports%2Faudit-log%3Fentity%3Dcontact")
    );
    let first = newest_first(db, "true")[0];
    let reply = http.get(&format!("/reports/audit-log/events/{first}"), None);
    assert_eq!(reply.status, 303);
    let reply = http.post(
        "/reports/audit-log/export",
        None,
        &[("entity", "contact")],
        &[],
    );
    assert_eq!(reply.status, 401);
    assert!(!reply.body.contains("id,occurred_at"));
    // A made-up session token is no session.
    let forged_cookie = format!("audit_trail_session={}", "ab".repeat(32));
    let reply = http.get("/reports/audit-log", Some(&forged_cookie));
    assert_eq!(reply.status, 303);

    // Signed in, but with a forged, missing or cross-site CSRF token: refused, nothing exported.
    let cookie = http.session(&crm.admin, PASSWORD);
    let page = http.get("/reports/audit-log?entity=contact&range=all", Some(&cookie));
    assert_eq!(page.status, 200);
    let csp = page.header("content-security-policy").expect("a CSP");
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert!(!page.body.contains("<script>"), "inline script in the page");
    let token = page.hidden_field("csrf").expect("a CSRF token");
    for (form, headers) in [
        (
            vec![("csrf", "f".repeat(64)), ("entity", "contact".into())],
            vec![],
        ),
        (vec![("entity", "contact".to_owned())], vec![]),
        (
            vec![("csrf", token.clone()), ("entity", "contact".into())],
            vec![("Origin", "http://evil.example")],
        ),
    ] {
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let reply = http.post("/reports/audit-log/export", Some(&cookie), &form, &headers);
        assert_eq!(reply.status, 403, "{form:?} {headers:?}: {}", reply.body);
        assert!(!reply.body.contains("id,occurred_at"));
    }
    assert_eq!(exports(), 0);
    // Sign-out with a forged token does not end the session.
    let reply = http.post("/sign-out", Some(&cookie), &[("csrf", "nope")], &[]);
    assert_eq!(reply.status, 403);
    assert_eq!(http.get("/reports/audit-log", Some(&cookie)).status, 200);
    // The sign-in form needs its own token and cookie.
    let reply = http.post(
        "/sign-in",
        None,
        &[("csrf", "x"), ("role", &crm.admin), ("password", PASSWORD)],
        &[],
    );
    assert_eq!(reply.status, 403);
    assert_eq!(reply.cookie("audit_trail_session"), None);

    // The real token works (so the refusals above were about the token).
    let reply = http.post(
        "/reports/audit-log/export",
        Some(&cookie),
        &[("csrf", &token), ("entity", "contact"), ("range", "all")],
        &[("Origin", &dash.base)],
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply
        .header("content-disposition")
        .is_some_and(|v| v.starts_with("attachment; filename=\"audit-log-")));
    assert!(reply.body.starts_with("id,occurred_at,"));
    assert_eq!(
        reply.body.lines().count() - 1,
        newest_first(db, "entity = 'contact'").len()
    );
    assert_eq!(exports(), 1);

    // Signed out, the old cookie is worth nothing.
    let reply = http.post("/sign-out", Some(&cookie), &[("csrf", &token)], &[]);
    assert_eq!(reply.status, 303);
    assert_eq!(http.get("/reports/audit-log", Some(&cookie)).status, 303);
}

#[test]
fn pages_are_found_by_keyset_newest_first() {
    let db = TestDb::new();
    let admin = db.create_role(
        "admin",
        &format!("LOGIN PASSWORD '{PASSWORD}' IN ROLE audit_admin"),
    );
    // 120 events, several sharing one timestamp (the id breaks ties).
    db.client()
        .batch_execute(
            "INSERT INTO audit.events (occurred_at, actor, entity, action, subject_id)
             SELECT date_trunc('minute', now()) - (g / 3) * interval '1 minute', 'a',
                    'contact', 'update', g::text
               FROM generate_series(1, 120) AS g",
        )
        .unwrap();
    let dash = Dashboard::start_with(&db, &["--page-size", "50"]);
    let http = Http::new(&dash);
    let cookie = http.session(&admin, PASSWORD);
    let ids_of = |body: &str| -> Vec<i64> {
        body.split("<tr data-href=\"")
            .skip(1)
            .map(event_id)
            .collect()
    };
    let link = |body: &str, rel: &str| -> Option<String> {
        let marker = format!("rel=\"{rel}\"");
        let at = body.find(&marker)?;
        let start = body[..at].rfind("href=\"")? + 6;
        let end = body[start..].find('"')? + start;
        Some(body[start..end].replace("&#38;", "&").replace("&amp;", "&"))
    };
    let mut pages = Vec::new();
    // The contact events: the sign-in is in the log too (entity audit_log).
    let mut path = Some("/reports/audit-log?range=all&entity=contact".to_owned());
    while let Some(p) = path {
        assert!(
            pages.len() < 10,
            "the Older links go round in circles: {pages:?}"
        );
        let reply = http.get(&p, Some(&cookie));
        assert_eq!(reply.status, 200, "{p}");
        pages.push((p, ids_of(&reply.body)));
        path = link(&reply.body, "next");
    }
    let sizes: Vec<usize> = pages.iter().map(|(_, ids)| ids.len()).collect();
    assert_eq!(sizes, [50, 50, 20]);
    let all: Vec<i64> = pages.iter().flat_map(|(_, ids)| ids.clone()).collect();
    assert_eq!(all, newest_first(&db, "entity = 'contact'"));
    assert!(pages.iter().all(|(p, _)| !p.contains("offset")));
    // "Newer" from the last page leads back to the middle one.
    let last = http.get(&pages[2].0, Some(&cookie));
    let newer = link(&last.body, "prev").expect("a Newer link");
    assert_eq!(ids_of(&http.get(&newer, Some(&cookie)).body), pages[1].1);
}

/// That `--idle-timeout` reaches the sessions. Expiry at exactly the timeout, and renewal on
/// each use, are unit tests (`web::session`) on a clock they move. Here the session is only
/// left idle past the timeout, which a busy machine can only make longer; nothing has to
/// happen within it. A fresh server, so its 15 s sweep of idle sessions (which would end the
/// session without the notice) is not due yet.
#[test]
fn sessions_expire_when_idle() {
    let db = TestDb::new();
    let admin = db.create_role(
        "admin",
        &format!("LOGIN PASSWORD '{PASSWORD}' IN ROLE audit_admin"),
    );
    let dash = Dashboard::start_with(&db, &["--idle-timeout", "1"]);
    let http = Http::new(&dash);
    let cookie = http.session(&admin, PASSWORD);
    // Idle for longer than the timeout: signed out, told why.
    std::thread::sleep(std::time::Duration::from_secs(2));
    let reply = http.get("/reports/audit-log", Some(&cookie));
    assert_eq!(reply.status, 303);
    assert!(
        reply
            .header("location")
            .is_some_and(|l| l.contains("notice=expired")),
        "{:?}",
        reply.header("location")
    );
}

#[test]
fn the_database_decides_on_every_request_and_a_lost_connection_ends_the_session() {
    let crm = crm();
    let db = &crm.db;
    let dash = Dashboard::start(db);
    let http = Http::new(&dash);
    let cookie = http.session(&crm.admin, PASSWORD);
    let page = http.get("/reports/audit-log", Some(&cookie));
    assert_eq!(page.status, 200);
    let token = page.hidden_field("csrf").expect("a CSRF token");

    // Membership revoked while signed in: the next page and export are refused by the database.
    db.client()
        .batch_execute(&format!("REVOKE audit_admin FROM {}", crm.admin))
        .unwrap();
    let reply = http.get("/reports/audit-log", Some(&cookie));
    assert_eq!(reply.status, 403, "{}", reply.body);
    assert!(reply.body.contains("Not an audit admin"));
    let reply = http.post(
        "/reports/audit-log/export",
        Some(&cookie),
        &[("csrf", &token), ("range", "all")],
        &[],
    );
    assert_eq!(reply.status, 403, "{}", reply.body);
    assert!(!reply.body.contains("id,occurred_at"));
    // An unknown event is a friendly 404, not an error.
    db.client()
        .batch_execute(&format!("GRANT audit_admin TO {}", crm.admin))
        .unwrap();
    let reply = http.get("/reports/audit-log/events/999999999", Some(&cookie));
    assert_eq!(reply.status, 404);
    assert!(reply.body.contains("There is no such page or event."));
    let reply = http.get("/reports/audit-log/events/not-a-number", Some(&cookie));
    assert_eq!(reply.status, 404);

    // The server restarts under a signed-in session: asked to sign in again, told why.
    let cluster = Cluster::start();
    let role = "restart_admin";
    cluster
        .superuser("audit_template")
        .batch_execute(&format!(
            "CREATE ROLE {role} LOGIN PASSWORD '{PASSWORD}' IN ROLE audit_admin"
        ))
        .unwrap();
    let dash = Dashboard::start_on(cluster.port, "audit_template", &[]);
    let http = Http::new(&dash);
    let cookie = http.session(role, PASSWORD);
    assert_eq!(http.get("/reports/audit-log", Some(&cookie)).status, 200);
    cluster.restart();
    let reply = http.get("/reports/audit-log", Some(&cookie));
    let asked_again = (reply.status == 303
        && reply
            .header("location")
            .is_some_and(|l| l.contains("notice=lost")))
        || (reply.status == 503 && reply.body.contains("The database connection was lost"));
    assert!(
        asked_again,
        "{} {:?} {}",
        reply.status,
        reply.header("location"),
        reply.body
    );
    assert!(
        !reply.body.contains("db error"),
        "an internal message leaked"
    );
    // Signing in again works.
    let cookie = http.session(role, PASSWORD);
    assert_eq!(http.get("/reports/audit-log", Some(&cookie)).status, 200);
}

#[test]
fn a_connection_that_does_not_check_passwords_is_refused() {
    let db = TestDb::new();
    let admin = db.create_role(
        "admin",
        &format!("LOGIN PASSWORD '{PASSWORD}' IN ROLE audit_admin"),
    );
    // The cluster's unix socket uses trust: any password would get in.
    let conninfo = format!(
        "host={} port={} dbname={}",
        db.cluster.dir.display(),
        db.cluster.port,
        db.name
    );
    let dash = Dashboard::start_conninfo(&conninfo, &[]);
    let reply = Http::new(&dash).sign_in(&admin, "any password at all");
    assert_eq!(reply.status, 403, "{}", reply.body);
    assert!(
        reply.body.contains("without checking its password"),
        "{}",
        reply.body
    );
    assert_eq!(reply.cookie("audit_trail_session"), None);
}

#[test]
fn requests_for_another_host_name_are_refused() {
    use std::io::{Read, Write};
    let db = TestDb::new();
    let dash = Dashboard::start(&db);
    let address = dash.base.trim_start_matches("http://").to_owned();
    let fetch = |host: &str| -> String {
        let mut stream = std::net::TcpStream::connect(&address).unwrap();
        write!(
            stream,
            "GET /sign-in HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut reply = String::new();
        stream.read_to_string(&mut reply).unwrap();
        reply
    };
    // A page of another site whose name resolves here (DNS rebinding) names itself.
    let reply = fetch("evil.example");
    assert!(reply.starts_with("HTTP/1.1 400"), "{reply}");
    assert!(reply.contains("does not answer to that host name"));
    let port = address.rsplit(':').next().unwrap();
    for host in [address.clone(), format!("localhost:{port}")] {
        let reply = fetch(&host);
        assert!(reply.starts_with("HTTP/1.1 200"), "{host}: {reply}");
    }
}
