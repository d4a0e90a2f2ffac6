//! No way around capture and no way into the log for a table owner: writes through other
//! tables, renames by any command, DDL that rewrites data, re-tracking, casts, sizes.
//! Each test reproduces an attack that once worked.

use audit_trail_tests::{all_events, error_text, events, sqlstate, Event, TestDb};
use serde_json::{json, Value};

use crate::contacts_db;

/// The error has this SQLSTATE and its message names the cause.
fn assert_refused(err: &postgres::Error, code: &str, cause: &str) {
    let text = error_text(err);
    assert_eq!(sqlstate(err), code, "{text}");
    assert!(text.contains(cause), "{text}");
}

fn of_action<'a>(events: &'a [Event], action: &str) -> Vec<&'a Event> {
    events.iter().filter(|e| e.action == action).collect()
}

fn settings(c: &mut postgres::Client, table: &str) -> (Vec<String>, Vec<String>, Vec<String>) {
    let row = c
        .query_one(
            "SELECT subject_columns, ignore_columns, redact_columns FROM audit.tracked \
              WHERE table_name = $1::text::regclass",
            &[&table],
        )
        .unwrap();
    (row.get(0), row.get(1), row.get(2))
}

// --- writes through a table that is not tracked ----------------------------------------------

#[test]
fn a_tracked_table_cannot_inherit_from_an_untracked_one() {
    let (_db, mut c) = contacts_db();
    c.batch_execute("CREATE TABLE crm.shadow (LIKE crm.contacts)")
        .unwrap();
    let err = c
        .batch_execute("ALTER TABLE crm.contacts INHERIT crm.shadow")
        .unwrap_err();
    assert_refused(&err, "0A000", "inheritance");
    // Nothing links the two tables, so an UPDATE of the shadow table reaches no contact.
    let linked: bool = c
        .query_one(
            "SELECT EXISTS (SELECT FROM pg_inherits WHERE inhrelid = 'crm.contacts'::regclass)",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(!linked);
}

#[test]
fn a_child_table_of_a_tracked_table_is_refused() {
    let (_db, mut c) = contacts_db();
    let err = c
        .batch_execute("CREATE TABLE crm.contacts_child () INHERITS (crm.contacts)")
        .unwrap_err();
    assert_refused(&err, "0A000", "inheritance");
}

#[test]
fn a_tracked_table_becomes_a_partition_only_of_a_tracked_table() {
    let (_db, mut c) = contacts_db();
    c.batch_execute(
        "CREATE TABLE crm.contacts_p (LIKE crm.contacts INCLUDING DEFAULTS) PARTITION BY RANGE (id);
         INSERT INTO crm.contacts (id, name) VALUES (1, 'Ann');",
    )
    .unwrap();
    let attach = "ALTER TABLE crm.contacts_p ATTACH PARTITION crm.contacts \
                  FOR VALUES FROM (MINVALUE) TO (1000)";
    let err = c.batch_execute(attach).unwrap_err();
    assert_refused(&err, "0A000", "crm.contacts_p, which is not tracked");
    // Tracking the partition directly is refused for the same reason...
    c.batch_execute(
        "CREATE TABLE crm.contacts_p2 PARTITION OF crm.contacts_p FOR VALUES FROM (1000) TO (2000)",
    )
    .unwrap();
    let err = c
        .batch_execute("SELECT audit.track('crm.contacts_p2', 'contact')")
        .unwrap_err();
    assert!(
        error_text(&err).contains("not tracked"),
        "{}",
        error_text(&err)
    );
    // ...and once the parent is tracked, writes through it are captured.
    c.batch_execute(&format!(
        "SELECT audit.track('crm.contacts_p', 'contact', subject_column => 'id'); {attach};
         INSERT INTO crm.contacts_p (id, name) VALUES (2, 'Bob');"
    ))
    .unwrap();
    let ev = events(&mut c);
    let created: Vec<_> = of_action(&ev, "create")
        .iter()
        .map(|e| e.subject_id.clone().unwrap_or_default())
        .collect();
    assert_eq!(created, ["1", "2"], "{ev:#?}");
    // Attaching a partition changes which rows the tracked table holds: on record.
    let all = all_events(&mut c);
    assert!(
        of_action(&all, "alter").iter().any(|e| {
            e.table_name.as_deref() == Some("crm.contacts_p")
                && e.details.as_ref().unwrap()["statement"]
                    .as_str()
                    .is_some_and(|s| s.contains("ATTACH PARTITION"))
        }),
        "{all:#?}"
    );
}

#[test]
fn a_partition_created_inside_create_schema_is_tracked() {
    let db = TestDb::new();
    let mut c = db.client();
    c.batch_execute(
        "CREATE SCHEMA crm;
         CREATE TABLE crm.users (id int PRIMARY KEY, name text, pw text) PARTITION BY RANGE (id);
         CREATE TABLE crm.users_1 PARTITION OF crm.users FOR VALUES FROM (0) TO (100);
         SELECT audit.track('crm.users', 'user', redact_columns => '{pw}');
         CREATE SCHEMA more
             CREATE TABLE users_2 PARTITION OF crm.users FOR VALUES FROM (100) TO (200);
         INSERT INTO more.users_2 VALUES (150, 'direct', 'secret');",
    )
    .unwrap();
    let ev = events(&mut c);
    assert_eq!(ev.len(), 1, "{ev:#?}");
    assert_eq!(ev[0].table_name.as_deref(), Some("more.users_2"));
    assert_eq!(ev[0].new_data.as_ref().unwrap()["pw"], "[redacted]");
}

// --- settings follow every rename, drop and re-add --------------------------------------------

#[test]
fn renames_by_any_command_carry_the_column_settings() {
    // Each of these renames a column of a table (PostgreSQL accepts them on tables); either
    // the command is refused or the redaction follows the column.
    let commands = [
        "ALTER VIEW crm.contacts RENAME COLUMN password_hash TO pw",
        "ALTER MATERIALIZED VIEW crm.contacts RENAME COLUMN password_hash TO pw",
        "ALTER FOREIGN TABLE crm.contacts RENAME COLUMN password_hash TO pw",
        "ALTER TYPE crm.contacts RENAME ATTRIBUTE password_hash TO pw",
        "ALTER TABLE crm.contacts RENAME COLUMN password_hash TO pw",
    ];
    let mut followed = 0;
    for command in commands {
        let (_db, mut c) = contacts_db();
        if let Err(e) = c.batch_execute(command) {
            assert!(!error_text(&e).is_empty());
            continue;
        }
        followed += 1;
        c.batch_execute(
            "INSERT INTO crm.contacts (name, pw) VALUES ('Ann', 'clear');
             UPDATE crm.contacts SET pw = 'clear2', updated_at = now() + interval '1h';",
        )
        .unwrap();
        let ev = events(&mut c);
        assert_eq!(ev.len(), 2, "{command}: {ev:#?}");
        assert_eq!(
            ev[0].new_data.as_ref().unwrap()["pw"],
            "[redacted]",
            "{command}"
        );
        assert_eq!(
            ev[1].new_data.as_ref().unwrap()["pw"],
            "[redacted]",
            "{command}"
        );
        assert_eq!(
            ev[1].old_data.as_ref().unwrap()["pw"],
            "[redacted]",
            "{command}"
        );
        assert_eq!(
            settings(&mut c, "crm.contacts").2,
            ["pw"],
            "{command}: settings did not follow"
        );
        // The rename itself is on record.
        let alters = all_events(&mut c);
        assert!(
            of_action(&alters, "alter")
                .iter()
                .any(|e| e.details.as_ref().unwrap()["settings"]
                    == json!([{"column_renamed": ["password_hash", "pw"]}])),
            "{command}: {alters:#?}"
        );
    }
    assert!(
        followed >= 2,
        "at least ALTER TABLE and ALTER VIEW rename a table's column"
    );
}

#[test]
fn a_rename_on_a_partitioned_table_reaches_its_partitions_settings() {
    let db = TestDb::new();
    let mut c = db.client();
    c.batch_execute(
        "CREATE TABLE users (id int PRIMARY KEY, name text, pw text, seen timestamptz)
             PARTITION BY RANGE (id);
         CREATE TABLE users_1 PARTITION OF users FOR VALUES FROM (0) TO (100);
         SELECT audit.track('users', 'user', ignore_columns => '{seen}', redact_columns => '{pw}');
         ALTER TABLE users RENAME COLUMN pw TO secret;
         ALTER TABLE users RENAME COLUMN seen TO last_seen;
         INSERT INTO users_1 VALUES (1, 'a', 'clear', now());
         UPDATE users_1 SET last_seen = now() + interval '1h';",
    )
    .unwrap();
    let ev = events(&mut c);
    assert_eq!(
        ev.len(),
        1,
        "ignored column renamed on the parent is still ignored: {ev:#?}"
    );
    assert_eq!(ev[0].new_data.as_ref().unwrap()["secret"], "[redacted]");
    let (_, ignore, redact) = settings(&mut c, "users_1");
    assert_eq!(
        (ignore, redact),
        (vec!["last_seen".to_string()], vec!["secret".to_string()])
    );
}

#[test]
fn a_redacted_column_dropped_and_added_again_stays_redacted() {
    let (_db, mut c) = contacts_db();
    c.batch_execute(
        "ALTER TABLE crm.contacts DROP COLUMN password_hash;
         ALTER TABLE crm.contacts ADD COLUMN password_hash text;
         INSERT INTO crm.contacts (name, password_hash) VALUES ('Ann', 'clear');
         ALTER TABLE crm.contacts DROP COLUMN password_hash,
                                  ADD COLUMN password_hash text DEFAULT 'clear';
         UPDATE crm.contacts SET name = 'Bob';",
    )
    .unwrap();
    let ev = events(&mut c);
    assert_eq!(ev.len(), 2, "{ev:#?}");
    assert_eq!(
        ev[0].new_data.as_ref().unwrap()["password_hash"],
        "[redacted]"
    );
    assert_eq!(
        ev[1].new_data.as_ref().unwrap()["password_hash"],
        "[redacted]"
    );
    assert_eq!(settings(&mut c, "crm.contacts").2, ["password_hash"]);
}

// --- DDL that changes data is on record -------------------------------------------------------

#[test]
fn ddl_that_rewrites_or_erases_data_is_recorded() {
    let (_db, mut c) = contacts_db();
    c.batch_execute(
        "INSERT INTO crm.contacts (name, email) VALUES ('Ann', 'ann@example.com');
         ALTER TABLE crm.contacts ALTER COLUMN email TYPE varchar
             USING 'attacker@evil.example';
         ALTER TABLE crm.contacts DROP COLUMN phone;
         ALTER TABLE crm.contacts RENAME TO people;",
    )
    .unwrap();
    let ev = all_events(&mut c);
    let alters = of_action(&ev, "alter");
    assert_eq!(alters.len(), 3, "{ev:#?}");
    for alter in &alters {
        assert_eq!(alter.entity, "contact");
        assert_eq!(alter.db_user, "postgres");
        assert_eq!(alter.details.as_ref().unwrap()["command"], "ALTER TABLE");
    }
    let statement = |e: &Event| {
        e.details.as_ref().unwrap()["statement"]
            .as_str()
            .unwrap_or("")
            .to_owned()
    };
    assert!(statement(alters[0]).contains("attacker@evil.example"));
    assert!(statement(alters[1]).contains("DROP COLUMN phone"));
    assert_eq!(alters[0].table_name.as_deref(), Some("crm.contacts"));
    // A rename names both the old and the new table.
    assert_eq!(alters[2].table_name.as_deref(), Some("crm.people"));
    assert_eq!(
        alters[2].details.as_ref().unwrap()["settings"],
        json!([{"table_renamed": ["crm.contacts", "crm.people"]}])
    );
    let summary: String = c
        .query_one(
            "SELECT summary FROM audit.report WHERE id = $1",
            &[&alters[2].id],
        )
        .unwrap()
        .get(0);
    assert_eq!(
        summary,
        "postgres renamed contact table crm.people (ALTER TABLE)"
    );
}

#[test]
fn table_rewrites_that_keep_the_data_are_recorded_and_capture_goes_on() {
    // Attacks of our own: a rewrite to another access method, CLUSTER, VACUUM FULL and a rule
    // that would turn updates into nothing. None changes data unseen.
    let (_db, mut c) = contacts_db();
    for statement in [
        "INSERT INTO crm.contacts (name) VALUES ('Ann')",
        "ALTER TABLE crm.contacts SET ACCESS METHOD heap",
        "CLUSTER crm.contacts USING contacts_pkey",
        "VACUUM FULL crm.contacts",
        "UPDATE crm.contacts SET name = 'Bob'",
    ] {
        c.batch_execute(statement).unwrap();
    }
    let ev = all_events(&mut c);
    assert_eq!(
        of_action(&ev, "alter").len(),
        1,
        "SET ACCESS METHOD: {ev:#?}"
    );
    assert_eq!(of_action(&ev, "update").len(), 1);
    // A rule would run statements of the owner's choosing inside the writer's (one that
    // calls audit.set_actor, say) or send them elsewhere: refused on a tracked table.
    let err = c
        .batch_execute("CREATE RULE no_updates AS ON UPDATE TO crm.contacts DO INSTEAD NOTHING")
        .expect_err("a rule on a tracked table");
    let message = err.as_db_error().map(|e| e.message().to_owned());
    assert!(
        message.is_some_and(|m| m.contains("rule no_updates on tracked table crm.contacts")),
        "{err:?}"
    );
    c.batch_execute("UPDATE crm.contacts SET name = 'Eve'")
        .unwrap();
    let name: String = c
        .query_one("SELECT name FROM crm.contacts", &[])
        .unwrap()
        .get(0);
    assert_eq!(name, "Eve");
    assert_eq!(of_action(&all_events(&mut c), "update").len(), 2);
}

#[test]
fn renaming_an_enum_value_a_tracked_column_uses_is_recorded() {
    // Every row holding 'bronze' would read 'gold' afterwards, without a row event.
    let db = TestDb::new();
    let mut c = db.client();
    c.batch_execute(
        "CREATE TYPE tier AS ENUM ('bronze', 'gold');
         CREATE DOMAIN member_tier AS tier;
         CREATE TABLE members (id int PRIMARY KEY, t tier, ts tier[], d member_tier);
         CREATE TABLE other (id int PRIMARY KEY);
         SELECT audit.track('members', 'user');
         SELECT audit.track('other', 'user');
         INSERT INTO members VALUES (1, 'bronze', '{bronze}', 'bronze');
         ALTER TYPE tier RENAME VALUE 'bronze' TO 'platinum';",
    )
    .unwrap();
    let ev = all_events(&mut c);
    let alters = of_action(&ev, "alter");
    assert_eq!(alters.len(), 1, "{ev:#?}");
    assert_eq!(alters[0].table_name.as_deref(), Some("public.members"));
    assert_eq!(alters[0].details.as_ref().unwrap()["command"], "ALTER TYPE");
}

// --- tracking itself is on record, audit_log cannot be impersonated ---------------------------

#[test]
fn every_track_and_retrack_is_recorded_with_its_settings() {
    let (_db, mut c) = contacts_db();
    c.batch_execute(
        "SELECT audit.track('crm.contacts', 'contact',
                            ignore_columns => '{name,email,phone,password_hash,updated_at}');
         UPDATE crm.contacts SET email = 'x';
         SELECT audit.track('crm.contacts', 'contact', ignore_columns => '{updated_at}',
                            redact_columns => '{password_hash}');",
    )
    .unwrap();
    let ev = all_events(&mut c);
    let tracks = of_action(&ev, "track");
    assert_eq!(tracks.len(), 3, "{ev:#?}");
    for t in &tracks {
        assert_eq!(t.entity, "audit_log");
        assert_eq!(t.table_name.as_deref(), Some("crm.contacts"));
    }
    let details: &Value = tracks[1].details.as_ref().unwrap();
    assert_eq!(details["ignore_columns"].as_array().unwrap().len(), 5);
    assert_eq!(details["previous"]["ignore_columns"], json!(["updated_at"]));
    assert_eq!(tracks[0].details.as_ref().unwrap()["previous"], Value::Null);
    let summaries: Vec<String> = c
        .query(
            "SELECT summary FROM audit.report WHERE action = 'track' ORDER BY id",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        summaries[0],
        "postgres started tracking crm.contacts as contact"
    );
    assert_eq!(summaries[1], "postgres re-tracked crm.contacts as contact");
}

