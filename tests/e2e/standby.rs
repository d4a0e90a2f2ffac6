//! The sidecar against a hot standby: `export`, `follow` and `serve` read from `--db` (a
//! streaming replica made with `pg_basebackup -R`) and write what they must (export records,
//! cursors) to the primary named by `--record-db`; without it they refuse before reading.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use audit_trail_tests::browser::{Dashboard, Http};
use audit_trail_tests::sidecar::{command, run, Run};
use audit_trail_tests::{events, Cluster, TestDb};

const PASSWORD: &str = "standby-horse-7";

/// A primary of these tests' own and its streaming standby, started on first use and shared
/// by the tests of this file. A dedicated primary keeps the copy small (the shared cluster
/// holds every other test's databases).
struct Pair {
    primary: Cluster,
    standby: Cluster,
}

static PAIR: OnceLock<Pair> = OnceLock::new();

fn pair() -> &'static Pair {
    PAIR.get_or_init(|| {
        let primary = Cluster::start();
        let standby = Cluster::standby_of(&primary);
        extern "C" fn stop_pair() {
            if let Some(pair) = PAIR.get() {
                pair.standby.stop();
                pair.primary.stop();
                let _ = std::fs::remove_dir_all(&pair.standby.dir);
                let _ = std::fs::remove_dir_all(&pair.primary.dir);
            }
        }
        // SAFETY: registering a plain extern "C" function; it runs once at process exit.
        unsafe { libc::atexit(stop_pair) };
        Pair { primary, standby }
    })
}

/// A database on the primary with a tracked table, already replayed on the standby.
fn tracked_db() -> TestDb {
    let pair = pair();
    let db = TestDb::on(&pair.primary);
    db.client()
        .batch_execute(
            "CREATE TABLE items (id int PRIMARY KEY, v text);
             SELECT audit.track('items', 'item');
             INSERT INTO items VALUES (1, 'one'), (2, 'two');",
        )
        .expect("set up the primary");
    wait_replayed(&db);
    db
}

