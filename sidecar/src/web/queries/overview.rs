//! The Overview's counts: events per day by category, the busiest actors, the newest alerts.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_postgres::types::ToSql;
use tokio_postgres::Client;

use super::{snapshot, summary_state, SummaryState};
use audit_trail_contract::categories::CATEGORIES;

/// One day of the overview: events by category, in the order of
/// `audit_trail_contract::categories::CATEGORIES`.
pub struct DayCounts {
    pub day: chrono::NaiveDate,
    pub counts: [i64; CATEGORIES.len()],
}

/// A recorded alert, newest first.
pub struct AlertRow {
    pub id: i64,
    pub occurred_at: chrono::DateTime<chrono::Utc>,
    pub rule: Option<String>,
    pub severity: Option<String>,
    pub actor: Option<String>,
    pub description: Option<String>,
}

/// The Overview's counts: events per day by category, and the busiest actors.
pub struct OverviewCounts {
    pub days: Vec<DayCounts>,
    pub actors: Vec<(String, i64)>,
}

/// The categories of the chart, as aggregates over rows with `entity`, `action` and a count
/// `n`, one column each.
fn category_counts() -> String {
    CATEGORIES
        .iter()
        .map(|c| {
            format!(
                "coalesce(pg_catalog.sum(n) FILTER (WHERE {}), 0)::bigint",
                c.sql()
            )
        })
        .collect::<Vec<_>>()
        .join(",\n     ")
}

/// Events per day by category and the busiest `limit` actors since `since` (a midnight in
/// `zone`). The summary's hours are UTC hours: they add up to days only when every midnight
/// of the range falls on a UTC hour (`days_on_hours`); otherwise, and without a summary,
/// the events are counted directly. Summary and tail are read in one snapshot.
///
/// With `tenant` (a token viewer's organization) the events are always counted directly,
/// that organization's only: the summary tables do not count by organization.
pub async fn overview_counts(
    client: &mut Client,
    since: DateTime<Utc>,
    zone: &str,
    days_on_hours: bool,
    limit: i64,
    timeout: Duration,
    tenant: Option<&str>,
) -> Result<OverviewCounts, tokio_postgres::Error> {
    let tx = snapshot(client, timeout).await?;
    let state = if days_on_hours && tenant.is_none() {
        summary_state(&tx).await?
    } else {
        SummaryState::Unavailable
    };
    let (days_sql, actors_sql, third) = match (state.watermark(), tenant) {
        (_, Some(t)) => (TENANT_DAYS, TENANT_ACTORS, Some(t.to_owned())),
        (Some(w), None) => (SUMMARIZED_DAYS, SUMMARIZED_ACTORS, Some(w.to_owned())),
        (None, None) => (PLAIN_DAYS, PLAIN_ACTORS, None),
    };
    let days_sql = days_sql.replace("{CATEGORIES}", &category_counts());
    let mut days_params: Vec<&(dyn ToSql + Sync)> = vec![&since, &zone];
    let mut actors_params: Vec<&(dyn ToSql + Sync)> = vec![&since, &limit];
    if let Some(w) = &third {
        days_params.push(w);
        actors_params.push(w);
    }
    let days = tx
        .query(&days_sql, &days_params)
        .await?
        .iter()
        .map(|r| {
            let mut counts = [0; CATEGORIES.len()];
            for (i, count) in counts.iter_mut().enumerate() {
                *count = r.try_get(i + 1)?;
            }
            Ok(DayCounts {
                day: r.try_get(0)?,
                counts,
            })
        })
        .collect::<Result<Vec<_>, tokio_postgres::Error>>()?;
    let actors = tx
        .query(actors_sql, &actors_params)
        .await?
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect::<Result<Vec<_>, tokio_postgres::Error>>()?;
    tx.commit().await?;
    Ok(OverviewCounts { days, actors })
}

/// `$1` since, `$2` zone.
const PLAIN_DAYS: &str = "SELECT day, {CATEGORIES}
   FROM (SELECT (occurred_at AT TIME ZONE $2)::date AS day, entity, action, 1 AS n
           FROM audit.events WHERE occurred_at >= $1) AS e
  GROUP BY day ORDER BY day";