#[test]
fn entity_audit_log_cannot_be_tracked_and_track_actions_cannot_be_logged() {
    let (_db, mut c) = contacts_db();
    c.batch_execute("CREATE TABLE fake (id int PRIMARY KEY)")
        .unwrap();
    for entity in ["audit_log", "Audit_Log", "audit log"] {
        let err = c
            .execute("SELECT audit.track('fake', $1)", &[&entity])
            .unwrap_err();
        assert!(
            ["42501", "22023"].contains(&sqlstate(&err).as_str()),
            "{entity}: {}",
            error_text(&err)
        );
    }
    for action in ["track", "alter", "untrack", "table_dropped"] {
        let err = c
            .execute("SELECT audit.log_event('contact', $1)", &[&action])
            .unwrap_err();
        assert!(
            error_text(&err).contains("reserved"),
            "{}",
            error_text(&err)
        );
    }
}

// --- owner-defined casts cannot forge values --------------------------------------------------

#[test]
fn a_cast_to_json_defined_by_the_owner_does_not_change_what_is_recorded() {
    let db = TestDb::new();
    let mut c = db.client();
    c.batch_execute(
        "CREATE TYPE tier AS ENUM ('bronze', 'silver', 'gold');
         CREATE TYPE badge AS (tier tier, since int);
         CREATE TABLE members (id int PRIMARY KEY, t tier, ts tier[], b badge);
         SELECT audit.track('members', 'user');
         INSERT INTO members VALUES (1, 'bronze', '{bronze}', '(bronze,2020)');
         CREATE TABLE calls (n int);
         CREATE FUNCTION tier_json(tier) RETURNS json LANGUAGE sql
             AS $$ INSERT INTO calls VALUES (1) RETURNING '\"bronze\"'::json $$;
         CREATE CAST (tier AS json) WITH FUNCTION tier_json(tier);
         UPDATE members SET t = 'gold', ts = '{gold,silver}', b = '(gold,2021)';",
    )
    .unwrap();
    let ev = events(&mut c);
    assert_eq!(ev.len(), 2, "{ev:#?}");
    // Before the cast existed: to_jsonb's own rendering.
    assert_eq!(
        ev[0].new_data,
        Some(
            json!({"id": 1, "t": "bronze", "ts": ["bronze"], "b": {"tier": "bronze", "since": 2020}})
        )
    );
    // After: the values as their types print them, never what the cast says.
    let after = ev[1].new_data.as_ref().unwrap();
    assert_eq!(after["t"], "gold");
    assert_eq!(after["ts"], "{gold,silver}");
    assert_eq!(after["b"], "(gold,2021)");
    let calls: i64 = c
        .query_one("SELECT count(*) FROM calls", &[])
        .unwrap()
        .get(0);
    assert_eq!(calls, 0, "capture called the owner's cast function");
}

