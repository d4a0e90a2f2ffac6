//! The Audit Log's list: one page through `audit.search`, the search the API and SQL users
//! share (crate::search), with each row's `summary`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_postgres::Client;

use super::super::params::{Cursor, Page};
use super::snapshot;
use crate::filters::Filters;
use crate::search::{self, Position};

pub struct ListedEvent {
    pub id: i64,
    pub occurred_at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub entity: String,
    pub subject_id: Option<String>,
    pub source: String,
    pub summary: String,
    pub tenant: Option<String>,
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

/// One page of events matching `filters`, newest first.
pub async fn list(
    client: &mut Client,
    filters: &Filters,
    page: Page,
    size: i64,
    timeout: Duration,
) -> Result<EventPage, tokio_postgres::Error> {
    let tx = snapshot(client, timeout).await?;
    let position = match page {
        Page::Newest => Position::Newest,
        Page::Before(c) => Position::Before(c.at, c.id),
        Page::After(c) => Position::After(c.at, c.id),
    };
    // One more than the page, to learn whether there is a next one.
    let (sql, params) = search::query(
        "id, occurred_at, actor, action, entity, subject_id, source, summary, tenant",
        filters,
        position,
        size + 1,
    );
    let rows = tx.query(&sql, &params.refs()).await?;
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
                tenant: r.try_get(8)?,
            })
        })
        .collect::<Result<Vec<_>, tokio_postgres::Error>>()?;
    let more = events.len() as i64 > size;
    let size = size.max(0) as usize;
    Ok(match page {
        Page::Newest => {
            events.truncate(size);
            EventPage {
                events,
                has_newer: false,
                has_older: more,
            }
        }
        Page::Before(_) => {
            events.truncate(size);
            EventPage {
                events,
                has_newer: true,
                has_older: more,
            }
        }
        // The rows newer than the cursor nearest it: the extra one is the newest.
        Page::After(_) => {
            if more {
                events.remove(0);
            }
            EventPage {
                events,
                has_newer: more,
                has_older: true,
            }
        }
    })
}

/// Whether the log knows organizations at all (a table tracked with a tenant column, or an
/// event with one): only then does the list offer the Organization filter and column. The
/// second look reads the first entry of each partition's partial tenant index.
pub async fn organizations_in_use(client: &Client) -> Result<bool, tokio_postgres::Error> {
    client
        .query_one(
            "SELECT EXISTS (SELECT FROM audit.tracked_tables WHERE tenant_column IS NOT NULL)
                 OR EXISTS (SELECT FROM audit.events WHERE tenant IS NOT NULL)",
            &[],
        )
        .await?
        .try_get(0)
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
