//! The choices of the Action filter: the actions the log holds.
//!
//! `SELECT DISTINCT action FROM audit.events` reads the whole log (it may hold 100M rows, and
//! no index leads with `action`, so a loose index scan is not available either): far too much
//! for a page view. What is offered instead is bounded:
//!
//! - every action the extension itself records (constant, free), and
//! - the application actions (`export`, `merge`, ...) among the newest [`SAMPLE`] events,
//!   which the `(occurred_at, id)` index returns without touching the rest of the log,
//!
//! kept in the process for [`FRESH_FOR`], so most page views run no query for it at all. An
//! application action seen only long ago may be missing from the list; a URL naming it still
//! filters by it, and the page then offers it as the selected choice.

use std::time::Duration;

use audit_trail_contract::{CAPTURED_ACTIONS, EXTENSION_ACTIONS};
use tokio_postgres::Client;

use super::fresh::Fresh;

/// `export`, which every export writes: offered, with every action the extension records
/// (row changes, tracking, schema changes, retention), whether or not the log holds them yet.
const EXPORT: &str = "export";

fn reserved() -> impl Iterator<Item = &'static str> {
    CAPTURED_ACTIONS
        .into_iter()
        .chain(EXTENSION_ACTIONS)
        .chain([EXPORT])
}

/// How many of the newest events are read for application actions: a few milliseconds
/// through the index, whatever the size of the log.
const SAMPLE: i64 = 10_000;

/// How long a list read from the log is shown before it is read again.
const FRESH_FOR: Duration = Duration::from_secs(60);

/// The list last read, shared by every session of the process (all of them audit admins, who
/// may see every action anyway).
#[derive(Clone)]
pub struct ActionChoices {
    cached: Fresh<Vec<String>>,
}

impl Default for ActionChoices {
    fn default() -> ActionChoices {
        ActionChoices {
            cached: Fresh::new(FRESH_FOR),
        }
    }
}

impl ActionChoices {
    /// The reserved actions, then the application actions recently recorded, alphabetically.
    pub async fn get(&self, client: &Client) -> Result<Vec<String>, tokio_postgres::Error> {
        if let Some(list) = self.cached.get() {
            return Ok(list);
        }
        let recent = recent_actions(client).await?;
        let mut list: Vec<String> = reserved().map(str::to_owned).collect();
        let application: Vec<String> = recent
            .into_iter()
            .filter(|a| !reserved().any(|r| r == a))
            .collect();
        list.extend(application);
        self.cached.put(list.clone());
        Ok(list)
    }

    /// The choices for a token viewer: the reserved actions, then the application actions
    /// among their organization's newest events. Not cached: the shared list holds every
    /// organization's actions.
    pub async fn for_tenant(
        &self,
        client: &Client,
        tenant: &str,
    ) -> Result<Vec<String>, tokio_postgres::Error> {
        let recent: Vec<String> = client
            .query(
                "SELECT DISTINCT action
                   FROM (SELECT action FROM audit.events WHERE tenant = $2
                          ORDER BY occurred_at DESC, id DESC LIMIT $1) AS recent
                  ORDER BY action",
                &[&SAMPLE, &tenant],
            )
            .await?
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()?;
        let mut list: Vec<String> = reserved().map(str::to_owned).collect();
        list.extend(recent.into_iter().filter(|a| !reserved().any(|r| r == a)));
        Ok(list)
    }
}

/// The distinct actions of the newest `SAMPLE` events, alphabetically.
async fn recent_actions(client: &Client) -> Result<Vec<String>, tokio_postgres::Error> {
    client
        .query(
            "SELECT DISTINCT action
               FROM (SELECT action FROM audit.events
                      ORDER BY occurred_at DESC, id DESC LIMIT $1) AS recent
              ORDER BY action",
            &[&SAMPLE],
        )
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect()
}
