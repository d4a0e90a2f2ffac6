//! One event's page: the event as every reader of whole events reads it, and its summary from
//! `audit.report`.

use tokio_postgres::Client;

use crate::event_row::{ArrayEvent, ARRAY_EVENT_COLUMNS_SQL};

pub struct EventDetail {
    /// JSON columns as text, `changed_fields` as its items: the view parses what it shows.
    pub event: ArrayEvent,
    pub summary: String,
}

/// Event `id`; with `tenant` (a token viewer's organization), only if it is that
/// organization's: another's is not found, exactly as a missing id.
pub async fn event(
    client: &Client,
    id: i64,
    tenant: Option<&str>,
) -> Result<Option<EventDetail>, tokio_postgres::Error> {
    let row = match tenant {
        None => {
            client
                .query_opt(
                    &format!(
                        "SELECT {ARRAY_EVENT_COLUMNS_SQL}, summary FROM audit.report WHERE id = $1"
                    ),
                    &[&id],
                )
                .await?
        }
        // The organization is read from the event itself, in the same row the page shows.
        Some(tenant) => {
            client
                .query_opt(
                    &format!(
                        "SELECT {ARRAY_EVENT_COLUMNS_SQL}, \
                                (SELECT r.summary FROM audit.report AS r \
                                  WHERE r.occurred_at = events.occurred_at AND r.id = events.id) \
                           FROM audit.events WHERE id = $1 AND tenant = $2"
                    ),
                    &[&id, &tenant],
                )
                .await?
        }
    };
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
