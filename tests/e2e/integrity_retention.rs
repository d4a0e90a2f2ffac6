//! The hash chain across retention (docs/integrity.md, "Retention"): months of sealed events
//! dropped by audit.maintain or audit.purge still verify, by their retention notes and the
//! purge events that vouch for them; a deletion, a forged note or an altered purge event is
//! caught; and `verify --archive` holds archived months to their seals, event by event.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{ArrayRef, RecordBatch, StringArray};
use audit_trail_tests::sidecar::{command, run, Run};
use audit_trail_tests::TestDb;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;

struct Log {
    db: TestDb,
    dir: tempfile::TempDir,
}

impl Log {
    fn key(&self) -> PathBuf {
        self.dir.path().join("seal.key")
    }
    fn pubkey(&self) -> PathBuf {
        self.dir.path().join("seal.key.pub")
    }
    fn checkpoints(&self) -> PathBuf {
        self.dir.path().join("checkpoints")
    }
    fn archive_dir(&self) -> PathBuf {
        self.dir.path().join("archive")
    }
    fn count(&self, sql: &str) -> i64 {
        self.db.client().query_one(sql, &[]).expect(sql).get(0)
    }
    fn sql(&self, sql: &str) {
        self.db.client().batch_execute(sql).expect(sql);
    }
    /// Seals until nothing waits (other tests' transactions can hold the watermark).
    fn seal_all(&self) {
        for _ in 0..600 {
            let out = run(command()
                .args(["seal", "--once", "--batch", "7", "--db"])
                .arg(self.db.conninfo("postgres"))
                .arg("--key")
                .arg(self.key())
                .arg("--checkpoints")
                .arg(self.checkpoints()));
            assert_eq!(out.code, 0, "{}", out.stderr);
            if self.count("SELECT unsealed_events FROM audit.integrity") == 0 {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
        panic!("events stayed unsealed for 5 minutes");
    }
    fn verify(&self, extra: &[&str]) -> Run {
        run(command()
            .args(["verify", "--db", &self.db.conninfo("postgres"), "--pubkey"])
            .arg(self.pubkey())
            .args(extra))
    }
    fn verify_json(&self, extra: &[&str]) -> (i32, serde_json::Value) {
        let mut args = vec!["--format", "json"];
        args.extend_from_slice(extra);
        let out = self.verify(&args);
        let report = serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {} {}", out.stdout, out.stderr));
        (out.code, report)
    }
    fn maintain(&self) -> serde_json::Value {
        self.db
            .client()
            .query_one("SELECT audit.maintain()", &[])
            .expect("maintain")
            .get(0)
    }
    /// As a superuser who switches the guards off first and back on after.
    fn tamper(&self, sql: &str) {
        self.sql(&format!(
            "ALTER EVENT TRIGGER audit_trail_ddl_command_end DISABLE;
             ALTER EVENT TRIGGER audit_trail_sql_drop DISABLE;
             ALTER TABLE audit.events DISABLE TRIGGER USER;
             ALTER TABLE audit.retention_gaps DISABLE TRIGGER USER;
             {sql};
             ALTER TABLE audit.events ENABLE ALWAYS TRIGGER events_append_only;
             ALTER TABLE audit.events ENABLE ALWAYS TRIGGER events_no_sql_insert;
             ALTER TABLE audit.retention_gaps ENABLE ALWAYS TRIGGER retention_gaps_append_only;
             ALTER EVENT TRIGGER audit_trail_ddl_command_end ENABLE ALWAYS;
             ALTER EVENT TRIGGER audit_trail_sql_drop ENABLE ALWAYS;"
        ));
    }
}

/// Four past months of ten events each, seeded while the log is empty (the one time SQL may
/// add rows) with every kind of column the canonical encoding rebuilds from an archive
/// (addresses, text arrays that need quoting, jsonb), then partitioned and sealed in
/// batches of 7, so that seals straddle months and retention drops parts of seals.
fn sealed_history() -> Log {
    sealed_months(4)
}

/// As [`sealed_history`], over the `months` months before this one.
fn sealed_months(months: i32) -> Log {
    let db = TestDb::new();
    db.client()
        .execute(
            r#"INSERT INTO audit.events (occurred_at, actor, entity, action, subject_id,
                                        client_addr, application_name, changed_fields,
                                        old_data, new_data, context, details)
               SELECT date_trunc('month', now()) - make_interval(months => m)
                          + make_interval(days => d, secs => d * 1.000123),
                      'actor' || d % 3, 'contact', 'update', (m * 100 + d)::text,
                      (CASE d % 3 WHEN 0 THEN '10.0.0.7' WHEN 1 THEN '2001:db8::1' END)::inet,
                      CASE WHEN d % 2 = 0 THEN 'crm web' END,
                      CASE d % 4 WHEN 0 THEN ARRAY['name', 'full name', '', 'NULL', 'a"b', 'c\d']
                                 WHEN 1 THEN ARRAY[]::text[]
                                 WHEN 2 THEN ARRAY['email'] END,
                      jsonb_build_object('email', 'old' || d || '@example.com', 'n', d),
                      jsonb_build_object('email', 'new' || d || '@example.com', 'tags',
                                         jsonb_build_array('x', d, 1.50)),
                      CASE WHEN d % 2 = 1 THEN '{"request": "r-1", "ip": "10.0.0.7"}'::jsonb END,
                      '{"b": 2, "a": [1, {"c": null}]}'::jsonb
                 FROM generate_series(1, $1) AS m, generate_series(0, 9) AS d"#,
            &[&months],
        )
        .expect("seed history");
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("checkpoints")).unwrap();
    std::fs::create_dir(dir.path().join("archive")).unwrap();
    let log = Log { db, dir };
    log.maintain();
    let out = run(command().args(["keygen", "--output"]).arg(log.key()));
    assert_eq!(out.code, 0, "{}", out.stderr);
    log.seal_all();
    log
}

