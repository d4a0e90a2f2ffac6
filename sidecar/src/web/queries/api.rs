//! The API's events (`/api/v1/events`): whole events with their organization and the
//! `summary` of `audit.report`, newest first, one organization's only. The organization is a
//! parameter of every function here, so no caller can forget it: it comes from the viewer's
//! token, never from the request.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_postgres::{Client, Row};

use super::snapshot;
use crate::event_row::{OutputEvent, EVENT_COLUMNS_SQL};
use crate::filters::Filters;
use crate::search::{self, Position};

/// Where a page starts: after the event at (occurred_at, id), in newest-first order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct After {
    pub at: DateTime<Utc>,
    pub id: i64,
}

/// An event as the API shows it.
pub struct ApiEventRow {
    /// Its columns as every reader of whole events reads them (JSON columns as text), its
    /// organization among them.
    pub event: OutputEvent,
    pub summary: String,
}

/// `summary` of an event row of `audit.events`, found by the (occurred_at, id) index.
const SUMMARY: &str = "(SELECT r.summary FROM audit.report AS r \
     WHERE r.occurred_at = events.occurred_at AND r.id = events.id)";

fn row(r: &Row) -> Result<ApiEventRow, tokio_postgres::Error> {
    Ok(ApiEventRow {
        event: OutputEvent::from_row(r)?,
        summary: r
            .try_get::<_, Option<String>>(OutputEvent::COLUMNS)?
            .unwrap_or_default(),
    })
}

/// Up to `limit` events of `tenant` matching `filters` (whose own organization, if any, is
/// replaced by `tenant`), newest first, after `after`; in one snapshot, each statement
/// stopped after `timeout` (`serve --query-timeout`).
pub async fn page(
    client: &mut Client,
    tenant: &str,
    filters: &Filters,
    after: Option<After>,
    limit: i64,
    timeout: Duration,
) -> Result<Vec<ApiEventRow>, tokio_postgres::Error> {
    let filters = Filters {
        tenant: Some(tenant.to_owned()),
        ..filters.clone()
    };
    // Through audit.search, as the dashboard's list: the same plan for the same filters.
    let position = match after {
        None => Position::Newest,
        Some(After { at, id }) => Position::Before(at, id),
    };
    let (sql, params) = search::query(
        &format!("{EVENT_COLUMNS_SQL}, summary"),
        &filters,
        position,
        limit,
    );
    let tx = snapshot(client, timeout).await?;
    let rows = tx.query(&sql, &params.refs()).await?;
    tx.commit().await?;
    rows.iter().map(row).collect()
}

/// Event `id` if it is `tenant`'s: another organization's is not found, as a missing one.
pub async fn event(
    client: &Client,
    tenant: &str,
    id: i64,
) -> Result<Option<ApiEventRow>, tokio_postgres::Error> {
    let sql = format!(
        "SELECT {EVENT_COLUMNS_SQL}, {SUMMARY} FROM audit.events \
         WHERE id = $1 AND tenant = $2"
    );
    client
        .query_opt(&sql, &[&id, &tenant])
        .await?
        .as_ref()
        .map(row)
        .transpose()
}
