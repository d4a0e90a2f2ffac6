//! Backup and restore with PostgreSQL's own tools: every format completes without an error,
//! the log comes back untouched, and capture goes on exactly as before.

use std::path::Path;
use std::process::Command;

use audit_trail_tests::{error_text, sqlstate, TestDb};

/// A database with tracked tables (ignore, redact and subject rules, a partitioned one),
/// activity, and a change-stream cursor.
fn source_db() -> TestDb {
    let db = TestDb::new();
    db.client()
        .batch_execute(
            "CREATE SCHEMA app;
             CREATE TABLE app.accounts (id bigserial PRIMARY KEY, name text, email text,
                                        password_hash text, updated_at timestamptz DEFAULT now());
             CREATE TABLE app.members (group_id int, account_id bigint,
                                       PRIMARY KEY (group_id, account_id));
             SELECT audit.track('app.accounts', 'user', ignore_columns => '{updated_at}',
                                redact_columns => '{password_hash}');
             SELECT audit.track('app.members', 'group', subject_column => 'group_id');
             CREATE TABLE app.logins (id int, at date, PRIMARY KEY (id, at))
                 PARTITION BY RANGE (at);
             CREATE TABLE app.logins_2026 PARTITION OF app.logins
                 FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
             SELECT audit.track('app.logins', 'user', subject_column => 'id');
             INSERT INTO app.logins VALUES (1, '2026-05-01');
             INSERT INTO app.logins_2026 VALUES (2, '2026-06-01');
             BEGIN;
             SELECT audit.set_actor('alice@example.com', 'import');
             INSERT INTO app.accounts (name, email, password_hash)
                 SELECT 'n' || g, g || '@x', 'secret' FROM generate_series(1, 50) g;
             COMMIT;
             UPDATE app.accounts SET email = 'changed@x' WHERE id <= 5;
             INSERT INTO app.members VALUES (1, 1), (1, 2);
             DELETE FROM app.members WHERE account_id = 2;
             INSERT INTO audit.consumers (name, last_txid, last_id, delivered)
                 VALUES ('siem', '5', 7, 7);
             SELECT audit.set_retention('5 years');
             SELECT audit.hold('case-1', 'litigation', '2026-01-01', '2027-01-01');
             SELECT audit.record_archive(p.partition,
                                         (SELECT count(*) FROM audit.events AS e
                                           WHERE e.tableoid = p.partition::regclass),
                                         's3://audit/archive', '{\"files\": []}',
                                         audit.events_digest(p.partition::regclass))
               FROM audit.partitions AS p
              WHERE p.from_time <= now() AND p.to_time > now();",
        )
        .expect("source database");
    db
}

fn tool(db: &TestDb, name: &str) -> Command {
    Command::new(db.cluster.bindir().join(name))
}

fn succeed(cmd: &mut Command) {
    let out = cmd.output().expect("run a PostgreSQL tool");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{cmd:?} failed: {stderr}");
    assert!(
        !stderr.to_lowercase().contains("error"),
        "{cmd:?} reported: {stderr}"
    );
}

/// Everything the log holds, as text, in a stable order.
fn snapshot(db: &TestDb) -> Vec<String> {
    let mut c = db.client();
    let mut out = Vec::new();
    for query in [
        "SELECT e::text FROM audit.events AS e ORDER BY id",
        "SELECT (table_name, entity, subject_columns, ignore_columns, redact_columns)::text
           FROM audit.tracked ORDER BY table_name::text",
        "SELECT (name, last_txid, last_id, delivered)::text FROM audit.consumers ORDER BY name",
        // Partitioned, held, archived: every partition with its range and its events.
        "SELECT (p.partition, p.from_time, p.to_time, p.archived, p.held,
                 (SELECT count(*) FROM audit.events AS e WHERE e.tableoid = p.partition::regclass))::text
           FROM audit.partitions AS p ORDER BY p.is_default, p.from_time",
        "SELECT (name, reason, from_time, to_time, active)::text FROM audit.holds ORDER BY name",
        "SELECT (keep, archive_first, partition_interval)::text FROM audit.storage_policy",
        "SELECT (partition, rows, location, manifest)::text FROM audit.archives ORDER BY partition",
    ] {
        out.extend(
            c.query(query, &[])
                .unwrap()
                .iter()
                .map(|r| r.get::<_, String>(0)),
        );
    }
    out
}

