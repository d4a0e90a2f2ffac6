//! The record keeps its word against its own admins and machinery: verify reads what readers
//! read, no reader can stop sealing, forge the alert engine's state or move its cursor
//! unseen, captured changes and lifetime actions alert, a live log takes no SQL insert, and
//! an export is recorded before its first row leaves. Each test is an attack that worked on
//! 0.2.0, made with the real roles and the real `audit-trail` binary.

use std::io::{Read, Write};
use std::path::PathBuf;

use audit_trail_tests::browser::{Dashboard, Http};
use audit_trail_tests::sidecar::{command, run, Run};
use audit_trail_tests::{error_text, sqlstate, TestDb};

const PASSWORD: &str = "trust-test-password";

/// A database with a tracked table, some activity, and a key to seal it with.
struct Sealed {
    db: TestDb,
    dir: tempfile::TempDir,
}

impl Sealed {
    fn new() -> Sealed {
        let db = TestDb::new();
        db.client()
            .batch_execute(
                "CREATE TABLE items (id int PRIMARY KEY, v text);
                 SELECT audit.track('items', 'item');
                 INSERT INTO items SELECT g, 'v' || g FROM generate_series(1, 12) g;
                 UPDATE items SET v = 'changed' WHERE id <= 4;",
            )
            .expect("set-up");
        let dir = tempfile::tempdir().expect("tempdir");
        let out = run(command()
            .args(["keygen", "--output"])
            .arg(dir.path().join("seal.key")));
        assert_eq!(out.code, 0, "{}", out.stderr);
        std::fs::create_dir(dir.path().join("checkpoints")).expect("checkpoints");
        Sealed { db, dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `seal --once` as `role`.
    fn seal_as(&self, role: &str) -> Run {
        run(command()
            .args([
                "seal",
                "--once",
                "--batch",
                "5",
                "--db",
                &self.db.conninfo(role),
            ])
            .arg("--key")
            .arg(self.path("seal.key"))
            .arg("--checkpoints")
            .arg(self.path("checkpoints")))
    }

    /// Seals until nothing waits (other tests' transactions can hold the watermark).
    fn seal_all(&self) {
        for _ in 0..600 {
            let out = self.seal_as("postgres");
            assert_eq!(out.code, 0, "{}", out.stderr);
            let waiting: i64 = self
                .db
                .client()
                .query_one("SELECT unsealed_events FROM audit.integrity", &[])
                .expect("integrity")
                .get(0);
            if waiting == 0 {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(300));
        }
        panic!("events stayed unsealed for 3 minutes");
    }

    fn verify_as(&self, role: &str, extra: &[&str]) -> Run {
        run(command()
            .args(["verify", "--db", &self.db.conninfo(role), "--pubkey"])
            .arg(self.path("seal.key.pub"))
            .args(extra))
    }

    /// As a superuser with the extension's event triggers off, then on again.
    fn as_attacker(&self, sql: &str) {
        self.db
            .client()
            .batch_execute(&format!(
                "ALTER EVENT TRIGGER audit_trail_ddl_command_end DISABLE;
                 ALTER EVENT TRIGGER audit_trail_sql_drop DISABLE;
                 {sql};
                 ALTER EVENT TRIGGER audit_trail_ddl_command_end ENABLE ALWAYS;
                 ALTER EVENT TRIGGER audit_trail_sql_drop ENABLE ALWAYS;"
            ))
            .expect("the attack");
    }

    fn findings(&self, role: &str) -> Vec<serde_json::Value> {
        let out = self.verify_as(role, &["--format", "json"]);
        assert_eq!(out.code, 4, "{} {}", out.stdout, out.stderr);
        let report: serde_json::Value = serde_json::from_str(&out.stdout).expect("JSON report");
        report["findings"].as_array().expect("findings").clone()
    }
}

fn kinds(findings: &[serde_json::Value]) -> Vec<String> {
    findings
        .iter()
        .map(|f| f["kind"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn a_policy_that_shows_verify_another_log_than_readers_see_is_a_violation() {
    let s = Sealed::new();
    s.seal_all();
    let auditor = s.db.create_role("auditor", "LOGIN IN ROLE audit_admin");
    let out = s.verify_as(&auditor, &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    // The attack of the issue: a forged copy of a sealed event under another actor, and a
    // policy that shows verify the original and everyone else the copy, carried into the
    // report's view by security_invoker.
    let id: i64 =
        s.db.client()
            .query_one(
                "SELECT id FROM audit.events WHERE entity = 'item' AND action = 'update' LIMIT 1",
                &[],
            )
            .expect("an update")
            .get(0);
    s.as_attacker(&format!(
        "ALTER TABLE audit.events DISABLE TRIGGER USER;
         INSERT INTO audit.events SELECT id, occurred_at, txid, 'mallory', db_user, source,
                client_addr, application_name, entity, action, table_name, subject_id,
                changed_fields, old_data, new_data, context, details
           FROM audit.events WHERE id = {id};
         ALTER TABLE audit.events ENABLE ALWAYS TRIGGER events_append_only;
         ALTER TABLE audit.events ENABLE ALWAYS TRIGGER events_no_sql_insert;
         ALTER TABLE audit.events ENABLE ROW LEVEL SECURITY;
         CREATE POLICY two_faces ON audit.events USING (
             CASE WHEN current_setting('application_name') = 'audit-trail verify'
                  THEN actor <> 'mallory' ELSE id <> {id} OR actor = 'mallory' END);
         ALTER VIEW audit.report SET (security_invoker = true)"
    ));
    // Readers now see the event under mallory's name.
    let shown: String =
        s.db.client_as(&auditor)
            .query_one(
                &format!("SELECT actor FROM audit.report WHERE id = {id}"),
                &[],
            )
            .expect("the report")
            .get(0);
    assert_eq!(shown, "mallory", "the attack works on what readers read");
    // verify names the policy, the row security and the view option, and exits 4.
    let found = s.findings(&auditor);
    let kinds = kinds(&found);
    for kind in ["schema_row_security", "schema_policy", "schema_view_option"] {
        assert!(kinds.iter().any(|k| k == kind), "{kind} not in {found:#?}");
    }
    let text = s.verify_as(&auditor, &[]);
    assert_eq!(text.code, 4);
    assert!(text.stderr.contains("audit.events"), "{}", text.stderr);
    // As a superuser (which row security does not filter), the forged copy is found too.
    let as_superuser = kinds_of(&s, "postgres");
    assert!(
        as_superuser.iter().any(|k| k.starts_with("event_")),
        "{as_superuser:?}"
    );
    // audit.integrity says so (the dashboard's line too: see the next test).
    let listed: Vec<String> =
        s.db.client()
            .query_one("SELECT schema_findings FROM audit.integrity", &[])
            .expect("integrity")
            .get(0);
    assert!(
        listed.iter().any(|l| l.contains("row-level security")),
        "{listed:?}"
    );
}

fn kinds_of(s: &Sealed, role: &str) -> Vec<String> {
    kinds(&s.findings(role))
}

#[test]
fn redefined_objects_and_switched_off_guards_are_named_by_verify() {
    let s = Sealed::new();
    s.seal_all();
    assert_eq!(s.verify_as("postgres", &[]).code, 0);
    s.as_attacker(
        "CREATE OR REPLACE VIEW audit.contact_activity AS
             SELECT * FROM audit.report WHERE entity = 'contact' AND actor <> 'mallory';
         CREATE OR REPLACE FUNCTION audit.set_actor(actor text, source text DEFAULT NULL,
                                                    context jsonb DEFAULT NULL,
                                                    tenant text DEFAULT NULL)
             RETURNS void LANGUAGE sql AS $$ SELECT set_config('audit.actor', 'someone', true) $$;
         ALTER TABLE audit.events_default DISABLE TRIGGER events_append_only;
         CREATE FUNCTION audit.helper() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$;
         CREATE RULE hide AS ON INSERT TO audit.seals DO INSTEAD NOTHING",
    );
    s.db.client()
        .batch_execute("ALTER EVENT TRIGGER audit_trail_sql_drop DISABLE")
        .expect("an event trigger left off");
    let found = s.findings("postgres");
    let text = serde_json::to_string(&found).expect("json");
    for (kind, object) in [
        ("schema_object_redefined", "audit.contact_activity"),
        ("schema_object_redefined", "audit.set_actor"),
        ("schema_trigger_disabled", "audit.events_default"),
        ("schema_unexpected_object", "audit.helper()"),
        ("schema_rule", "audit.seals"),
        ("schema_event_trigger_disabled", "audit_trail_sql_drop"),
    ] {
        assert!(
            found
                .iter()
                .any(|f| f["kind"] == kind
                    && f["message"].as_str().is_some_and(|m| m.contains(object))),
            "{kind} {object} not in {text}"
        );
    }
    // The dashboard's line above the log warns an admin, and sends them to verify.
    let admin = s.db.create_role(
        "admin",
        &format!("LOGIN PASSWORD '{PASSWORD}' IN ROLE audit_admin"),
    );
    let dash = Dashboard::start(&s.db);
    let http = Http::new(&dash);
    let cookie = http.session(&admin, PASSWORD);
    let page = http.get("/reports/audit-log", Some(&cookie));
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body.contains("the audit schema was changed")
            && page.body.contains("run audit-trail verify"),
        "{}",
        page.body
    );
    // Every finding of the schema's own query (verify adds what needs the release's
    // reference, such as redefined objects): the first named, the others counted.
    let listed: Vec<String> =
        s.db.client()
            .query_one("SELECT schema_findings FROM audit.integrity", &[])
            .expect("integrity")
            .get(0);
    assert!(listed.len() > 1, "{listed:?}");
    assert!(
        page.body
            .contains(&format!("(and {} more)", listed.len() - 1)),
        "{listed:?}: {}",
        page.body
    );
}

#[test]
fn no_reader_can_stop_sealing_and_seals_enter_only_when_they_are_the_next_link() {
    let s = Sealed::new();
    let reader = s.db.create_role("reader", "LOGIN IN ROLE audit_admin");
    let sealer = s.db.create_role("sealer", "LOGIN IN ROLE audit_service");
    // The 0.2.0 attack: one junk seal whose last position is the top of the xid8 range.
    let junk = "INSERT INTO audit.seals (seq, first_txid, first_id, last_txid, last_id, events,
                                          total, prev_head, batch_root, head, digests, key_id,
                                          checkpoint, signature)
                VALUES (1, '1', 1, '18446744073709551615', 1, 1, 1, decode(repeat('00', 32), 'hex'),
                        decode(repeat('00', 32), 'hex'), decode(repeat('00', 32), 'hex'),
                        decode(repeat('00', 24), 'hex'), 'k', 'junk', decode(repeat('00', 64), 'hex'))";
    for role in [&reader, &sealer] {
        let err =
            s.db.client_as(role)
                .batch_execute(junk)
                .expect_err("no role inserts seals");
        assert_eq!(sqlstate(&err), "42501", "{role}");
    }
    // A reader may neither register a key nor call the checking function; the service may
    // not register a key either (a superuser decides whose seals count).
    let register = "SELECT audit.register_seal_key('\\x0000000000000000000000000000000000000000000000000000000000000000')";
    for (role, sql) in [
        (&reader, register),
        (&reader, "SELECT audit.add_seal('x', 'k', '\\x00', '\\x00')"),
        (&sealer, register),
    ] {
        let err = s.db.client_as(role).batch_execute(sql).expect_err(sql);
        assert_eq!(sqlstate(&err), "42501", "{role}: {sql}");
    }
    // The service's own role cannot store a seal that is not the next link either.
    let err =
        s.db.client_as(&sealer)
            .batch_execute(
                "SELECT audit.add_seal('audit_trail checkpoint v1\n', 'k', '\\x00', '\\x00')",
            )
            .expect_err("a junk seal");
    assert_eq!(sqlstate(&err), "22000", "{err}");
    // A reader cannot seal with the binary; the service role can once a superuser has
    // registered its key (it says how until then), and verify holds.
    let out = s.seal_as(&reader);
    assert_eq!(out.code, 3, "{}", out.stderr);
    let out = s.seal_as(&sealer);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("SELECT audit.register_seal_key("),
        "{}",
        out.stderr
    );
    let public = std::fs::read_to_string(s.path("seal.key.pub")).expect("the public key");
    let hex = public.lines().nth(1).expect("the key's line");
    s.db.client()
        .batch_execute(&format!("SELECT audit.register_seal_key('\\x{hex}')"))
        .expect("a superuser registers the key");
    // A role with no grants holding the lock key 0.2.0's sealer used stops nothing.
    let nobody = s.db.create_role("nobody", "LOGIN");
    let mut squatter = s.db.client_as(&nobody);
    squatter
        .batch_execute("SELECT pg_advisory_lock(x'61756469745f7365'::bigint)")
        .expect("an advisory lock anyone may take");
    let out = s.seal_as(&sealer);
    assert_eq!(out.code, 0, "{}", out.stderr);
    s.seal_all();
    assert_eq!(s.verify_as(&reader, &[]).code, 0);
    // The key's registration is an event.
    let registered: i64 = s
        .db
        .client()
        .query_one(
            "SELECT count(*) FROM audit.events WHERE entity = 'audit_log' AND action = 'seal_key'",
            &[],
        )
        .expect("seal_key events")
        .get(0);
    assert_eq!(registered, 1);
}

/// A CRM with the alert engine running as its own role, and a reader who is not it.
struct Alerted {
    db: TestDb,
    engine: String,
    reader: String,
    app: String,
}

impl Alerted {
    fn new() -> Alerted {
        let db = TestDb::new();
        let engine = db.create_role("alerter", "LOGIN IN ROLE audit_service");
        let reader = db.create_role("nosy", "LOGIN IN ROLE audit_admin");
        let app = db.create_role("crm_app", "LOGIN");
        db.client()
            .batch_execute(&format!(
                "CREATE TABLE contacts (id int PRIMARY KEY, name text);
                 CREATE TABLE users (id int PRIMARY KEY, name text, role text);
                 SELECT audit.track('contacts', 'contact');
                 SELECT audit.track('users', 'user');
                 GRANT ALL ON contacts, users TO {app};
                 INSERT INTO contacts SELECT g, 'c' || g FROM generate_series(1, 1000) g;"
            ))
            .expect("set-up");
        let a = Alerted {
            db,
            engine,
            reader,
            app,
        };
        // The engine's first run makes its cursor (owned by its role) and reports the set-up.
        a.alerts();
        a
    }

    /// `alert --once --stdout` as the engine's role: the rules fired.
    fn alerts(&self) -> Vec<serde_json::Value> {
        let out = run(command()
            .args([
                "alert",
                "--once",
                "--stdout",
                "--hold-timeout",
                "300",
                "--db",
            ])
            .arg(self.db.conninfo(&self.engine)));
        assert_eq!(out.code, 0, "{}", out.stderr);
        out.stdout
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON alert"))
            .collect()
    }

    fn as_app(&self, actor: &str, sql: &str) {
        let mut client = self.db.client_as(&self.app);
        let mut tx = client.transaction().expect("begin");
        tx.execute("SELECT audit.set_actor($1)", &[&actor])
            .expect("set_actor");
        tx.batch_execute(sql).expect(sql);
        tx.commit().expect("commit");
    }
}

fn rules(alerts: &[serde_json::Value]) -> Vec<String> {
    let mut r: Vec<String> = alerts
        .iter()
        .map(|a| a["rule"].as_str().unwrap_or_default().to_owned())
        .collect();
    r.sort();
    r
}

#[test]
fn a_reader_can_neither_forge_the_engines_alerts_nor_move_its_cursor() {
    let a = Alerted::new();
    let mut reader = a.db.client_as(&a.reader);
    // The 0.2.0 attack: an alert event in the engine's name, quieting mass-deletion for alice.
    let forged = "SELECT audit.log_event('audit_log', 'alert', NULL,
        '{\"rule\": \"mass-deletion\", \"severity\": \"critical\", \"actor\": \"alice\",
          \"window_start\": \"2000-01-01T00:00:00Z\", \"window_end\": \"2999-01-01T00:00:00Z\",
          \"count\": 1, \"event_ids\": [], \"consumer\": \"alerts\"}')";
    let err = reader
        .batch_execute(forged)
        .expect_err("log_event refuses alerts");
    assert_eq!(sqlstate(&err), "22023", "{err}");
    let err = reader
        .batch_execute("SELECT audit.record_alert('alerts', '{\"rule\": \"x\"}')")
        .expect_err("not the engine's role");
    assert_eq!(sqlstate(&err), "42501");
    // Nor move its cursor: no write on the table, and the functions check whose it is.
    for sql in [
        "UPDATE audit.consumers SET last_id = 999999999",
        "DELETE FROM audit.consumers",
        "SELECT audit.move_consumer('alerts', '999999', 1)",
        "SELECT audit.lock_consumer('alerts')",
    ] {
        let err = reader.batch_execute(sql).expect_err(sql);
        assert_eq!(sqlstate(&err), "42501", "{sql}: {err}");
    }
    // So 200 deletions by alice alert.
    a.as_app("alice", "DELETE FROM contacts WHERE id <= 200");
    let fired = a.alerts();
    assert!(
        rules(&fired).contains(&"mass-deletion".to_owned()),
        "{fired:#?}"
    );
}

#[test]
fn deletions_spread_over_actors_alert_per_database_role() {
    let a = Alerted::new();
    // 300 deletions by one role within seconds, as three actors of 100: each actor stays
    // under the per-actor threshold, the role does not.
    for (k, actor) in ["ann", "bob", "cy"].iter().enumerate() {
        a.as_app(
            actor,
            &format!(
                "DELETE FROM contacts WHERE id > {} AND id <= {}",
                k * 100,
                (k + 1) * 100
            ),
        );
    }
    let fired = a.alerts();
    assert_eq!(rules(&fired), ["mass-deletion-role"], "{fired:#?}");
    assert_eq!(fired[0]["actors"], serde_json::json!(["ann", "bob", "cy"]));
    assert_eq!(fired[0]["db_user"], a.app.as_str());
}

#[test]
fn a_skipped_cursor_is_recorded_and_alerted_and_advancing_cannot_skip() {
    let a = Alerted::new();
    a.as_app("alice", "DELETE FROM contacts WHERE id <= 300");
    // The engine's own role advancing its cursor past the deletions it did not deliver:
    // refused.
    let mut engine = a.db.client_as(&a.engine);
    let (txid, id): (String, i64) = {
        let row = engine
            .query_one(
                "SELECT txid::text, id FROM audit.events ORDER BY txid DESC, id DESC LIMIT 1",
                &[],
            )
            .expect("the last event");
        (row.get(0), row.get(1))
    };
    let err = engine
        .execute(
            "SELECT audit.advance_consumer('alerts', $1::text::xid8, $2, 1)",
            &[&txid, &id],
        )
        .expect_err("a skip through advance");
    assert_eq!(sqlstate(&err), "22023", "{err}");
    // Moving it is possible for its owner, and recorded with what it skipped...
    engine
        .execute(
            "SELECT audit.move_consumer('alerts', $1::text::xid8, $2)",
            &[&txid, &id],
        )
        .expect("a move by the owner");
    let moved: serde_json::Value =
        a.db.client()
            .query_one(
                "SELECT details FROM audit.events WHERE action = 'consumer_moved'
              ORDER BY id DESC LIMIT 1",
                &[],
            )
            .expect("the move is recorded")
            .get(0);
    // The 300 deletions, and the alert the engine recorded after its cursor.
    assert_eq!(moved["skipped"], 301, "{moved}");
    // ...and the engine alerts on it (the deletions themselves it never saw).
    let fired = a.alerts();
    assert_eq!(rules(&fired), ["stream-skipped"], "{fired:#?}");
}

#[test]
fn changes_to_what_is_captured_and_kept_alert_and_a_hidden_privilege_column_is_named() {
    let a = Alerted::new();
    let owner = a.db.create_role("owner", "LOGIN");
    a.db.client()
        .batch_execute(&format!(
            "ALTER TABLE users OWNER TO {owner};
             GRANT EXECUTE ON FUNCTION audit.track(regclass, text, name, name[], name[], name) TO {owner};"
        ))
        .expect("the table owner may track");
    a.alerts();
    // The 0.2.0 attack: the owner re-tracks users ignoring role, then promotes someone.
    a.db.client_as(&owner)
        .batch_execute(
            "SELECT audit.track('users', 'user', ignore_columns => '{role}');
             INSERT INTO users VALUES (1, 'Eve', 'member');
             UPDATE users SET role = 'admin' WHERE id = 1;",
        )
        .expect("re-track");
    let fired = a.alerts();
    let narrowed = fired
        .iter()
        .find(|f| f["rule"] == "privilege-capture-narrowed")
        .unwrap_or_else(|| panic!("{fired:#?}"));
    let event: serde_json::Value =
        a.db.client()
            .query_one(
                "SELECT details FROM audit.events WHERE id = $1",
                &[&narrowed["event_ids"][0].as_i64().expect("the track event")],
            )
            .expect("the track event")
            .get(0);
    assert_eq!(
        event["privilege_fields_ignored"],
        serde_json::json!(["role"])
    );
    assert!(rules(&fired).contains(&"audit-trail-changed".to_owned()));
    // Lifetime actions alert too (by another actor than the set-up's, whose alert's quiet
    // period still runs).
    a.db.client()
        .batch_execute(
            "BEGIN;
             SELECT audit.set_actor('dba@example.com');
             SELECT audit.hold('case-9', 'review', now() - interval '1 year', now());
             SELECT audit.release('case-9');
             SELECT audit.set_retention('10 years');
             COMMIT;",
        )
        .expect("lifetime actions");
    let fired = a.alerts();
    let changed = fired
        .iter()
        .find(|f| f["rule"] == "audit-trail-changed")
        .unwrap_or_else(|| panic!("{fired:#?}"));
    assert_eq!(changed["count"], 3, "{changed}");
}

#[test]
fn a_live_log_takes_no_sql_insert_into_any_partition() {
    let db = TestDb::new();
    db.client()
        .batch_execute(
            "CREATE TABLE items (id int PRIMARY KEY);
             SELECT audit.track('items', 'item');
             INSERT INTO items VALUES (1);",
        )
        .expect("a live log");
    let future: String = db
        .client()
        .query_one(
            "SELECT partition FROM audit.partitions WHERE from_time > now()
              ORDER BY from_time DESC LIMIT 1",
            &[],
        )
        .expect("a partition made ahead")
        .get(0);
    // The 0.2.0 attack: a superuser INSERT into an empty partition, no trigger disabled.
    let err = db
        .client()
        .batch_execute(&format!(
            "INSERT INTO {future} (occurred_at, actor, entity, action)
             VALUES (now() + interval '2 months', 'mallory', 'contact', 'delete')"
        ))
        .expect_err("refused");
    assert_eq!(sqlstate(&err), "42501");
    assert!(error_text(&err).contains("live"), "{err}");
    // Nor can the live flag be turned back.
    let err = db
        .client()
        .batch_execute("UPDATE audit.log_state SET live = false")
        .expect_err("one way");
    assert_eq!(sqlstate(&err), "42501");
    // A database whose log was never written takes rows (a restore), until its first event.
    let fresh = TestDb::new();
    fresh
        .client()
        .batch_execute(
            "INSERT INTO audit.events (occurred_at, actor, entity, action)
             VALUES (now(), 'restored', 'contact', 'create'),
                    (now() - interval '2 months', 'restored', 'contact', 'create');
             SELECT audit.log_event('contact', 'export');",
        )
        .expect("a restore's rows, then the first event");
    let err = fresh
        .client()
        .batch_execute(
            "INSERT INTO audit.events (occurred_at, actor, entity, action)
             VALUES (now() - interval '5 months', 'mallory', 'contact', 'create')",
        )
        .expect_err("live now");
    assert_eq!(sqlstate(&err), "42501");
}

#[test]
fn an_export_is_recorded_before_its_first_row_and_its_end_after_a_cut_off() {
    let db = TestDb::new();
    let admin = db.create_role(
        "admin",
        &format!("LOGIN PASSWORD '{PASSWORD}' IN ROLE audit_admin"),
    );
    db.client()
        .batch_execute(
            "INSERT INTO audit.events (actor, db_user, entity, action, new_data)
             SELECT 'bulk', 'app', 'contact', 'create', jsonb_build_object('n', repeat('x', 900))
               FROM generate_series(1, 20000)",
        )
        .expect("20,000 events of about 1 kB");
    let dash = Dashboard::start(&db);
    let http = Http::new(&dash);
    let cookie = http.session(&admin, PASSWORD);
    let page = http.get("/reports/audit-log", Some(&cookie));
    let csrf = page.hidden_field("csrf").expect("the export form's token");
    // A client that reads 5 MB of the download and hangs up.
    let address = dash.url("/").replace("http://", "");
    let address = address.trim_end_matches('/');
    let body = format!("csrf={csrf}");
    let mut stream = std::net::TcpStream::connect(address).expect("connect");
    write!(
        stream,
        "POST /reports/audit-log/export HTTP/1.1\r\nHost: {address}\r\nCookie: {cookie}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("request");
    let mut got = vec![0u8; 5 * 1024 * 1024];
    stream.read_exact(&mut got).expect("5 MB of the export");
    drop(stream);
    // The export was recorded before its first row, with everything it was about to send,
    // and its end once the server saw the reader gone.
    let mut client = db.client();
    let mut end = None;
    for _ in 0..100 {
        let (start, e) = audit_trail_tests::last_export(&mut client);
        // The 20,000, and the admin's sign-in.
        assert_eq!(start.details.as_ref().expect("details")["rows"], 20001);
        assert_eq!(start.db_user, admin);
        if e.is_some() {
            end = e;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let end = end
        .expect("the end of the export is recorded")
        .details
        .expect("details");
    assert_eq!(end["status"], "cut_off", "{end}");
    let sent = end["rows"].as_u64().expect("rows sent");
    assert!(sent > 4000 && sent < 20001, "{end}");
}

/// What a second round of attacks on 0.3.0 found (docs/integrity.md, "What readers read"):
/// each is refused as it is made, and, with the extension's event triggers switched off
/// first, named by verify.
#[test]
fn casts_inheritance_grants_moved_partitions_and_replica_guards_are_refused_or_named() {
    let s = Sealed::new();
    s.seal_all();
    let partition: String =
        s.db.client()
            .query_one(
                "SELECT partition FROM audit.partitions WHERE NOT is_default
              ORDER BY from_time DESC LIMIT 1",
                &[],
            )
            .expect("a partition")
            .get(0);
    let nobody = s.db.create_role("nobody", "LOGIN");
    // A cast that lies to verify alone: PostgreSQL would use it for every jsonb::text.
    let lying_cast = "CREATE FUNCTION public.jsonb_text(j jsonb) RETURNS text LANGUAGE sql AS
             $$ SELECT CASE WHEN current_setting('application_name') = 'audit-trail verify'
                            THEN '{}' ELSE pg_catalog.jsonb_out(j)::text END $$;
         CREATE CAST (jsonb AS text) WITH FUNCTION public.jsonb_text(jsonb)";
    for (what, sql) in [
        ("a cast", lying_cast.to_owned()),
        (
            "an inheriting table",
            "CREATE TABLE public.more_seals () INHERITS (audit.seals)".to_owned(),
        ),
        (
            "a grant on a partition",
            format!("GRANT SELECT ON {partition} TO {nobody}"),
        ),
        (
            "a partition moved out",
            format!("ALTER TABLE {partition} SET SCHEMA public"),
        ),
        (
            "a guard on for replication only",
            format!("ALTER TABLE {partition} ENABLE REPLICA TRIGGER events_append_only"),
        ),
        (
            "a summary's guard switched off",
            "ALTER TABLE audit.event_summary DISABLE TRIGGER event_summary_maintained".to_owned(),
        ),
    ] {
        let err =
            s.db.client()
                .batch_execute(&format!("BEGIN; {sql}; COMMIT;"))
                .expect_err(what);
        assert_eq!(sqlstate(&err), "42501", "{what}: {}", error_text(&err));
    }
    // The grant of audit.track the docs ask of sites does not make verify fail.
    s.db.client()
        .batch_execute(&format!(
            "GRANT EXECUTE ON FUNCTION audit.track(regclass, text, name, name[], name[], name) TO {nobody}"
        ))
        .expect("the documented grant");
    assert_eq!(s.verify_as("postgres", &[]).code, 0);
    // With the event triggers off, the cast and the inheritance go in; verify names both,
    // and hashes events by output functions, which no cast changes.
    s.as_attacker(&format!(
        "{lying_cast}; CREATE TABLE public.more_seals () INHERITS (audit.seals)"
    ));
    let found = s.findings("postgres");
    let kinds = kinds(&found);
    assert!(kinds.contains(&"schema_user_cast".to_owned()), "{found:#?}");
    assert!(
        kinds.contains(&"schema_inheritance".to_owned()),
        "{found:#?}"
    );
    assert!(
        !kinds.iter().any(|k| k.starts_with("event_")),
        "the cast changed no hash: {found:#?}"
    );
}

#[test]
fn a_cursor_moves_only_where_the_stream_is_and_archive_errors_leak_nothing() {
    let s = Sealed::new();
    let reader = s.db.create_role("reader", "LOGIN IN ROLE audit_admin");
    let mut client = s.db.client_as(&reader);
    client
        .batch_execute("SELECT audit.open_consumer('siem')")
        .expect("a cursor");
    // Past the head of the stream a cursor would skip every event to come, counting none.
    let err = client
        .batch_execute("SELECT audit.move_consumer('siem', '100000000', 0)")
        .expect_err("past the head");
    assert_eq!(sqlstate(&err), "22023", "{}", error_text(&err));
    // A refused archive record says what differs, never the partition's count or digest.
    s.db.client()
        .batch_execute("SELECT audit.maintain()")
        .expect("partitions");
    let partition: String =
        s.db.client()
            .query_one(
                "SELECT p.partition FROM audit.partitions AS p
              WHERE EXISTS (SELECT FROM audit.events AS e WHERE e.tableoid = p.partition::regclass)
              LIMIT 1",
                &[],
            )
            .expect("a partition with events")
            .get(0);
    for rows in [0i64, 999] {
        let err =
            s.db.client()
                .execute(
                    "SELECT audit.record_archive($1, $2, '/nowhere', '{}', repeat('0', 64))",
                    &[&partition, &rows],
                )
                .expect_err("refused");
        let text = error_text(&err);
        assert!(
            !text
                .chars()
                .any(|c| c.is_ascii_digit() && text.contains("holds")),
            "{text}"
        );
        assert!(
            !text.contains(&"0".repeat(16)) && !text.to_lowercase().contains("digest is"),
            "{text}"
        );
    }
}

/// Purge events carried by later drops are carried once, not nested: twenty generations of
/// purges that each take the last one's event keep every purge event small, and verify.
#[test]
fn twenty_generations_of_purges_keep_their_records_small() {
    let s = Sealed::new();
    for _ in 0..20 {
        s.seal_all();
        s.db.client()
            .batch_execute("SELECT audit.purge(now())")
            .expect("a purge");
    }
    s.seal_all();
    let largest: i32 =
        s.db.client()
            .query_one(
                "SELECT max(octet_length(details::text)) FROM audit.events WHERE action = 'purge'",
                &[],
            )
            .expect("purge events")
            .get(0);
    assert!(largest < 4096, "a purge event of {largest} bytes");
    let carried: i64 =
        s.db.client()
            .query_one("SELECT count(*) FROM audit.carried_events", &[])
            .expect("carried")
            .get(0);
    assert_eq!(carried, 19, "each purge event but the last carried, once");
    let out = s.verify_as("postgres", &[]);
    assert_eq!(out.code, 0, "{} {}", out.stdout, out.stderr);
}
