//! `audit-trail maintain` and `audit-trail archive`: history seeded into past months, moved
//! into partitions of their own by maintain, written as Parquet, and read back with the
//! `parquet` crate and with DuckDB, row for row against `audit.events`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use arrow_array::cast::AsArray;
use arrow_array::types::{Int64Type, TimestampMicrosecondType};
use arrow_array::Array;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use audit_trail_tests::sidecar::{command, run, Run};
use audit_trail_tests::TestDb;

/// The months the seeded history covers, as partition names.
const MONTHS: [&str; 3] = [
    "audit.events_20250101",
    "audit.events_20250201",
    "audit.events_20250301",
];

/// 300 events, 100 in each of January, February and March 2025, inserted while
/// `audit.events` is empty (the only time SQL may add rows), with every kind of value the
/// columns hold: NULLs, empty and two-element lists, IPv4 and IPv6 addresses, and JSON with
/// non-ASCII text, an emoji, a JSON null, quotes and a line break.
fn seeded_db() -> TestDb {
    let db = TestDb::new();
    db.client()
        .batch_execute(
            r#"INSERT INTO audit.events (occurred_at, actor, db_user, source, client_addr,
                                        application_name, entity, action, table_name, subject_id,
                                        changed_fields, old_data, new_data, context, details)
               SELECT timestamptz '2025-01-01 00:00:00+00' + (g / 100) * interval '1 month'
                          + (g % 100) * interval '6 hours 1.234567 seconds',
                      'user' || g % 4 || '@example.com', 'crm_app',
                      (ARRAY['manual', 'import', 'api'])[1 + g % 3],
                      CASE g % 3 WHEN 0 THEN inet '10.0.0.7' WHEN 1 THEN inet '2001:db8::1' END,
                      CASE WHEN g % 2 = 0 THEN 'crm-web' END,
                      'contact', (ARRAY['create', 'update', 'delete', 'export'])[1 + g % 4],
                      CASE WHEN g % 4 <> 3 THEN 'crm.contacts' END, g::text,
                      CASE g % 4 WHEN 1 THEN '{email,name}'::text[] WHEN 3 THEN '{}'::text[] END,
                      CASE WHEN g % 4 IN (1, 2)
                           THEN jsonb_build_object('email', 'old' || g || '@example.com') END,
                      CASE WHEN g % 4 IN (0, 1)
                           THEN jsonb_build_object('name', 'Zoë 😀 «' || g || '»', 'note', NULL,
                                                   'score', 1.50, 'tags', jsonb_build_array('a', NULL)) END,
                      CASE WHEN g % 5 = 0 THEN '{"request_id": "r-1"}'::jsonb END,
                      CASE WHEN g % 4 = 3
                           THEN jsonb_build_object('rows', 5000, 'quote', E'she said "hi"\n') END
                 FROM generate_series(0, 299) AS g"#,
        )
        .expect("seed history");
    db
}

fn cli(db: &TestDb, role: &str, args: &[&str]) -> Run {
    run(command().args(["--db", &db.conninfo(role)]).args(args))
}

fn maintain(db: &TestDb, role: &str) -> serde_json::Value {
    let out = cli(db, role, &["maintain"]);
    assert_eq!(out.code, 0, "maintain: {}", out.stderr);
    serde_json::from_str(&out.stdout).expect("maintain prints JSON")
}

/// The role the archive command runs as: a member of audit_service (which reads as
/// audit_admin does, and may record archives).
fn admin(db: &TestDb) -> String {
    db.create_role("archivist", "LOGIN IN ROLE audit_service")
}

/// The month of 2025 (1 to 3) of a time in microseconds since 1970.
fn month_of(us: i64) -> i64 {
    const FEB: i64 = 1_738_368_000_000_000; // 2025-02-01T00:00:00Z
    const MAR: i64 = 1_740_787_200_000_000; // 2025-03-01T00:00:00Z
    match us {
        _ if us < FEB => 1,
        _ if us < MAR => 2,
        _ => 3,
    }
}

/// One event, column for column, in forms every reader can produce exactly.
#[derive(Debug, Clone, PartialEq)]
struct Row {
    id: i64,
    occurred_us: i64,
    actor: String,
    db_user: String,
    source: String,
    entity: String,
    action: String,
    subject_id: Option<String>,
    table_name: Option<String>,
    changed_fields: Option<Vec<Option<String>>>,
    old_data: Option<String>,
    new_data: Option<String>,
    client_addr: Option<String>,
    application_name: Option<String>,
    context: Option<String>,
    details: Option<String>,
    txid: i64,
}

/// The seeded months' events as the database holds them, by id.
fn db_rows(db: &TestDb) -> Vec<Row> {
    db.client()
        .query(
            "SELECT id, (extract(epoch FROM occurred_at) * 1000000)::bigint, actor, db_user,
                    source, entity, action, subject_id, table_name, changed_fields,
                    old_data::text, new_data::text, host(client_addr), application_name,
                    context::text, details::text, txid::text::bigint
               FROM audit.events WHERE occurred_at < '2025-04-01 00:00:00+00' ORDER BY id",
            &[],
        )
        .expect("read audit.events")
        .iter()
        .map(|r| Row {
            id: r.get(0),
            occurred_us: r.get(1),
            actor: r.get(2),
            db_user: r.get(3),
            source: r.get(4),
            entity: r.get(5),
            action: r.get(6),
            subject_id: r.get(7),
            table_name: r.get(8),
            changed_fields: r.get(9),
            old_data: r.get(10),
            new_data: r.get(11),
            client_addr: r.get(12),
            application_name: r.get(13),
            context: r.get(14),
            details: r.get(15),
            txid: r.get(16),
        })
        .collect()
}

/// Every file under `dir` (recursively), as paths relative to it, sorted.
fn files_under(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    if !dir.exists() {
        return found;
    }
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for entry in fs::read_dir(&d).expect("list") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let rel = path.strip_prefix(dir).expect("under dir");
                found.push(rel.display().to_string());
            }
        }
    }
    found.sort();
    found
}