/// Months 2, 3 and 4 back are past a retention of one month (month 1 back ended less than
/// a month ago); maintenance drops them.
fn retained(archive_first: bool) -> Log {
    let log = sealed_history();
    if archive_first {
        log.sql("SELECT audit.set_retention('1 month')");
        let out = run(command()
            .args([
                "archive",
                "--db",
                &log.db.conninfo("postgres"),
                "--output-dir",
            ])
            .arg(log.archive_dir()));
        assert_eq!(out.code, 0, "{}", out.stderr);
    } else {
        log.sql("SELECT audit.set_retention('1 month', archive_first => false)");
    }
    let done = log.maintain();
    assert_eq!(done["dropped"].as_array().map(Vec::len), Some(3), "{done}");
    log
}

fn assert_violation(out: &Run, needle: &str) {
    assert_eq!(
        out.code, 4,
        "expected exit 4: {} {}",
        out.stdout, out.stderr
    );
    assert!(
        out.stderr.contains(needle),
        "wanted {needle:?} in: {}",
        out.stderr
    );
}

/// The id of a sealed event still in the table, in the month that retention kept.
fn kept_event(log: &Log) -> i64 {
    log.count(
        "SELECT id FROM audit.events
          WHERE occurred_at < date_trunc('month', now())
            AND occurred_at >= date_trunc('month', now()) - interval '1 month'
          ORDER BY id LIMIT 1 OFFSET 3",
    )
}

