//! WAL capture (docs/wal-capture.md), its core: the same changes, recorded by the capture
//! trigger and decoded from the write-ahead log (pgoutput, through the sidecar's decoder and
//! assembler) then turned into events by `audit.wal_changes`, give the same subject, changed
//! fields, row images and organization, column by column.

use audit_trail_sidecar::capture::pgoutput::decode;
use audit_trail_sidecar::capture::transactions::{Action, Assembler, Transaction};
use audit_trail_tests::TestDb;
use serde_json::{json, Value};

/// A logical slot of the test's own, dropped when the test ends (a slot keeps its database
/// from being dropped and the cluster's WAL from being recycled).
struct Slot<'a> {
    db: &'a TestDb,
    name: String,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let _ = self
            .db
            .client()
            .execute("SELECT pg_drop_replication_slot($1)", &[&self.name]);
    }
}

/// Every transaction committed since the slot was made (or last read), decoded.
fn decoded(c: &mut postgres::Client, slot: &Slot<'_>) -> Vec<Transaction> {
    let mut assembler = Assembler::default();
    c.query(
        "SELECT data FROM pg_logical_slot_get_binary_changes($1, NULL, NULL,
           'proto_version', '1', 'publication_names', 'audit_trail', 'messages', 'true')",
        &[&slot.name],
    )
    .unwrap()
    .iter()
    .filter_map(|row| {
        let bytes: Vec<u8> = row.get(0);
        assembler
            .push(decode(&bytes).expect("pgoutput decodes"))
            .expect("assembles")
    })
    .collect()
}

fn rows_json(old: Option<&Vec<Option<String>>>, new: Option<&Vec<Option<String>>>) -> Value {
    json!([old, new])
}

/// What audit.wal_changes makes of each decoded change of a tracked table, in order:
/// (table, subject, changed fields, old data, new data, organization) per event.
fn wal_events(c: &mut postgres::Client, txs: &[Transaction]) -> Vec<Value> {
    let mut out = Vec::new();
    for change in txs.iter().flat_map(|t| &t.changes) {
        if change.action == Action::Truncate {
            continue;
        }
        let table = format!("{}.{}", change.relation.namespace, change.relation.name);
        let columns: Vec<&str> = change
            .relation
            .columns
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        let rows = json!([rows_json(change.old.as_ref(), change.new.as_ref())]);
        for r in c
            .query(
                "SELECT to_jsonb(w) - 'ordinal' FROM audit.wal_changes($1::oid::regclass, $2, $3, $4) w",
                &[&change.relation.oid, &change.action.as_str(), &columns, &rows],
            )
            .unwrap()
        {
            let mut event: Value = r.get(0);
            event["table_name"] = json!(table);
            out.push(event);
        }
    }
    out
}

fn trigger_events(c: &mut postgres::Client) -> Vec<Value> {
    c.query(
        "SELECT jsonb_build_object('table_name', table_name, 'subject_id', subject_id,
                'changed_fields', changed_fields, 'old_data', old_data, 'new_data', new_data,
                'tenant', tenant)
           FROM audit.events WHERE entity <> 'audit_log' AND action <> 'truncate'
          ORDER BY txid, id",
        &[],
    )
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect()
}