/// Waits until the standby has replayed everything the primary has written so far. The
/// insert position, not `pg_current_wal_lsn()` (what is written out): the test cluster runs
/// with `synchronous_commit = off`, so a commit may not be written out yet when it returns.
fn wait_replayed(db: &TestDb) {
    let pair = pair();
    let lsn: String = db
        .client()
        .query_one("SELECT pg_current_wal_insert_lsn()::text", &[])
        .expect("primary's WAL position")
        .get(0);
    let mut standby = pair.standby.superuser("postgres");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let replayed: bool = standby
            .query_one(
                "SELECT pg_last_wal_replay_lsn() >= $1::text::pg_lsn",
                &[&lsn],
            )
            .expect("standby's replay position")
            .get(0);
        if replayed {
            return;
        }
        assert!(Instant::now() < deadline, "the standby did not catch up");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn standby_conninfo(db: &TestDb) -> String {
    pair().standby.conninfo(&db.name, "postgres")
}

fn export_events(db: &TestDb) -> Vec<audit_trail_tests::Event> {
    events(&mut db.client())
        .into_iter()
        .filter(|e| e.entity == "audit_log" && e.action == "export")
        .collect()
}

fn item_event_ids(db: &TestDb) -> Vec<i64> {
    events(&mut db.client())
        .iter()
        .filter(|e| e.entity == "item")
        .map(|e| e.id)
        .collect()
}

#[test]
fn the_standby_is_read_only() {
    let db = tracked_db();
    let mut standby = pair().standby.superuser(&db.name);
    let in_recovery: bool = standby
        .query_one("SELECT pg_is_in_recovery()", &[])
        .unwrap()
        .get(0);
    assert!(in_recovery);
    let count: i64 = standby
        .query_one(
            "SELECT count(*) FROM audit.events WHERE entity = 'item'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(count, 2, "the standby has the primary's events");
}

#[test]
fn export_from_the_standby_records_on_the_primary() {
    let db = tracked_db();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("out.jsonl");
    let out = run(command().args([
        "export",
        "--db",
        &standby_conninfo(&db),
        "--record-db",
        &db.conninfo("postgres"),
        "--format",
        "jsonl",
        "--entity",
        "item",
        "--output",
        file.to_str().unwrap(),
    ]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let text = std::fs::read_to_string(&file).expect("the export file");
    let ids: Vec<i64> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["id"]
                .as_i64()
                .unwrap()
        })
        .collect();
    assert_eq!(ids, item_event_ids(&db));
    let exports = export_events(&db);
    assert_eq!(exports.len(), 1, "the export is recorded on the primary");
    let details = exports[0].details.as_ref().expect("export details");
    assert_eq!(details["rows"], 2);
    let (_, end) = audit_trail_tests::last_export(&mut db.client());
    assert_eq!(
        end.expect("its end on the primary").details.unwrap()["complete"],
        true
    );

    // The same from the environment variable.
    let out = run(command()
        .env("AUDIT_TRAIL_RECORD_DB", db.conninfo("postgres"))
        .args(["export", "--db", &standby_conninfo(&db), "--entity", "item"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout.lines().count(), 3, "header and two rows");
    assert_eq!(export_events(&db).len(), 2);
}

/// One line naming --record-db, exit 2, nothing written anywhere.
fn assert_refused(out: &Run) {
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert_eq!(out.stdout, "", "nothing is read before the refusal");
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert!(out.stderr.contains("--record-db"), "{}", out.stderr);
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
}

#[test]
fn without_record_db_a_standby_is_refused_before_reading() {
    let db = tracked_db();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("out.csv");
    let standby = standby_conninfo(&db);

    let out = run(command().args(["export", "--db", &standby]));
    assert_refused(&out);
    let out = run(command().args([
        "export",
        "--db",
        &standby,
        "--output",
        file.to_str().unwrap(),
    ]));
    assert_refused(&out);
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "no file, not even a temporary one"
    );

    let out = run(command().args([
        "follow",
        "--db",
        &standby,
        "--consumer",
        "siem",
        "--stdout",
        "--once",
    ]));
    assert_refused(&out);
    assert!(export_events(&db).is_empty());
    let consumers: i64 = db
        .client()
        .query_one("SELECT count(*) FROM audit.consumers", &[])
        .unwrap()
        .get(0);
    assert_eq!(consumers, 0);

    // --record-db must name the primary, not the standby again.
    let out = run(command().args(["export", "--db", &standby, "--record-db", &standby]));
    assert_refused(&out);
}

fn follow_once(db: &TestDb, hold_timeout: &str) -> Run {
    run(command().args([
        "follow",
        "--db",
        &standby_conninfo(db),
        "--record-db",
        &db.conninfo("postgres"),
        "--consumer",
        "siem",
        "--stdout",
        "--once",
        "--hold-timeout",
        hold_timeout,
    ]))
}

fn delivered_ids(jsonl: &str) -> Vec<i64> {
    jsonl
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["id"]
                .as_i64()
                .unwrap()
        })
        .collect()
}

/// Every event's id on the primary, in the stream's (txid, id) order.
fn stream_order(db: &TestDb) -> Vec<i64> {
    db.client()
        .query("SELECT id FROM audit.events ORDER BY txid, id", &[])
        .expect("events on the primary")
        .iter()
        .map(|r| r.get(0))
        .collect()
}

fn cursor(db: &TestDb) -> (i64, i64) {
    let row = db
        .client()
        .query_one(
            "SELECT last_id, delivered FROM audit.consumers WHERE name = 'siem'",
            &[],
        )
        .expect("the consumer on the primary");
    (row.get(0), row.get(1))
}

#[test]
fn follow_from_the_standby_delivers_a_late_commit_exactly_once() {
    let db = tracked_db();
    let first = follow_once(&db, "30");
    assert_eq!(first.code, 0, "{}", first.stderr);
    let mut delivered = delivered_ids(&first.stdout);
    assert_eq!(delivered, stream_order(&db), "{}", first.stderr);
    let last = *delivered.last().expect("events delivered");
    assert_eq!(
        cursor(&db),
        (last, delivered.len() as i64),
        "the cursor moved on the primary"
    );

    // A writes first and stays open on the primary; B writes later and commits.
    let mut a = db.client();
    let mut b = db.client();
    a.batch_execute("BEGIN; INSERT INTO items VALUES (10, 'A wrote first')")
        .unwrap();
    b.batch_execute("INSERT INTO items VALUES (11, 'B wrote later')")
        .unwrap();
    wait_replayed(&db);
    // B is on the standby, but A is still running there too (known from the WAL): B waits.
    let second = follow_once(&db, "1");
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert_eq!(delivered_ids(&second.stdout), Vec::<i64>::new());

    a.batch_execute("COMMIT").unwrap();
    wait_replayed(&db);
    let third = follow_once(&db, "30");
    assert_eq!(third.code, 0, "{}", third.stderr);
    delivered.extend(delivered_ids(&third.stdout));
    let all = stream_order(&db);
    assert_eq!(delivered, all, "A then B, each once, in txid order");
    assert_eq!(item_event_ids(&db).len(), 4);
    assert_eq!(cursor(&db).1, all.len() as i64);

    // Nothing more: the cursor on the primary is durable.
    let fourth = follow_once(&db, "30");
    assert_eq!(fourth.code, 0, "{}", fourth.stderr);
    assert_eq!(delivered_ids(&fourth.stdout), Vec::<i64>::new());
}

#[test]
fn serve_from_the_standby_records_exports_on_the_primary() {
    let db = tracked_db();
    let pair = pair();
    let admin = db.create_role(
        "standby_admin",
        &format!("LOGIN PASSWORD '{PASSWORD}' IN ROLE audit_admin"),
    );
    wait_replayed(&db);
    let record_db = format!(
        "host=127.0.0.1 port={} dbname={} connect_timeout=10",
        pair.primary.port, db.name
    );
    let dash = Dashboard::start_on(pair.standby.port, &db.name, &["--record-db", &record_db]);
    let http = Http::new(&dash);
    let cookie = http.session(&admin, PASSWORD);
    let page = http.get("/reports/audit-log?entity=item", Some(&cookie));
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("item"), "{}", page.body);

    let form_page = http.get("/reports/audit-log", Some(&cookie));
    let csrf = form_page.hidden_field("csrf").expect("a CSRF token");
    let reply = http.post(
        "/reports/audit-log/export",
        Some(&cookie),
        &[("csrf", &csrf), ("entity", "item")],
        &[],
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body.lines().count(), 3, "header and two rows");
    let exports = export_events(&db);
    assert_eq!(exports.len(), 1, "recorded on the primary: {}", dash.log());
    assert_eq!(exports[0].db_user, admin);
    assert_eq!(exports[0].source, "dashboard");

    // Given a role that gets in as it is, serve finds the standby before it starts.
    let refused = run(command().args([
        "serve",
        "--db",
        &pair.standby.conninfo(&db.name, "postgres"),
        "--listen",
        "127.0.0.1:0",
    ]));
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert_eq!(refused.stderr.lines().count(), 1, "{}", refused.stderr);
    assert!(refused.stderr.contains("--record-db"), "{}", refused.stderr);
    assert!(refused.stdout.is_empty(), "{}", refused.stdout);

    // Without --record-db, signing in to the standby is refused, naming the flag.
    let alone = Dashboard::start_on(pair.standby.port, &db.name, &[]);
    let reply = Http::new(&alone).sign_in(&admin, PASSWORD);
    assert_eq!(reply.status, 503, "{}", reply.body);
    assert!(reply.body.contains("--record-db"), "{}", reply.body);
}

#[test]
fn verify_reads_a_standby_and_needs_the_primary_for_its_record() {
    let db = tracked_db();
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("seal.key");
    let checkpoints = dir.path().join("checkpoints");
    std::fs::create_dir(&checkpoints).unwrap();
    let out = run(command().args(["keygen", "--output"]).arg(&key));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let out = run(command()
        .args(["seal", "--once", "--db", &db.conninfo("postgres"), "--key"])
        .arg(&key)
        .arg("--checkpoints")
        .arg(&checkpoints));
    assert_eq!(out.code, 0, "{}", out.stderr);
    wait_replayed(&db);
    let verify = |extra: &[&str]| {
        run(command()
            .args(["verify", "--db", &standby_conninfo(&db), "--pubkey"])
            .arg(dir.path().join("seal.key.pub"))
            .arg("--checkpoints")
            .arg(&checkpoints)
            .args(extra))
    };
    assert_refused(&verify(&[]));
    let out = verify(&["--record-db", &db.conninfo("postgres")]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("intact"), "{}", out.stdout);
}