#[test]
fn a_log_after_retention_verifies_and_reports_what_was_dropped() {
    let log = retained(false);
    assert_eq!(
        log.count("SELECT count(*) FROM audit.events WHERE entity = 'contact'"),
        10
    );
    // Right after the drop the purge events are not sealed yet: the notes still verify.
    let out = log.verify(&[]);
    assert_eq!(out.code, 0, "{} {}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("intact") && out.stdout.contains("; 30 dropped by retention"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("not sealed yet"), "{}", out.stdout);

    log.seal_all();
    let out = log.verify(&["--checkpoints", log.checkpoints().to_str().unwrap()]);
    assert_eq!(out.code, 0, "{} {}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("30 dropped by retention (purge event")
            && out.stdout.contains("audit.events_")
            && out.stdout.contains("10 rows"),
        "{}",
        out.stdout
    );
    let (code, report) = log.verify_json(&[]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["dropped_events"], 30, "{report}");
    let purges = report["purges"].as_array().expect("purges");
    assert_eq!(purges.len(), 3, "{report}");
    for p in purges {
        assert_eq!(p["rows"], 10, "{p}");
        assert_eq!(p["noted_events"], 10, "{p}");
        assert_eq!(p["sealed"], true, "{p}");
        assert_eq!(p["reason"], "retention", "{p}");
        assert!(p["partition"]
            .as_str()
            .is_some_and(|s| s.starts_with("audit.events_")));
        assert!(p["from"].is_string() && p["to"].is_string(), "{p}");
    }
    // Seals of 7 straddle the months: some notes mark part of a seal.
    assert!(log.count("SELECT count(*) FROM audit.retention_gaps WHERE dropped IS NOT NULL") > 0);
    assert!(report["archives"].is_null(), "{report}");
}

#[test]
fn a_deletion_after_retention_and_a_note_forged_for_it_are_caught() {
    let log = retained(false);
    log.seal_all();
    let id = kept_event(&log);
    log.tamper(&format!("DELETE FROM audit.events WHERE id = {id}"));
    let out = log.verify(&[]);
    assert_violation(&out, &format!("event {id} "));
    assert!(out.stderr.contains("is missing"), "{}", out.stderr);

    // A note that marks the deleted event as dropped, with no purge event to vouch for it.
    let (seq, mask): (i64, String) = log
        .db
        .client()
        .query_one(
            "SELECT s.seq, repeat('0', k) || '1' || repeat('0', s.events - k - 1)
               FROM audit.seals AS s,
                    generate_series(0, s.events - 1) AS k
              WHERE ('x' || encode(substring(s.digests FROM k * 24 + 9 FOR 8), 'hex'))::bit(64)::bigint = $1",
            &[&id],
        )
        .map(|r| (r.get(0), r.get(1)))
        .expect("the deleted event's seal");
    log.sql(&format!(
        "INSERT INTO audit.retention_gaps (seq, source, dropped, reason)
         VALUES ({seq}, 'audit.events', B'{mask}', 'retention')"
    ));
    let out = log.verify(&[]);
    assert_violation(
        &out,
        &format!("retention gap notes for seal {seq} are not recorded by any purge event"),
    );
    let (code, report) = log.verify_json(&[]);
    assert_eq!(code, 4);
    // The event now reads as dropped, not missing: only the note is at fault.
    let kinds: Vec<&str> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["kind"].as_str())
        .collect();
    assert_eq!(kinds, ["gap_notes_unrecorded"], "{report}");
    assert_eq!(report["dropped_events"], 31, "{report}");
}

#[test]
fn an_altered_purge_event_is_caught() {
    let log = retained(false);
    log.seal_all();
    log.tamper(
        "UPDATE audit.events SET details = jsonb_set(details, '{rows}', '9')
          WHERE id = (SELECT min(id) FROM audit.events
                       WHERE entity = 'audit_log' AND action = 'purge')",
    );
    let (code, report) = log.verify_json(&[]);
    assert_eq!(code, 4, "{report}");
    let kinds: Vec<&str> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["kind"].as_str())
        .collect();
    assert!(kinds.contains(&"event_altered"), "{report}");
    assert!(kinds.contains(&"gap_notes_unrecorded"), "{report}");
    let out = log.verify(&[]);
    assert_violation(&out, "was altered since seal");

    // The digest itself rewritten, before the sealer saw the event: no note matches it.
    let log = retained(false);
    log.tamper(
        "UPDATE audit.events
            SET details = jsonb_set(details, '{retention_gaps_sha256}', to_jsonb(repeat('0', 64)))
          WHERE id = (SELECT min(id) FROM audit.events
                       WHERE entity = 'audit_log' AND action = 'purge')",
    );
    let out = log.verify(&[]);
    assert_violation(&out, "are not recorded by any purge event");
}

