//! `audit-trail export`, run as a real binary against the real server.

use std::path::Path;

use audit_trail_tests::sidecar::{command, run, Run};
use audit_trail_tests::TestDb;

/// 400 events spread over the last 16 days (at half past each hour, so a relative bound
/// computed a few seconds apart cannot cut differently), with varied fields.
fn seeded_db() -> TestDb {
    let db = TestDb::new();
    db.client()
        .batch_execute(
            "INSERT INTO audit.events (occurred_at, actor, db_user, source, entity, action,
                                       table_name, subject_id)
             SELECT date_trunc('hour', now()) - (g || ' hours')::interval - interval '30 minutes',
                    (ARRAY['alice@example.com', 'bob@example.com', 'carol@example.com'])[1 + g % 3],
                    'app',
                    (ARRAY['manual', 'import', 'api'])[1 + g % 3 / 2 + g % 2],
                    (ARRAY['contact', 'group', 'user'])[1 + g % 5 % 3],
                    (ARRAY['create', 'update', 'delete', 'export'])[1 + g % 4],
                    (ARRAY['crm.contacts', 'crm.groups', NULL])[1 + g % 7 % 3],
                    (g % 7)::text
               FROM generate_series(0, 399) AS g",
        )
        .expect("seed events");
    db
}

fn export(db: &TestDb, args: &[&str]) -> Run {
    run(command()
        .arg("export")
        .args(["--db", &db.conninfo("postgres")])
        .args(args))
}

fn ids_from_jsonl(stdout: &str) -> Vec<i64> {
    stdout
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("a JSON line");
            v["id"].as_i64().expect("an id")
        })
        .collect()
}