/// The archive's rows read with the `parquet` crate (arrow reader), by id.
fn parquet_rows(dir: &Path) -> Vec<Row> {
    let mut rows = Vec::new();
    for rel in files_under(dir) {
        if !rel.ends_with(".parquet") {
            continue;
        }
        let file = fs::File::open(dir.join(&rel)).expect("open");
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .expect("a Parquet file")
            .build()
            .expect("reader");
        for batch in reader {
            let batch = batch.expect("a batch");
            let col = |name: &str| {
                batch
                    .column_by_name(name)
                    .unwrap_or_else(|| panic!("no column {name}"))
                    .clone()
            };
            let int = |name: &str, i: usize| col(name).as_primitive::<Int64Type>().value(i);
            let text = |name: &str, i: usize| {
                let c = col(name);
                let s = c.as_string::<i32>();
                (!s.is_null(i)).then(|| s.value(i).to_owned())
            };
            let times = col("occurred_at");
            let times = times.as_primitive::<TimestampMicrosecondType>();
            let lists = col("changed_fields");
            let lists = lists.as_list::<i32>();
            for i in 0..batch.num_rows() {
                let changed_fields = (!lists.is_null(i)).then(|| {
                    let items = lists.value(i);
                    let items = items.as_string::<i32>();
                    (0..items.len())
                        .map(|j| (!items.is_null(j)).then(|| items.value(j).to_owned()))
                        .collect()
                });
                rows.push(Row {
                    id: int("id", i),
                    occurred_us: times.value(i),
                    actor: text("actor", i).expect("actor"),
                    db_user: text("db_user", i).expect("db_user"),
                    source: text("source", i).expect("source"),
                    entity: text("entity", i).expect("entity"),
                    action: text("action", i).expect("action"),
                    subject_id: text("subject_id", i),
                    table_name: text("table_name", i),
                    changed_fields,
                    old_data: text("old_data", i),
                    new_data: text("new_data", i),
                    client_addr: text("client_addr", i),
                    application_name: text("application_name", i),
                    context: text("context", i),
                    details: text("details", i),
                    txid: int("txid", i),
                });
            }
        }
    }
    rows.sort_by_key(|r| r.id);
    rows
}

/// The Python of the project's DuckDB virtualenv (scripts/setup.sh makes it).
fn duckdb_python() -> PathBuf {
    let python = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv-tools/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/setup.sh (make e2e does)",
        python.display()
    );
    python
}

