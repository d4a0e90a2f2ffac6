//! `audit-trail alert`: the built-in rules on scripted scenarios, webhook delivery with
//! retries, no repeat after a restart, and a bad rules file.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use audit_trail_tests::sidecar::{command, run, Run};
use audit_trail_tests::TestDb;

/// A CRM's tables, tracked, with some ordinary activity that must not alert.
fn crm_db() -> TestDb {
    let db = TestDb::new();
    db.client()
        .batch_execute(
            "CREATE TABLE contacts (id int PRIMARY KEY, name text);
             CREATE TABLE users (id int PRIMARY KEY, name text, role text);
             CREATE TABLE scratch (id int PRIMARY KEY);
             SELECT audit.track('contacts', 'contact');
             SELECT audit.track('users', 'user');
             SELECT audit.track('scratch', 'scratch');
             INSERT INTO contacts SELECT g, 'contact ' || g FROM generate_series(1, 400) g;
             INSERT INTO users VALUES (1, 'Ann', 'member'), (2, 'Bob', 'member');
             UPDATE contacts SET name = name || '!' WHERE id <= 20;
             DELETE FROM contacts WHERE id > 395;
             UPDATE users SET name = 'Ann B.' WHERE id = 1;
             SELECT audit.log_event('audit_log', 'export', NULL, '{\"rows\": 120}');",
        )
        .expect("set-up");
    db
}

/// `alert --once`, waiting for transactions of other tests (transaction ids are
/// cluster-wide) as long as it takes.
fn alert_once(db: &TestDb, args: &[&str]) -> Run {
    run(command()
        .args(["alert", "--db", &db.conninfo("postgres"), "--once"])
        .args(["--hold-timeout", "300"])
        .args(args))
}

fn alerts(out: &Run) -> Vec<serde_json::Value> {
    assert_eq!(out.code, 0, "{}", out.stderr);
    out.stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect()
}

fn by_rule(alerts: &[serde_json::Value]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for a in alerts {
        *counts
            .entry(a["rule"].as_str().expect("a rule").to_owned())
            .or_insert(0) += 1;
    }
    counts
}

#[test]
fn each_builtin_rule_fires_once_on_its_scenario_and_ordinary_activity_is_quiet() {
    let db = crm_db();
    // Tracking the three tables is a change to what is captured: one warning for the burst.
    // The ordinary activity after it is quiet.
    let quiet = alerts(&alert_once(&db, &["--stdout"]));
    let earlier: Vec<i64> = quiet
        .iter()
        .map(|a| a["alert_id"].as_i64().expect("alert_id"))
        .collect();
    assert_eq!(
        by_rule(&quiet),
        [("audit-trail-changed".to_owned(), 1)]
            .into_iter()
            .collect(),
        "{quiet:#?}"
    );

    db.client()
        .batch_execute(
            "DELETE FROM contacts WHERE id <= 150;
             DELETE FROM users WHERE id = 2;
             UPDATE users SET role = 'admin' WHERE id = 1;
             SELECT audit.log_event('audit_log', 'export', NULL, '{\"rows\": 2000}');
             SELECT audit.log_event('audit_log', 'export', NULL, '{\"rows\": 2000}');
             SELECT audit.log_event('audit_log', 'export', NULL, '{\"rows\": 2000}');
             TRUNCATE scratch;
             SELECT audit.untrack('scratch');",
        )
        .expect("scenario");
    let fired = alerts(&alert_once(&db, &["--stdout"]));
    let expected: BTreeMap<String, usize> = [
        "mass-export",
        "mass-export-total",
        "mass-deletion",
        "mass-deletion-role",
        "user-deleted",
        "truncate",
        "privilege-change",
        "audit-trail-touched",
    ]
    .iter()
    .map(|r| (r.to_string(), 1))
    .collect();
    assert_eq!(by_rule(&fired), expected, "{fired:#?}");
    let deletion = fired
        .iter()
        .find(|a| a["rule"] == "mass-deletion")
        .expect("mass-deletion");
    // The window holds the set-up's 5 deletes too: one alert for all 155.
    assert_eq!(deletion["count"], 155, "one alert for the burst");
    assert_eq!(deletion["severity"], "critical");
    assert_eq!(deletion["event_ids"].as_array().map(Vec::len), Some(100));

    // Each alert is in the log, with the id it was delivered with.
    let recorded: Vec<i64> = db
        .client()
        .query(
            "SELECT id FROM audit.events WHERE entity = 'audit_log' AND action = 'alert' ORDER BY id",
            &[],
        )
        .expect("alerts")
        .iter()
        .map(|r| r.get(0))
        .filter(|id| !earlier.contains(id))
        .collect();
    let mut delivered: Vec<i64> = fired
        .iter()
        .map(|a| a["alert_id"].as_i64().expect("alert_id"))
        .collect();
    delivered.sort_unstable();
    assert_eq!(recorded, delivered);

    // A restart evaluates nothing twice, and more of the same burst stays one alert.
    db.client()
        .batch_execute("DELETE FROM contacts WHERE id <= 200")
        .expect("more deletes");
    let again = alerts(&alert_once(&db, &["--stdout"]));
    assert!(again.is_empty(), "re-alerted: {again:?}");
}