#[test]
fn the_wal_and_the_trigger_make_the_same_events() {
    let db = TestDb::new();
    let mut c = db.client();
    c.batch_execute(
        "SET TimeZone = 'UTC';
         CREATE TYPE mood AS ENUM ('calm', 'tense');
         -- A domain whose check is code of its own: reading a decoded value must not run it
         -- (it refuses every role but the superuser that writes the rows).
         CREATE FUNCTION only_writer(v text) RETURNS boolean LANGUAGE plpgsql AS $$
           BEGIN IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
                     RAISE EXCEPTION 'the check ran as %', current_user; END IF;
                 RETURN v LIKE '%@%'; END $$;
         CREATE DOMAIN email AS text CHECK (only_writer(VALUE));
         CREATE SCHEMA crm;
         CREATE TABLE crm.contacts (
             id bigint PRIMARY KEY, name text NOT NULL, score numeric(12,4), ratio float8,
             tags text[], doc jsonb, raw json, seen timestamptz, born date, active boolean,
             photo bytea, feeling mood, grid int[], password_hash text, updated_at timestamptz,
             org text, notes text, contact_email email, country char(2), emails email[]);
         ALTER TABLE crm.contacts ALTER notes SET STORAGE EXTERNAL;
         SELECT audit.track('crm.contacts', 'contact', ignore_columns => '{updated_at}',
                            redact_columns => '{password_hash}', tenant_column => 'org');
         CREATE TABLE crm.group_members (group_id bigint, contact_id bigint, role text,
                                         PRIMARY KEY (group_id, contact_id));
         SELECT audit.track('crm.group_members', 'group', subject_column => 'group_id');
         ALTER TABLE crm.contacts REPLICA IDENTITY FULL;
         ALTER TABLE crm.group_members REPLICA IDENTITY FULL;
         CREATE PUBLICATION audit_trail FOR TABLE crm.contacts, crm.group_members;",
    )
    .unwrap();
    let slot = Slot {
        db: &db,
        name: format!("{}_wal", db.name),
    };
    c.execute(
        "SELECT pg_create_logical_replication_slot($1, 'pgoutput')",
        &[&slot.name],
    )
    .unwrap();

    // One transaction a statement, as an application's would be; each commit flushed, since
    // decoding reads only the WAL that is on disk.
    c.batch_execute("SET synchronous_commit = on").unwrap();
    for statement in [
        r#"INSERT INTO crm.contacts VALUES
           (1, 'Ann', 12.5000, 0.1, '{a,"b c",NULL}', '{"k": [1, 2.5], "a": {"z": null}}',
            '{"b": 1,  "a": 2}', '2026-12-07 10:00:00.123456+00', '2000-02-29', true,
            '\x00ff', 'calm', '{{1,2},{3,4}}', 'secret', now(), 'acme', repeat('x', 5000),
            'ann@example.com', 'US', '{a@x.io,b@x.io}'),
           (2, 'Zoë ✓', NULL, 'NaN', '{}', 'null', NULL, NULL, NULL, NULL, NULL, NULL, NULL,
            NULL, now(), NULL, NULL, NULL, NULL, NULL)"#,
        "UPDATE crm.contacts SET name = 'Anne', score = 13, doc = doc || '{\"n\": 1}',
                                 password_hash = 'other' WHERE id = 1",
        "UPDATE crm.contacts SET updated_at = now() + interval '1 day'",
        "UPDATE crm.contacts SET feeling = 'tense', ratio = '-Infinity', org = 'globex' WHERE id = 1",
        "UPDATE crm.contacts SET id = 3 WHERE id = 2",
        "UPDATE crm.contacts SET org = NULL, country = 'PT' WHERE id = 1",
        "INSERT INTO crm.group_members VALUES (10, 1, 'owner'), (10, 3, 'member')",
        "UPDATE crm.group_members SET role = 'admin' WHERE contact_id = 3",
        "DELETE FROM crm.group_members WHERE contact_id = 1",
        "DELETE FROM crm.contacts WHERE id = 3",
        "TRUNCATE crm.group_members",
        "DELETE FROM crm.contacts",
    ] {
        c.batch_execute(statement).unwrap();
    }

    let txs = decoded(&mut c, &slot);
    // The capture service's role, not a superuser: its grants are enough, and the domain's
    // check does not run as it.
    let service = db.create_role("wal_service", "LOGIN IN ROLE audit_service");
    let mut as_service = db.client_as(&service);
    as_service.batch_execute("SET TimeZone = 'UTC'").unwrap();
    let shape: Vec<Vec<&str>> = txs
        .iter()
        .map(|t| t.changes.iter().map(|c| c.action.as_str()).collect())
        .collect();
    assert_eq!(txs.len(), 12, "one transaction a statement: {shape:?}");
    let from_wal = wal_events(&mut as_service, &txs);
    let from_trigger = trigger_events(&mut c);
    // An update of the ignored column alone is no event either way.
    assert_eq!(from_wal.len(), from_trigger.len(), "{from_wal:#?}");
    for (wal, trigger) in from_wal.iter().zip(&from_trigger) {
        assert_eq!(wal, trigger);
    }
    // The comparison covered what matters: redaction, the organization, the group as the
    // subject of a membership table, a TOASTed value the update did not send again.
    let first_update = &from_wal[2];
    assert_eq!(
        first_update["old_data"]["password_hash"],
        json!("[redacted]")
    );
    assert_eq!(
        first_update["new_data"]["notes"].as_str().map(str::len),
        Some(5000)
    );
    assert_eq!(first_update["tenant"], json!("acme"));
    assert!(from_wal.iter().any(|e| e["subject_id"] == json!("10")));
    assert_eq!(from_wal[0]["new_data"]["country"], json!("US"));
    // An update that empties the organization column keeps the row's organization.
    assert!(from_wal.iter().any(
        |e| e["changed_fields"] == json!(["org", "country"]) && e["tenant"] == json!("globex")
    ));
}