/// DuckDB's reading of the archive (Hive partitioning on): the rows, by id, each with the
/// `year` and `month` the directory names give it, and the types DuckDB sees.
fn duckdb_rows(dir: &Path) -> (Vec<(Row, i64, i64)>, Vec<String>) {
    const SCRIPT: &str = r#"
import duckdb, json, sys
glob = sys.argv[1].replace("'", "''")
src = f"read_parquet('{glob}/**/*.parquet', hive_partitioning=true)"
types = duckdb.sql(f"SELECT typeof(id), typeof(occurred_at), typeof(changed_fields), typeof(txid), typeof(new_data) FROM {src} LIMIT 1").fetchall()[0]
print(json.dumps(list(types)))
rows = duckdb.sql(f"""SELECT id, epoch_us(occurred_at), actor, db_user, source, entity, action,
                             subject_id, table_name, changed_fields, old_data, new_data,
                             client_addr, application_name, context, details, txid,
                             CAST(year AS BIGINT), CAST(month AS BIGINT)
                        FROM {src} ORDER BY id""").fetchall()
for r in rows:
    print(json.dumps(list(r), ensure_ascii=False))
"#;
    let out = Command::new(duckdb_python())
        .args(["-c", SCRIPT])
        .arg(dir)
        .output()
        .expect("run DuckDB");
    assert!(
        out.status.success(),
        "DuckDB: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).expect("UTF-8");
    let mut lines = stdout.lines();
    let types: Vec<String> =
        serde_json::from_str(lines.next().expect("the types line")).expect("JSON");
    let rows = lines
        .map(|line| {
            let v: Vec<serde_json::Value> = serde_json::from_str(line).expect("a JSON row");
            let text = |i: usize| v[i].as_str().map(str::to_owned);
            let int = |i: usize| v[i].as_i64().unwrap_or_else(|| panic!("{i}: {line}"));
            let row = Row {
                id: int(0),
                occurred_us: int(1),
                actor: text(2).expect("actor"),
                db_user: text(3).expect("db_user"),
                source: text(4).expect("source"),
                entity: text(5).expect("entity"),
                action: text(6).expect("action"),
                subject_id: text(7),
                table_name: text(8),
                changed_fields: v[9].as_array().map(|items| {
                    items
                        .iter()
                        .map(|x| x.as_str().map(str::to_owned))
                        .collect()
                }),
                old_data: text(10),
                new_data: text(11),
                client_addr: text(12),
                application_name: text(13),
                context: text(14),
                details: text(15),
                txid: int(16),
            };
            (row, int(17), int(18))
        })
        .collect();
    (rows, types)
}

#[test]
fn maintain_then_archive_writes_every_column_and_parquet_and_duckdb_read_it_back() {
    let db = seeded_db();
    let role = admin(&db);
    let did = maintain(&db, &role);
    assert!(did.is_object(), "maintain returns an object: {did}");

    let closed: Vec<String> = db
        .client()
        .query(
            "SELECT partition FROM audit.partitions
              WHERE NOT is_default AND closed AND NOT archived ORDER BY from_time",
            &[],
        )
        .expect("audit.partitions")
        .iter()
        .map(|r| r.get(0))
        .collect();
    for month in MONTHS {
        assert!(
            closed.iter().any(|p| p == month),
            "{month} not in {closed:?}"
        );
    }
    let in_default: i64 = db
        .client()
        .query_one(
            "SELECT count(*) FROM audit.events_default WHERE occurred_at < '2025-04-01+00'",
            &[],
        )
        .expect("count")
        .get(0);
    assert_eq!(
        in_default, 0,
        "maintain moved the history out of the default partition"
    );

    let expected = db_rows(&db);
    assert_eq!(expected.len(), 300);

    let out_dir = tempfile::tempdir().expect("tempdir");
    let dir = out_dir.path().to_str().expect("UTF-8 path");
    let out = cli(&db, &role, &["archive", "--output-dir", dir]);
    assert_eq!(out.code, 0, "archive: {}", out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), closed.len() + 1, "{}", out.stdout);
    assert!(
        lines[0].starts_with("audit.events_20250101: 100 rows, "),
        "{}",
        out.stdout
    );
    assert!(
        lines.last().is_some_and(
            |l| l.starts_with(&format!("archived {} partitions: 300 rows", closed.len()))
        ),
        "{}",
        out.stdout
    );

    // The layout: Hive directories, one file and one manifest per partition, nothing else
    // (no temporary file left behind).
    let files = files_under(&database_dir(&db, out_dir.path()));
    for (month, stem) in [("01", "20250101"), ("02", "20250201"), ("03", "20250301")] {
        for suffix in [".parquet", ".manifest.json"] {
            let rel = format!("year=2025/month={month}/events_{stem}{suffix}");
            assert!(files.contains(&rel), "{rel} not in {files:?}");
        }
    }
    assert!(
        files
            .iter()
            .all(|f| !f.contains(".tmp") && !f.contains("/.")),
        "{files:?}"
    );

    // Row for row, every column, through two independent readers.
    assert_eq!(parquet_rows(out_dir.path()), expected);
    let (duck, types) = duckdb_rows(out_dir.path());
    assert_eq!(
        types,
        [
            "BIGINT",
            "TIMESTAMP WITH TIME ZONE",
            "VARCHAR[]",
            "BIGINT",
            "VARCHAR"
        ]
    );
    let duck_rows: Vec<Row> = duck.iter().map(|(r, _, _)| r.clone()).collect();
    assert_eq!(duck_rows, expected);
    // Each row in its own month's directory.
    duckdb_months(&duck);
    // The JSON columns are JSON text, non-ASCII and JSON nulls included.
    let with_name = expected
        .iter()
        .find_map(|r| r.new_data.as_deref())
        .expect("a new_data value");
    let parsed: serde_json::Value = serde_json::from_str(with_name).expect("JSON text");
    assert!(parsed["name"]
        .as_str()
        .is_some_and(|n| n.starts_with("Zoë 😀 «")));
    assert!(parsed["note"].is_null() && parsed.get("note").is_some());

    // The manifest, and the database's record of each archive.
    let manifest: serde_json::Value = serde_json::from_slice(
        &fs::read(
            database_dir(&db, out_dir.path())
                .join("year=2025/month=02/events_20250201.manifest.json"),
        )
        .expect("manifest"),
    )
    .expect("JSON");
    assert_eq!(manifest["schema_version"], 3);
    // Each database's archives lie under a directory of its own, which the manifest names.
    assert_eq!(manifest["database"]["name"], db.name.as_str());
    let rel = database_rel(&db);
    assert!(
        files_under(out_dir.path())
            .iter()
            .all(|f| f.starts_with(&format!("{rel}/year=2025/"))),
        "{:?}",
        files_under(out_dir.path())
    );
    assert_eq!(manifest["partition"], "audit.events_20250201");
    assert_eq!(manifest["rows"], 100);
    assert_eq!(manifest["from_time"], "2025-02-01T00:00:00Z");
    assert_eq!(manifest["to_time"], "2025-03-01T00:00:00Z");
    assert_eq!(manifest["files"][0]["path"], "events_20250201.parquet");
    assert_eq!(manifest["files"][0]["rows"], 100);
    assert_eq!(
        manifest["files"][0]["sha256"].as_str().map(str::len),
        Some(64)
    );
    let feb: Vec<i64> = expected
        .iter()
        .filter(|r| month_of(r.occurred_us) == 2)
        .map(|r| r.id)
        .collect();
    assert_eq!(
        manifest["first_id"],
        feb.iter().min().copied().expect("ids")
    );
    assert_eq!(manifest["last_id"], feb.iter().max().copied().expect("ids"));

    let archives = db
        .client()
        .query(
            "SELECT partition, rows, first_id, last_id, location, manifest, archived_by
               FROM audit.archives ORDER BY from_time",
            &[],
        )
        .expect("audit.archives");
    assert_eq!(archives.len(), closed.len());
    for month in MONTHS {
        let row = archives
            .iter()
            .find(|r| r.get::<_, String>(0) == month)
            .unwrap_or_else(|| panic!("no audit.archives row for {month}"));
        assert_eq!(row.get::<_, i64>(1), 100);
        let location: String = row.get(4);
        assert!(
            location.starts_with(dir) && location.ends_with(".manifest.json"),
            "{location}"
        );
        let recorded: serde_json::Value = row.get(5);
        assert_eq!(recorded["partition"], month);
        assert_eq!(row.get::<_, String>(6), role);
    }
    let archive_events: i64 = db
        .client()
        .query_one(
            "SELECT count(*) FROM audit.events WHERE entity = 'audit_log' AND action = 'archive'",
            &[],
        )
        .expect("count")
        .get(0);
    assert_eq!(archive_events, closed.len() as i64);

    // A second run has nothing new to archive and writes nothing.
    let again = cli(&db, &role, &["archive", "--output-dir", dir]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(again.stdout.trim(), "nothing to archive");
    assert_eq!(files_under(&database_dir(&db, out_dir.path())), files);

    // And the check finds everything intact.
    let check = run(command()
        .args(["archive", "--check"])
        .arg(database_dir(&db, out_dir.path())));
    assert_eq!(check.code, 0, "{}", check.stderr);
    assert!(
        check
            .stdout
            .contains("ok year=2025/month=01/events_20250101.parquet: 100 rows"),
        "{}",
        check.stdout
    );
    assert!(check.stdout.contains("all intact"), "{}", check.stdout);
}

/// Where `archive` writes `db`'s archives, relative to its --output-dir:
/// `cluster=SYSID/database=NAME`.
fn database_rel(db: &TestDb) -> String {
    let sysid: String = db
        .client()
        .query_one(
            "SELECT system_identifier::text FROM pg_catalog.pg_control_system()",
            &[],
        )
        .expect("the system identifier")
        .get(0);
    format!("cluster={sysid}/database={}", db.name)
}

fn database_dir(db: &TestDb, out: &Path) -> PathBuf {
    out.join(database_rel(db))
}

fn copy_tree(from: &Path, to: &Path) {
    for rel in files_under(from) {
        let target = to.join(&rel);
        fs::create_dir_all(target.parent().expect("a parent")).expect("mkdir");
        fs::copy(from.join(&rel), &target).expect("copy");
    }
}

#[test]
fn check_names_the_truncated_or_altered_file_and_exits_4() {
    let db = seeded_db();
    maintain(&db, "postgres");
    let original = tempfile::tempdir().expect("tempdir");
    let out = cli(
        &db,
        "postgres",
        &[
            "archive",
            "--output-dir",
            original.path().to_str().expect("UTF-8"),
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);

    let target = format!(
        "{}/year=2025/month=02/events_20250201.parquet",
        database_rel(&db)
    );
    let target = target.as_str();
    let truncated = truncated_copy(original.path(), target);

    let altered = tempfile::tempdir().expect("tempdir");
    copy_tree(original.path(), altered.path());
    let path = altered.path().join(target);
    let mut bytes = fs::read(&path).expect("read");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x20;
    fs::write(&path, &bytes).expect("write");

    for (dir, what) in [(&truncated, "truncated"), (&altered, "altered")] {
        let check = run(command().args(["archive", "--check"]).arg(dir.path()));
        assert_eq!(check.code, 4, "{what}: {} {}", check.stdout, check.stderr);
        assert_eq!(check.stderr.lines().count(), 1, "{}", check.stderr);
        assert!(
            check.stderr.contains(&format!("{target}: {what}")),
            "{what}: {}",
            check.stderr
        );
    }
    let missing = tempfile::tempdir().expect("tempdir");
    copy_tree(original.path(), missing.path());
    fs::remove_file(missing.path().join(target)).expect("rm");
    let check = run(command().args(["archive", "--check"]).arg(missing.path()));
    assert_eq!(check.code, 4, "{}", check.stderr);
    assert!(
        check.stderr.contains(&format!("{target}: missing")),
        "{}",
        check.stderr
    );

    let intact = run(command().args(["archive", "--check"]).arg(original.path()));
    assert_eq!(intact.code, 0, "{}", intact.stderr);
}

fn archives(db: &TestDb) -> i64 {
    db.client()
        .query_one("SELECT count(*) FROM audit.archives", &[])
        .expect("count")
        .get(0)
}

#[test]
fn bad_output_dirs_and_dates_are_one_line_exit_2_and_leave_nothing() {
    let db = seeded_db();
    maintain(&db, "postgres");
    let scratch = tempfile::tempdir().expect("tempdir");
    let a_file = scratch.path().join("a-file");
    fs::write(&a_file, b"x").expect("write");
    let missing = scratch.path().join("missing");
    // Root writes anywhere a mode allows none; /proc refuses new files to root too.
    let unwritable = if is_root() {
        PathBuf::from("/proc/self")
    } else {
        let d = scratch.path().join("read-only");
        fs::create_dir(&d).expect("mkdir");
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&d, fs::Permissions::from_mode(0o555)).expect("chmod");
        d
    };
    let empty = scratch.path().join("empty");
    fs::create_dir(&empty).expect("mkdir");

    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["--output-dir".into(), missing.display().to_string()],
            "--output-dir",
        ),
        (
            vec!["--output-dir".into(), a_file.display().to_string()],
            "not a directory",
        ),
        (
            vec!["--output-dir".into(), unwritable.display().to_string()],
            "cannot write there",
        ),
        (
            vec![
                "--output-dir".into(),
                empty.display().to_string(),
                "--before".into(),
                "2025-13-45".into(),
            ],
            "--before",
        ),
        (
            vec![
                "--output-dir".into(),
                empty.display().to_string(),
                "--partition".into(),
                "events_19990101".into(),
            ],
            "no such partition",
        ),
        (vec![], "--output-dir"),
    ];
    for (args, says) in cases {
        let mut all = vec!["archive".to_owned()];
        all.extend(args);
        let argv: Vec<&str> = all.iter().map(String::as_str).collect();
        let out = cli(&db, "postgres", &argv);
        assert_eq!(out.code, 2, "{argv:?}: {}", out.stderr);
        assert_eq!(out.stderr.lines().count(), 1, "{argv:?}: {}", out.stderr);
        assert!(out.stderr.contains(says), "{argv:?}: {}", out.stderr);
    }
    assert!(!missing.exists());
    assert!(files_under(&empty).is_empty(), "{:?}", files_under(&empty));
    assert_eq!(archives(&db), 0);
}