// --- sizes and error hygiene ------------------------------------------------------------------

#[test]
fn application_events_of_non_admins_are_bounded() {
    let db = TestDb::new();
    let mut admin = db.client();
    let clerk = db.create_role("clerk", "LOGIN");
    let mut c = db.client_as(&clerk);
    let big = "x".repeat(100 * 1024);
    let err = c
        .execute(
            "SELECT audit.log_event('contact', 'export', NULL, jsonb_build_object('blob', $1::text))",
            &[&big],
        )
        .unwrap_err();
    assert_refused(&err, "54000", "audit.max_event_bytes");
    // Ordinary events pass; the limit is the superuser's to set, not the clerk's.
    c.execute(
        "SELECT audit.log_event('contact', 'export', NULL, '{\"rows\": 10}')",
        &[],
    )
    .unwrap();
    let err = c
        .batch_execute("SET audit.max_event_bytes = '1GB'")
        .unwrap_err();
    assert_eq!(sqlstate(&err), "42501", "{}", error_text(&err));
    // Admins are not bound (their exports record their filters, which may be long).
    admin
        .execute(
            "SELECT audit.log_event('contact', 'export', NULL, jsonb_build_object('blob', $1::text))",
            &[&big],
        )
        .unwrap();
    // A subject id longer than any key is refused with a clear error, for everyone.
    let err = admin
        .execute(
            "SELECT audit.log_event('contact', 'export', repeat('s', 50 * 1024 * 1024))",
            &[],
        )
        .unwrap_err();
    assert_eq!(sqlstate(&err), "54000", "{}", error_text(&err));
}

