//! WAL capture end to end (docs/wal-capture.md): the portable install made by a role that is
//! not a superuser, `audit-trail capture` writing events from the slot, and the same
//! workload captured by the extension's triggers in another database giving the same events,
//! attribution included. Then what the service must never do: write a transaction twice
//! after a crash, believe an attribution message it did not sign, or let other roles write.

use audit_trail_sidecar::capture::pgoutput::decode;
use audit_trail_sidecar::capture::record::{Batcher, PartLimits};
use audit_trail_sidecar::capture::transactions::Assembler;
use audit_trail_tests::sidecar::{command, run};
use audit_trail_tests::wal::WalDb;
use audit_trail_tests::{sqlstate, TestDb};
use serde_json::Value;

const SCHEMA: &str = "
    CREATE SCHEMA crm;
    CREATE TYPE crm.mood AS ENUM ('calm', 'tense');
    CREATE TABLE crm.contacts (
        id bigint PRIMARY KEY, name text NOT NULL, email text, score numeric(12,4),
        tags text[], doc jsonb, seen timestamptz, feeling crm.mood, password_hash text,
        updated_at timestamptz, org text);
    CREATE TABLE crm.users (id int PRIMARY KEY, name text, role text, permissions text[]);";

const TRACK: &str = "
    SELECT audit.track('crm.contacts', 'contact', ignore_columns => '{updated_at}',
                       redact_columns => '{password_hash}', tenant_column => 'org');
    SELECT audit.track('crm.users', 'user');";

/// The demo's kind of day: people acting for organizations through an application that
/// names them, a bulk import, an unattributed fix, deletions, a truncate.
const WORKLOAD: [&str; 8] = [
    "BEGIN;
     SELECT audit.set_actor('ann@acme.test', 'ui', '{\"request_id\": \"r1\"}', 'acme');
     INSERT INTO crm.contacts VALUES
       (1, 'Bo', 'bo@acme.test', 12.5, '{a,\"b c\",NULL}', '{\"k\": [1, 2.5]}',
        '2026-12-07 10:00:00.123456+00', 'calm', 'secret', '2026-12-07 09:00+00', 'acme'),
       (2, 'Cy', NULL, NULL, '{}', 'null', NULL, NULL, NULL, '2026-12-07 09:00+00', 'acme');
     UPDATE crm.contacts SET email = 'bo@new.test', password_hash = 'other' WHERE id = 1;
     COMMIT;",
    "BEGIN;
     SELECT audit.set_actor('importer', 'import', NULL, 'acme');
     INSERT INTO crm.contacts (id, name, org, updated_at)
       SELECT g, 'Imported ' || g, CASE WHEN g % 5 = 0 THEN 'globex' ELSE 'acme' END, '2026-12-07 09:00+00'
         FROM generate_series(100, 1099) AS g;
     COMMIT;",
    "BEGIN;
     SELECT audit.set_actor('ann@acme.test', 'ui', NULL, 'acme');
     UPDATE crm.contacts SET updated_at = '2026-12-08 09:00+00' WHERE id < 100;
     UPDATE crm.contacts SET feeling = 'tense', score = score + 1 WHERE id = 1;
     SELECT audit.set_actor('bob@acme.test', 'api', '{\"request_id\": \"r2\"}', 'acme');
     DELETE FROM crm.contacts WHERE id = 2;
     COMMIT;",
    "BEGIN;
     SELECT audit.set_actor('root@acme.test', 'ui');
     INSERT INTO crm.users VALUES (1, 'Ann', 'member', '{read}'), (2, 'Bob', 'member', NULL);
     UPDATE crm.users SET role = 'admin', permissions = '{read,write}' WHERE id = 1;
     DELETE FROM crm.users WHERE id = 2;
     COMMIT;",
    "BEGIN;
     SELECT audit.set_actor('bulk', 'sync', NULL, 'acme');
     UPDATE crm.contacts SET name = name || '!' WHERE id BETWEEN 100 AND 599;
     DELETE FROM crm.contacts WHERE id BETWEEN 600 AND 1099;
     COMMIT;",
    "BEGIN;
     SELECT audit.set_actor('ann@acme.test', 'ui', NULL, 'acme');
     SAVEPOINT s;
     SELECT audit.set_actor('mallory', 'ui', NULL, 'acme');
     ROLLBACK TO SAVEPOINT s;
     UPDATE crm.contacts SET org = 'globex' WHERE id = 1;
     COMMIT;",
    "BEGIN;
     SELECT audit.set_actor('root@acme.test', 'ui');
     TRUNCATE crm.users;
     COMMIT;",
    "BEGIN;
     SELECT audit.set_actor('ann@acme.test', 'ui', '{\"n\": 1}', 'acme');
     UPDATE crm.contacts SET tags = tags || '{d}' WHERE id = 1;
     COMMIT;",
];