#[test]
fn purge_of_a_sealed_log_verifies() {
    let log = sealed_history();
    let purged: i64 = log
        .db
        .client()
        .query_one("SELECT audit.purge(now() - interval '1 month')", &[])
        .expect("purge")
        .get(0);
    assert!(purged >= 30, "{purged}");
    let out = log.verify(&[]);
    assert_eq!(out.code, 0, "{} {}", out.stdout, out.stderr);
    assert!(
        out.stdout
            .contains(&format!("; {purged} dropped by retention")),
        "{}",
        out.stdout
    );
    log.seal_all();
    let (code, report) = log.verify_json(&[]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["dropped_events"], purged, "{report}");
}

/// A copy of the archive with one event's actor changed in its Parquet file, and the
/// manifest's size and SHA-256 made to match, so that `archive --check` passes it.
fn forge_archive(from: &Path, to: &Path, id: i64) -> PathBuf {
    let status = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(status.success());
    let mut changed = None;
    for manifest_path in walk(to).into_iter().filter(|p| {
        p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.ends_with(".manifest.json"))
    }) {
        let mut manifest: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&manifest_path).unwrap()).unwrap();
        let dir = manifest_path.parent().unwrap().to_path_buf();
        for file in manifest["files"].as_array_mut().unwrap() {
            let path = dir.join(file["path"].as_str().unwrap());
            let reader =
                ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&path).unwrap())
                    .unwrap()
                    .build()
                    .unwrap();
            let batches: Vec<RecordBatch> = reader.map(|b| b.unwrap()).collect();
            let mut hit = false;
            let rewritten: Vec<RecordBatch> = batches
                .iter()
                .map(|b| {
                    let ids = b
                        .column_by_name("id")
                        .unwrap()
                        .as_primitive::<arrow_array::types::Int64Type>();
                    let actors = b.column_by_name("actor").unwrap().as_string::<i32>();
                    let actor: StringArray = (0..b.num_rows())
                        .map(|i| {
                            if ids.value(i) == id {
                                hit = true;
                                Some("mallory")
                            } else {
                                Some(actors.value(i))
                            }
                        })
                        .collect();
                    let index = b.schema().index_of("actor").unwrap();
                    let mut columns: Vec<ArrayRef> = b.columns().to_vec();
                    columns[index] = Arc::new(actor);
                    RecordBatch::try_new(b.schema(), columns).unwrap()
                })
                .collect();
            if !hit {
                continue;
            }
            let schema = batches[0].schema();
            let mut writer =
                ArrowWriter::try_new(std::fs::File::create(&path).unwrap(), schema, None).unwrap();
            for b in &rewritten {
                writer.write(b).unwrap();
            }
            writer.close().unwrap();
            let sum = Command::new("sha256sum").arg(&path).output().unwrap();
            let sha = String::from_utf8(sum.stdout).unwrap();
            file["sha256"] = sha.split_whitespace().next().unwrap().into();
            file["bytes"] = std::fs::metadata(&path).unwrap().len().into();
            changed = Some(path);
        }
        std::fs::write(
            &manifest_path,
            serde_json::to_vec_pretty(&manifest).unwrap(),
        )
        .unwrap();
    }
    changed.expect("the event is in the archive")
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn archived_months_verify_against_their_seals_and_an_altered_row_is_caught() {
    let log = retained(true);
    let archive = log.archive_dir();
    let archive_arg = archive.to_str().unwrap();
    let out = log.verify(&["--archive", archive_arg]);
    assert_eq!(out.code, 0, "{} {}", out.stdout, out.stderr);
    assert!(
        out.stdout
            .contains("30 dropped events verified from archives")
            && out.stdout.contains("0 dropped without an archive"),
        "{}",
        out.stdout
    );
    let (code, report) = log.verify_json(&["--archive", archive_arg]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["archives"]["dropped_verified"], 30, "{report}");
    assert_eq!(report["archives"]["dropped_without_archive"], 0, "{report}");
    // The kept month is archived too: its rows are read, but only dropped events count.
    assert!(
        report["archives"]["rows_read"].as_u64() >= Some(30),
        "{report}"
    );
    assert!(report["purges"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["archived"] == true));

    // One dropped event's actor changed in a copy whose manifest was made to match.
    // A sealed event that is no longer in the table.
    let dropped_id: i64 = log.count(
        "SELECT max(d.id) FROM audit.seals AS s, generate_series(0, s.events - 1) AS k,
                LATERAL (SELECT ('x' || encode(substring(s.digests FROM k * 24 + 9 FOR 8), 'hex'))::bit(64)::bigint AS id) AS d
          WHERE NOT EXISTS (SELECT FROM audit.events AS e WHERE e.id = d.id)",
    );
    let forged_dir = log.dir.path().join("forged");
    let file = forge_archive(&archive, &forged_dir, dropped_id);
    let check = run(command().args(["archive", "--check"]).arg(&forged_dir));
    assert_eq!(check.code, 0, "{}", check.stderr);
    let out = log.verify(&["--archive", forged_dir.to_str().unwrap()]);
    assert_violation(&out, &format!("event {dropped_id} "));
    assert!(
        out.stderr.contains(&file.display().to_string()),
        "{}",
        out.stderr
    );
    // Without the archive the log itself still verifies.
    assert_eq!(log.verify(&[]).code, 0);
}