/// `$1` since, `$2` zone, `$3` organization: its events, counted one by one.
const TENANT_DAYS: &str = "SELECT day, {CATEGORIES}
   FROM (SELECT (occurred_at AT TIME ZONE $2)::date AS day, entity, action, 1 AS n
           FROM audit.events WHERE occurred_at >= $1 AND tenant = $3) AS e
  GROUP BY day ORDER BY day";

/// `$1` since, `$2` how many, `$3` organization.
const TENANT_ACTORS: &str = "SELECT actor, pg_catalog.count(*) FROM audit.events
  WHERE occurred_at >= $1 AND tenant = $3 GROUP BY actor ORDER BY 2 DESC, 1 LIMIT $2";

/// `$1` since (on a UTC hour), `$2` zone, `$3` watermark: the summary's hours from `$1`,
/// and the events not summarized yet.
const SUMMARIZED_DAYS: &str = "SELECT day, {CATEGORIES}
   FROM (SELECT (hour AT TIME ZONE $2)::date AS day, entity, action, events AS n
           FROM audit.kind_hours WHERE hour >= $1
         UNION ALL
         SELECT (occurred_at AT TIME ZONE $2)::date, entity, action, 1
           FROM audit.events WHERE occurred_at >= $1 AND txid >= $3::text::xid8) AS e
  GROUP BY day ORDER BY day";

/// `$1` since, `$2` how many.
const PLAIN_ACTORS: &str = "SELECT actor, pg_catalog.count(*) FROM audit.events
  WHERE occurred_at >= $1 GROUP BY actor ORDER BY 2 DESC, 1 LIMIT $2";

/// `$1` since (on a UTC hour), `$2` how many, `$3` watermark: whole UTC days from
/// `audit.actor_days`, the hours before the first of them from the hourly summary, and the
/// events not summarized yet.
const SUMMARIZED_ACTORS: &str = "SELECT actor, pg_catalog.sum(n)::bigint
   FROM (SELECT actor, pg_catalog.sum(events) AS n FROM audit.actor_days
          WHERE day >= pg_catalog.date_trunc('day', $1::timestamptz + interval '24 hours' - interval '1 microsecond', 'UTC')
          GROUP BY actor
         UNION ALL
         SELECT actor, pg_catalog.sum(events) FROM audit.event_summary
          WHERE hour >= $1
            AND hour < pg_catalog.date_trunc('day', $1::timestamptz + interval '24 hours' - interval '1 microsecond', 'UTC')
          GROUP BY actor
         UNION ALL
         SELECT actor, pg_catalog.count(*) FROM audit.events
          WHERE occurred_at >= $1 AND txid >= $3::text::xid8 GROUP BY actor) AS a
  GROUP BY actor ORDER BY 2 DESC, 1 LIMIT $2";

/// The newest alerts (audit_log/alert events), whatever the range. Alerts are found by the
/// (entity, subject_id) index and then sorted: given a LIMIT, the planner would rather walk
/// the time index from the newest event and filter, which reads the whole log when there are
/// few alerts or none.
///
/// With `tenant` (a token viewer's organization), that organization's alerts only.
pub async fn latest_alerts(
    client: &Client,
    limit: i64,
    tenant: Option<&str>,
) -> Result<Vec<AlertRow>, tokio_postgres::Error> {
    const ALERTS: &str = "WITH alerts AS MATERIALIZED (
                 SELECT id, occurred_at, details FROM audit.events
                  WHERE entity = 'audit_log' AND action = 'alert'{TENANT})
             SELECT id, occurred_at, details ->> 'rule', details ->> 'severity',
                    details ->> 'actor', details ->> 'description'
               FROM alerts
              ORDER BY occurred_at DESC, id DESC LIMIT $1";
    let rows = match tenant {
        None => {
            client
                .query(&ALERTS.replace("{TENANT}", ""), &[&limit])
                .await?
        }
        Some(t) => {
            client
                .query(
                    &ALERTS.replace("{TENANT}", " AND tenant = $2"),
                    &[&limit, &t],
                )
                .await?
        }
    };
    rows.iter()
        .map(|r| {
            Ok(AlertRow {
                id: r.try_get(0)?,
                occurred_at: r.try_get(1)?,
                rule: r.try_get(2)?,
                severity: r.try_get(3)?,
                actor: r.try_get(4)?,
                description: r.try_get(5)?,
            })
        })
        .collect()
}
