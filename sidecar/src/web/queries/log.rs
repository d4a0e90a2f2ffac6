//! The Audit Log's list. It reads a page of `audit.events` first (see [`super::plan`]) and
//! only then the `summary` of each of those rows from `audit.report`: asking the view for the
//! page directly makes PostgreSQL build the summary of every matching event before sorting.
//! Each summary is looked up by (occurred_at, id), which the events' btree index serves
//! (there is no index on id alone).

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_postgres::Client;

use super::super::params::{Cursor, Page};
use super::plan::{self, may_use_summary, order_of};
use super::{snapshot, summary_state, SummaryState};
use crate::filters::Filters;

pub struct ListedEvent {
    pub id: i64,
    pub occurred_at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub entity: String,
    pub subject_id: Option<String>,
    pub source: String,
    pub summary: String,
}

impl ListedEvent {
    pub fn cursor(&self) -> Cursor {
        Cursor {
            at: self.occurred_at,
            id: self.id,
        }
    }
}

/// One page of the newest-first list, and whether there is more either way.
pub struct EventPage {
    pub events: Vec<ListedEvent>,
    pub has_newer: bool,
    pub has_older: bool,
}

/// One page of events matching `filters`, newest first. With a filter on a dimension of the
/// summary (and no subject, which the (entity, subject_id) index serves), the page is found
/// through the summary once there is one.
pub async fn list(
    client: &mut Client,
    filters: &Filters,
    page: Page,
    size: i64,
    timeout: Duration,
) -> Result<EventPage, tokio_postgres::Error> {
    let tx = snapshot(client, timeout).await?;
    let state = if may_use_summary(filters) {
        summary_state(&tx).await?
    } else {
        SummaryState::Unavailable
    };
    // One more than the page, to learn whether there is a next one.
    let found = plan::page_sql(filters, page, size + 1, &state);
    let order = order_of(page);
    let sql = format!(
        "SELECT e.id, e.occurred_at, e.actor, e.action, e.entity, e.subject_id, e.source,
                (SELECT r.summary FROM audit.report AS r
                  WHERE r.occurred_at = e.occurred_at AND r.id = e.id)
           FROM ({found}) AS e
          ORDER BY e.occurred_at {order}, e.id {order}",
        found = found.sql,
    );
    let rows = tx.query(&sql, &found.params.refs()).await?;
    tx.commit().await?;
    let mut events = rows
        .iter()
        .map(|r| {
            Ok(ListedEvent {
                id: r.try_get(0)?,
                occurred_at: r.try_get(1)?,
                actor: r.try_get(2)?,
                action: r.try_get(3)?,
                entity: r.try_get(4)?,
                subject_id: r.try_get(5)?,
                source: r.try_get(6)?,
                summary: r.try_get::<_, Option<String>>(7)?.unwrap_or_default(),
            })
        })
        .collect::<Result<Vec<_>, tokio_postgres::Error>>()?;
    let more = events.len() as i64 > size;
    events.truncate(size.max(0) as usize);
    Ok(match page {
        Page::Newest => EventPage {
            events,
            has_newer: false,
            has_older: more,
        },
        Page::Before(_) => EventPage {
            events,
            has_newer: true,
            has_older: more,
        },
        Page::After(_) => {
            events.reverse();
            EventPage {
                events,
                has_newer: more,
                has_older: true,
            }
        }
    })
}

/// The entities of tracked tables, for the Entity filter (a small table, unlike the log).
pub async fn tracked_entities(client: &Client) -> Result<Vec<String>, tokio_postgres::Error> {
    client
        .query(
            "SELECT DISTINCT entity FROM audit.tracked_tables ORDER BY entity",
            &[],
        )
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect()
}