/// Seals some of whose events retention dropped.
fn seals_with_dropped_events(log: &Log) -> i64 {
    log.count("SELECT count(DISTINCT seq) FROM audit.retention_gaps")
}

/// With every dropped event archived, `verify --archive` recomputes the batch root of each
/// seal with dropped events (the one straddling the kept month's boundary too) from the
/// remaining events and the archived ones; without the archive, the same seals are held
/// only to their 8-byte digest prefixes, and the report says so.
#[test]
fn seals_with_dropped_events_are_checked_in_full_with_the_archive() {
    let log = retained(true);
    let seals = seals_with_dropped_events(&log);
    // Seals of 7 over months of 10: some seal keeps part of its events.
    assert!(log.count("SELECT count(*) FROM audit.retention_gaps WHERE dropped IS NOT NULL") > 0);
    let archive = log.archive_dir();
    let archive_arg = archive.to_str().unwrap();

    let out = log.verify(&["--archive", archive_arg]);
    assert_eq!(out.code, 0, "{} {}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains(&format!(
            "; {seals} seals with dropped events: {seals} checked in full (batch root recomputed with the archives), 0 by 8-byte digest prefixes only"
        )),
        "{}",
        out.stdout
    );
    let (code, report) = log.verify_json(&["--archive", archive_arg]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(
        report["seals_with_dropped_events"]["checked_in_full"], seals,
        "{report}"
    );
    assert_eq!(
        report["seals_with_dropped_events"]["checked_by_prefix"], 0,
        "{report}"
    );
    assert_eq!(report["archives"]["dropped_verified"], 30, "{report}");

    let out = log.verify(&[]);
    assert_eq!(out.code, 0, "{} {}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains(&format!(
            "; {seals} seals with dropped events: 0 checked in full (batch root recomputed with the archives), {seals} by 8-byte digest prefixes only"
        )),
        "{}",
        out.stdout
    );
    let (code, report) = log.verify_json(&[]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(
        report["seals_with_dropped_events"]["checked_in_full"], 0,
        "{report}"
    );
    assert_eq!(
        report["seals_with_dropped_events"]["checked_by_prefix"], seals,
        "{report}"
    );
}

/// A remaining event of a seal that straddles the dropped month's boundary, altered in the
/// table: caught with the archive (full check) and without it (prefix check) alike. (That
/// the full check also catches a hash that keeps its 8-byte prefix, which no one can make
/// here, is the unit test `a_hash_that_keeps_its_prefix_is_caught_only_by_the_full_check`.)
#[test]
fn an_altered_remaining_event_of_a_straddling_seal_is_caught() {
    let log = retained(true);
    let id = log.count(
        "SELECT min(d.id) FROM audit.retention_gaps AS g JOIN audit.seals AS s USING (seq),
                generate_series(0, s.events - 1) AS k,
                LATERAL (SELECT ('x' || encode(substring(s.digests FROM k * 24 + 9 FOR 8), 'hex'))::bit(64)::bigint AS id) AS d
          WHERE g.dropped IS NOT NULL AND substring(g.dropped::text FROM k + 1 FOR 1) = '0'
            AND EXISTS (SELECT FROM audit.events AS e WHERE e.id = d.id)",
    );
    log.tamper(&format!(
        "UPDATE audit.events SET actor = 'mallory' WHERE id = {id}"
    ));
    let archive = log.archive_dir();
    for extra in [&["--archive", archive.to_str().unwrap()][..], &[]] {
        let out = log.verify(extra);
        assert_violation(&out, &format!("event {id} "));
        assert!(
            out.stderr.contains("was altered since seal"),
            "{}",
            out.stderr
        );
    }
}

