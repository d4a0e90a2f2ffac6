//! `audit-trail follow`: the commit-safe change stream, with a durable cursor.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use audit_trail_tests::sidecar::{command, run, Run};
use audit_trail_tests::{Cluster, TestDb};

fn tracked_db() -> TestDb {
    let db = TestDb::new();
    db.client()
        .batch_execute(
            "CREATE TABLE items (id int PRIMARY KEY, v text);
             SELECT audit.track('items', 'item');",
        )
        .unwrap();
    db
}

/// `follow --once`. Transactions of other tests running on the shared cluster hold back the
/// stream (transaction ids are cluster-wide), so unless a test says otherwise it waits for
/// them as long as it takes.
fn follow_once(conninfo: &str, args: &[&str]) -> Run {
    let mut cmd = command();
    cmd.args(["follow", "--db", conninfo, "--once"]).args(args);
    if !args.contains(&"--hold-timeout") {
        cmd.args(["--hold-timeout", "300"]);
    }
    run(&mut cmd)
}

/// The delivered events, but the `track` event each test's set-up leaves.
fn delivered(jsonl: &str) -> impl Iterator<Item = serde_json::Value> + '_ {
    jsonl
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .unwrap_or_else(|e| panic!("torn or invalid line {l:?}: {e}"))
        })
        .filter(|e| e["action"] != "track" && e["action"] != "consumer_moved")
}

fn ids(jsonl: &str) -> Vec<i64> {
    delivered(jsonl)
        .map(|e| e["id"].as_i64().expect("id"))
        .collect()
}

fn subject_ids(jsonl: &str) -> Vec<String> {
    delivered(jsonl)
        .map(|e| e["subject_id"].as_str().expect("a subject id").to_owned())
        .collect()
}