fn ids_where(db: &TestDb, condition: &str) -> Vec<i64> {
    db.client()
        .query(
            &format!("SELECT id FROM audit.events WHERE {condition} ORDER BY occurred_at, id"),
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

fn sql_time(db: &TestDb, expr: &str) -> String {
    db.client()
        .query_one(
            &format!(
                "SELECT to_char(({expr}) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
            ),
            &[],
        )
        .unwrap()
        .get(0)
}

#[test]
fn every_filter_alone_and_combined_returns_exactly_the_matching_rows() {
    let db = seeded_db();
    let t1 = sql_time(&db, "date_trunc('day', now()) - interval '10 days'");
    let t2 = sql_time(&db, "date_trunc('day', now()) - interval '3 days'");
    let cases: Vec<(Vec<String>, String)> = vec![
        (vec![], "true".into()),
        (vec!["--since".into(), "7d".into()], "occurred_at >= now() - interval '7 days'".into()),
        (vec!["--since".into(), "36h".into()], "occurred_at >= now() - interval '36 hours'".into()),
        (vec!["--since".into(), t1.clone()], format!("occurred_at >= '{t1}'")),
        (vec!["--until".into(), t2.clone()], format!("occurred_at < '{t2}'")),
        (
            vec!["--since".into(), t1.clone(), "--until".into(), t2.clone()],
            format!("occurred_at >= '{t1}' AND occurred_at < '{t2}'"),
        ),
        (vec!["--actor".into(), "alice@example.com".into()], "actor = 'alice@example.com'".into()),
        (
            vec!["--actor".into(), "alice@example.com".into(), "--actor".into(), "bob@example.com".into()],
            "actor IN ('alice@example.com', 'bob@example.com')".into(),
        ),
        (vec!["--entity".into(), "group".into()], "entity = 'group'".into()),
        (
            vec!["--action".into(), "update".into(), "--action".into(), "delete".into()],
            "action IN ('update', 'delete')".into(),
        ),
        (vec!["--table".into(), "crm.contacts".into()], "table_name = 'crm.contacts'".into()),
        (vec!["--subject".into(), "3".into()], "subject_id = '3'".into()),
        (vec!["--source".into(), "import".into()], "source = 'import'".into()),
        (
            vec![
                "--since".into(), t1.clone(), "--until".into(), "now".into(),
                "--actor".into(), "carol@example.com".into(), "--entity".into(), "contact".into(),
                "--entity".into(), "user".into(), "--action".into(), "create".into(),
                "--action".into(), "update".into(), "--source".into(), "manual".into(),
            ],
            format!(
                "occurred_at >= '{t1}' AND occurred_at < now() AND actor = 'carol@example.com' \
                 AND entity IN ('contact', 'user') AND action IN ('create', 'update') AND source = 'manual'"
            ),
        ),
        (
            vec!["--table".into(), "crm.groups".into(), "--subject".into(), "4".into()],
            "table_name = 'crm.groups' AND subject_id = '4'".into(),
        ),
    ];
    for (args, condition) in cases {
        let expected = ids_where(&db, &condition);
        let mut all = vec!["--format", "jsonl"];
        all.extend(args.iter().map(String::as_str));
        let out = export(&db, &all);
        assert_eq!(out.code, 0, "{args:?}: {}", out.stderr);
        assert_eq!(
            ids_from_jsonl(&out.stdout),
            expected,
            "{args:?} vs {condition}"
        );
        if !args.is_empty() && !condition.contains("now()") {
            assert!(
                !expected.is_empty(),
                "case {args:?} selects nothing: a weak test"
            );
        }
    }
}

fn parse_csv(bytes: &[u8]) -> (Vec<String>, Vec<csv::StringRecord>) {
    let mut reader = csv::ReaderBuilder::new().from_reader(bytes);
    let header = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    let records = reader.records().map(|r| r.expect("valid CSV")).collect();
    (header, records)
}

#[test]
fn csv_has_the_contract_header_and_round_trips_through_a_csv_reader() {
    let db = seeded_db();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("out.csv");
    let out = export(
        &db,
        &["--entity", "group", "--output", file.to_str().unwrap()],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.is_empty());
    let bytes = std::fs::read(&file).unwrap();
    let expected_rows = ids_where(&db, "entity = 'group'").len();
    assert_eq!(
        out.stderr.trim(),
        format!(
            "audit-trail: exported {expected_rows} events to {}",
            file.display()
        )
    );
    assert!(bytes.starts_with(b"id,occurred_at,"), "no BOM unless asked");
    let (header, records) = parse_csv(&bytes);
    assert_eq!(
        &header[..12],
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
    let expected = ids_where(&db, "entity = 'group'");
    let got: Vec<i64> = records.iter().map(|r| r[0].parse().unwrap()).collect();
    assert_eq!(got, expected);
    for r in &records {
        // RFC 3339 in UTC
        assert!(chrono_like_utc(&r[1]), "{}", &r[1]);
        assert_eq!(&r[5], "group");
    }
    // the file is private to its owner
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}

fn chrono_like_utc(s: &str) -> bool {
    s.len() == 27 && s.as_bytes()[10] == b'T' && s.ends_with('Z')
}

#[test]
fn dangerous_cells_are_neutralised_and_everything_else_is_kept_exactly() {
    let db = TestDb::new();
    let nasty = [
        ("=HYPERLINK(\"http://x\",\"y\")", true),
        ("+1", true),
        ("-1+2", true),
        ("@SUM(A1)", true),
        ("\tlead tab", true),
        ("\rlead cr", true),
        ("has \"quotes\", commas, and\nnew\r\nlines", false),
        ("plain@example.com", false),
        ("naïve ünïcode ✓", false),
    ];
    let mut c = db.client();
    c.batch_execute(
        "CREATE TABLE contacts (name text PRIMARY KEY, note text);
         SELECT audit.track('contacts', 'contact', subject_column => 'name');",
    )
    .unwrap();
    for (value, _) in &nasty {
        // the value as the actor, as the subject id and inside the row data
        let mut tx = c.transaction().unwrap();
        tx.execute("SELECT set_config('audit.actor', $1, true)", &[value])
            .unwrap();
        tx.execute("INSERT INTO contacts VALUES ($1, $1)", &[value])
            .unwrap();
        tx.commit().unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("nasty.csv");
    let out = export(&db, &["--entity", "contact", "-o", file.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let (_, records) = parse_csv(&std::fs::read(&file).unwrap());
    assert_eq!(records.len(), nasty.len());
    for (record, (value, dangerous)) in records.iter().zip(nasty) {
        for (column, cell) in [("actor", &record[2]), ("subject_id", &record[7])] {
            if dangerous {
                assert_eq!(cell, format!("'{value}"), "{column} of {value:?}");
            } else {
                assert_eq!(cell, value, "{column} of {value:?}");
            }
        }
        // JSON cells start with '{' and carry the original value intact
        let data: serde_json::Value = serde_json::from_str(&record[11]).unwrap();
        assert_eq!(data["note"], value);
        // numbers we generate are never prefixed
        assert!(record[0].chars().all(|ch| ch.is_ascii_digit()));
    }
}

#[test]
fn bom_jsonl_and_time_zone() {
    let db = seeded_db();
    let out = export(&db, &["--bom", "--subject", "1"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.starts_with("\u{feff}id,occurred_at,"));

    let out = export(
        &db,
        &[
            "--format",
            "jsonl",
            "--subject",
            "1",
            "--tz",
            "Asia/Kolkata",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let first: serde_json::Value =
        serde_json::from_str(out.stdout.lines().next().unwrap()).unwrap();
    assert!(
        first["occurred_at"].as_str().unwrap().ends_with("+05:30"),
        "{first}"
    );
    assert_eq!(first["subject_id"], "1");
    assert!(first["changed_fields"].is_null());

    let out = export(&db, &["--format", "jsonl", "--bom"]);
    assert_eq!(out.code, 2);
}

#[test]
fn each_export_is_recorded_with_its_filters_and_row_count() {
    let db = seeded_db();
    let out = export(
        &db,
        &["--format", "jsonl", "--entity", "user", "--source", "api"],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let rows = out.stdout.lines().count() as i64;
    let (recorded, end) = audit_trail_tests::last_export(&mut db.client());
    let recorded = &recorded;
    assert_eq!(
        (recorded.entity.as_str(), recorded.action.as_str()),
        ("audit_log", "export")
    );
    assert_eq!(recorded.source, "cli");
    assert_eq!(recorded.db_user, "postgres");
    let details = recorded.details.as_ref().unwrap();
    assert_eq!(details["rows"], rows);
    assert_eq!(details["format"], "jsonl");
    assert_eq!(details["status"], "started");
    let end = end.expect("its end").details.expect("details");
    assert_eq!(
        (end["rows"].as_i64(), end["complete"].as_bool()),
        (Some(rows), Some(true))
    );
    assert_eq!(details["filters"]["entities"], serde_json::json!(["user"]));
    assert_eq!(details["filters"]["source"], "api");
    // and it shows in the export report
    let summary: String = db
        .client()
        .query_one(
            "SELECT summary FROM audit.export_activity ORDER BY id DESC LIMIT 1",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(
        summary,
        format!("postgres exported {rows} audit events (cli)")
    );
}

#[test]
fn a_non_admin_gets_exit_3_and_no_file() {
    let db = seeded_db();
    let role = db.create_role("nosy", "LOGIN");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("out.csv");
    let out = run(command()
        .args(["export", "--db", &db.conninfo(&role), "-o"])
        .arg(&file));
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert_eq!(
        out.stderr.trim(),
        format!(
            "audit-trail: permission denied: role \"{role}\" is not a member of audit_admin \
             (a DBA can run: GRANT audit_admin TO \"{role}\")"
        )
    );
    assert_dir_empty(dir.path());
    // a member can
    db.client()
        .batch_execute(&format!("GRANT audit_admin TO {role}"))
        .unwrap();
    let out = run(command()
        .args(["export", "--db", &db.conninfo(&role), "-o"])
        .arg(&file));
    assert_eq!(out.code, 0, "{}", out.stderr);
}

fn assert_dir_empty(dir: &Path) {
    let left: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn bad_input_gets_one_line_the_right_exit_code_and_no_file() {
    let db = seeded_db();
    let auditor = db.create_role("auditor", "LOGIN PASSWORD 'right' IN ROLE audit_admin");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("out.csv");
    let f = file.to_str().unwrap();
    let conninfo = db.conninfo("postgres");
    let cases: Vec<(Vec<String>, i32, &str)> = vec![
        (
            vec!["--frobnicate".into()],
            2,
            "unexpected argument '--frobnicate'",
        ),
        (
            vec!["--since".into(), "last tuesday".into()],
            2,
            "--since: cannot read \"last tuesday\"",
        ),
        (
            vec!["--until".into(), "2026-02-30".into()],
            2,
            "--until: cannot read",
        ),
        (
            vec![
                "--since".into(),
                "2026-02-01".into(),
                "--until".into(),
                "2026-01-01".into(),
            ],
            2,
            "must be before --until",
        ),
        (
            vec!["--format".into(), "xlsx".into()],
            2,
            "invalid value 'xlsx' for '--format",
        ),
        (
            vec!["--tz".into(), "Mars/Base".into()],
            2,
            "unknown time zone \"Mars/Base\"",
        ),
        (
            vec!["--actor".into(), " ".into()],
            2,
            "--actor: value must not be empty",
        ),
        (
            vec![
                "--db".into(),
                "host=127.0.0.1 port=1 user=x dbname=x".into(),
            ],
            1,
            "cannot connect to x@127.0.0.1:1/x",
        ),
        (
            vec![
                "--db".into(),
                db.cluster.tcp_url(&db.name, &auditor, "wrong"),
            ],
            1,
            "password authentication failed",
        ),
        (
            vec!["--db".into(), "port=notanumber".into()],
            2,
            "--db: malformed connection string",
        ),
        (
            vec!["--db".into(), format!("{conninfo} dbname=no_such_db")],
            1,
            "does not exist",
        ),
    ];
    for (args, code, message) in cases {
        let mut cmd = command();
        cmd.arg("export");
        if !args.iter().any(|a| a == "--db") {
            cmd.args(["--db", &conninfo]);
        }
        let out = run(cmd.args(&args).args(["-o", f]));
        assert_eq!(out.code, code, "{args:?}: {}", out.stderr);
        assert_eq!(
            out.stderr.lines().count(),
            1,
            "{args:?}: one line, got {:?}",
            out.stderr
        );
        assert!(out.stderr.contains(message), "{args:?}: {:?}", out.stderr);
        assert!(
            !out.stderr.contains("wrong"),
            "the password leaked: {:?}",
            out.stderr
        );
        assert_dir_empty(dir.path());
    }
    // the right password works, over TCP with SCRAM
    let out = run(command().args([
        "export",
        "--db",
        &db.cluster.tcp_url(&db.name, &auditor, "right"),
        "-o",
        f,
    ]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(file.exists());
}

#[test]
fn a_failure_after_reading_leaves_no_file_behind() {
    let db = seeded_db();
    let auditor = db.create_role("auditor", "LOGIN IN ROLE audit_admin");
    // Reading works, recording the export cannot: the export must not land.
    db.client()
        .batch_execute(
            "REVOKE EXECUTE ON FUNCTION audit.log_event(text, text, text, jsonb) FROM PUBLIC",
        )
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("out.csv");
    let out = run(command()
        .args(["export", "--db", &db.conninfo(&auditor), "-o"])
        .arg(&file));
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("log_event"), "{}", out.stderr);
    assert_dir_empty(dir.path());
}

#[test]
fn connection_from_pg_environment_variables_and_database_url() {
    let db = seeded_db();
    let dir = db.cluster.dir.to_str().unwrap().to_owned();
    let out = run(command()
        .args(["export", "--format", "jsonl", "--subject", "2"])
        .env("PGHOST", &dir)
        .env("PGPORT", db.cluster.port.to_string())
        .env("PGUSER", "postgres")
        .env("PGDATABASE", &db.name));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        ids_from_jsonl(&out.stdout),
        ids_where(&db, "subject_id = '2'")
    );

    let auditor = db.create_role("auditor", "LOGIN PASSWORD 's3cret' IN ROLE audit_admin");
    let out = run(command()
        .args(["export", "--format", "jsonl", "--subject", "2"])
        .env(
            "DATABASE_URL",
            db.cluster.tcp_url(&db.name, &auditor, "s3cret"),
        ));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        ids_from_jsonl(&out.stdout),
        ids_where(&db, "subject_id = '2'")
    );
}

#[test]
fn an_export_cut_short_on_stdout_is_still_recorded_as_incomplete() {
    let db = TestDb::new();
    db.client()
        .batch_execute(
            "INSERT INTO audit.events (actor, db_user, entity, action, new_data)
             SELECT 'bulk', 'app', 'contact', 'create', jsonb_build_object('n', repeat('x', 300))
               FROM generate_series(1, 5400)",
        )
        .unwrap();
    let mut child = command()
        .args(["export", "--db", &db.conninfo("postgres")])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Read a little, then hang up, as `| head` does.
    let mut first = [0u8; 1000];
    std::io::Read::read_exact(child.stdout.as_mut().unwrap(), &mut first).unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_ne!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    // Recorded before the first row with all it was about to send, then cut off.
    let (recorded, end) = audit_trail_tests::last_export(&mut db.client());
    assert_eq!(recorded.details.as_ref().unwrap()["rows"], 5400);
    let details = end.expect("its end").details.unwrap();
    assert_eq!(details["complete"], false);
    assert_eq!(details["status"], "cut_off");
    let rows = details["rows"].as_u64().unwrap();
    assert!(rows > 0 && rows < 5400, "{details}");
}
