//! Tamper evidence end to end: keygen, seal and verify with the real binary; a superuser who
//! switches off every guard and rewrites the log is caught, each way the issue lists.

use std::path::{Path, PathBuf};

use audit_trail_tests::sidecar::{command, run, Run};
use audit_trail_tests::{error_text, TestDb};

struct Sealed {
    db: TestDb,
    dir: tempfile::TempDir,
}

impl Sealed {
    fn key(&self) -> PathBuf {
        self.dir.path().join("seal.key")
    }
    fn pubkey(&self) -> PathBuf {
        self.dir.path().join("seal.key.pub")
    }
    fn checkpoints(&self) -> PathBuf {
        self.dir.path().join("checkpoints")
    }
    fn seal(&self) -> Run {
        seal_with(&self.db, &self.key(), &self.checkpoints())
    }
    /// Seals until nothing waits. Other tests' transactions on the shared cluster can hold
    /// the watermark for a moment (transaction ids are cluster-wide).
    fn seal_all(&self) {
        for _ in 0..600 {
            let out = self.seal();
            assert_eq!(out.code, 0, "{}", out.stderr);
            let waiting: i64 = self
                .db
                .client()
                .query_one("SELECT unsealed_events FROM audit.integrity", &[])
                .unwrap()
                .get(0);
            if waiting == 0 {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
        panic!("events stayed unsealed for 5 minutes");
    }
    fn verify(&self, extra: &[&str]) -> Run {
        let mut cmd = command();
        cmd.args(["verify", "--db", &self.db.conninfo("postgres"), "--pubkey"])
            .arg(self.pubkey())
            .args(extra);
        run(&mut cmd)
    }
    fn verify_with_checkpoints(&self) -> Run {
        let dir = self.checkpoints();
        self.verify(&["--checkpoints", dir.to_str().unwrap()])
    }
    /// Runs `sql` as a superuser who first switches off every guard the extension has, then
    /// switches them back on, as an attacker would.
    fn tamper(&self, sql: &str) {
        self.db
            .client()
            .batch_execute(&format!(
                "ALTER EVENT TRIGGER audit_trail_ddl_command_end DISABLE;
                 ALTER EVENT TRIGGER audit_trail_sql_drop DISABLE;
                 ALTER TABLE audit.events DISABLE TRIGGER USER;
                 ALTER TABLE audit.seals DISABLE TRIGGER USER;
                 ALTER TABLE audit.seal_keys DISABLE TRIGGER USER;
                 {sql};
                 ALTER TABLE audit.events ENABLE ALWAYS TRIGGER events_append_only;
                 ALTER TABLE audit.events ENABLE ALWAYS TRIGGER events_no_sql_insert;
                 ALTER TABLE audit.seals ENABLE ALWAYS TRIGGER seals_append_only;
                 ALTER TABLE audit.seal_keys ENABLE ALWAYS TRIGGER seal_keys_append_only;
                 ALTER EVENT TRIGGER audit_trail_ddl_command_end ENABLE ALWAYS;
                 ALTER EVENT TRIGGER audit_trail_sql_drop ENABLE ALWAYS;"
            ))
            .expect("tampering as a superuser");
    }
    fn ids(&self, condition: &str) -> Vec<i64> {
        self.db
            .client()
            .query(
                &format!("SELECT id FROM audit.events WHERE {condition} ORDER BY txid, id"),
                &[],
            )
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect()
    }
}

fn keygen(path: &Path) {
    let out = run(command().args(["keygen", "--output"]).arg(path));
    assert_eq!(out.code, 0, "{}", out.stderr);
}

fn seal_with(db: &TestDb, key: &Path, checkpoints: &Path) -> Run {
    run(command()
        .args([
            "seal",
            "--once",
            "--batch",
            "10",
            "--db",
            &db.conninfo("postgres"),
            "--key",
        ])
        .arg(key)
        .arg("--checkpoints")
        .arg(checkpoints))
}

/// 40 events in 8 transactions, sealed in batches of 10.
fn sealed() -> Sealed {
    let db = TestDb::new();
    db.client()
        .batch_execute(
            "CREATE TABLE items (id int PRIMARY KEY, v text);
             SELECT audit.track('items', 'item');",
        )
        .unwrap();
    for n in 0..8 {
        db.client()
            .batch_execute(&format!(
                "INSERT INTO items SELECT g, 'v' FROM generate_series({}, {}) g",
                n * 5 + 1,
                n * 5 + 4
            ))
            .unwrap();
        db.client()
            .batch_execute(&format!(
                "UPDATE items SET v = 'w' WHERE id = {}",
                n * 5 + 1
            ))
            .unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("checkpoints")).unwrap();
    let s = Sealed { db, dir };
    keygen(&s.key());
    s.seal_all();
    s
}

fn assert_violation(out: &Run, needle: &str) {
    assert_eq!(
        out.code, 4,
        "expected exit 4: {} {}",
        out.stdout, out.stderr
    );
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert!(
        out.stderr.contains(needle),
        "wanted {needle:?} in: {}",
        out.stderr
    );
}

#[test]
fn an_untouched_log_verifies_and_every_event_is_sealed_once() {
    let s = sealed();
    let out = s.verify_with_checkpoints();
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("intact"), "{}", out.stdout);
    let (sealed, unsealed, seals): (i64, i64, i64) =
        s.db.client()
            .query_one(
                "SELECT sealed_events, unsealed_events, (SELECT count(*) FROM audit.seals)
               FROM audit.integrity",
                &[],
            )
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .unwrap();
    let all: i64 =
        s.db.client()
            .query_one("SELECT count(*) FROM audit.events", &[])
            .unwrap()
            .get(0);
    assert_eq!((sealed, unsealed), (all, 0));
    // Batches of at most 10 (more seals when other tests' transactions held the watermark).
    assert!(seals >= (all + 9) / 10, "{seals} seals for {all} events");
    let biggest: i32 =
        s.db.client()
            .query_one("SELECT max(events) FROM audit.seals", &[])
            .unwrap()
            .get(0);
    assert!(biggest <= 10);
    let files = std::fs::read_dir(s.checkpoints()).unwrap().count() as i64;
    assert_eq!(files, seals);
    // Sealing again finds nothing new and changes nothing.
    assert_eq!(s.seal().code, 0);
    assert_eq!(s.verify_with_checkpoints().code, 0);
}

#[test]
fn a_changed_actor_is_found() {
    let s = sealed();
    let id = s.ids("action = 'update'")[2];
    s.tamper(&format!(
        "UPDATE audit.events SET actor = 'mallory' WHERE id = {id}"
    ));
    assert_violation(&s.verify(&[]), &format!("event {id} "));
    assert_violation(&s.verify(&[]), "was altered");
    // Every finding as JSON, and the failed verification is itself on record.
    let out = s.verify(&["--format", "json"]);
    assert_eq!(out.code, 4, "{}", out.stderr);
    let report: serde_json::Value = serde_json::from_str(&out.stdout).expect("a JSON report");
    assert_eq!(report["intact"], false);
    assert_eq!(report["findings"][0]["kind"], "event_altered");
    assert_eq!(report["findings"][0]["event_id"], id);
    let recorded: i64 =
        s.db.client()
            .query_one(
                "SELECT count(*) FROM audit.events
              WHERE entity = 'audit_log' AND action = 'verify_failed'",
                &[],
            )
            .unwrap()
            .get(0);
    assert_eq!(recorded, 3);
}

#[test]
fn a_deleted_event_is_found() {
    let s = sealed();
    let id = s.ids("true")[13];
    s.tamper(&format!("DELETE FROM audit.events WHERE id = {id}"));
    assert_violation(&s.verify(&[]), &format!("event {id} "));
    assert_violation(&s.verify(&[]), "is missing");
}

#[test]
fn a_forged_event_at_a_sealed_position_is_found() {
    let s = sealed();
    // A plausible id inside the sealed range, in a sealed transaction.
    let (txid, id): (String, i64) = s
        .db
        .client()
        .query_one(
            "SELECT txid::text, max(id) + 1000 FROM audit.events GROUP BY txid ORDER BY txid LIMIT 1",
            &[],
        )
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    s.tamper(&format!(
        "INSERT INTO audit.events (id, txid, actor, entity, action, subject_id)
         VALUES ({id}, '{txid}', 'auditor', 'item', 'delete', '1')"
    ));
    assert_violation(&s.verify(&[]), &format!("event {id} "));
    assert_violation(&s.verify(&[]), "was inserted");
}

#[test]
fn swapped_ids_are_found() {
    let s = sealed();
    let ids = s.ids("true");
    let (a, b) = (ids[4], ids[5]);
    s.tamper(&format!(
        "UPDATE audit.events SET id = -1 WHERE id = {a};
         UPDATE audit.events SET id = {a} WHERE id = {b};
         UPDATE audit.events SET id = {b} WHERE id = -1"
    ));
    assert_violation(&s.verify(&[]), &format!("event {a} "));
}

#[test]
fn a_cut_off_tail_is_found_against_the_checkpoints() {
    let s = sealed();
    let last: i64 =
        s.db.client()
            .query_one("SELECT max(seq) FROM audit.seals", &[])
            .unwrap()
            .get(0);
    s.tamper(&format!(
        "DELETE FROM audit.events WHERE (txid, id) > (SELECT last_txid, last_id FROM audit.seals WHERE seq = {});
         DELETE FROM audit.seals WHERE seq = {last}",
        last - 1
    ));
    // Without the checkpoints the shortened log is consistent; with them it is not.
    assert_eq!(s.verify(&[]).code, 0);
    assert_violation(&s.verify_with_checkpoints(), "cut off");
}

#[test]
fn seals_recomputed_without_the_key_are_found() {
    let s = sealed();
    let id = s.ids("true")[0];
    // The attacker changes an event, drops the seals and re-seals with a key of their own.
    let forged_key = s.dir.path().join("forged.key");
    keygen(&forged_key);
    s.tamper(&format!(
        "UPDATE audit.events SET actor = 'mallory' WHERE id = {id};
         DELETE FROM audit.seals; DELETE FROM audit.seal_keys"
    ));
    let forged_dir = s.dir.path().join("forged-checkpoints");
    std::fs::create_dir(&forged_dir).unwrap();
    // Re-seal everything (other tests' open transactions can hold the watermark back).
    for _ in 0..300 {
        let out = seal_with(&s.db, &forged_key, &forged_dir);
        assert_eq!(out.code, 0, "{}", out.stderr);
        let unsealed: i64 =
            s.db.client()
                .query_one("SELECT unsealed_events FROM audit.integrity", &[])
                .unwrap()
                .get(0);
        if unsealed == 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_violation(&s.verify(&[]), "which was not given");
    // Rewriting a seal's signed text in place is caught by its signature.
    let s = sealed();
    s.tamper(
        "UPDATE audit.seals SET checkpoint = replace(checkpoint, 'head ', 'head 0') WHERE seq = 2",
    );
    assert_violation(&s.verify(&[]), "seal 2 has a bad signature");
}

#[test]
fn a_replaced_public_key_in_the_database_is_found() {
    let s = sealed();
    let other = s.dir.path().join("other.key");
    keygen(&other);
    let other_pub = std::fs::read_to_string(s.dir.path().join("other.key.pub")).unwrap();
    let hex = other_pub.lines().nth(1).unwrap();
    s.tamper(&format!(
        "UPDATE audit.seal_keys SET public_key = decode('{hex}', 'hex')"
    ));
    assert_violation(&s.verify(&[]), "differs from the given key");
}

#[test]
fn a_late_commit_is_sealed_in_its_place_while_writers_keep_committing() {
    let s = sealed();
    let mut late = s.db.client();
    late.batch_execute("BEGIN; INSERT INTO items VALUES (1000, 'late')")
        .unwrap();
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let conninfo = s.db.conninfo("postgres");
            std::thread::spawn(move || {
                let mut c = postgres::Client::connect(&conninfo, postgres::NoTls).unwrap();
                for i in 0..25 {
                    c.batch_execute(&format!(
                        "INSERT INTO items VALUES ({}, 'w')",
                        2000 + w * 100 + i
                    ))
                    .unwrap();
                }
            })
        })
        .collect();
    // Seal while they write: only what lies below every open transaction is sealed.
    for _ in 0..3 {
        let out = s.seal();
        assert_eq!(out.code, 0, "{}", out.stderr);
    }
    for w in writers {
        w.join().unwrap();
    }
    late.batch_execute("COMMIT").unwrap();
    // Other tests' transactions on the shared cluster can hold the watermark for a while
    // (transaction ids are cluster-wide): seal until everything is sealed, or give up.
    let count = |q: &str| -> i64 { s.db.client().query_one(q, &[]).unwrap().get(0) };
    let all = count("SELECT count(*) FROM audit.events");
    for _ in 0..600 {
        let out = s.seal();
        assert_eq!(out.code, 0, "{}", out.stderr);
        if count("SELECT sealed_events FROM audit.integrity") == all {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    // Every event exactly once: the late one in its place, none twice.
    assert_eq!(count("SELECT sealed_events FROM audit.integrity"), all);
    assert_eq!(count("SELECT unsealed_events FROM audit.integrity"), 0);
    let out = s.verify_with_checkpoints();
    assert_eq!(out.code, 0, "{}", out.stderr);
}

#[test]
fn the_guards_refuse_even_a_superuser_who_does_not_disable_them_first() {
    let s = sealed();
    let mut c = s.db.client();
    for sql in [
        "ALTER TABLE audit.events DISABLE TRIGGER events_append_only",
        "ALTER TABLE audit.seals DISABLE TRIGGER seals_append_only",
        "ALTER TABLE audit.events ADD COLUMN note text",
        "DROP TRIGGER events_append_only ON audit.events",
        "DELETE FROM audit.seals",
        "UPDATE audit.seal_keys SET registered_by = 'x'",
    ] {
        let err = c.batch_execute(sql).unwrap_err();
        assert_eq!(
            audit_trail_tests::sqlstate(&err),
            "42501",
            "{sql}: {}",
            error_text(&err)
        );
    }
    assert_eq!(s.verify(&[]).code, 0);
}

#[test]
fn bad_keys_directories_and_roles_get_one_line_and_the_right_code() {
    let s = sealed();
    let conninfo = s.db.conninfo("postgres");
    let check = |out: Run, code: i32, needle: &str| {
        assert_eq!(out.code, code, "{needle}: {}", out.stderr);
        assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
        assert!(out.stderr.contains(needle), "{needle}: {}", out.stderr);
    };
    // verify without a key it can trust.
    check(
        run(command().args(["verify", "--db", &conninfo])),
        2,
        "--pubkey",
    );
    // A secret key given as the public one, and a file that is no key at all.
    check(
        run(command()
            .args(["verify", "--db", &conninfo, "--pubkey"])
            .arg(s.key())),
        2,
        "not an audit_trail public key file",
    );
    let junk = s.dir.path().join("junk");
    std::fs::write(&junk, "hello\n").unwrap();
    check(
        run(command()
            .args(["seal", "--once", "--db", &conninfo, "--key"])
            .arg(&junk)
            .arg("--checkpoints")
            .arg(s.checkpoints())),
        2,
        "not an audit_trail secret key file",
    );
    check(
        run(command()
            .args(["seal", "--once", "--db", &conninfo, "--key"])
            .arg(s.dir.path().join("missing.key"))
            .arg("--checkpoints")
            .arg(s.checkpoints())),
        2,
        "missing.key",
    );
    check(
        run(command()
            .args(["verify", "--db", &conninfo, "--pubkey"])
            .arg(s.dir.path().join("missing.key.pub"))),
        2,
        "missing.key.pub",
    );
    // A checkpoint directory that does not exist.
    check(
        seal_with(&s.db, &s.key(), &s.dir.path().join("nowhere")),
        2,
        "nowhere",
    );
    // A role that is not an audit admin.
    let clerk = s.db.create_role("clerk", "LOGIN");
    let out = run(command()
        .args(["verify", "--db", &s.db.conninfo(&clerk), "--pubkey"])
        .arg(s.pubkey()));
    assert_eq!(out.code, 3, "{}", out.stderr);
    // keygen never replaces a key.
    check(
        run(command().args(["keygen", "--output"]).arg(s.key())),
        2,
        "exists already",
    );
}

#[test]
fn a_restored_backup_of_a_sealed_log_verifies() {
    let s = sealed();
    let dump = s.dir.path().join("db.dump");
    let bindir = s.db.cluster.bindir();
    let out = std::process::Command::new(bindir.join("pg_dump"))
        .args(["-Fc", "-f"])
        .arg(&dump)
        .args(["-d", &s.db.conninfo("postgres")])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let restored = TestDb::without_extension();
    let out = std::process::Command::new(bindir.join("pg_restore"))
        .args(["-d", &restored.conninfo("postgres")])
        .arg(&dump)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut cmd = command();
    cmd.args(["verify", "--db", &restored.conninfo("postgres"), "--pubkey"])
        .arg(s.pubkey())
        .arg("--checkpoints")
        .arg(s.checkpoints());
    let out = run(&mut cmd);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("intact"), "{}", out.stdout);
}

#[test]
fn the_dashboard_shows_how_far_the_log_is_sealed_and_sign_ins_are_recorded() {
    use audit_trail_tests::browser::{Dashboard, Http};
    const PASSWORD: &str = "correct horse battery";
    let s = sealed();
    let admin = s.db.create_role(
        "sealadmin",
        &format!("LOGIN PASSWORD '{PASSWORD}' IN ROLE audit_admin"),
    );
    s.db.client()
        .batch_execute("INSERT INTO items VALUES (9000, 'after the seal')")
        .unwrap();
    let dash = Dashboard::start(&s.db);
    let http = Http::new(&dash);
    let cookie = http.session(&admin, PASSWORD);
    let page = http.get("/reports/audit-log", Some(&cookie));
    assert_eq!(page.status, 200, "{}", page.body);
    let last_sealed: i64 =
        s.db.client()
            .query_one("SELECT sealed_through_id FROM audit.integrity", &[])
            .unwrap()
            .get(0);
    assert!(
        page.body
            .contains(&format!("Sealed through event {last_sealed} (")),
        "{}",
        page.body
    );
    // The insert above and the sign-in itself wait to be sealed.
    assert!(
        page.body.contains("2 events waiting to be sealed"),
        "{}",
        page.body
    );
    let (actor, source, summary): (String, String, String) =
        s.db.client()
            .query_one(
                "SELECT actor, source, summary FROM audit.report WHERE action = 'sign_in'",
                &[],
            )
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .unwrap();
    assert_eq!(
        (actor.as_str(), source.as_str()),
        (admin.as_str(), "dashboard")
    );
    assert!(
        summary.contains("signed in to the dashboard from"),
        "{summary}"
    );
}

#[test]
fn after_a_key_rotation_old_seals_verify_with_the_old_public_key() {
    let s = sealed();
    let new_key = s.dir.path().join("new.key");
    keygen(&new_key);
    s.db.client()
        .batch_execute("INSERT INTO items VALUES (7000, 'after the rotation')")
        .unwrap();
    // Other tests' open transactions can hold the cluster-wide watermark back, and then a
    // `seal --once` seals nothing yet: seal until the new event is sealed (bounded).
    let mut keys: i64 = 0;
    for _ in 0..300 {
        let out = seal_with(&s.db, &new_key, &s.checkpoints());
        assert_eq!(out.code, 0, "{}", out.stderr);
        keys =
            s.db.client()
                .query_one("SELECT count(DISTINCT key_id) FROM audit.seals", &[])
                .unwrap()
                .get(0);
        if keys == 2 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(keys, 2);
    let new_pub = s.dir.path().join("new.key.pub");
    let out = s.verify(&["--pubkey", new_pub.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    // With only the new key, the old seals cannot be checked: said so, exit 4.
    let mut cmd = command();
    cmd.args(["verify", "--db", &s.db.conninfo("postgres"), "--pubkey"])
        .arg(&new_pub);
    assert_violation(&run(&mut cmd), "which was not given");
}

/// An event's organization is sealed with it: events with one hash by version 2 of the
/// encoding and verify, and moving an event to another organization, or giving one to an
/// event sealed without, is found.
#[test]
fn an_events_organization_is_sealed_with_it() {
    let s = sealed();
    s.db.client()
        .batch_execute(
            "BEGIN;
             SELECT audit.set_actor('ann', tenant => 'acme');
             INSERT INTO items SELECT g, 'v' FROM generate_series(100, 104) g;
             COMMIT;",
        )
        .expect("events of an organization");
    s.seal_all();
    let out = s.verify(&[]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let with = s.ids("tenant = 'acme'");
    let without = s.ids("tenant IS NULL AND action = 'create'");
    assert_eq!(with.len(), 5);
    s.tamper(&format!(
        "UPDATE audit.events SET tenant = 'globex' WHERE id = {}",
        with[1]
    ));
    assert_violation(&s.verify(&[]), &format!("event {} ", with[1]));
    s.tamper(&format!(
        "UPDATE audit.events SET tenant = 'acme' WHERE id IN ({}, {}); \
         UPDATE audit.events SET tenant = NULL WHERE id = {}",
        with[1], without[0], with[2]
    ));
    let out = s.verify(&["--format", "json"]);
    assert_eq!(out.code, 4, "{}", out.stderr);
    let report: serde_json::Value = serde_json::from_str(&out.stdout).expect("a JSON report");
    let altered: Vec<i64> = report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| f["kind"] == "event_altered")
        .filter_map(|f| f["event_id"].as_i64())
        .collect();
    assert!(altered.contains(&without[0]), "{report}");
    assert!(altered.contains(&with[2]), "{report}");
    assert!(!altered.contains(&with[1]), "restored: {report}");
}
