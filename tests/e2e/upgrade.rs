//! `ALTER EXTENSION audit_trail UPDATE` from 0.1.0 (its install script frozen in
//! extension/sql/audit_trail--0.1.0.sql): nothing of the log, the settings or the cursors is
//! lost or changed, capture goes on, and the schema is exactly a fresh install's.

use audit_trail_tests::TestDb;

/// Every object of the extension with what defines it (the contract's description, the one
/// `audit-trail verify` holds databases to).
fn members(db: &TestDb) -> Vec<String> {
    db.client()
        .query(audit_trail_contract::schema::MEMBERS, &[])
        .expect("extension members")
        .iter()
        .map(|row| format!("{}\n{}", row.get::<_, String>(0), row.get::<_, String>(1)))
        .collect()
}

/// Every event as text, in id order.
fn events(db: &TestDb) -> Vec<String> {
    db.client()
        // Nulls left out: an upgrade adds columns (tenant, in 0.3.0) whose old events hold
        // none, and an event that gained a value there would show.
        .query(
            "SELECT pg_catalog.jsonb_strip_nulls(pg_catalog.to_jsonb(e))::text \
               FROM audit.events AS e ORDER BY id",
            &[],
        )
        .expect("events")
        .iter()
        .map(|row| row.get(0))
        .collect()
}

/// A consumer's cursor as 0.1.0 and 0.2.0 kept it.
const CONSUMER: &str = "SELECT (c.name, c.last_txid, c.last_id, c.delivered, c.created_at,
                                c.updated_at, c.updated_by)::text
                          FROM audit.consumers AS c";

