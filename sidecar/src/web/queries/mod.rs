//! The dashboard's SQL, by page: [`log`] the Audit Log's list (through `audit.search`),
//! [`event`] one event, [`overview`] the Overview's counts, [`integrity`] the status line
//! above the log; [`api`] the API's events. Filters become a WHERE clause with bound
//! parameters, never text in the SQL. A token viewer's organization is a filter like the
//! others (`Filters.tenant`), or a parameter of its own where a query takes no filters.

pub mod api;
pub mod event;
pub mod integrity;
pub mod log;
pub mod overview;

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_postgres::{Client, GenericClient};

/// What `audit.summary_state` says: which events the hourly summary counts.
#[derive(Debug, Clone, PartialEq)]
pub enum SummaryState {
    /// The installed extension keeps no summary.
    Unavailable,
    /// Nothing summarized yet: every event is in the tail.
    Empty,
    /// Events with `txid < watermark` are counted in `audit.event_summary`.
    At {
        /// The `xid8` as text: it travels back into SQL as `$n::text::xid8`, a constant the
        /// planner sees, so the tail is found through the (txid, id) index.
        watermark: String,
        summarized_at: DateTime<Utc>,
    },
}

impl SummaryState {
    fn watermark(&self) -> Option<&str> {
        match self {
            SummaryState::At { watermark, .. } => Some(watermark),
            _ => None,
        }
    }
}

pub async fn summary_state(
    client: &impl GenericClient,
) -> Result<SummaryState, tokio_postgres::Error> {
    let exists: bool = client
        .query_one(
            "SELECT pg_catalog.to_regclass('audit.summary_state') IS NOT NULL",
            &[],
        )
        .await?
        .try_get(0)?;
    if !exists {
        return Ok(SummaryState::Unavailable);
    }
    let row = client
        .query_opt(
            "SELECT watermark::text, summarized_at FROM audit.summary_state LIMIT 1",
            &[],
        )
        .await?;
    Ok(match row {
        None => SummaryState::Empty,
        Some(r) => match (r.try_get(0)?, r.try_get(1)?) {
            (Some(watermark), Some(summarized_at)) => SummaryState::At {
                watermark,
                summarized_at,
            },
            _ => SummaryState::Empty,
        },
    })
}

/// The summary and the events are read in one snapshot: the watermark read first must be
/// the one the summary was written with, or hours counted after it would be taken for hours
/// with summarized events and the page could skip some.
///
/// JIT is off in it: these are short index-driven queries over every partition, whose plans of
/// hundreds of nodes can cost more to compile than they run (a rare actor's second page over
/// bench-scale's 10M events, planned with its values: 2.2 s with JIT, 0.1 s without).
///
/// Each of its statements is stopped after `timeout` (`serve --query-timeout`): a view that
/// reads far more than the summary narrows it to ends with a page that says so, instead of
/// holding the person's connection and the server's time.
async fn snapshot(
    client: &mut Client,
    timeout: Duration,
) -> Result<tokio_postgres::Transaction<'_>, tokio_postgres::Error> {
    let tx = crate::db::read_snapshot(client).await?;
    let timeout = format!("{}ms", timeout.as_millis().max(1));
    tx.execute(
        "SELECT pg_catalog.set_config('statement_timeout', $1, true), \
                pg_catalog.set_config('jit', 'off', true)",
        &[&timeout],
    )
    .await?;
    Ok(tx)
}