#[test]
fn direct_edits_alert_only_once_application_roles_are_configured() {
    let db = crm_db();
    let dir = tempfile::tempdir().expect("tempdir");
    let rules = dir.path().join("rules.toml");
    std::fs::write(&rules, "application_roles = [\"crm_app\"]\n").expect("rules");
    let fired = alerts(&alert_once(
        &db,
        &["--stdout", "--rules", rules.to_str().expect("utf-8 path")],
    ));
    // The set-up's changes were made by the superuser, not crm_app: one alert for the burst.
    assert_eq!(
        by_rule(&fired),
        [
            ("direct-edit".to_owned(), 1),
            ("audit-trail-changed".to_owned(), 1)
        ]
        .into_iter()
        .collect()
    );
}

#[test]
fn activity_outside_business_hours_alerts_once_they_are_configured() {
    let run = |hours: &str| {
        let db = crm_db();
        let dir = tempfile::tempdir().expect("tempdir");
        let rules = dir.path().join("rules.toml");
        std::fs::write(&rules, format!("business_hours = {hours}\n")).expect("rules");
        by_rule(&alerts(&alert_once(
            &db,
            &["--stdout", "--rules", rules.to_str().expect("utf-8 path")],
        )))
    };
    // Hours that hold every minute of every day: nothing is outside them.
    let always = run(
        "{ timezone = \"Pacific/Auckland\", days = [\"mon\", \"tue\", \"wed\", \"thu\", \"fri\", \"sat\", \"sun\"], from = \"00:00\", to = \"24:00\" }",
    );
    assert!(!always.contains_key("off-hours"), "{always:?}");
    // No business day at all: the whole burst of the set-up is one alert.
    let never = run("{ timezone = \"UTC\", days = [], from = \"08:00\", to = \"18:00\" }");
    assert_eq!(never.get("off-hours"), Some(&1), "{never:?}");
}

/// A webhook receiver that answers 500 to its first `failures` requests, then 200, and
/// keeps the bodies it accepted.
fn receiver(failures: usize) -> (String, Arc<Mutex<Vec<serde_json::Value>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!(
        "http://{}/hook/secret",
        listener.local_addr().expect("addr")
    );
    let accepted = Arc::new(Mutex::new(Vec::new()));
    let kept = Arc::clone(&accepted);
    std::thread::spawn(move || {
        let mut seen = 0;
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some((name, value)) = line.split_once(':') {
                    if name.eq_ignore_ascii_case("content-length") {
                        length = value.trim().parse().unwrap_or(0);
                    }
                }
            }
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).is_err() {
                continue;
            }
            seen += 1;
            let status = if seen <= failures {
                "500 Internal Server Error"
            } else {
                if let Ok(v) = serde_json::from_slice(&body) {
                    kept.lock().expect("lock").push(v);
                }
                "200 OK"
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            );
        }
    });
    (url, accepted)
}