fn settings(db: &TestDb) -> Vec<String> {
    db.client()
        .query(
            "SELECT relid::text, entity, subject_columns::text, ignore_columns::text,
                    redact_columns::text, tracked_by
               FROM audit.tracked_tables ORDER BY 1",
            &[],
        )
        .expect("settings")
        .iter()
        .map(|row| {
            (0..6)
                .map(|i| row.get::<_, String>(i))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

#[test]
fn an_upgrade_from_0_1_0_keeps_every_event_and_ends_as_a_fresh_install() {
    let db = TestDb::without_extension();
    let mut client = db.client();
    client
        .batch_execute(
            "CREATE EXTENSION audit_trail VERSION '0.1.0';
             CREATE TABLE contacts (id int PRIMARY KEY, name text, email text, secret text,
                                    touched timestamptz);
             CREATE TABLE groups (id int PRIMARY KEY, name text);
             SELECT audit.track('contacts', 'contact', ignore_columns => '{touched}',
                                redact_columns => '{secret}');
             SELECT audit.track('groups', 'group');
             BEGIN;
             SELECT audit.set_actor('alice@example.com', 'app', '{\"request_id\": \"r1\"}');
             INSERT INTO contacts SELECT g, 'n' || g, g || '@x', 's', now()
               FROM generate_series(1, 40) g;
             COMMIT;
             UPDATE contacts SET email = 'é@x' WHERE id <= 3;
             DELETE FROM contacts WHERE id = 40;
             INSERT INTO groups VALUES (1, 'sales');
             SELECT audit.log_event('contact', 'export', NULL, '{\"rows\": 39}');
             INSERT INTO audit.consumers (name, last_txid, last_id, delivered)
                 VALUES ('siem', '5', 7, 7);",
        )
        .expect("a 0.1.0 install with activity");
    let version: String = client
        .query_one(
            "SELECT extversion FROM pg_extension WHERE extname = 'audit_trail'",
            &[],
        )
        .expect("version")
        .get(0);
    assert_eq!(version, "0.1.0");
    let relkind: i8 = client
        .query_one(
            "SELECT relkind FROM pg_class WHERE oid = 'audit.events'::regclass",
            &[],
        )
        .expect("relkind")
        .get(0);
    assert_eq!(relkind as u8, b'r', "0.1.0 stores events in a plain table");
    let before = events(&db);
    // Two track events (this library records them), 40 creates, 3 updates, a delete, a
    // group and an export.
    assert_eq!(before.len(), 2 + 40 + 3 + 1 + 1 + 1);
    let settings_before = settings(&db);
    let consumer_before: String = client.query_one(CONSUMER, &[]).expect("consumer").get(0);

    client
        .batch_execute("ALTER EXTENSION audit_trail UPDATE")
        .expect("upgrade to the current version");

    let version: String = client
        .query_one(
            "SELECT extversion FROM pg_extension WHERE extname = 'audit_trail'",
            &[],
        )
        .expect("version")
        .get(0);
    assert_eq!(version, env!("CARGO_PKG_VERSION"));
    let relkind: i8 = client
        .query_one(
            "SELECT relkind FROM pg_class WHERE oid = 'audit.events'::regclass",
            &[],
        )
        .expect("relkind")
        .get(0);
    assert_eq!(
        relkind as u8, b'p',
        "the store is partitioned after the upgrade"
    );
    assert_eq!(events(&db), before, "not an event lost or changed");
    assert_eq!(settings(&db), settings_before);
    let consumer_after: String = client.query_one(CONSUMER, &[]).expect("consumer").get(0);
    assert_eq!(consumer_after, consumer_before);
    // A cursor from before 0.3.0 has no owner until a role claims it (recorded).
    let owner: Option<String> = client
        .query_one("SELECT owner::text FROM audit.consumers", &[])
        .expect("owner")
        .get(0);
    assert_eq!(owner, None);
    let table_name: String = client
        .query_one(
            "SELECT table_name FROM audit.tracked_tables WHERE relid = 'contacts'::regclass",
            &[],
        )
        .expect("table_name")
        .get(0);
    assert_eq!(table_name, "public.contacts");

    // Capture, the DDL hooks and maintenance work on the upgraded schema.
    client
        .batch_execute(
            "UPDATE contacts SET name = 'after' WHERE id = 1;
             ALTER TABLE contacts RENAME COLUMN secret TO hidden;
             UPDATE contacts SET hidden = 'h2' WHERE id = 2;",
        )
        .expect("capture after the upgrade");
    let after = events(&db);
    assert_eq!(after[..before.len()], before[..]);
    let redacted: String = client
        .query_one(
            "SELECT new_data ->> 'hidden' FROM audit.events
              WHERE entity = 'contact' AND action = 'update' ORDER BY id DESC LIMIT 1",
            &[],
        )
        .expect("last update")
        .get(0);
    assert_eq!(redacted, "[redacted]", "settings followed the rename");
    let done: serde_json::Value = client
        .query_one("SELECT audit.maintain()", &[])
        .expect("maintain after the upgrade")
        .get(0);
    assert!(
        !done["created"].as_array().expect("created").is_empty(),
        "maintenance makes the months after the 0.1.0 partition: {done}"
    );
    let partition: String = client
        .query_one(
            "SELECT partition FROM audit.partitions WHERE from_time = '-infinity'",
            &[],
        )
        .expect("the 0.1.0 table is a partition")
        .get(0);
    assert_eq!(partition, "audit.events_0_1_0");

    // The schema is a fresh install's, object for object.
    let fresh = TestDb::new();
    let upgraded = members(&db);
    let expected = members(&fresh);
    for (u, f) in upgraded.iter().zip(&expected) {
        assert_eq!(u, f, "upgraded and fresh schemas differ");
    }
    assert_eq!(upgraded.len(), expected.len(), "the same objects");
    assert!(
        expected.len() > 40,
        "the comparison sees the extension's objects"
    );
}

/// From 0.2.0: the log, its archive records and cursors are kept; what readers could write
/// in 0.2.0 (seals, keys, cursors, archive records) they no longer can; an archive record
/// without the digest 0.3.0 binds records to is kept but no longer counts as an archive;
/// the log is live; and the schema is a fresh install's.
#[test]
fn an_upgrade_from_0_2_0_keeps_its_records_and_takes_back_what_readers_could_write() {
    let db = TestDb::without_extension();
    let admin = db.create_role("admin", "LOGIN IN ROLE audit_admin");
    db.client()
        .batch_execute(
            "CREATE EXTENSION audit_trail VERSION '0.2.0';
             CREATE TABLE contacts (id int PRIMARY KEY, name text);
             SELECT audit.track('contacts', 'contact');
             INSERT INTO contacts SELECT g, 'n' || g FROM generate_series(1, 10) g;
             DELETE FROM contacts WHERE id = 10;",
        )
        .expect("a 0.2.0 install with activity");
    // What an admin could do in 0.2.0: keep a cursor of their own, record an archive.
    db.client_as(&admin)
        .batch_execute(
            "INSERT INTO audit.consumers (name) VALUES ('siem');
             SELECT audit.record_archive(p.partition,
                        (SELECT count(*) FROM audit.events AS e WHERE e.tableoid = p.partition::regclass),
                        '/nowhere', '{\"files\": []}')
               FROM audit.partitions AS p WHERE p.from_time <= now() AND p.to_time > now();",
        )
        .expect("0.2.0 lets admins write these");
    let before = events(&db);
    db.client()
        .batch_execute("ALTER EXTENSION audit_trail UPDATE")
        .expect("upgrade");
    assert_eq!(events(&db), before, "not an event lost or changed");
    let mut client = db.client();
    // The cursor is claimed by the first role that uses it, and the claim is recorded.
    db.client_as(&admin)
        .batch_execute("BEGIN; SELECT audit.lock_consumer('siem'); COMMIT;")
        .expect("a claim");
    let owner: String = client
        .query_one(
            "SELECT owner::text FROM audit.consumers WHERE name = 'siem'",
            &[],
        )
        .expect("the cursor")
        .get(0);
    assert_eq!(owner, admin);
    let claimed: serde_json::Value = client
        .query_one(
            "SELECT details FROM audit.events WHERE action = 'consumer_moved'",
            &[],
        )
        .expect("the claim is an event")
        .get(0);
    assert_eq!(claimed["claimed_by"], admin.as_str());
    let (kept, digest, archived): (i64, Option<String>, bool) = {
        let row = client
            .query_one(
                "SELECT count(*), max(a.events_sha256),
                        bool_or(p.archived) FROM audit.archives AS a
                   JOIN audit.partitions AS p USING (partition)",
                &[],
            )
            .expect("archives");
        (row.get(0), row.get(1), row.get(2))
    };
    assert_eq!((kept, digest, archived), (1, None, false));
    let mut as_admin = db.client_as(&admin);
    for sql in [
        "INSERT INTO audit.consumers (name) VALUES ('other')",
        "UPDATE audit.consumers SET last_id = 99",
        "INSERT INTO audit.seal_keys (key_id, public_key) VALUES ('0123456789abcdef', '\\x00')",
    ] {
        let err = as_admin.batch_execute(sql).expect_err(sql);
        assert_eq!(audit_trail_tests::sqlstate(&err), "42501", "{sql}");
    }
    let err = client
        .batch_execute(
            "INSERT INTO audit.events (actor, entity, action) VALUES ('x', 'contact', 'create')",
        )
        .expect_err("the upgraded log is live");
    assert_eq!(audit_trail_tests::sqlstate(&err), "42501");
    let fresh = TestDb::new();
    assert_eq!(
        members(&db),
        members(&fresh),
        "the schema is a fresh install's"
    );
}