/// A copy of the archive without one event's row in its Parquet file, and the manifest's
/// size, SHA-256 and row count made to match, so that `archive --check` passes it.
fn archive_without(from: &Path, to: &Path, id: i64) -> PathBuf {
    let status = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(status.success());
    let mut changed = None;
    for manifest_path in walk(to).into_iter().filter(|p| {
        p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.ends_with(".manifest.json"))
    }) {
        let mut manifest: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&manifest_path).unwrap()).unwrap();
        let dir = manifest_path.parent().unwrap().to_path_buf();
        let mut removed = false;
        for file in manifest["files"].as_array_mut().unwrap() {
            let path = dir.join(file["path"].as_str().unwrap());
            let reader =
                ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&path).unwrap())
                    .unwrap()
                    .build()
                    .unwrap();
            let batches: Vec<RecordBatch> = reader.map(|b| b.unwrap()).collect();
            let mut kept = Vec::new();
            let mut hit = false;
            for b in &batches {
                let ids = b
                    .column_by_name("id")
                    .unwrap()
                    .as_primitive::<arrow_array::types::Int64Type>();
                match (0..b.num_rows()).find(|&i| ids.value(i) == id) {
                    Some(i) => {
                        hit = true;
                        kept.push(b.slice(0, i));
                        kept.push(b.slice(i + 1, b.num_rows() - i - 1));
                    }
                    None => kept.push(b.clone()),
                }
            }
            if !hit {
                continue;
            }
            let mut writer = ArrowWriter::try_new(
                std::fs::File::create(&path).unwrap(),
                batches[0].schema(),
                None,
            )
            .unwrap();
            for b in kept.iter().filter(|b| b.num_rows() > 0) {
                writer.write(b).unwrap();
            }
            writer.close().unwrap();
            let sum = Command::new("sha256sum").arg(&path).output().unwrap();
            let sha = String::from_utf8(sum.stdout).unwrap();
            file["sha256"] = sha.split_whitespace().next().unwrap().into();
            file["bytes"] = std::fs::metadata(&path).unwrap().len().into();
            file["rows"] = (file["rows"].as_i64().unwrap() - 1).into();
            removed = true;
            changed = Some(path);
        }
        if removed {
            manifest["rows"] = (manifest["rows"].as_i64().unwrap() - 1).into();
            std::fs::write(
                &manifest_path,
                serde_json::to_vec_pretty(&manifest).unwrap(),
            )
            .unwrap();
        }
    }
    changed.expect("the event is in the archive")
}