#[test]
fn a_failed_write_leaves_no_file_that_looks_complete_and_no_record() {
    let db = seeded_db();
    maintain(&db, "postgres");
    let out_dir = tempfile::tempdir().expect("tempdir");
    // A directory where January's file must go: the rename into place fails after the file
    // was written in full under its temporary name.
    let blocker =
        database_dir(&db, out_dir.path()).join("year=2025/month=01/events_20250101.parquet");
    fs::create_dir_all(blocker.join("occupied")).expect("mkdir");
    let out = cli(
        &db,
        "postgres",
        &[
            "archive",
            "--output-dir",
            out_dir.path().to_str().expect("UTF-8"),
        ],
    );
    assert_eq!(out.code, 1, "{} {}", out.stdout, out.stderr);
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("events_20250101.parquet"),
        "{}",
        out.stderr
    );
    // No file at all: neither the written-out temporary file nor any manifest (the blocking
    // directory is the only thing there).
    assert!(
        files_under(&database_dir(&db, out_dir.path())).is_empty(),
        "{:?}",
        files_under(&database_dir(&db, out_dir.path()))
    );
    assert_eq!(archives(&db), 0);

    // Once the obstacle is gone, the same run completes.
    fs::remove_dir_all(&blocker).expect("rm");
    let out = cli(
        &db,
        "postgres",
        &[
            "archive",
            "--output-dir",
            out_dir.path().to_str().expect("UTF-8"),
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(archives(&db) >= 3);
}

#[test]
fn before_and_partition_choose_what_is_archived_and_record_db_records_it() {
    let db = seeded_db();
    maintain(&db, "postgres");
    let out_dir = tempfile::tempdir().expect("tempdir");
    let dir = out_dir.path().to_str().expect("UTF-8");
    let out = cli(
        &db,
        "postgres",
        &["archive", "--output-dir", dir, "--before", "2025-02-01"],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.starts_with("audit.events_20250101: 100 rows"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("archived 1 partition: 100 rows"),
        "{}",
        out.stdout
    );

    let out = run(command()
        .args(["--db", &db.conninfo("postgres")])
        .args(["--record-db", &db.conninfo("postgres")])
        .args([
            "archive",
            "--output-dir",
            dir,
            "--partition",
            "events_20250301",
        ]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.starts_with("audit.events_20250301: 100 rows"),
        "{}",
        out.stdout
    );
    let archived: Vec<String> = db
        .client()
        .query(
            "SELECT partition FROM audit.archives ORDER BY from_time",
            &[],
        )
        .expect("archives")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(archived, ["audit.events_20250101", "audit.events_20250301"]);

    // Naming an archived partition again skips it with a note.
    let out = cli(
        &db,
        "postgres",
        &[
            "archive",
            "--output-dir",
            dir,
            "--partition",
            "audit.events_20250101",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("already archived"), "{}", out.stderr);
    assert_eq!(out.stdout.trim(), "nothing to archive");

    // The same note as a JSON line for a log collector, its partition a field of its own;
    // AUDIT_TRAIL_LOG=warn leaves it out.
    let args = [
        "archive",
        "--output-dir",
        dir,
        "--partition",
        "audit.events_20250101",
        "--log-format",
        "json",
    ];
    let out = cli(&db, "postgres", &args);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let records: Vec<serde_json::Value> = out
        .stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    assert!(
        records.iter().any(|r| r["level"] == "INFO"
            && r["partition"] == "audit.events_20250101"
            && r["message"]
                .as_str()
                .is_some_and(|m| m.contains("already archived"))),
        "{records:?}"
    );
    let quiet = run(command()
        .env("AUDIT_TRAIL_LOG", "warn")
        .args(["--db", &db.conninfo("postgres")])
        .args(args));
    assert_eq!(quiet.code, 0, "{}", quiet.stderr);
    assert_eq!(quiet.stderr, "");
}

#[test]
fn a_role_outside_audit_admin_gets_exit_3_from_archive_and_maintain() {
    let db = seeded_db();
    let clerk = db.create_role("clerk", "LOGIN");
    let out_dir = tempfile::tempdir().expect("tempdir");
    let dir = out_dir.path().to_str().expect("UTF-8");
    for args in [vec!["maintain"], vec!["archive", "--output-dir", dir]] {
        let out = cli(&db, &clerk, &args);
        assert_eq!(out.code, 3, "{args:?}: {} {}", out.stdout, out.stderr);
        assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
        assert!(out.stderr.contains("audit_admin"), "{}", out.stderr);
    }
    // Called directly, the database refuses the same role.
    let refused = db
        .client_as(&clerk)
        .query_one("SELECT audit.maintain()", &[])
        .expect_err("refused");
    assert_eq!(audit_trail_tests::sqlstate(&refused), "42501");
    assert!(files_under(&database_dir(&db, out_dir.path())).is_empty());
    assert_eq!(archives(&db), 0);
}

fn is_root() -> bool {
    // SAFETY: geteuid takes nothing, cannot fail and touches no memory of ours.
    unsafe { libc::geteuid() == 0 }
}

#[test]
fn a_second_archive_run_at_the_same_time_is_refused() {
    let db = seeded_db();
    maintain(&db, "postgres");
    // What a first run holds while it works: the archive service's lock, in a transaction.
    let mut first = db.client();
    first
        .batch_execute("BEGIN; SELECT audit.take_service_lock('archive');")
        .expect("lock");
    let out_dir = tempfile::tempdir().expect("tempdir");
    let dir = out_dir.path().to_str().expect("UTF-8");
    let out = cli(&db, "postgres", &["archive", "--output-dir", dir]);
    assert_eq!(out.code, 1, "{} {}", out.stdout, out.stderr);
    assert!(
        out.stderr
            .contains("another audit-trail archive is running"),
        "{}",
        out.stderr
    );
    assert!(files_under(&database_dir(&db, out_dir.path())).is_empty());
    first.batch_execute("COMMIT").expect("unlock");
    // The 0.2.0 attack: a role with no grants holding the lock keys the services used. It
    // may not take the services' own locks, and holding the old keys stops nothing.
    let nobody = db.create_role("nobody", "LOGIN");
    let mut squatter = db.client_as(&nobody);
    squatter
        .batch_execute(
            "SELECT pg_advisory_lock(x'6175646974617263'::bigint);
             SELECT pg_advisory_lock(x'61756469745f7365'::bigint);
             SELECT pg_advisory_lock(hashtext('audit_trail maintenance'));",
        )
        .expect("advisory locks anyone may take");
    let err = squatter
        .batch_execute("BEGIN; SELECT audit.take_service_lock('archive')")
        .expect_err("not a service");
    assert_eq!(audit_trail_tests::sqlstate(&err), "42501");
    let out = cli(&db, "postgres", &["archive", "--output-dir", dir]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    maintain(&db, "postgres");
}

/// The relative paths of a manifest's files.
fn manifest_paths(manifest: &serde_json::Value) -> Vec<String> {
    manifest["files"]
        .as_array()
        .expect("files")
        .iter()
        .map(|f| f["path"].as_str().expect("a path").to_owned())
        .collect()
}

/// A copy of an archive with one of its files (`rel`) cut 100 bytes short.
fn truncated_copy(archive: &Path, rel: &str) -> tempfile::TempDir {
    let copy = tempfile::tempdir().expect("tempdir");
    copy_tree(archive, copy.path());
    let file = fs::OpenOptions::new()
        .write(true)
        .open(copy.path().join(rel))
        .expect("open");
    let len = file.metadata().expect("metadata").len();
    file.set_len(len - 100).expect("truncate");
    copy
}

fn read_manifest(dir: &Path, rel: &str) -> serde_json::Value {
    serde_json::from_slice(&fs::read(dir.join(rel)).expect("manifest")).expect("JSON")
}

/// Rows per `month` column, as DuckDB's Hive partitioning reads them, once each row is
/// found in the directory of its own month (all the tests' rows are of early 2025).
fn duckdb_months(duck: &[(Row, i64, i64)]) -> Vec<(i64, i64, usize)> {
    let mut months: Vec<(i64, i64, usize)> = Vec::new();
    for (row, year, month) in duck {
        assert_eq!(
            (*year, *month),
            (2025, month_of(row.occurred_us)),
            "{row:?}"
        );
        match months.iter_mut().find(|(y, m, _)| (y, m) == (year, month)) {
            Some(entry) => entry.2 += 1,
            None => months.push((*year, *month, 1)),
        }
    }
    months.sort();
    months
}

#[test]
fn a_quarters_partition_is_one_file_per_month_each_in_its_month_directory() {
    let db = seeded_db();
    db.client()
        .batch_execute("SELECT audit.set_partition_interval('3 months')")
        .expect("quarterly partitions");
    let role = admin(&db);
    maintain(&db, &role);
    let to_time: String = db
        .client()
        .query_one(
            "SELECT to_time AT TIME ZONE 'UTC' || '' FROM audit.partitions
              WHERE partition = 'audit.events_20250101' AND closed",
            &[],
        )
        .expect("the first quarter of 2025 is one closed partition")
        .get(0);
    assert_eq!(to_time, "2025-04-01 00:00:00");
    let expected = db_rows(&db);
    assert_eq!(expected.len(), 300);

    let out_dir = tempfile::tempdir().expect("tempdir");
    let dir = out_dir.path().to_str().expect("UTF-8 path");
    let out = cli(
        &db,
        &role,
        &["archive", "--output-dir", dir, "--before", "2025-04-01"],
    );
    assert_eq!(out.code, 0, "archive: {}", out.stderr);
    assert!(
        out.stdout.starts_with("audit.events_20250101: 300 rows, "),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains(" in 3 files, "), "{}", out.stdout);

    // One file in each month's directory, named after the partition; one manifest, in the
    // first month's directory.
    assert_eq!(
        files_under(&database_dir(&db, out_dir.path())),
        [
            "year=2025/month=01/events_20250101.manifest.json",
            "year=2025/month=01/events_20250101.parquet",
            "year=2025/month=02/events_20250101.parquet",
            "year=2025/month=03/events_20250101.parquet",
        ]
    );
    let manifest = read_manifest(
        &database_dir(&db, out_dir.path()),
        "year=2025/month=01/events_20250101.manifest.json",
    );
    assert_eq!(manifest["schema_version"], 3);
    assert_eq!(manifest["from_time"], "2025-01-01T00:00:00Z");
    assert_eq!(manifest["to_time"], "2025-04-01T00:00:00Z");
    assert_eq!(manifest["rows"], 300);
    assert_eq!(
        manifest_paths(&manifest),
        [
            "events_20250101.parquet",
            "../../year=2025/month=02/events_20250101.parquet",
            "../../year=2025/month=03/events_20250101.parquet",
        ]
    );
    for file in manifest["files"].as_array().expect("files") {
        assert_eq!(file["rows"], 100, "{file}");
    }

    // Every row, every column, in the directory of its own month: DuckDB's Hive partitioning
    // gives each row its month, and a filter on month=2 finds February's rows.
    assert_eq!(parquet_rows(out_dir.path()), expected);
    let (duck, _) = duckdb_rows(out_dir.path());
    let duck_rows: Vec<Row> = duck.iter().map(|(r, _, _)| r.clone()).collect();
    assert_eq!(duck_rows, expected);
    assert_eq!(
        duckdb_months(&duck),
        [(2025, 1, 100), (2025, 2, 100), (2025, 3, 100)]
    );

    let recorded: serde_json::Value = db
        .client()
        .query_one(
            "SELECT manifest FROM audit.archives WHERE partition = 'audit.events_20250101'",
            &[],
        )
        .expect("the record")
        .get(0);
    assert_eq!(recorded, manifest);

    let check = run(command()
        .args(["archive", "--check"])
        .arg(database_dir(&db, out_dir.path())));
    assert_eq!(check.code, 0, "{}", check.stderr);
    for month in ["01", "02", "03"] {
        let line = format!("ok year=2025/month={month}/events_20250101.parquet: 100 rows");
        assert!(check.stdout.contains(&line), "{line}: {}", check.stdout);
    }

    // A month's file truncated in a copy: --check names it and exits 4.
    let target = "year=2025/month=02/events_20250101.parquet";
    let truncated = truncated_copy(&database_dir(&db, out_dir.path()), target);
    let check = run(command().args(["archive", "--check"]).arg(truncated.path()));
    assert_eq!(check.code, 4, "{} {}", check.stdout, check.stderr);
    assert_eq!(check.stderr.lines().count(), 1, "{}", check.stderr);
    assert!(
        check.stderr.contains(&format!("{target}: truncated")),
        "{}",
        check.stderr
    );
}

#[test]
fn the_partition_of_an_upgrade_from_0_1_0_is_archived_by_month_and_retention_drops_it() {
    // A 0.1.0 install (its frozen script, as tests/e2e/upgrade.rs makes one) with history in
    // January and February 2025, then updated: the 0.1.0 table becomes the partition
    // audit.events_0_1_0, FROM (MINVALUE) TO the first of the month after the update.
    let db = TestDb::without_extension();
    let mut client = db.client();
    client
        .batch_execute(
            "CREATE EXTENSION audit_trail VERSION '0.1.0';
             INSERT INTO audit.events (occurred_at, actor, entity, action, subject_id,
                                       changed_fields, new_data, details)
             SELECT timestamptz '2025-01-10 00:00:00+00' + (g / 30) * interval '1 month'
                        + (g % 30) * interval '13 hours 0.5 seconds',
                    'user' || g % 3 || '@example.com', 'contact', 'update', g::text,
                    CASE WHEN g % 2 = 0 THEN '{email}'::text[] END,
                    jsonb_build_object('email', g || '@example.com', 'name', 'Zoë'),
                    CASE WHEN g % 5 = 0 THEN '{\"note\": null}'::jsonb END
               FROM generate_series(0, 59) AS g;
             ALTER EXTENSION audit_trail UPDATE;",
        )
        .expect("a 0.1.0 install with history, updated");
    let closed: bool = client
        .query_one(
            "SELECT closed FROM audit.partitions
              WHERE partition = 'audit.events_0_1_0' AND from_time = '-infinity'",
            &[],
        )
        .expect("the 0.1.0 table is a partition from -infinity")
        .get(0);
    // Its end is the first of the month after the update: it closes when this month ends.
    assert!(!closed);
    let out_dir = tempfile::tempdir().expect("tempdir");
    let dir = out_dir.path().to_str().expect("UTF-8 path");
    let out = cli(
        &db,
        "postgres",
        &[
            "archive",
            "--output-dir",
            dir,
            "--partition",
            "events_0_1_0",
        ],
    );
    assert_eq!(out.code, 2, "{} {}", out.stdout, out.stderr);
    assert!(out.stderr.contains("still open"), "{}", out.stderr);

    // The month's end, brought forward: the same partition, from MINVALUE, ending where its
    // history does. The server's clock cannot be moved, so the test moves the bound, past the
    // guard that refuses DDL on the log's tables (a superuser disabling its event triggers).
    let newer: i64 = client
        .query_one(
            "SELECT count(*) FROM audit.events_0_1_0 WHERE occurred_at >= '2025-03-01+00'",
            &[],
        )
        .expect("count")
        .get(0);
    assert_eq!(newer, 0, "only the seeded history is in the 0.1.0 table");
    client
        .batch_execute(
            "BEGIN;
             ALTER EVENT TRIGGER audit_trail_ddl_command_start DISABLE;
             ALTER EVENT TRIGGER audit_trail_ddl_command_end DISABLE;
             ALTER EVENT TRIGGER audit_trail_sql_drop DISABLE;
             ALTER TABLE audit.events DETACH PARTITION audit.events_0_1_0;
             ALTER TABLE audit.events ATTACH PARTITION audit.events_0_1_0
                 FOR VALUES FROM (MINVALUE) TO ('2025-03-01 00:00:00+00');
             ALTER EVENT TRIGGER audit_trail_ddl_command_start ENABLE ALWAYS;
             ALTER EVENT TRIGGER audit_trail_ddl_command_end ENABLE ALWAYS;
             ALTER EVENT TRIGGER audit_trail_sql_drop ENABLE ALWAYS;
             COMMIT;",
        )
        .expect("the 0.1.0 partition, closed");
    let role = admin(&db);
    maintain(&db, &role);
    let expected = db_rows(&db);
    assert_eq!(expected.len(), 60);

    let out = cli(&db, &role, &["archive", "--output-dir", dir]);
    assert_eq!(out.code, 0, "archive: {}", out.stderr);
    assert!(
        out.stdout.starts_with("audit.events_0_1_0: 60 rows, "),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains(" in 2 files, "), "{}", out.stdout);
    let files: Vec<String> = files_under(&database_dir(&db, out_dir.path()))
        .into_iter()
        .filter(|f| f.contains("events_0_1_0"))
        .collect();
    assert_eq!(
        files,
        [
            "year=2025/month=01/events_0_1_0.manifest.json",
            "year=2025/month=01/events_0_1_0.parquet",
            "year=2025/month=02/events_0_1_0.parquet",
        ]
    );
    let manifest = read_manifest(
        &database_dir(&db, out_dir.path()),
        "year=2025/month=01/events_0_1_0.manifest.json",
    );
    assert_eq!(manifest["partition"], "audit.events_0_1_0");
    // The start of its oldest row's month: no row of the partition is older.
    assert_eq!(manifest["from_time"], "2025-01-01T00:00:00Z");
    assert_eq!(manifest["to_time"], "2025-03-01T00:00:00Z");
    assert_eq!(manifest["rows"], 60);
    assert_eq!(
        manifest_paths(&manifest),
        [
            "events_0_1_0.parquet",
            "../../year=2025/month=02/events_0_1_0.parquet"
        ]
    );
    // The record keeps the partition's own bounds.
    let (from_time, rows): (String, i64) = {
        let r = client
            .query_one(
                "SELECT from_time::text, rows FROM audit.archives
                  WHERE partition = 'audit.events_0_1_0'",
                &[],
            )
            .expect("the record");
        (r.get(0), r.get(1))
    };
    assert_eq!((from_time.as_str(), rows), ("-infinity", 60));

    let ours: Vec<Row> = parquet_rows(out_dir.path())
        .into_iter()
        .filter(|r| expected.iter().any(|e| e.id == r.id))
        .collect();
    assert_eq!(ours, expected);
    let (duck, _) = duckdb_rows(out_dir.path());
    let duck: Vec<(Row, i64, i64)> = duck
        .into_iter()
        .filter(|(r, _, _)| expected.iter().any(|e| e.id == r.id))
        .collect();
    assert_eq!(duckdb_months(&duck), [(2025, 1, 30), (2025, 2, 30)]);
    let check = run(command()
        .args(["archive", "--check"])
        .arg(database_dir(&db, out_dir.path())));
    assert_eq!(check.code, 0, "{}", check.stderr);
    assert!(
        check
            .stdout
            .contains("ok year=2025/month=02/events_0_1_0.parquet: 30 rows"),
        "{}",
        check.stdout
    );

    // Retention with archive_first (the default) may now drop it.
    client
        .batch_execute("SELECT audit.set_retention('1 day')")
        .expect("retention");
    let did = maintain(&db, &role);
    let dropped: Vec<&str> = did["dropped"]
        .as_array()
        .expect("dropped")
        .iter()
        .filter_map(|d| d["partition"].as_str())
        .collect();
    assert!(dropped.contains(&"audit.events_0_1_0"), "{did}");
    let gone: Option<String> = client
        .query_one("SELECT to_regclass('audit.events_0_1_0')::text", &[])
        .expect("to_regclass")
        .get(0);
    assert_eq!(gone, None);
}

#[test]
fn weekly_partitions_share_month_directories_and_a_week_across_months_is_split() {
    let db = seeded_db();
    db.client()
        .batch_execute("SELECT audit.set_partition_interval('1 week')")
        .expect("weekly partitions");
    maintain(&db, "postgres");
    let expected = db_rows(&db);
    let out_dir = tempfile::tempdir().expect("tempdir");
    let dir = out_dir.path().to_str().expect("UTF-8 path");
    let out = cli(
        &db,
        "postgres",
        &["archive", "--output-dir", dir, "--before", "2025-04-01"],
    );
    assert_eq!(out.code, 0, "archive: {}", out.stderr);
    let files = files_under(&database_dir(&db, out_dir.path()));
    // The week from Monday 27 January holds only rows of 1 and 2 February: its file is in
    // February's directory, its manifest in January's (the month it starts in).
    for rel in [
        "year=2025/month=01/events_20250127.manifest.json",
        "year=2025/month=02/events_20250127.parquet",
        "year=2025/month=01/events_20250106.parquet",
        "year=2025/month=01/events_20250113.parquet",
    ] {
        assert!(files.contains(&rel.to_owned()), "{rel} not in {files:?}");
    }
    assert!(!files.contains(&"year=2025/month=01/events_20250127.parquet".to_owned()));
    let manifest = read_manifest(
        &database_dir(&db, out_dir.path()),
        "year=2025/month=01/events_20250127.manifest.json",
    );
    assert_eq!(
        manifest_paths(&manifest),
        ["../../year=2025/month=02/events_20250127.parquet"]
    );

    assert_eq!(parquet_rows(out_dir.path()), expected);
    let (duck, _) = duckdb_rows(out_dir.path());
    assert_eq!(
        duckdb_months(&duck),
        [(2025, 1, 100), (2025, 2, 100), (2025, 3, 100)]
    );
    let check = run(command()
        .args(["archive", "--check"])
        .arg(database_dir(&db, out_dir.path())));
    assert_eq!(check.code, 0, "{}", check.stderr);
}

/// Retention with archive_first drops a partition only when the archive holds exactly the
/// events it holds when it is dropped: one that gained an event after it was archived (here
/// written by a superuser who lifted the guards, as a transaction committing late would) is
/// kept, and so is one that a transaction is still writing into (maintenance waits for its
/// lock, then keeps it for the next run), until that transaction ends.
#[test]
fn retention_keeps_a_partition_changed_since_its_archive_or_still_being_written() {
    let db = seeded_db();
    let role = admin(&db);
    maintain(&db, &role);
    let out_dir = tempfile::tempdir().expect("tempdir");
    let dir = out_dir.path().to_str().expect("utf-8 path");
    let archived = cli(
        &db,
        &role,
        &["archive", "--output-dir", dir, "--before", "2025-04-01"],
    );
    assert_eq!(archived.code, 0, "{}", archived.stderr);
    let mut client = db.client();
    client
        .batch_execute(
            "DO $$ DECLARE t record; BEGIN
               FOR t IN SELECT evtname FROM pg_event_trigger LOOP
                 EXECUTE format('ALTER EVENT TRIGGER %I DISABLE', t.evtname); END LOOP;
               ALTER TABLE audit.events_20250101 DISABLE TRIGGER events_no_sql_insert;
               INSERT INTO audit.events_20250101 (occurred_at, actor, entity, action)
               VALUES ('2025-01-15 12:00+00', 'late@example.com', 'contact', 'update');
               ALTER TABLE audit.events_20250101 ENABLE ALWAYS TRIGGER events_no_sql_insert;
               FOR t IN SELECT evtname FROM pg_event_trigger LOOP
                 EXECUTE format('ALTER EVENT TRIGGER %I ENABLE ALWAYS', t.evtname); END LOOP;
             END $$;
             SELECT audit.set_retention('1 day');",
        )
        .expect("a late event, and retention");
    // A transaction that could still write into February holds its lock meanwhile.
    let mut writer = db.client();
    writer
        .batch_execute("BEGIN; LOCK TABLE audit.events_20250201 IN ROW EXCLUSIVE MODE;")
        .expect("lock February");
    let did = maintain(&db, &role);
    let reasons: Vec<(String, String)> = did["kept"]
        .as_array()
        .expect("kept")
        .iter()
        .map(|k| {
            (
                k["partition"].as_str().unwrap_or_default().to_owned(),
                k["reason"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(reasons.len(), 2, "{did}");
    assert_eq!(
        reasons[0],
        (
            "audit.events_20250101".to_owned(),
            "changed since it was archived".to_owned()
        ),
        "{did}"
    );
    assert_eq!(reasons[1].0, "audit.events_20250201", "{did}");
    assert!(reasons[1].1.contains("lock timeout"), "{did}");
    let dropped: Vec<&str> = did["dropped"]
        .as_array()
        .expect("dropped")
        .iter()
        .filter_map(|d| d["partition"].as_str())
        .collect();
    assert_eq!(dropped, ["audit.events_20250301"], "{did}");
    // The purge event counts what was dropped, 100 events.
    let rows: i64 = client
        .query_one(
            "SELECT (details ->> 'rows')::bigint FROM audit.events
              WHERE entity = 'audit_log' AND action = 'purge'",
            &[],
        )
        .expect("the purge event")
        .get(0);
    assert_eq!(rows, 100);
    // The writer done, February goes at the next run; January stays until archived again.
    writer.batch_execute("COMMIT").expect("commit");
    let did = maintain(&db, &role);
    assert_eq!(
        did["dropped"][0]["partition"], "audit.events_20250201",
        "{did}"
    );
    assert_eq!(
        did["kept"][0]["reason"], "changed since it was archived",
        "{did}"
    );
}

/// What maintenance did with `partition`: `Some(reason)` when it kept it, None when it
/// dropped it.
fn retention_of(done: &serde_json::Value, partition: &str) -> Option<String> {
    let dropped = done["dropped"]
        .as_array()
        .expect("dropped")
        .iter()
        .any(|d| d["partition"] == partition);
    if dropped {
        return None;
    }
    done["kept"]
        .as_array()
        .expect("kept")
        .iter()
        .find(|k| k["partition"] == partition)
        .map(|k| k["reason"].as_str().unwrap_or_default().to_owned())
        .or_else(|| panic!("{partition} neither dropped nor kept: {done}"))
}

#[test]
fn two_databases_archived_into_one_directory_keep_their_own_and_retention_rechecks_files() {
    // Two databases with partitions of the same names, archived into one directory.
    let a = seeded_db();
    let b = seeded_db();
    let out_dir = tempfile::tempdir().expect("tempdir");
    let dir = out_dir.path().to_str().expect("UTF-8 path");
    for db in [&a, &b] {
        maintain(db, "postgres");
        let out = cli(db, "postgres", &["archive", "--output-dir", dir]);
        assert_eq!(out.code, 0, "{}", out.stderr);
    }
    // Each under a directory of its own: nothing of one overwrote the other.
    let january = "year=2025/month=01/events_20250101";
    let (a_dir, b_dir) = (
        database_dir(&a, out_dir.path()),
        database_dir(&b, out_dir.path()),
    );
    assert_ne!(a_dir, b_dir);
    for d in [&a_dir, &b_dir] {
        assert!(d.join(format!("{january}.parquet")).is_file(), "{d:?}");
    }
    let both = run(command().args(["archive", "--check", dir]));
    assert_eq!(both.code, 0, "{}", both.stderr);
    assert!(
        both.stdout.contains("checked 6 manifests"),
        "{}",
        both.stdout
    );

    // Retention relies on a recent check of the files (the archive run made one when it
    // wrote them). Then A's January file is replaced by B's, as one directory shared by two
    // databases used to do: the next archive run (daily) finds it, says so (exit 4),
    // records the failed check, and retention keeps January.
    for db in [&a, &b] {
        db.client()
            .batch_execute("SELECT audit.set_retention('1 day')")
            .expect("retention");
    }
    let saved = tempfile::tempdir().expect("tempdir");
    fs::copy(
        a_dir.join(format!("{january}.parquet")),
        saved.path().join("january.parquet"),
    )
    .expect("save");
    fs::copy(
        b_dir.join(format!("{january}.parquet")),
        a_dir.join(format!("{january}.parquet")),
    )
    .expect("overwrite");
    let out = cli(&a, "postgres", &["archive", "--output-dir", dir]);
    assert_eq!(out.code, 4, "{} {}", out.stdout, out.stderr);
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("audit.events_20250101: ")
            && out.stderr.contains("events_20250101.parquet: altered")
            && out.stderr.contains("retention keeps the partition"),
        "{}",
        out.stderr
    );
    let done = maintain(&a, "postgres");
    let kept = retention_of(&done, "audit.events_20250101").expect("January kept");
    assert!(kept.contains("not found intact"), "{kept}");
    // The other months' checks found them intact: dropped.
    assert_eq!(retention_of(&done, "audit.events_20250201"), None, "{done}");
    let failed: i64 = a
        .client()
        .query_one(
            "SELECT count(*) FROM audit.events
              WHERE entity = 'audit_log' AND action = 'archive_check'
                AND table_name = 'audit.events_20250101' AND details ->> 'intact' = 'false'",
            &[],
        )
        .expect("count")
        .get(0);
    assert_eq!(failed, 1);
    // The alert engine's built-in rules raise it.
    let alerts = run(command()
        .args([
            "alert",
            "--db",
            &a.conninfo("postgres"),
            "--once",
            "--stdout",
        ])
        .args(["--hold-timeout", "300"]));
    assert_eq!(alerts.code, 0, "{}", alerts.stderr);
    assert!(
        alerts.stdout.lines().any(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .is_ok_and(|a| a["rule"] == "archive-damaged" && a["severity"] == "critical")
        }),
        "{}",
        alerts.stdout
    );
    // B was never touched.
    assert_eq!(
        retention_of(&maintain(&b, "postgres"), "audit.events_20250101"),
        None
    );

    // The file put back, the next run finds it intact and retention drops January.
    fs::copy(
        saved.path().join("january.parquet"),
        a_dir.join(format!("{january}.parquet")),
    )
    .expect("restore");
    let out = cli(&a, "postgres", &["archive", "--output-dir", dir]);
    assert_eq!(out.code, 0, "{} {}", out.stdout, out.stderr);
    assert!(
        out.stdout
            .contains("audit.events_20250101: archive checked, intact"),
        "{}",
        out.stdout
    );
    assert_eq!(
        retention_of(&maintain(&a, "postgres"), "audit.events_20250101"),
        None
    );
}

#[test]
fn archive_refuses_to_write_over_another_databases_archive() {
    let a = seeded_db();
    let b = seeded_db();
    for db in [&a, &b] {
        maintain(db, "postgres");
    }
    let from_b = tempfile::tempdir().expect("tempdir");
    let out = cli(
        &b,
        "postgres",
        &[
            "archive",
            "--output-dir",
            from_b.path().to_str().expect("UTF-8"),
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    // B's archive, moved where A's would go (a directory renamed, a restore into the wrong
    // place): A refuses to write over it, and records nothing.
    let out_dir = tempfile::tempdir().expect("tempdir");
    copy_tree(
        &database_dir(&b, from_b.path()),
        &database_dir(&a, out_dir.path()),
    );
    let before = files_under(out_dir.path());
    let out = cli(
        &a,
        "postgres",
        &[
            "archive",
            "--output-dir",
            out_dir.path().to_str().expect("UTF-8"),
        ],
    );
    assert_eq!(out.code, 1, "{} {}", out.stdout, out.stderr);
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("events_20250101.manifest.json holds an archive of database")
            && out.stderr.contains(&format!("{:?}", b.name))
            && out.stderr.contains("not overwritten"),
        "{}",
        out.stderr
    );
    assert_eq!(archives(&a), 0);
    assert_eq!(files_under(out_dir.path()), before);
}
