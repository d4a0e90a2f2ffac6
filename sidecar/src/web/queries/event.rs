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

/// One version of a row: the event that made it and the row after it (None once deleted).
pub struct VersionRow {
    pub id: i64,
    pub occurred_at: chrono::DateTime<chrono::Utc>,
    pub actor: String,
    pub action: String,
    pub changed_fields: Option<Vec<String>>,
    pub after: Option<serde_json::Value>,
}

/// Versions of the row `subject` of the tracked table `table_name` shown on an event page:
/// the newest `limit`, newest first (audit.history, as the caller). None of a table no longer
/// tracked under that name.
pub async fn versions(
    client: &Client,
    table_name: &str,
    subject: &str,
    limit: i64,
) -> Result<Vec<VersionRow>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT h.event_id, h.occurred_at, h.actor, h.action, h.changed_fields, h.after
               FROM audit.tracked_tables AS t
              CROSS JOIN LATERAL audit.history(t.relid, $2) AS h
              WHERE t.table_name = $1
              ORDER BY h.occurred_at DESC, h.event_id DESC
              LIMIT $3",
            &[&table_name, &subject, &limit],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(VersionRow {
                id: r.try_get(0)?,
                occurred_at: r.try_get(1)?,
                actor: r.try_get(2)?,
                action: r.try_get(3)?,
                changed_fields: r.try_get(4)?,
                after: r.try_get(5)?,
            })
        })
        .collect()
}