fn message_of(err: &postgres::Error) -> String {
    err.as_db_error()
        .map_or_else(|| err.to_string(), |e| e.message().to_owned())
}

#[test]
fn a_column_the_table_no_longer_has_is_refused_by_name() {
    let db = TestDb::new();
    let mut c = db.client();
    c.batch_execute(
        "CREATE TABLE t (id int PRIMARY KEY, a text);
         SELECT audit.track('t', 'thing');",
    )
    .unwrap();
    let err = c
        .query(
            "SELECT * FROM audit.wal_changes('t', 'create', '{id,gone}', '[[null, [\"1\", \"x\"]]]')",
            &[],
        )
        .unwrap_err();
    assert_eq!(
        message_of(&err),
        ("column gone is not a column of public.t (the table changed since the change was decoded)")
    );
    let err = c
        .query(
            "SELECT * FROM audit.wal_changes('t', 'truncate', '{id}', '[]')",
            &[],
        )
        .unwrap_err();
    assert!(message_of(&err).contains("not truncate"), "{err:?}");
    // Rows that are not what the action has, or that lack values.
    for (action, rows) in [
        ("create", r#"[[["1", "x"], ["1", "x"]]]"#),
        ("update", r#"[[["1", "x"], null]]"#),
        ("delete", r#"[[["1"], null]]"#),
        ("create", r#"{"a": 1}"#),
    ] {
        let err = c
            .query(
                "SELECT * FROM audit.wal_changes('t', $1, '{id,a}', $2::text::jsonb)",
                &[&action, &rows],
            )
            .unwrap_err();
        assert!(message_of(&err).contains("pairs of 2 values"), "{err:?}");
    }
    let err = c
        .query(
            "SELECT * FROM audit.wal_changes('t', 'create', '{id}', '[[null, [\"1\"]]]')",
            &[],
        )
        .unwrap_err();
    assert!(message_of(&err).contains("without column a"), "{err:?}");
    // A composite column would be read by code of its type's fields: refused, by name.
    c.batch_execute(
        "CREATE TYPE pair AS (x int, y int);
         CREATE TABLE p (id int PRIMARY KEY, xy pair);
         SELECT audit.track('p', 'pair');",
    )
    .unwrap();
    let err = c
        .query(
            "SELECT * FROM audit.wal_changes('p', 'create', '{id,xy}', '[[null, [\"1\", \"(1,2)\"]]]')",
            &[],
        )
        .unwrap_err();
    assert!(
        message_of(&err).contains(
            "column xy of public.p has type public.pair, which WAL capture does not read yet"
        ),
        "{err:?}"
    );
    let err = c
        .query(
            "SELECT * FROM audit.wal_changes('pg_class', 'create', '{oid}', '[]')",
            &[],
        )
        .unwrap_err();
    assert!(message_of(&err).contains("is not tracked"), "{err:?}");
}
