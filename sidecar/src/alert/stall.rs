//! The `sealing-stalled` alert: the sealer has not sealed events older than
//! `audit.seal_stall_after` (15 minutes by default). Not a rule over events: a stopped sealer
//! writes none, so the engine looks at the log itself, in each batch's transaction, at most
//! once a minute. One alert per stall; a look that finds sealing caught up re-arms it.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio_postgres::Transaction;

use super::engine::Alert;
use super::rules::{Per, Severity};
use crate::error::{Error, Result};

pub const RULE: &str = "sealing-stalled";

/// How often the log is looked at.
const EVERY: Duration = Duration::from_secs(60);

/// The oldest event no seal covers (first in seal order), when it is older than the stall
/// setting, and how many events wait (counted up to 10,001, as the dashboard does).
const STALLED: &str = "
WITH last AS (SELECT last_txid, last_id FROM audit.seals ORDER BY seq DESC LIMIT 1),
oldest AS (
    SELECT e.id, e.occurred_at
      FROM audit.events AS e
     WHERE (e.txid, e.id) > coalesce((SELECT (l.last_txid, l.last_id) FROM last AS l),
                                     ('0'::xid8, 0::bigint))
     ORDER BY e.txid, e.id
     LIMIT 1)
SELECT o.id, o.occurred_at,
       (SELECT l.last_id FROM last AS l),
       (SELECT pg_catalog.count(*) FROM (
            SELECT FROM audit.events AS e
             WHERE (e.txid, e.id) > coalesce((SELECT (l.last_txid, l.last_id) FROM last AS l),
                                             ('0'::xid8, 0::bigint))
             LIMIT 10001) AS waiting)
  FROM oldest AS o
 WHERE pg_catalog.now() - o.occurred_at
       > coalesce(NULLIF(pg_catalog.current_setting('audit.seal_stall_after', true), '')::interval,
                  '15 minutes')";

#[derive(Default)]
pub struct StallWatch {
    last_look: Option<Instant>,
    /// The stall alerted (committed), by the oldest unsealed event's id; None when sealing
    /// was last seen caught up.
    alerted: Option<i64>,
    /// What this batch's look found, applied once its transaction commits.
    pending: Option<Option<i64>>,
}

impl StallWatch {
    /// Looks at the log if a minute has passed: the alert to record, if sealing stalled
    /// since the last one.
    pub async fn look(&mut self, tx: &Transaction<'_>, consumer: &str) -> Result<Option<Alert>> {
        self.pending = None;
        if self.last_look.is_some_and(|t| t.elapsed() < EVERY) {
            return Ok(None);
        }
        self.last_look = Some(Instant::now());
        let reading = |e: tokio_postgres::Error| Error::database("looking at sealing", &e);
        let Some(row) = tx.query_opt(STALLED, &[]).await.map_err(reading)? else {
            self.pending = Some(None);
            return Ok(None);
        };
        let oldest_id: i64 = row.try_get(0).map_err(reading)?;
        let oldest_at: DateTime<Utc> = row.try_get(1).map_err(reading)?;
        let sealed_through: Option<i64> = row.try_get(2).map_err(reading)?;
        let waiting: i64 = row.try_get(3).map_err(reading)?;
        self.pending = Some(Some(oldest_id));
        if self.alerted.is_some() {
            // Still the same stall (or a longer one): alerted once.
            return Ok(None);
        }
        let waiting_text = if waiting > 10_000 {
            "more than 10000".to_owned()
        } else {
            waiting.to_string()
        };
        Ok(Some(Alert {
            rule: RULE.into(),
            severity: Severity::Critical,
            description: Some(format!(
                "sealing has stalled: {waiting_text} events wait to be sealed, the oldest \
                 from {oldest_at} (sealed through event {}); until they are sealed, changes \
                 to them go undetected: check that audit-trail seal runs",
                sealed_through.map_or_else(|| "none".to_owned(), |id| id.to_string())
            )),
            // Whose work is late: the report's summary names it ("..., by audit-trail seal").
            actor: "audit-trail seal".into(),
            per: Per::Actor,
            db_user: None,
            actors: Vec::new(),
            tenant: None,
            window_start: oldest_at,
            window_end: Utc::now(),
            count: u64::try_from(waiting).unwrap_or(0),
            sum: None,
            event_ids: vec![oldest_id],
            consumer: consumer.to_owned(),
        }))
    }

    /// The batch committed: what its look found stands.
    pub fn committed(&mut self) {
        match self.pending.take() {
            // No look in this batch.
            None => {}
            // Caught up: the next stall is alerted again.
            Some(None) => self.alerted = None,
            // Stalled: alerted now (recorded in this batch) or before.
            Some(Some(oldest)) => {
                self.alerted.get_or_insert(oldest);
            }
        }
    }
}