/// 0.2.0 dropped a month on a record anyone in audit_admin could type (only its row count
/// was checked), and `verify --archive` took a month whose rows were gone from the archive
/// for one "dropped without an archive". Now: only audit_service records archives, each
/// bound to the digest of the partition's events, and a drop that relied on an archive needs
/// every dropped event in it.
#[test]
fn retention_relies_only_on_archives_the_archive_command_recorded() {
    let log = sealed_history();
    log.sql("SELECT audit.set_retention('1 month')");
    let (oldest, rows): (String, i64) = {
        let row = log
            .db
            .client()
            .query_one(
                "SELECT p.partition, (SELECT count(*) FROM audit.events AS e
                                        WHERE e.tableoid = p.partition::regclass)
                   FROM audit.partitions AS p WHERE NOT p.is_default ORDER BY p.from_time LIMIT 1",
                &[],
            )
            .unwrap();
        (row.get(0), row.get(1))
    };
    let record =
        "SELECT audit.record_archive($1, $2, '/nowhere', '{\"files\": []}', repeat('0', 64))";
    let reader = log.db.create_role("reader", "LOGIN IN ROLE audit_admin");
    let err = log
        .db
        .client_as(&reader)
        .execute(record, &[&oldest, &rows])
        .expect_err("a reader may not record an archive");
    assert_eq!(audit_trail_tests::sqlstate(&err), "42501");
    let err = log
        .db
        .client()
        .execute(record, &[&oldest, &rows])
        .expect_err("a made-up digest");
    assert!(
        audit_trail_tests::error_text(&err).contains("does not hold the partition's events"),
        "{err}"
    );
    let done = log.maintain();
    assert_eq!(done["dropped"].as_array().map(Vec::len), Some(0), "{done}");

    // The archive command, as the service's role: every closed month archived and recorded
    // (each an audit_log/archive event), then dropped.
    let service = log
        .db
        .create_role("archivist", "LOGIN IN ROLE audit_service");
    let out = run(command()
        .args([
            "archive",
            "--db",
            &log.db.conninfo(&service),
            "--output-dir",
        ])
        .arg(log.archive_dir()));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        log.count(
            "SELECT count(*) FROM audit.events WHERE entity = 'audit_log' AND action = 'archive'"
        ),
        4
    );
    let done = log.maintain();
    assert_eq!(done["dropped"].as_array().map(Vec::len), Some(3), "{done}");
    log.seal_all();
    let archive = log.archive_dir();
    let out = log.verify(&["--archive", archive.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{} {}", out.stdout, out.stderr);

    // A copy of the archive that lost a dropped event (its manifest made to match).
    let dropped_id: i64 = log.count(
        "SELECT max(d.id) FROM audit.seals AS s, generate_series(0, s.events - 1) AS k,
                LATERAL (SELECT ('x' || encode(substring(s.digests FROM k * 24 + 9 FOR 8), 'hex'))::bit(64)::bigint AS id) AS d
          WHERE NOT EXISTS (SELECT FROM audit.events AS e WHERE e.id = d.id)",
    );
    let thinned = log.dir.path().join("thinned");
    archive_without(&archive, &thinned, dropped_id);
    let check = run(command().args(["archive", "--check"]).arg(&thinned));
    assert_eq!(check.code, 0, "{}", check.stderr);
    let out = log.verify(&["--archive", thinned.to_str().unwrap()]);
    assert_violation(&out, &format!("event {dropped_id} "));
    assert!(out.stderr.contains("relying on one"), "{}", out.stderr);
}

/// 0.2.0: the second purge dropped the first purge's event, and verify reported the first
/// drop's notes as recorded by no purge event, for good. A year of monthly retention, then
/// two purges that take every purge event before them: each purge event carries the ones it
/// drops, and the log verifies throughout.
#[test]
fn a_year_of_monthly_retention_and_purges_of_the_purge_events_keep_verifying() {
    let log = sealed_months(13);
    for keep in (1..=12).rev() {
        log.sql(&format!(
            "SELECT audit.set_retention('{keep} months', archive_first => false)"
        ));
        let done = log.maintain();
        assert_eq!(
            done["dropped"].as_array().map(Vec::len),
            Some(1),
            "{keep}: {done}"
        );
        log.seal_all();
    }
    let (code, report) = log.verify_json(&[]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(
        report["purges"].as_array().map(Vec::len),
        Some(12),
        "{report}"
    );

    for round in 0..2 {
        log.sql(&format!(
            "SELECT audit.log_event('contact', 'export', NULL, '{{\"round\": {round}}}')"
        ));
        log.seal_all();
        log.sql("SELECT audit.purge(now())");
        log.seal_all();
        let (code, report) = log.verify_json(&[]);
        assert_eq!(code, 0, "round {round}: {report}");
        let purges = report["purges"].as_array().expect("purges");
        let carried = purges.iter().filter(|p| p["carried_by"].is_i64()).count();
        assert!(carried >= 12 + round, "round {round}: {report}");
    }
    let out = log.verify(&["--checkpoints", log.checkpoints().to_str().unwrap()]);
    assert_eq!(out.code, 0, "{} {}", out.stdout, out.stderr);
}