/// The events of tracked tables, as both modes must write them: everything but ids, txids
/// and times, in the order of the changes.
fn comparable(c: &mut postgres::Client) -> Vec<Value> {
    c.query(
        "SELECT to_jsonb(e) - 'id' - 'txid' - 'occurred_at'
           FROM audit.events AS e WHERE entity <> 'audit_log'
          ORDER BY txid, action = 'truncate', subject_id IS NULL, id",
        &[],
    )
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect()
}

#[test]
fn the_portable_install_and_the_capture_service_write_what_the_triggers_write() {
    // Captured by the extension's triggers.
    let reference = TestDb::new();
    let writer_role = {
        let r = reference.create_role("wal_writer", "LOGIN");
        reference
            .client()
            .batch_execute(&format!(
                "GRANT CREATE ON DATABASE {} TO {r}",
                reference.name
            ))
            .unwrap();
        r
    };
    let mut writer = reference.client_as(&writer_role);
    writer.batch_execute(SCHEMA).unwrap();
    reference.client().batch_execute(TRACK).unwrap();
    for statement in WORKLOAD {
        writer.batch_execute(statement).unwrap();
    }

    // Captured from the WAL: a database without the extension, installed by a role that is
    // no superuser. The same role writes, so db_user is the same in both.
    let wal = WalDb::uninstalled();
    let (db, owner) = (&wal.db, &wal.owner);
    let installed = wal.install(owner);
    assert_eq!(installed.code, 0, "{}", installed.stderr);
    wal.grant_capture();
    assert!(
        installed.stderr.contains(&format!("with slot {}", db.name)),
        "{}",
        installed.stderr
    );
    let mut app = wal.owner_client();
    app.batch_execute(SCHEMA).unwrap();
    app.batch_execute(TRACK).unwrap();
    // The same writer as in the reference database (db_user is part of the comparison).
    app.batch_execute(&format!(
        "GRANT USAGE ON SCHEMA crm TO {writer_role};
         GRANT ALL ON ALL TABLES IN SCHEMA crm TO {writer_role};"
    ))
    .unwrap();
    let mut writer = db.client_as(&writer_role);
    for statement in WORKLOAD {
        writer.batch_execute(statement).unwrap();
    }
    let captured = wal.capture();
    assert!(
        captured
            .stderr
            .contains(&format!("captured {} transactions", WORKLOAD.len())),
        "{}",
        captured.stderr
    );

    let from_triggers = comparable(&mut reference.client());
    let from_wal = comparable(&mut app);
    assert_eq!(from_wal.len(), from_triggers.len());
    assert!(
        from_wal.len() > 2000,
        "the bulk statements are in: {}",
        from_wal.len()
    );
    for (wal, trigger) in from_wal.iter().zip(&from_triggers) {
        assert_eq!(wal, trigger);
    }
    // The comparison covered what matters.
    let has = |f: &dyn Fn(&Value) -> bool| from_wal.iter().any(f);
    assert!(has(
        &|e| e["actor"] == "bob@acme.test" && e["action"] == "delete"
    ));
    assert!(has(
        &|e| e["context"]["acting_tenant"] == "acme" && e["tenant"] == "globex"
    ));
    assert!(has(&|e| e["entity"] == "user"
        && e["changed_fields"]
            == serde_json::json!(["role", "permissions"])));
    assert!(has(
        &|e| e["action"] == "truncate" && e["actor"] == "root@acme.test"
    ));
    assert!(
        !has(&|e| e["actor"] == "mallory"),
        "a rolled-back savepoint's actor names nobody"
    );
    assert!(has(&|e| e["old_data"]["password_hash"] == "[redacted]"));

    // Each transaction's events carry the writer's transaction id.
    let mut tx = writer.transaction().unwrap();
    tx.execute("SELECT audit.set_actor('ann@acme.test')", &[])
        .unwrap();
    tx.execute("UPDATE crm.contacts SET name = 'Bo2' WHERE id = 1", &[])
        .unwrap();
    let txid: String = tx
        .query_one("SELECT pg_current_xact_id()::text", &[])
        .unwrap()
        .get(0);
    tx.commit().unwrap();
    wal.capture();
    let (event_txid, occurred_after_commit): (String, bool) = app
        .query_one(
            "SELECT txid::text, occurred_at <= now() FROM audit.events
              WHERE new_data ->> 'name' = 'Bo2'",
            &[],
        )
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    assert_eq!(event_txid, txid);
    assert!(occurred_after_commit);
}