/// The restored database captures every tracked table with the same rules, and new ids
/// come after the restored ones.
fn assert_captures_as_before(source: &TestDb, restored: &TestDb) {
    let mut c = restored.client();
    let not_capturing: i64 = c
        .query_one(
            "SELECT count(*) FROM audit.tracked WHERE NOT capturing",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(not_capturing, 0);
    let max_before: i64 = c
        .query_one("SELECT max(id) FROM audit.events", &[])
        .unwrap()
        .get(0);
    c.batch_execute(
        "INSERT INTO app.accounts (name, password_hash) VALUES ('new', 'secret');
         UPDATE app.accounts SET updated_at = now() + interval '1 day';
         INSERT INTO app.members VALUES (7, 1);",
    )
    .unwrap();
    let rows = c
        .query(
            "SELECT id, entity, action, subject_id, new_data ->> 'password_hash'
               FROM audit.events WHERE id > $1 ORDER BY id",
            &[&max_before],
        )
        .unwrap();
    let got: Vec<(String, String, Option<String>, Option<String>)> = rows
        .iter()
        .map(|r| (r.get(1), r.get(2), r.get(3), r.get(4)))
        .collect();
    assert_eq!(
        got,
        [
            (
                "user".into(),
                "create".into(),
                Some("51".into()),
                Some("[redacted]".into())
            ),
            ("group".into(), "create".into(), Some("7".into()), None),
        ],
        "the ignored-only update records nothing; the rest as in the source"
    );
    assert_eq!(snapshot(source).len() + 2, snapshot(restored).len());
}

fn dump(source: &TestDb, dir: &Path, format_args: &[&str], file: &str) -> String {
    let path = dir.join(file).display().to_string();
    succeed(tool(source, "pg_dump").args(format_args).args([
        "-f",
        &path,
        "-d",
        &source.conninfo("postgres"),
    ]));
    path
}

#[test]
fn every_dump_format_restores_the_log_and_capture() {
    let source = source_db();
    let before = snapshot(&source);
    let dir = tempfile::tempdir().unwrap();
    let custom = dump(&source, dir.path(), &["-Fc"], "db.dump");
    let directory = dump(&source, dir.path(), &["-Fd", "-j", "2"], "db.dir");
    let plain = dump(&source, dir.path(), &[], "db.sql");

    type Restore<'a> = Box<dyn Fn(&TestDb) + 'a>;
    let restores: Vec<(&str, Restore)> = vec![
        (
            "custom",
            Box::new(|t: &TestDb| {
                succeed(tool(t, "pg_restore").args(["-d", &t.conninfo("postgres"), &custom]))
            }),
        ),
        (
            "directory -j 2",
            Box::new(|t: &TestDb| {
                succeed(tool(t, "pg_restore").args([
                    "-j",
                    "2",
                    "-d",
                    &t.conninfo("postgres"),
                    &directory,
                ]))
            }),
        ),
        (
            "plain through psql",
            Box::new(|t: &TestDb| {
                succeed(tool(t, "psql").args([
                    "-q",
                    "-X",
                    "-v",
                    "ON_ERROR_STOP=1",
                    "-d",
                    &t.conninfo("postgres"),
                    "-f",
                    &plain,
                ]))
            }),
        ),
        (
            "sections one by one",
            Box::new(|t: &TestDb| {
                for section in ["pre-data", "data", "post-data"] {
                    succeed(tool(t, "pg_restore").args([
                        "--section",
                        section,
                        "-d",
                        &t.conninfo("postgres"),
                        &custom,
                    ]));
                }
            }),
        ),
    ];
    for (name, restore) in restores {
        let target = TestDb::without_extension();
        restore(&target);
        assert_eq!(snapshot(&target), before, "{name}: the log changed");
        assert_captures_as_before(&source, &target);
    }
}

#[test]
fn a_data_only_restore_cannot_add_a_second_copy_of_the_log() {
    let source = source_db();
    let dir = tempfile::tempdir().unwrap();
    let custom = dump(&source, dir.path(), &["-Fc"], "db.dump");
    let before = snapshot(&source);
    let out = tool(&source, "pg_restore")
        .args(["--data-only", "-d", &source.conninfo("postgres"), &custom])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("the audit log is live"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(snapshot(&source), before);
    // Nor can a superuser add rows by hand.
    let err = source
        .client()
        .batch_execute(
            "INSERT INTO audit.events (actor, entity, action) VALUES ('x', 'contact', 'create')",
        )
        .unwrap_err();
    assert_eq!(sqlstate(&err), "42501", "{}", error_text(&err));
}

#[test]
fn dropping_the_extension_with_its_log_must_be_confirmed() {
    let db = source_db();
    let count = |db: &TestDb| -> i64 {
        db.client()
            .query_one("SELECT count(*) FROM audit.events", &[])
            .unwrap()
            .get(0)
    };
    let before = count(&db);
    // Each from a fresh backend, which has not loaded the library yet.
    for statement in [
        "DROP EXTENSION audit_trail CASCADE",
        "DROP SCHEMA audit CASCADE",
        "DROP EXTENSION IF EXISTS hstore, audit_trail CASCADE",
    ] {
        let err = db.client().batch_execute(statement).unwrap_err();
        assert_eq!(sqlstate(&err), "2BP01", "{statement}: {}", error_text(&err));
        assert!(
            error_text(&err).contains("would delete the audit log"),
            "{statement}: {}",
            error_text(&err)
        );
    }
    assert_eq!(count(&db), before);
    // Only a superuser may confirm.
    let clerk = db.create_role("clerk", "LOGIN");
    let mut as_clerk = db.client_as(&clerk);
    // (Before the library is loaded, PostgreSQL keeps any audit.* value as a placeholder,
    // which loading it then refuses; here it is loaded first.)
    as_clerk
        .batch_execute("SELECT audit.log_event('contact', 'viewed')")
        .unwrap();
    let err = as_clerk
        .batch_execute("SET audit.allow_drop_extension = on")
        .unwrap_err();
    assert_eq!(sqlstate(&err), "42501", "{}", error_text(&err));
    // Confirmed: the drop goes through, and the server's own log says who did it.
    db.client()
        .batch_execute("SET audit.allow_drop_extension = on; DROP EXTENSION audit_trail CASCADE;")
        .unwrap();
    let server_log = std::fs::read_to_string(db.cluster.dir.join("server.log")).unwrap();
    assert!(
        server_log
            .contains("postgres is dropping extension audit_trail and the audit log it holds"),
        "not in the server log"
    );
    // A log without events goes without asking.
    let empty = TestDb::new();
    empty
        .client()
        .batch_execute("DROP EXTENSION audit_trail")
        .unwrap();
}

#[test]
fn a_clean_restore_over_a_log_works_once_confirmed() {
    let source = source_db();
    // pg_restore --clean cannot drop a partition's inherited key (PostgreSQL's own
    // limitation, with or without audit_trail): leave the partitioned table out here.
    source
        .client()
        .batch_execute("DROP TABLE app.logins")
        .unwrap();
    let before = snapshot(&source);
    let dir = tempfile::tempdir().unwrap();
    let custom = dump(&source, dir.path(), &["-Fc"], "db.dump");
    // --exit-on-error: without it pg_restore goes on past the refused DROP EXTENSION,
    // dropping (and recording the drop of) each table before failing to restore the log.
    let restore = |confirm: bool| {
        let mut cmd = tool(&source, "pg_restore");
        cmd.args([
            "--clean",
            "--if-exists",
            "--exit-on-error",
            "-d",
            &source.conninfo("postgres"),
            &custom,
        ]);
        if confirm {
            cmd.env("PGOPTIONS", "-c audit.allow_drop_extension=on");
        }
        cmd.output().unwrap()
    };
    // Unconfirmed, its first step (dropping the capture triggers) is refused and the log
    // stays as it was.
    let refused = restore(false);
    assert!(!refused.status.success());
    assert!(
        // The first drop is a capture trigger's or a partition's trigger's, whichever the
        // dump lists first; both are refused.
        String::from_utf8_lossy(&refused.stderr).contains("audit log"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    assert_eq!(snapshot(&source), before);
    let confirmed = restore(true);
    assert!(
        confirmed.status.success(),
        "{}",
        String::from_utf8_lossy(&confirmed.stderr)
    );
    assert_eq!(snapshot(&source), before);
}
