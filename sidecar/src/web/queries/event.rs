//! One event's page: the event as every reader of whole events reads it, and its summary from
//! `audit.report`.

use tokio_postgres::Client;

use crate::event_row::{ArrayEvent, ARRAY_EVENT_COLUMNS_SQL};

pub struct EventDetail {
    /// JSON columns as text, `changed_fields` as its items: the view parses what it shows.
    pub event: ArrayEvent,
    pub summary: String,
}

pub async fn event(client: &Client, id: i64) -> Result<Option<EventDetail>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            &format!("SELECT {ARRAY_EVENT_COLUMNS_SQL}, summary FROM audit.report WHERE id = $1"),
            &[&id],
        )
        .await?;
    let Some(r) = row else {
        return Ok(None);
    };
    Ok(Some(EventDetail {
        event: ArrayEvent::from_row(&r)?,
        summary: r
            .try_get::<_, Option<String>>(ArrayEvent::COLUMNS)?
            .unwrap_or_default(),
    }))
}