/// The slot's transactions committed since it was last advanced, decoded.
fn peek(
    c: &mut postgres::Client,
    slot: &str,
) -> Vec<audit_trail_sidecar::capture::transactions::Transaction> {
    let mut assembler = Assembler::default();
    c.query(
        "SELECT data FROM pg_logical_slot_peek_binary_changes($1, NULL, NULL,
           'proto_version', '1', 'publication_names', 'audit_trail', 'messages', 'true')",
        &[&slot],
    )
    .unwrap()
    .iter()
    .filter_map(|row| {
        let bytes: Vec<u8> = row.get(0);
        assembler.push(decode(&bytes).unwrap()).unwrap()
    })
    .collect()
}

fn count(c: &mut postgres::Client, filter: &str) -> i64 {
    c.query_one(
        &format!("SELECT count(*) FROM audit.events WHERE {filter}"),
        &[],
    )
    .unwrap()
    .get(0)
}

#[test]
fn nothing_is_written_twice_and_no_attribution_is_believed_unsigned() {
    let wal = WalDb::new();
    let (db, capturer) = (&wal.db, &wal.capturer);
    let nobody = db.create_role("wal_nobody", "LOGIN");
    let admin = db.create_role("wal_admin", "LOGIN IN ROLE audit_admin");
    // The product's other services (the sealer, the archiver) may not write events either.
    let sealer = db.create_role("wal_sealer", "LOGIN IN ROLE audit_service");
    let mut app = wal.owner_client();
    app.batch_execute(
        // Flushed at commit: the test reads the slot itself, and decoding reads only WAL on disk.
        "SET synchronous_commit = on;
         CREATE TABLE contacts (id int PRIMARY KEY, name text);
         SELECT audit.track('contacts', 'contact');
         BEGIN; SELECT audit.set_actor('ann'); INSERT INTO contacts VALUES (1, 'a'); COMMIT;",
    )
    .unwrap();

    // A crash after the events were committed and before the slot moved: the service reads
    // the same transaction again and writes nothing.
    let mut service = db.client_as(capturer);
    service.batch_execute("SET DateStyle = ISO").unwrap();
    let txs = peek(&mut service, &db.name);
    assert_eq!(txs.len(), 1);
    let mut written = service.transaction().unwrap();
    let mut batcher = Batcher::new(PartLimits::default());
    let mut batch = batcher.push(&txs[0]);
    batch.extend(batcher.finish());
    for part in batch {
        written
            .execute("SELECT audit.wal_record($1, $2)", &[&db.name, &part.batch])
            .unwrap();
    }
    written.commit().unwrap();
    assert_eq!(count(&mut app, "entity = 'contact'"), 1);
    let again = wal.capture();
    assert!(
        again.stderr.contains("captured 0 transactions"),
        "{}",
        again.stderr
    );
    assert_eq!(count(&mut app, "entity = 'contact'"), 1);
    let slot_at_progress: bool = app
        .query_one(
            "SELECT s.confirmed_flush_lsn >= p.end_lsn
               FROM pg_replication_slots s, audit.capture_progress p WHERE s.slot_name = p.slot",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(slot_at_progress, "the slot moved past what was written");

    // Anyone may emit a logical message: one the install did not sign, and a signed one
    // replayed in another transaction, name nobody.
    let mut forger = db.client_as(&nobody);
    app.batch_execute(&format!("GRANT INSERT ON contacts TO {nobody}"))
        .unwrap();
    let forged_mac = "0".repeat(64);
    forger
        .batch_execute(&format!(
            "BEGIN;
             SELECT pg_logical_emit_message(true, 'audit_trail',
                    '{forged_mac}' || E'\\n' || '{{\"actor\": \"ceo\", \"db_user\": \"ceo\"}}');
             INSERT INTO contacts VALUES (2, 'forged');
             COMMIT;"
        ))
        .unwrap();
    // A signed message of another transaction, emitted again: its xid gives it away.
    let replay: String = app
        .query_one(
            "SELECT audit.wal_sign(jsonb_build_object('actor', 'ceo', 'db_user', 'ceo',
                                                       'xid', pg_current_xact_id()::text))",
            &[],
        )
        .unwrap()
        .get(0);
    let mut tx = forger.transaction().unwrap();
    tx.execute(
        "SELECT pg_logical_emit_message(true, 'audit_trail', $1::text)",
        &[&replay],
    )
    .unwrap();
    tx.execute("INSERT INTO contacts VALUES (3, 'replayed')", &[])
        .unwrap();
    tx.commit().unwrap();
    wal.capture();
    let names: Vec<(String, String)> = app
        .query(
            "SELECT actor, db_user FROM audit.events WHERE subject_id IN ('2', '3') ORDER BY subject_id",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        names,
        vec![
            ("(not set)".to_owned(), "(not set)".to_owned()),
            ("(not set)".to_owned(), "(not set)".to_owned())
        ]
    );

    // Only the service writes events, and only the install's owner reads the key.
    for role in [&nobody, &admin, &sealer] {
        let mut c = db.client_as(role);
        let err = c
            .execute(
                "SELECT audit.wal_record('audit_trail', '{\"transactions\": [], \"messages\": [], \"groups\": []}')",
                &[],
            )
            .unwrap_err();
        assert_eq!(sqlstate(&err), "42501", "{role}: {err:?}");
        let err = c
            .query("SELECT key FROM audit.wal_attribution_key", &[])
            .unwrap_err();
        assert_eq!(sqlstate(&err), "42501", "{role}: {err:?}");
        let err = c
            .execute(
                "INSERT INTO audit.events (actor, entity, action) VALUES ('x', 'contact', 'create')",
                &[],
            )
            .unwrap_err();
        assert_eq!(sqlstate(&err), "42501", "{role}: {err:?}");
    }
    let err = db
        .client_as(capturer)
        .query("SELECT key FROM audit.wal_attribution_key", &[])
        .unwrap_err();
    assert_eq!(sqlstate(&err), "42501");
}

