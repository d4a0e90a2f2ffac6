//! The dashboard's SQL. Filters become a WHERE clause with bound parameters (never text in
//! the SQL); pages are found by keyset, `(occurred_at, id) < (cursor)`, which the
//! `(occurred_at, id)` index serves newest first without OFFSET.
//!
//! The list reads a page of `audit.events` first and only then the `summary` of each of those
//! rows from `audit.report`: asking the view for the page directly makes PostgreSQL build the
//! summary of every matching event before sorting. Each summary is looked up by
//! (occurred_at, id), which the events' btree index serves (there is no index on id alone).

use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio_postgres::types::ToSql;
use tokio_postgres::Client;

use super::params::{Cursor, Page};
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

/// One page of events matching `filters`, newest first.
pub async fn list(
    client: &Client,
    filters: &Filters,
    page: Page,
    size: i64,
) -> Result<EventPage, tokio_postgres::Error> {
    let mut condition = filters.condition();
    let (keyset, order) = match page {
        Page::Newest => (None, "DESC"),
        Page::Before(c) => (Some(("<", c)), "DESC"),
        Page::After(c) => (Some((">", c)), "ASC"),
    };
    if let Some((op, c)) = keyset {
        let n = condition.params.len();
        condition.sql.push_str(if condition.sql.is_empty() {
            " WHERE "
        } else {
            " AND "
        });
        condition
            .sql
            .push_str(&format!("(occurred_at, id) {op} (${}, ${})", n + 1, n + 2));
        condition.params.push(Box::new(c.at));
        condition.params.push(Box::new(c.id));
    }
    condition.params.push(Box::new(size + 1));
    let limit = condition.params.len();
    let sql = format!(
        "SELECT e.id, e.occurred_at, e.actor, e.action, e.entity, e.subject_id, e.source,
                (SELECT r.summary FROM audit.report AS r
                  WHERE r.occurred_at = e.occurred_at AND r.id = e.id)
           FROM (SELECT id, occurred_at, actor, action, entity, subject_id, source
                   FROM audit.events{where_}
                  ORDER BY occurred_at {order}, id {order}
                  LIMIT ${limit}) AS e
          ORDER BY e.occurred_at {order}, e.id {order}",
        where_ = condition.sql,
    );
    let params: Vec<&(dyn ToSql + Sync)> = condition.param_refs();
    let rows = client.query(&sql, &params).await?;
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

pub struct EventDetail {
    pub id: i64,
    pub occurred_at: DateTime<Utc>,
    pub actor: String,
    pub db_user: String,
    pub source: String,
    pub client_addr: Option<String>,
    pub application_name: Option<String>,
    pub entity: String,
    pub action: String,
    pub table_name: Option<String>,
    pub subject_id: Option<String>,
    pub changed_fields: Option<Vec<String>>,
    pub summary: String,
    pub old_data: Option<Value>,
    pub new_data: Option<Value>,
    pub context: Option<Value>,
    pub details: Option<Value>,
    pub txid: String,
}

pub async fn event(client: &Client, id: i64) -> Result<Option<EventDetail>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            "SELECT id, occurred_at, actor, db_user, source, pg_catalog.host(client_addr),
                    application_name,
                    entity, action, table_name, subject_id, changed_fields, summary, old_data,
                    new_data, context, details, txid::text
               FROM audit.report WHERE id = $1",
            &[&id],
        )
        .await?;
    let Some(r) = row else {
        return Ok(None);
    };
    Ok(Some(EventDetail {
        id: r.try_get(0)?,
        occurred_at: r.try_get(1)?,
        actor: r.try_get(2)?,
        db_user: r.try_get(3)?,
        source: r.try_get(4)?,
        client_addr: r.try_get(5)?,
        application_name: r.try_get(6)?,
        entity: r.try_get(7)?,
        action: r.try_get(8)?,
        table_name: r.try_get(9)?,
        subject_id: r.try_get(10)?,
        changed_fields: r.try_get(11)?,
        summary: r.try_get::<_, Option<String>>(12)?.unwrap_or_default(),
        old_data: r.try_get(13)?,
        new_data: r.try_get(14)?,
        context: r.try_get(15)?,
        details: r.try_get(16)?,
        txid: r.try_get(17)?,
    }))
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

