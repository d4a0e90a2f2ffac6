//! Reading `audit.events` back in tests.

use serde_json::Value;

#[derive(Debug, Clone)]
pub struct Event {
    pub id: i64,
    pub txid: i64,
    pub actor: String,
    pub db_user: String,
    pub source: String,
    pub application_name: Option<String>,
    pub entity: String,
    pub action: String,
    pub table_name: Option<String>,
    pub subject_id: Option<String>,
    pub changed_fields: Option<Vec<String>>,
    pub old_data: Option<Value>,
    pub new_data: Option<Value>,
    pub context: Option<Value>,
    pub details: Option<Value>,
}

/// Every event but the records of tracking settings and schema changes (`track`, `alter`),
/// which most tests do not look at, oldest first.
pub fn events(client: &mut impl postgres::GenericClient) -> Vec<Event> {
    query(client, "WHERE action NOT IN ('track', 'alter')")
}

/// Every event, oldest first.
pub fn all_events(client: &mut impl postgres::GenericClient) -> Vec<Event> {
    query(client, "")
}

fn query(client: &mut impl postgres::GenericClient, filter: &str) -> Vec<Event> {
    client
        .query(
            &format!(
                "SELECT id, txid::text::bigint, actor, db_user, source, application_name, \
                        entity, action, table_name, subject_id, changed_fields, old_data, \
                        new_data, context, details \
                   FROM audit.events {filter} ORDER BY id"
            ),
            &[],
        )
        .expect("read audit.events")
        .iter()
        .map(|r| Event {
            id: r.get(0),
            txid: r.get(1),
            actor: r.get(2),
            db_user: r.get(3),
            source: r.get(4),
            application_name: r.get(5),
            entity: r.get(6),
            action: r.get(7),
            table_name: r.get(8),
            subject_id: r.get(9),
            changed_fields: r.get(10),
            old_data: r.get(11),
            new_data: r.get(12),
            context: r.get(13),
            details: r.get(14),
        })
        .collect()
}

/// The latest export's two records: its `audit_log`/`export` event (committed before its
/// first row) and the `audit_log`/`export_end` event naming it, when it was recorded.
pub fn last_export(client: &mut impl postgres::GenericClient) -> (Event, Option<Event>) {
    let all = all_events(client);
    let start = all
        .iter()
        .rev()
        .find(|e| e.entity == "audit_log" && e.action == "export")
        .cloned()
        .expect("an export event");
    let end = all
        .iter()
        .find(|e| {
            e.entity == "audit_log"
                && e.action == "export_end"
                && e.details.as_ref().and_then(|d| d["export"].as_i64()) == Some(start.id)
        })
        .cloned();
    (start, end)
}
