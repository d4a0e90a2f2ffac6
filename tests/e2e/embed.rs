//! `GET /embed?token=`: an application's admin sees their organization's audit log inside
//! the application's page: a session of their own, every page restricted to their
//! organization, the sign-in and exports recorded under their name; framed only by the
//! application's origin.

use std::io::{Read, Write};
use std::net::TcpListener;

use audit_trail_tests::browser::{Browser, Http, Reply};
use audit_trail_tests::viewers::{bad_tokens, claims, token, TwoOrgs};

const APP: &str = "https://app.example.test";

/// Opens an embed session: the `Cookie` header value, after checking the redirect.
fn embed(http: &Http, token: &str) -> String {
    let reply = http.get(&format!("/embed?token={token}"), None);
    assert_eq!(reply.status, 303, "{}", reply.body);
    assert_eq!(reply.header("location"), Some("/reports/audit-log"));
    let set = reply
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("audit_trail_embed="))
        .expect("the embed cookie")
        .to_owned();
    for attribute in [
        "HttpOnly",
        "Secure",
        "SameSite=None",
        "Partitioned",
        "Path=/",
    ] {
        assert!(set.contains(attribute), "{attribute}: {set}");
    }
    format!(
        "audit_trail_embed={}",
        reply.cookie("audit_trail_embed").expect("a session token")
    )
}

fn listed_ids(page: &Reply) -> Vec<i64> {
    page.body
        .split("data-href=\"/reports/audit-log/events/")
        .skip(1)
        .filter_map(|rest| {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        })
        .collect()
}