#[test]
fn errors_carry_no_rust_backtrace() {
    // The shared cluster runs with RUST_BACKTRACE=1 (tests/src/cluster.rs). An error that
    // PostgreSQL raises inside capture (an index row too large for the subject index) goes
    // back through Rust: its DETAIL must not hold a backtrace.
    let db = TestDb::new();
    let mut c = db.client();
    c.batch_execute(
        "CREATE TABLE codes (id int PRIMARY KEY, code text);
         SELECT audit.track('codes', 'code', subject_column => 'code');",
    )
    .unwrap();
    let err = c
        .batch_execute(
            "INSERT INTO codes SELECT 1, string_agg(md5(i::text), '') FROM generate_series(1, 1600000) i",
        )
        .unwrap_err();
    let db_err = err.as_db_error().expect("a server error");
    let detail = db_err.detail().unwrap_or("");
    assert!(
        !detail.contains("backtrace")
            && !detail.contains("rust_begin_unwind")
            && !detail.contains(".rs:"),
        "DETAIL carries a backtrace: {}",
        &detail[..detail.len().min(500)]
    );
    assert!(!db_err.message().contains(".rs:"), "{}", db_err.message());
}

#[test]
fn untrack_and_a_dropped_table_are_summarised_with_the_table() {
    let (_db, mut c) = contacts_db();
    c.batch_execute(
        "CREATE TABLE crm.notes (id int PRIMARY KEY);
         SELECT audit.track('crm.notes', 'note');
         SELECT audit.untrack('crm.contacts');
         DROP TABLE crm.notes;",
    )
    .unwrap();
    let summaries: Vec<String> = c
        .query(
            "SELECT summary FROM audit.report
              WHERE action IN ('untrack', 'table_dropped') ORDER BY id",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        summaries,
        [
            "postgres stopped tracking crm.contacts",
            "postgres dropped tracked table crm.notes"
        ]
    );
}