#[test]
fn install_and_capture_refuse_what_they_cannot_do() {
    // Into a database with the extension: nothing to install, nothing to capture.
    let with_extension = TestDb::new();
    let r = run(command().args([
        "install",
        "--wal-capture",
        "--db",
        &with_extension.conninfo("postgres"),
    ]));
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("the audit_trail extension is installed"),
        "{}",
        r.stderr
    );
    let r = run(command().args([
        "capture",
        "--once",
        "--db",
        &with_extension.conninfo("postgres"),
    ]));
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("no WAL capture install"), "{}", r.stderr);

    let wal = WalDb::uninstalled();
    let (db, owner) = (&wal.db, &wal.owner);
    // Without --wal-capture; by a role that cannot make a slot.
    let r = run(command().args(["install", "--db", &db.conninfo("postgres")]));
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("give --wal-capture"), "{}", r.stderr);
    let plain = db.create_role("wal_plain", "LOGIN CREATEROLE");
    db.client()
        .batch_execute(&format!("GRANT CREATE ON DATABASE {} TO {plain}", db.name))
        .unwrap();
    let r = wal.install(&plain);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.stderr.contains("REPLICATION attribute"), "{}", r.stderr);
    let has_schema: bool = db
        .client()
        .query_one(
            "SELECT EXISTS (SELECT FROM pg_namespace WHERE nspname = 'audit')",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(!has_schema, "a refused install leaves nothing behind");

    // A slot of that name belongs to another database: refused before anything is installed,
    // so the install can be run again with another name.
    let foreign = format!("{}_elsewhere", db.name);
    let mut postgres = db.cluster.superuser("postgres");
    postgres
        .execute(
            "SELECT pg_create_logical_replication_slot($1, 'pgoutput')",
            &[&foreign],
        )
        .unwrap();
    let r = run(command().args([
        "install",
        "--wal-capture",
        "--slot",
        &foreign,
        "--db",
        &db.conninfo(owner),
    ]));
    postgres
        .execute("SELECT pg_drop_replication_slot($1)", &[&foreign])
        .unwrap();
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("is a slot of postgres"), "{}", r.stderr);
    let has_schema: bool = db
        .client()
        .query_one(
            "SELECT EXISTS (SELECT FROM pg_namespace WHERE nspname = 'audit')",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(!has_schema, "nothing was installed");

    let ok = wal.install(owner);
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    // A capture role not in audit_capture: refused before anything is read (exit 3).
    let r = wal.capture_once_as(&wal.capturer);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.stderr.contains("GRANT audit_capture TO"), "{}", r.stderr);
    wal.grant_capture();
    let twice = wal.install(owner);
    assert_eq!(twice.code, 2, "{}", twice.stderr);
    assert!(
        twice.stderr.contains("already has an audit schema"),
        "{}",
        twice.stderr
    );

    // An unlogged table is not in the WAL: refused, by name.
    let mut app = wal.owner_client();
    app.batch_execute("CREATE UNLOGGED TABLE scratch (id int PRIMARY KEY)")
        .unwrap();
    let err = app
        .execute("SELECT audit.track('scratch', 'scratch')", &[])
        .unwrap_err();
    assert_eq!(sqlstate(&err), "0A000");
    assert!(format!("{err:?}").contains("unlogged"), "{err:?}");
    // A table another role owns is not the caller's to track.
    db.client()
        .batch_execute("CREATE TABLE theirs (id int PRIMARY KEY)")
        .unwrap();
    let err = app
        .execute("SELECT audit.track('theirs', 'thing')", &[])
        .unwrap_err();
    assert_eq!(sqlstate(&err), "42501", "{err:?}");

    // The slot is dropped after events were captured through it: a gap, said so.
    app.batch_execute(
        "CREATE TABLE t (id int PRIMARY KEY); SELECT audit.track('t', 'thing');
         INSERT INTO t VALUES (1);",
    )
    .unwrap();
    wal.capture();
    db.client()
        .execute("SELECT pg_drop_replication_slot($1)", &[&db.name])
        .unwrap();
    let r = wal.capture_once_as(&wal.capturer);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!("slot {} is gone", db.name)),
        "{}",
        r.stderr
    );
}

