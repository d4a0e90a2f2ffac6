//! The installed extension keeps the contract the other parts rely on
//! (`contract/src/lib.rs`): SQL cannot import it, so it is checked here.

use audit_trail_contract::{
    is_reserved_action, CAPTURE_TRIGGERS, EVENT_COLUMNS, NOTIFY_CHANNEL, REDACTED,
};

use audit_trail_contract::summary::{EVENT_SUMMARY_DIMENSIONS, KIND_HOURS_DIMENSIONS};
use audit_trail_contract::PRIVILEGE_FIELDS;

use crate::contacts_db;

fn columns_of(c: &mut postgres::Client, table: &str) -> Vec<String> {
    c.query(
        "SELECT attname::text FROM pg_attribute
          WHERE attrelid = $1::text::regclass AND attnum > 0 AND NOT attisdropped
          ORDER BY attnum",
        &[&table],
    )
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect()
}

/// The summary tables count by the contract's dimensions, which the sidecar's filters rely on.
#[test]
fn the_summary_tables_count_by_the_contract_dimensions() {
    let (_db, mut c) = contacts_db();
    let expect = |first: &str, dimensions: &[&str]| -> Vec<String> {
        std::iter::once(first)
            .chain(dimensions.iter().copied())
            .chain(["events"])
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(
        columns_of(&mut c, "audit.event_summary"),
        expect("hour", &EVENT_SUMMARY_DIMENSIONS)
    );
    assert_eq!(
        columns_of(&mut c, "audit.kind_hours"),
        expect("hour", &KIND_HOURS_DIMENSIONS)
    );
}

/// The report names a privilege change by the contract's privilege fields, as the alert rule
/// and a re-track's warning do.
#[test]
fn the_report_knows_a_privilege_change_by_the_contract_fields() {
    let (_db, mut c) = contacts_db();
    let view: String = c
        .query_one("SELECT pg_get_viewdef('audit.report'::regclass)", &[])
        .unwrap()
        .get(0);
    let literal = format!("'{{{}}}'::text[]", PRIVILEGE_FIELDS.join(","));
    assert!(view.contains(&literal), "{literal} not in audit.report");
}

#[test]
fn audit_events_has_the_contract_columns_in_order() {
    let (_db, mut c) = contacts_db();
    let columns: Vec<String> = c
        .query(
            "SELECT attname::text FROM pg_attribute
              WHERE attrelid = 'audit.events'::regclass AND attnum > 0 AND NOT attisdropped
              ORDER BY attnum",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(columns, EVENT_COLUMNS);
}

#[test]
fn track_installs_the_contract_triggers_and_capture_notifies_its_channel() {
    let (db, mut c) = contacts_db();
    let mut triggers: Vec<String> = c
        .query(
            "SELECT tgname::text FROM pg_trigger
              WHERE tgrelid = 'crm.contacts'::regclass AND NOT tgisinternal ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    triggers.sort();
    let mut expected = CAPTURE_TRIGGERS.to_vec();
    expected.sort_unstable();
    assert_eq!(triggers, expected);

    let channel = NOTIFY_CHANNEL.to_str().unwrap();
    c.batch_execute(&format!("LISTEN {channel}")).unwrap();
    // Written from a backend of its own (each notifies at most once per 100 ms), then the
    // listener's next round trip brings the notification.
    db.client()
        .batch_execute("INSERT INTO crm.contacts (name, password_hash) VALUES ('Ann', 'pw')")
        .unwrap();
    c.batch_execute("SELECT 1").unwrap();
    // Notifications that arrived with the INSERT's reply are buffered on the client.
    let mut notes = Vec::new();
    {
        let mut pending = c.notifications();
        let mut iter = pending.iter();
        while let Ok(Some(n)) = postgres::fallible_iterator::FallibleIterator::next(&mut iter) {
            notes.push(n.channel().to_owned());
        }
    }
    assert!(notes.iter().any(|n| n == channel), "{notes:?}");

    let (image, action): (serde_json::Value, String) = c
        .query_one(
            "SELECT new_data, action FROM audit.events WHERE action = 'create'",
            &[],
        )
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    assert_eq!(image["password_hash"], REDACTED);
    assert!(is_reserved_action(&action));
}
