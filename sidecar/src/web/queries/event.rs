//! One event's page: every column of `audit.report` for the event.

use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio_postgres::Client;

pub struct EventDetail {
    pub id: i64,
    pub occurred_at: DateTime<Utc>,
    pub actor: String,
    pub db_user: String,
    pub source: String,
    pub client_addr: Option<String>,
    pub application_name: Option<String>,
    pub entity: String,
    pub action: String,
    pub table_name: Option<String>,
    pub subject_id: Option<String>,
    pub changed_fields: Option<Vec<String>>,
    pub summary: String,
    pub old_data: Option<Value>,
    pub new_data: Option<Value>,
    pub context: Option<Value>,
    pub details: Option<Value>,
    pub txid: String,
}

pub async fn event(client: &Client, id: i64) -> Result<Option<EventDetail>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            "SELECT id, occurred_at, actor, db_user, source, pg_catalog.host(client_addr),
                    application_name,
                    entity, action, table_name, subject_id, changed_fields, summary, old_data,
                    new_data, context, details, txid::text
               FROM audit.report WHERE id = $1",
            &[&id],
        )
        .await?;
    let Some(r) = row else {
        return Ok(None);
    };
    Ok(Some(EventDetail {
        id: r.try_get(0)?,
        occurred_at: r.try_get(1)?,
        actor: r.try_get(2)?,
        db_user: r.try_get(3)?,
        source: r.try_get(4)?,
        client_addr: r.try_get(5)?,
        application_name: r.try_get(6)?,
        entity: r.try_get(7)?,
        action: r.try_get(8)?,
        table_name: r.try_get(9)?,
        subject_id: r.try_get(10)?,
        changed_fields: r.try_get(11)?,
        summary: r.try_get::<_, Option<String>>(12)?.unwrap_or_default(),
        old_data: r.try_get(13)?,
        new_data: r.try_get(14)?,
        context: r.try_get(15)?,
        details: r.try_get(16)?,
        txid: r.try_get(17)?,
    }))
}