#[test]
fn a_partitioned_table_is_captured_through_its_root_with_every_partition_whole() {
    let wal = WalDb::new();
    let mut app = wal.owner_client();
    app.batch_execute(
        "CREATE TABLE notes (id int, at date, body text, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
         CREATE TABLE notes_2025 PARTITION OF notes FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
         CREATE TABLE notes_2026 PARTITION OF notes FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');",
    )
    .unwrap();
    // A partition alone is refused: the publication publishes through the root.
    let err = app
        .execute("SELECT audit.track('notes_2025', 'note')", &[])
        .unwrap_err();
    assert_eq!(sqlstate(&err), "0A000", "{err:?}");
    app.batch_execute(
        "SELECT audit.track('notes', 'note');
         BEGIN; SELECT audit.set_actor('ann');
         INSERT INTO notes VALUES (1, '2025-06-01', 'a'), (2, '2026-06-01', 'b');
         UPDATE notes SET body = 'c' WHERE id = 1;
         DELETE FROM notes_2026 WHERE id = 2;
         COMMIT;",
    )
    .unwrap();
    let identities: Vec<(String, String)> = app
        .query(
            "SELECT c.relname::text, c.relreplident::text FROM pg_class c
              WHERE c.relname LIKE 'notes%' AND c.relkind IN ('r', 'p') ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert!(identities.iter().all(|(_, r)| r == "f"), "{identities:?}");
    wal.capture();
    let events: Vec<(String, String, String, String)> = app
        .query(
            "SELECT action, table_name, subject_id, actor FROM audit.events
              WHERE entity = 'note' ORDER BY id",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    let row = |a: &str, s: &str| {
        (
            a.to_owned(),
            "public.notes".to_owned(),
            s.to_owned(),
            "ann".to_owned(),
        )
    };
    assert_eq!(
        events,
        vec![
            row("create", "[1, \"2025-06-01\"]"),
            row("create", "[2, \"2026-06-01\"]"),
            row("update", "[1, \"2025-06-01\"]"),
            row("delete", "[2, \"2026-06-01\"]"),
        ]
    );
}

#[test]
fn a_100_mb_value_is_captured_whole() {
    let wal = WalDb::new();
    let mut app = wal.owner_client();
    app.batch_execute(
        "CREATE TABLE docs (id int PRIMARY KEY, title text, body text);
         SELECT audit.track('docs', 'doc');
         BEGIN; SELECT audit.set_actor('ann');
         INSERT INTO docs VALUES (1, 'a', repeat('x', 100000000)), (2, 'b', 'small');
         COMMIT;
         -- The value left alone by an update is not sent again: it comes from the old row.
         UPDATE docs SET title = 'c' WHERE id = 1;",
    )
    .unwrap();
    wal.capture();
    let sizes: Vec<(String, Option<i32>, Option<i32>)> = app
        .query(
            "SELECT action, length(old_data ->> 'body'), length(new_data ->> 'body')
               FROM audit.events WHERE entity = 'doc' AND subject_id = '1' ORDER BY id",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        sizes,
        vec![
            ("create".to_owned(), None, Some(100_000_000)),
            ("update".to_owned(), None, Some(100_000_000)),
        ]
    );
}