#[test]
fn a_webhook_gets_each_alert_once_even_when_it_fails_at_first() {
    let db = crm_db();
    let (url, accepted) = receiver(2);
    // The set-up's tracking, delivered to stdout: the webhook then has nothing.
    assert_eq!(alerts(&alert_once(&db, &["--stdout"])).len(), 1);
    assert!(alerts(&alert_once(&db, &["--webhook", &url])).is_empty());
    db.client()
        .batch_execute("TRUNCATE scratch")
        .expect("truncate");
    let out = alert_once(&db, &["--webhook", &url]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let got = accepted.lock().expect("lock").clone();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["rule"], "truncate");
    assert!(got[0]["alert_id"].is_i64());

    let out = alert_once(&db, &["--webhook", &url]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(accepted.lock().expect("lock").len(), 1, "no repeat");
}

#[test]
fn a_bad_rules_file_is_one_line_and_exit_2() {
    let db = TestDb::new();
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, text) in [
        ("syntax.toml", "[[rule]\nname = \"x\"\n"),
        (
            "unknown.toml",
            "[[rule]]\nname = \"x\"\nseverity = \"info\"\nmatch = { entitty = [\"contact\"] }\n",
        ),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write");
        let out = alert_once(&db, &["--stdout", "--rules", path.to_str().expect("utf-8")]);
        assert_eq!(out.code, 2, "{}", out.stderr);
        assert_eq!(out.stderr.trim_end().lines().count(), 1, "{}", out.stderr);
        assert!(out.stderr.contains(name), "{}", out.stderr);
    }
}

#[test]
fn a_stalled_sealer_is_alerted_and_shown_until_sealing_catches_up() {
    use audit_trail_tests::browser::{Dashboard, Http};
    const PASSWORD: &str = "correct horse battery";
    // Events older than audit.seal_stall_after (15 minutes), which nothing has sealed: an
    // older log whose sealer stopped (written before the log went live, so they may be
    // dated in the past).
    let db = TestDb::new();
    db.client()
        .batch_execute(
            "INSERT INTO audit.events (occurred_at, actor, db_user, source, entity, action)
             SELECT now() - interval '2 hours' + g * interval '1 minute', 'ann', 'crm_app',
                    'manual', 'contact', 'update'
               FROM generate_series(1, 3) AS g",
        )
        .expect("old events");
    let oldest: i64 = db
        .client()
        .query_one("SELECT min(id) FROM audit.events", &[])
        .expect("oldest")
        .get(0);
    let stalled = |db: &TestDb| -> bool {
        db.client()
            .query_one("SELECT sealing_stalled FROM audit.integrity", &[])
            .expect("audit.integrity")
            .get(0)
    };
    assert!(stalled(&db));

    // The alert engine raises it, once per stall: it looks at the log, not at events (a
    // stopped sealer writes none).
    let fired = alerts(&alert_once(&db, &["--stdout"]));
    let stall: Vec<&serde_json::Value> = fired
        .iter()
        .filter(|a| a["rule"] == "sealing-stalled")
        .collect();
    assert_eq!(stall.len(), 1, "{fired:#?}");
    assert_eq!(stall[0]["severity"], "critical");
    assert_eq!(stall[0]["event_ids"], serde_json::json!([oldest]));
    assert_eq!(stall[0]["count"], 3);
    assert_eq!(stall[0]["actor"], "audit-trail seal");
    assert!(
        stall[0]["description"]
            .as_str()
            .is_some_and(|d| d.contains("audit-trail seal")),
        "{stall:?}"
    );

    // The dashboard says so above the log.
    let admin = db.create_role(
        "stalladmin",
        &format!("LOGIN PASSWORD '{PASSWORD}' IN ROLE audit_admin"),
    );
    let dash = Dashboard::start(&db);
    let http = Http::new(&dash);
    let cookie = http.session(&admin, PASSWORD);
    let page = http.get("/reports/audit-log", Some(&cookie));
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body.contains("Warning: sealing has stalled"),
        "{}",
        page.body
    );

    // Sealed: no warning, no alert.
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("seal.key");
    let out = run(command().args(["keygen", "--output"]).arg(&key));
    assert_eq!(out.code, 0, "{}", out.stderr);
    for _ in 0..600 {
        let out = run(command()
            .args(["seal", "--once", "--db", &db.conninfo("postgres"), "--key"])
            .arg(&key)
            .arg("--checkpoints")
            .arg(dir.path()));
        assert_eq!(out.code, 0, "{}", out.stderr);
        if !stalled(&db) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(!stalled(&db));
    let page = http.get("/reports/audit-log", Some(&cookie));
    assert!(
        !page.body.contains("Warning: sealing has stalled"),
        "{}",
        page.body
    );
    let after = alerts(&alert_once(&db, &["--stdout"]));
    assert!(
        after.iter().all(|a| a["rule"] != "sealing-stalled"),
        "{after:#?}"
    );
}