#[test]
fn an_embed_session_sees_only_its_organization_on_every_page() {
    let orgs = TwoOrgs::new();
    let dash = orgs.serve(&["--embed-origin", APP]);
    let http = Http::new(&dash);
    let cookie = embed(&http, &token(&claims("acme", "Ann Admin", None)));
    // With the sign-in just recorded, which is acme's too.
    let acme = orgs.ids(Some("acme"));
    let globex = orgs.ids(Some("globex"));

    // The Audit Log: only acme's, framable by the application only, no Export button.
    let page = http.get("/reports/audit-log?range=all", Some(&cookie));
    assert_eq!(page.status, 200, "{}", page.body);
    let listed = listed_ids(&page);
    assert!(!listed.is_empty());
    for id in &listed {
        assert!(acme.contains(id), "event {id} is not acme's");
    }
    assert!(page.body.contains("Ann Admin") && page.body.contains("acme"));
    assert!(!page.body.contains("gil@globex.test") && !page.body.contains("globex"));
    assert!(
        !page.body.contains("export-button"),
        "no Export without the scope"
    );
    assert!(!page.body.contains("Sealed through") && !page.body.contains("Not sealed"));
    let csp = page.header("content-security-policy").unwrap();
    assert!(csp.contains(&format!("frame-ancestors {APP}")), "{csp}");
    assert!(page.header("x-frame-options").is_none());
    // Asking for the other organization's actor finds nothing.
    let page = http.get(
        "/reports/audit-log?range=all&actor=gil%40globex.test",
        Some(&cookie),
    );
    assert!(listed_ids(&page).is_empty());
    // And asking for the other organization by name is overruled by the token's.
    let page = http.get("/reports/audit-log?range=all&tenant=globex", Some(&cookie));
    let listed = listed_ids(&page);
    assert!(!listed.is_empty() && listed.iter().all(|id| acme.contains(id)));

    // An event: acme's is shown; globex's, or one of no organization, is the 404 of a
    // missing id.
    let shown = http.get(
        &format!("/reports/audit-log/events/{}", acme[0]),
        Some(&cookie),
    );
    assert_eq!(shown.status, 200);
    let missing = http.get("/reports/audit-log/events/999999999", Some(&cookie));
    assert_eq!(missing.status, 404);
    for id in globex
        .iter()
        .chain(orgs.ids(None).iter())
        .filter(|id| !acme.contains(id))
    {
        let reply = http.get(&format!("/reports/audit-log/events/{id}"), Some(&cookie));
        assert_eq!(reply.status, 404, "event {id}");
        assert_eq!(reply.body, missing.body, "event {id}");
    }

    // The Overview: acme's counts and actors only.
    let overview = http.get("/reports/overview", Some(&cookie));
    assert_eq!(overview.status, 200);
    assert!(overview.body.contains("ann@acme.test"));
    assert!(!overview.body.contains("gil@globex.test"));

    // Export: refused without the scope (the page has no form, so no form token either).
    assert!(
        page.hidden_field("csrf").is_none(),
        "no form for this viewer"
    );
    let refused = http.post(
        "/reports/audit-log/export",
        Some(&cookie),
        &[("range", "all")],
        &[],
    );
    assert_eq!(refused.status, 403);
    assert!(
        refused.body.contains("does not include exporting"),
        "{}",
        refused.body
    );

    // The sign-in is recorded under the viewer's name, with the organization.
    let signed: Vec<(String, String, serde_json::Value, Option<String>)> = orgs
        .db
        .client()
        .query(
            "SELECT actor, source, details, tenant FROM audit.events
              WHERE entity = 'audit_log' AND action = 'sign_in'",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    assert_eq!(signed.len(), 1, "{signed:?}");
    assert_eq!(
        (signed[0].0.as_str(), signed[0].1.as_str()),
        ("Ann Admin", "embed")
    );
    assert_eq!(signed[0].3.as_deref(), Some("acme"));
    assert_eq!(signed[0].2["sub"], "id-Ann Admin");
}

#[test]
fn an_embed_session_with_the_export_scope_exports_its_organization_only() {
    let orgs = TwoOrgs::new();
    let dash = orgs.serve(&["--embed-origin", APP]);
    let http = Http::new(&dash);
    let cookie = embed(
        &http,
        &token(&claims("globex", "Gil", Some("audit_log:export"))),
    );
    let page = http.get("/reports/audit-log?range=all", Some(&cookie));
    assert!(page.body.contains("export-button"));
    let csrf = page.hidden_field("csrf").expect("the session's form token");
    // Without the form token, or from another site: refused as for a role.
    let forged = http.post(
        "/reports/audit-log/export",
        Some(&cookie),
        &[("range", "all")],
        &[],
    );
    assert_eq!(forged.status, 403);
    let cross = http.post(
        "/reports/audit-log/export",
        Some(&cookie),
        &[("csrf", &csrf), ("range", "all")],
        &[("Origin", "https://evil.example")],
    );
    assert_eq!(cross.status, 403);
    // What the export holds: globex's events, its viewer's sign-in among them (not the
    // export's own records).
    let mut globex = orgs.ids(Some("globex"));
    globex.reverse();
    let csv = http.post(
        "/reports/audit-log/export",
        Some(&cookie),
        &[("csrf", &csrf), ("range", "all")],
        &[],
    );
    assert_eq!(csv.status, 200, "{}", csv.body);
    let mut reader = csv::Reader::from_reader(csv.body.as_bytes());
    let exported: Vec<i64> = reader
        .records()
        .map(|r| r.expect("a row")[0].parse().expect("an id"))
        .collect();
    assert_eq!(exported, globex);
    let (start, end) = crate::api::viewer_export(&orgs, "Gil");
    assert_eq!(
        (start.actor.as_str(), start.source.as_str()),
        ("Gil", "embed")
    );
    assert_eq!(
        crate::api::tenant_of(&orgs, start.id).as_deref(),
        Some("globex")
    );
    let details = start.details.unwrap();
    assert_eq!(details["filters"]["tenant"], "globex");
    assert_eq!(end.expect("its end").details.unwrap()["complete"], true);
}

#[test]
fn a_bad_embed_token_opens_nothing() {
    let orgs = TwoOrgs::new();
    let dash = orgs.serve(&["--embed-origin", APP]);
    let http = Http::new(&dash);
    for (what, bad) in bad_tokens() {
        let reply = http.get(&format!("/embed?token={bad}"), None);
        assert_eq!(reply.status, 401, "{what}");
        assert!(reply.set_cookies().is_empty(), "{what}");
        assert!(
            !reply.body.contains("acme") && !reply.body.contains("ann@"),
            "{what}"
        );
    }
    // No embed session was opened, none recorded.
    let signed: i64 = orgs
        .db
        .client()
        .query_one(
            "SELECT count(*) FROM audit.events WHERE action = 'sign_in'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(signed, 0);
    // A forged embed cookie is no session.
    let reply = http.get("/reports/audit-log", Some("audit_trail_embed=00ff"));
    assert_eq!(reply.status, 401);
    assert!(listed_ids(&reply).is_empty());
}

#[test]
fn serve_refuses_bad_viewer_settings_in_one_line() {
    let orgs = TwoOrgs::new();
    let dir = tempfile::tempdir().unwrap();
    let short = dir.path().join("short");
    std::fs::write(&short, "too short\n").unwrap();
    let secret = orgs.secret_file.display().to_string();
    let db = format!(
        "host=127.0.0.1 port={} dbname={}",
        orgs.db.cluster.port, orgs.db.name
    );
    let clerk = orgs.db.create_role("clerk", "LOGIN");
    let cases: Vec<(Vec<String>, i32, &str)> = vec![
        (
            vec![
                "--viewer-secret-file".into(),
                short.display().to_string(),
                "--viewer-db".into(),
                orgs.db.conninfo(&orgs.reader),
            ],
            2,
            "at least 32",
        ),
        (
            vec![
                "--viewer-secret-file".into(),
                "/nonexistent/secret".into(),
                "--viewer-db".into(),
                orgs.db.conninfo(&orgs.reader),
            ],
            2,
            "cannot read",
        ),
        (
            vec![
                "--viewer-key".into(),
                secret.clone(),
                "--viewer-db".into(),
                orgs.db.conninfo(&orgs.reader),
            ],
            2,
            "Ed25519",
        ),
        (
            vec!["--viewer-secret-file".into(), secret.clone()],
            2,
            "--viewer-db",
        ),
        (
            vec!["--viewer-db".into(), orgs.db.conninfo(&orgs.reader)],
            2,
            "--viewer-secret-file",
        ),
        (
            vec![
                "--viewer-secret-file".into(),
                secret.clone(),
                "--viewer-db".into(),
                orgs.db.conninfo(&clerk),
            ],
            3,
            "audit_admin",
        ),
        (
            vec![
                "--viewer-secret-file".into(),
                secret.clone(),
                "--viewer-db".into(),
                orgs.db.conninfo(&orgs.reader),
                "--embed-origin".into(),
                "https://*.example.com".into(),
            ],
            2,
            "origin",
        ),
    ];
    for (args, code, says) in cases {
        let out = audit_trail_tests::sidecar::run(
            audit_trail_tests::sidecar::command()
                .args(["serve", "--db", &db, "--listen", "127.0.0.1:0"])
                .args(&args),
        );
        assert_eq!(out.code, code, "{args:?}: {}", out.stderr);
        assert_eq!(
            out.stderr.trim().lines().count(),
            1,
            "{args:?}: {}",
            out.stderr
        );
        assert!(out.stderr.contains(says), "{args:?}: {}", out.stderr);
        assert!(
            !out.stderr.contains("e2e-viewer-secret"),
            "the secret in: {}",
            out.stderr
        );
    }
}

/// Waits (up to 10 s) until the current frame shows `path`.
fn wait_frame_path(b: &Browser, path: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let at = b.script("return location.pathname + ' ' + document.readyState;");
        if at == serde_json::json!(format!("{path} complete")) {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "the frame is at {at}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Serves one page that frames the URL later sent through the returned channel, on
/// `localhost:PORT` (another site than the dashboard's 127.0.0.1); its origin.
fn framing_page() -> (String, std::sync::mpsc::Sender<String>) {
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let listener = TcpListener::bind("127.0.0.1:0").expect("a port");
    let port = listener.local_addr().expect("an address").port();
    std::thread::spawn(move || {
        let src = rx.recv().unwrap_or_default();
        for stream in listener.incoming().flatten() {
            let mut stream = stream;
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let body = format!(
                "<!doctype html><title>The application</title><h1>Application</h1>\
                 <iframe src=\"{src}\" width=\"1000\" height=\"700\"></iframe>"
            );
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (format!("http://localhost:{port}"), tx)
}

#[test]
fn the_embed_link_opens_inside_a_frame_of_the_application_only() {
    let orgs = TwoOrgs::new();
    // Two applications on another site than the dashboard's: one allowed, one not.
    let (allowed, allowed_src) = framing_page();
    let (elsewhere, elsewhere_src) = framing_page();
    let dash = orgs.serve(&["--embed-origin", &allowed]);
    let link = || {
        format!(
            "{}/embed?token={}",
            dash.base,
            token(&claims("acme", "Ann Admin", None))
        )
    };
    allowed_src.send(link()).expect("the allowed page");
    elsewhere_src.send(link()).expect("the other page");
    let b = Browser::start();
    b.goto(&allowed);
    b.enter_frame(0);
    wait_frame_path(&b, "/reports/audit-log");
    let actors = b.texts("table.events td.actor");
    assert!(!actors.is_empty(), "the embedded log lists events");
    // acme's events, and the viewer's own sign-in, which is acme's too.
    assert!(
        actors
            .iter()
            .all(|a| a == "ann@acme.test" || a == "Ann Admin"),
        "{actors:?}"
    );
    assert!(b.texts("h1").contains(&"Audit Log".to_owned()));
    b.screenshot("embed-in-application-frame");
    b.leave_frame();

    // The same link framed by a page of another origin: the browser refuses to show it.
    b.goto(&elsewhere);
    b.enter_frame(0);
    std::thread::sleep(std::time::Duration::from_secs(1));
    let shown = b.script("return document.querySelectorAll('table.events').length;");
    assert_eq!(
        shown,
        serde_json::json!(0),
        "framed by a page of {elsewhere}"
    );
    // Not the dashboard's page: the browser's own error page stands in for it.
    let at = b.script("return location.href;");
    let at = at.as_str().unwrap_or_default().to_owned();
    assert!(!at.starts_with(&dash.base), "the frame shows {at}");
    b.leave_frame();
    // While the allowed application still frames it.
    b.goto(&allowed);
    b.enter_frame(0);
    wait_frame_path(&b, "/reports/audit-log");
    b.leave_frame();
}

/// A whole-database admin (a role) sees every organization, with an Organization column,
/// and may narrow the list to one.
#[test]
fn a_role_chooses_an_organization_or_sees_them_all() {
    let orgs = TwoOrgs::new();
    let dash = orgs.serve(&[]);
    let http = Http::new(&dash);
    let cookie = http.session(&orgs.admin, audit_trail_tests::viewers::PASSWORD);
    let all = http.get("/reports/audit-log?range=all", Some(&cookie));
    assert_eq!(all.status, 200, "{}", all.body);
    assert!(all.body.contains("<th scope=\"col\">Organization</th>"));
    assert!(all.body.contains("name=\"tenant\""));
    let listed = listed_ids(&all);
    let globex = orgs.ids(Some("globex"));
    assert!(listed.iter().any(|id| globex.contains(id)));
    assert!(listed.iter().any(|id| !globex.contains(id)));
    let one = http.get("/reports/audit-log?range=all&tenant=globex", Some(&cookie));
    let listed = listed_ids(&one);
    assert!(!listed.is_empty());
    assert!(listed.iter().all(|id| globex.contains(id)), "{listed:?}");
    assert!(
        one.body.contains("Organization:</span> globex"),
        "the filter's chip"
    );
    // The Overview of one organization: its actors only, its links scoped to it.
    let overview = http.get("/reports/overview?tenant=globex", Some(&cookie));
    assert_eq!(overview.status, 200, "{}", overview.body);
    assert!(overview.body.contains("gil@globex.test"));
    assert!(!overview.body.contains("ann@acme.test"));
    assert!(overview.body.contains("tenant=globex"));
    let everyone = http.get("/reports/overview", Some(&cookie));
    assert!(everyone.body.contains("gil@globex.test") && everyone.body.contains("ann@acme.test"));
}