fn all_event_ids(db: &TestDb) -> Vec<i64> {
    db.client()
        .query(
            "SELECT id FROM audit.events WHERE action <> 'track' ORDER BY txid, id",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[test]
fn a_transaction_that_commits_late_is_delivered_exactly_once() {
    let db = tracked_db();
    let mut a = db.client();
    let mut b = db.client();
    a.batch_execute("BEGIN; INSERT INTO items VALUES (1, 'A wrote first')")
        .unwrap();
    b.batch_execute("BEGIN; INSERT INTO items VALUES (2, 'B wrote later'); COMMIT;")
        .unwrap();
    let conninfo = db.conninfo("postgres");

    let first = follow_once(
        &conninfo,
        &["--consumer", "siem", "--stdout", "--hold-timeout", "1"],
    );
    assert_eq!(first.code, 0, "{}", first.stderr);
    // B committed but A, older, is still open: B waits rather than letting A be skipped.
    assert_eq!(ids(&first.stdout), Vec::<i64>::new());
    let status = run(command().args([
        "follow",
        "--db",
        &conninfo,
        "--consumer",
        "siem",
        "--status",
    ]));
    assert!(
        status.stdout.contains("held back: 1 committed events"),
        "{}",
        status.stdout
    );

    a.batch_execute("COMMIT").unwrap();
    let second = follow_once(&conninfo, &["--consumer", "siem", "--stdout"]);
    assert_eq!(second.code, 0, "{}", second.stderr);
    let mut delivered = ids(&first.stdout);
    delivered.extend(ids(&second.stdout));
    assert_eq!(
        delivered,
        all_event_ids(&db),
        "A then B, each once, in txid order"
    );
    assert_eq!(delivered.len(), 2);

    // Nothing more: the cursor is durable.
    let third = follow_once(&conninfo, &["--consumer", "siem", "--stdout"]);
    assert_eq!(ids(&third.stdout), Vec::<i64>::new());
}

#[test]
fn rolled_back_transactions_never_appear() {
    let db = tracked_db();
    db.client()
        .batch_execute(
            "BEGIN; INSERT INTO items VALUES (1, 'kept'); COMMIT;
             BEGIN; INSERT INTO items VALUES (2, 'rolled back'); ROLLBACK;
             BEGIN; INSERT INTO items VALUES (3, 'kept'); SAVEPOINT s;
                    INSERT INTO items VALUES (4, 'rolled back'); ROLLBACK TO s; COMMIT;",
        )
        .unwrap();
    let out = follow_once(&db.conninfo("postgres"), &["--consumer", "c", "--stdout"]);
    let subjects = subject_ids(&out.stdout);
    assert_eq!(subjects, ["1", "3"]);
}

#[test]
fn a_long_idle_transaction_delays_delivery_but_loses_nothing() {
    let db = tracked_db();
    let mut long = db.client();
    // An open transaction that has an id (it wrote something, though not an event).
    long.batch_execute("BEGIN; CREATE TEMP TABLE scratch (x int); INSERT INTO scratch VALUES (1);")
        .unwrap();
    db.client()
        .batch_execute("INSERT INTO items SELECT g, 'x' FROM generate_series(1, 50) g")
        .unwrap();
    let conninfo = db.conninfo("postgres");
    let delayed = follow_once(
        &conninfo,
        &["--consumer", "c", "--stdout", "--hold-timeout", "1"],
    );
    assert_eq!(ids(&delayed.stdout).len(), 0);
    long.batch_execute("COMMIT").unwrap();
    let released = follow_once(&conninfo, &["--consumer", "c", "--stdout"]);
    assert_eq!(ids(&released.stdout), all_event_ids(&db));
}

/// A follower running in the background, its stdout collected line by line.
struct Background {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<String>>,
}

impl Background {
    fn start(conninfo: &str, args: &[&str]) -> Background {
        let mut child = command()
            .args(["follow", "--db", conninfo, "--poll-seconds", "1"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start follower");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let out = child.stdout.take().unwrap();
        let err = child.stderr.take().unwrap();
        let (l, s) = (Arc::clone(&lines), Arc::clone(&stderr));
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                l.lock().unwrap().push(line);
            }
        });
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let mut s = s.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        Background {
            child,
            lines,
            stderr,
        }
    }

    fn wait_for(&self, count: usize, within: Duration) -> Vec<String> {
        let deadline = Instant::now() + within;
        loop {
            let lines = self.lines.lock().unwrap().clone();
            if lines.len() >= count || Instant::now() > deadline {
                return lines;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The lines once they hold `count` distinct event ids (a reconnect may deliver the
    /// last batch again: docs/follow.md), or at the deadline.
    fn wait_for_distinct(&self, count: usize, within: Duration) -> Vec<String> {
        let deadline = Instant::now() + within;
        loop {
            let lines = self.lines.lock().unwrap().clone();
            let mut seen = ids(&lines.join("\n"));
            seen.sort_unstable();
            seen.dedup();
            if seen.len() >= count || Instant::now() > deadline {
                return lines;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM, then the exit code.
    fn stop(mut self) -> (i32, String) {
        // SAFETY: signalling our own child process.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let status = self.child.wait().unwrap();
        std::thread::sleep(Duration::from_millis(100));
        (
            status.code().unwrap_or(-1),
            self.stderr.lock().unwrap().clone(),
        )
    }
}

#[test]
fn eight_concurrent_writers_while_following_all_delivered_once() {
    let db = tracked_db();
    let follower = Background::start(
        &db.conninfo("postgres"),
        &["--consumer", "live", "--stdout"],
    );
    std::thread::scope(|s| {
        for w in 0..8 {
            let db = &db;
            s.spawn(move || {
                let mut c = db.client();
                for i in 0..2000 {
                    c.execute("INSERT INTO items VALUES ($1, 'x')", &[&(w * 10_000 + i)])
                        .unwrap();
                }
            });
        }
    });
    let lines = follower.wait_for(16_000, Duration::from_secs(120));
    let (code, stderr) = follower.stop();
    assert_eq!(code, 0, "a stop request ends cleanly: {stderr}");
    let delivered = ids(&lines.join("\n"));
    assert_eq!(delivered.len(), 16_000, "{stderr}");
    assert_eq!(
        delivered,
        all_event_ids(&db),
        "every event once, in (txid, id) order"
    );
}

#[test]
fn the_follower_reconnects_when_postgres_restarts() {
    let cluster = Cluster::start();
    let mut admin = cluster.superuser("postgres");
    admin.batch_execute("CREATE DATABASE app").unwrap();
    let mut c = cluster.superuser("app");
    c.batch_execute(
        "CREATE EXTENSION audit_trail;
         CREATE TABLE items (id int PRIMARY KEY);
         SELECT audit.track('items', 'item');
         INSERT INTO items SELECT generate_series(1, 100);",
    )
    .unwrap();
    drop(c);
    let follower = Background::start(
        &cluster.conninfo("app", "postgres"),
        &["--consumer", "r", "--stdout"],
    );
    // The hundred rows and the record of tracking the table.
    assert_eq!(follower.wait_for(101, Duration::from_secs(30)).len(), 101);
    cluster.restart();
    let mut c = cluster.superuser("app");
    c.batch_execute("INSERT INTO items SELECT generate_series(101, 250)")
        .unwrap();
    let lines = follower.wait_for_distinct(250, Duration::from_secs(60));
    let (code, stderr) = follower.stop();
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("reconnect"), "says so on stderr: {stderr}");
    // Every event, and repeats only of what came before the restart, whose cursor the
    // restart may have cut off: at most the last batch, by its stable ids.
    let delivered = ids(&lines.join("\n"));
    let mut distinct = delivered.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), 250, "{stderr}");
    assert!(delivered.len() - distinct.len() <= 101, "{stderr}");
}

fn read_dir_events(dir: &Path) -> Vec<i64> {
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    let mut all = Vec::new();
    for file in manifest["files"].as_array().unwrap() {
        let text = std::fs::read_to_string(dir.join(file["name"].as_str().unwrap())).unwrap();
        assert!(text.is_empty() || text.ends_with('\n'), "a torn last line");
        assert_eq!(text.len() as u64, file["bytes"].as_u64().unwrap());
        all.extend(ids(&text));
    }
    all
}

#[test]
fn killed_mid_batch_then_restarted_loses_nothing_and_tears_no_line() {
    let db = tracked_db();
    db.client()
        .batch_execute(
            "INSERT INTO items SELECT g, repeat('x', 200) FROM generate_series(1, 150000) g",
        )
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let conninfo = db.conninfo("postgres");
    let batch = 40_000;
    let mut child = command()
        .args([
            "follow",
            "--db",
            &conninfo,
            "--consumer",
            "k",
            "--once",
            "--batch-size",
            &batch.to_string(),
        ])
        .arg("--output-dir")
        .arg(&out)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill it once the first file is being written.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let size = std::fs::metadata(out.join("audit-000001.jsonl"))
            .map(|m| m.len())
            .unwrap_or(0);
        if size > 0 || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // A crash can also leave half a line behind.
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .append(true)
        .open(out.join("audit-000001.jsonl"))
    {
        use std::io::Write;
        f.write_all(b"{\"id\": 12345, \"torn").unwrap();
    }
    let rerun = run(command()
        .args([
            "follow",
            "--db",
            &conninfo,
            "--consumer",
            "k",
            "--once",
            "--hold-timeout",
            "300",
            "--batch-size",
            &batch.to_string(),
        ])
        .arg("--output-dir")
        .arg(&out));
    assert_eq!(rerun.code, 0, "{}", rerun.stderr);
    let delivered = read_dir_events(&out);
    let expected = all_event_ids(&db);
    let mut counts: HashMap<i64, usize> = HashMap::new();
    for id in &delivered {
        *counts.entry(*id).or_default() += 1;
    }
    assert!(
        expected.iter().all(|id| counts.contains_key(id)),
        "an event is missing"
    );
    let duplicates: usize = counts.values().map(|n| n - 1).sum();
    assert!(
        duplicates <= batch,
        "{duplicates} duplicates: more than the last batch"
    );
    assert_eq!(counts.len(), expected.len());
}

#[test]
fn files_rotate_and_the_manifest_says_what_each_holds() {
    let db = tracked_db();
    db.client()
        .batch_execute("INSERT INTO items SELECT g, 'x' FROM generate_series(1, 3000) g")
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = follow_once(
        &db.conninfo("postgres"),
        &[
            "--consumer",
            "files",
            "--batch-size",
            "500",
            "--rotate-bytes",
            "200000",
            "--format",
            "csv",
            "--output-dir",
            dir.path().to_str().unwrap(),
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("manifest.json")).unwrap()).unwrap();
    let files = manifest["files"].as_array().unwrap();
    assert!(files.len() > 1, "no rotation: {manifest}");
    let mut total = 0;
    for f in files {
        let text = std::fs::read_to_string(dir.path().join(f["name"].as_str().unwrap())).unwrap();
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        assert_eq!(rows.len() as u64, f["events"].as_u64().unwrap());
        assert_eq!(
            rows.first().unwrap()[0].parse::<i64>().unwrap(),
            f["first_id"].as_i64().unwrap()
        );
        assert_eq!(
            rows.last().unwrap()[0].parse::<i64>().unwrap(),
            f["last_id"].as_i64().unwrap()
        );
        total += rows.len();
    }
    // The rows and the record of tracking the table.
    assert_eq!(total, 3001);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(dir.path().join("manifest.json"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
}

#[test]
fn status_reset_and_from() {
    let db = tracked_db();
    let conninfo = db.conninfo("postgres");
    db.client()
        .batch_execute("INSERT INTO items SELECT g, 'x' FROM generate_series(1, 10) g")
        .unwrap();
    follow_once(&conninfo, &["--consumer", "s", "--stdout"]);
    let status = run(command().args(["follow", "--db", &conninfo, "--consumer", "s", "--status"]));
    assert_eq!(status.code, 0, "{}", status.stderr);
    assert!(
        status.stdout.contains("11 events delivered"),
        "{}",
        status.stdout
    );
    assert!(
        status.stdout.contains("lag:       0s (up to date)"),
        "{}",
        status.stdout
    );

    let reset = run(command().args(["follow", "--db", &conninfo, "--consumer", "s", "--reset"]));
    assert_eq!(reset.code, 0, "{}", reset.stderr);
    // The move is in the log: back over the 11 events, skipping none.
    let moved: serde_json::Value = db
        .client()
        .query_one(
            "SELECT details FROM audit.events WHERE action = 'consumer_moved'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(
        (moved["replayed"].as_i64(), moved["skipped"].as_i64()),
        (Some(11), Some(0))
    );
    assert_eq!(
        ids(&follow_once(&conninfo, &["--consumer", "s", "--stdout"]).stdout).len(),
        10
    );

    std::thread::sleep(Duration::from_millis(20));
    let mark: String = db
        .client()
        .query_one("SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')", &[])
        .unwrap()
        .get(0);
    db.client()
        .batch_execute("INSERT INTO items SELECT g, 'x' FROM generate_series(11, 13) g")
        .unwrap();
    let from = run(command().args([
        "follow",
        "--db",
        &conninfo,
        "--consumer",
        "s",
        "--from",
        &mark,
        "--once",
        "--hold-timeout",
        "300",
        "--stdout",
    ]));
    assert_eq!(from.code, 0, "{}", from.stderr);
    assert_eq!(ids(&from.stdout).len(), 3);

    let missing = run(command().args([
        "follow",
        "--db",
        &conninfo,
        "--consumer",
        "nobody",
        "--status",
    ]));
    assert_eq!(missing.code, 2);
}

#[test]
fn follow_refuses_non_admins_and_bad_usage() {
    let db = tracked_db();
    let role = db.create_role("nosy", "LOGIN");
    let out = follow_once(&db.conninfo(&role), &["--consumer", "x", "--stdout"]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(out.stderr.contains("not a member of audit_admin"));
    // audit_admin members may keep cursors; the table is closed to others
    let err = db
        .client_as(&role)
        .execute("UPDATE audit.consumers SET last_id = 0", &[])
        .unwrap_err();
    assert_eq!(err.code().map(|c| c.code()), Some("42501"));

    let conninfo = db.conninfo("postgres");
    for (args, expect) in [
        (vec!["--consumer", "x"], "--stdout or --output-dir"),
        (vec!["--consumer", "bad name!", "--stdout"], "--consumer"),
        (
            vec!["--consumer", "x", "--stdout", "--from", "someday"],
            "--from: cannot read",
        ),
        (
            vec!["--consumer", "x", "--stdout", "--batch-size", "0"],
            "--batch-size",
        ),
    ] {
        let out = run(command().args(["follow", "--db", &conninfo]).args(&args));
        assert_eq!(out.code, 2, "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains(expect), "{args:?}: {}", out.stderr);
        assert_eq!(out.stderr.lines().count(), 1, "{args:?}");
    }
}

#[test]
fn a_second_follower_of_the_same_consumer_is_refused_while_one_holds_it() {
    let db = tracked_db();
    let mut holder = db.client();
    holder
        .batch_execute("INSERT INTO audit.consumers (name) VALUES ('busy')")
        .unwrap();
    holder
        .batch_execute("BEGIN; SELECT * FROM audit.consumers WHERE name = 'busy' FOR UPDATE;")
        .unwrap();
    db.client()
        .batch_execute("INSERT INTO items VALUES (1, 'x')")
        .unwrap();
    let out = follow_once(
        &db.conninfo("postgres"),
        &["--consumer", "busy", "--stdout"],
    );
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("being followed by another process"),
        "{}",
        out.stderr
    );
    holder.batch_execute("ROLLBACK").unwrap();
}

#[test]
fn transaction_ids_are_ordered_as_numbers_not_as_text() {
    let db = TestDb::new();
    // Old transactions whose ids cross powers of ten: text order would put 100 before 99.
    db.client()
        .batch_execute(
            "INSERT INTO audit.events (txid, actor, db_user, entity, action, subject_id)
             VALUES ('100', 'a', 'a', 'item', 'create', 'second'),
                    ('99', 'a', 'a', 'item', 'create', 'first'),
                    ('9', 'a', 'a', 'item', 'create', 'zeroth')",
        )
        .unwrap();
    let out = follow_once(&db.conninfo("postgres"), &["--consumer", "n", "--stdout"]);
    let subjects = subject_ids(&out.stdout);
    assert_eq!(subjects, ["zeroth", "first", "second"]);
    let again = follow_once(&db.conninfo("postgres"), &["--consumer", "n", "--stdout"]);
    assert_eq!(again.stdout, "", "nothing is delivered twice");
}