/// How far the log is sealed (audit.integrity), for the status line above the log.
pub struct Integrity {
    pub sealed_through_id: Option<i64>,
    pub sealed_through_time: Option<chrono::DateTime<chrono::Utc>>,
    pub unsealed: i64,
}

/// Unsealed events counted at most: past that the line says "more than", so a log that was
/// never sealed costs a page view no more than a sealed one.
pub const UNSEALED_COUNTED: i64 = 10_000;

pub async fn integrity(client: &Client) -> Result<Integrity, tokio_postgres::Error> {
    let row = client
        .query_one(
            "WITH last AS (SELECT last_txid, last_id FROM audit.seals ORDER BY seq DESC LIMIT 1)
             SELECT (SELECT l.last_id FROM last AS l),
                    (SELECT e.occurred_at FROM audit.events AS e, last AS l
                      WHERE e.txid = l.last_txid AND e.id = l.last_id),
                    (SELECT pg_catalog.count(*) FROM (
                        SELECT FROM audit.events AS e
                         WHERE (e.txid, e.id) > coalesce((SELECT (l.last_txid, l.last_id) FROM last AS l),
                                                         ('0'::xid8, 0::bigint))
                         LIMIT $1::bigint + 1) AS waiting)",
            &[&UNSEALED_COUNTED],
        )
        .await?;
    Ok(Integrity {
        sealed_through_id: row.try_get(0)?,
        sealed_through_time: row.try_get(1)?,
        unsealed: row.try_get(2)?,
    })
}

/// One day of the overview: events by category.
pub struct DayCounts {
    pub day: chrono::NaiveDate,
    pub contacts: i64,
    pub groups: i64,
    pub users: i64,
    pub exports: i64,
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

/// Events per day by category since `since`, days in `zone`.
pub async fn days(
    client: &Client,
    since: chrono::DateTime<chrono::Utc>,
    zone: &str,
) -> Result<Vec<DayCounts>, tokio_postgres::Error> {
    client
        .query(
            "SELECT (occurred_at AT TIME ZONE $2)::date,
                    pg_catalog.count(*) FILTER (WHERE entity = 'contact' AND action <> 'export'),
                    pg_catalog.count(*) FILTER (WHERE entity = 'group'),
                    pg_catalog.count(*) FILTER (WHERE entity = 'user'),
                    pg_catalog.count(*) FILTER (WHERE action = 'export')
               FROM audit.events
              WHERE occurred_at >= $1
              GROUP BY 1 ORDER BY 1",
            &[&since, &zone],
        )
        .await?
        .iter()
        .map(|r| {
            Ok(DayCounts {
                day: r.try_get(0)?,
                contacts: r.try_get(1)?,
                groups: r.try_get(2)?,
                users: r.try_get(3)?,
                exports: r.try_get(4)?,
            })
        })
        .collect()
}

/// The busiest actors since `since`.
pub async fn top_actors(
    client: &Client,
    since: chrono::DateTime<chrono::Utc>,
    limit: i64,
) -> Result<Vec<(String, i64)>, tokio_postgres::Error> {
    client
        .query(
            "SELECT actor, pg_catalog.count(*) FROM audit.events WHERE occurred_at >= $1
              GROUP BY actor ORDER BY 2 DESC, 1 LIMIT $2",
            &[&since, &limit],
        )
        .await?
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect()
}

/// The newest alerts (audit_log/alert events), whatever the range.
pub async fn latest_alerts(
    client: &Client,
    limit: i64,
) -> Result<Vec<AlertRow>, tokio_postgres::Error> {
    client
        .query(
            "SELECT id, occurred_at, details ->> 'rule', details ->> 'severity',
                    details ->> 'actor', details ->> 'description'
               FROM audit.events
              WHERE entity = 'audit_log' AND action = 'alert'
              ORDER BY occurred_at DESC, id DESC LIMIT $1",
            &[&limit],
        )
        .await?
        .iter()
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
