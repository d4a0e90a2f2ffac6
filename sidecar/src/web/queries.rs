//! The dashboard's SQL. Filters become a WHERE clause with bound parameters (never text in
//! the SQL); pages are found by keyset, `(occurred_at, id) < (cursor)`, which the
//! `(occurred_at, id)` index serves newest first without OFFSET.
//!
//! The list reads a page of `audit.events` first and only then the `summary` of each of those
//! rows from `audit.report`: asking the view for the page directly makes PostgreSQL build the
//! summary of every matching event before sorting. Each summary is looked up by
//! (occurred_at, id), which the events' btree index serves (there is no index on id alone).

use std::time::Duration;

use chrono::DurationRound;
use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, GenericClient, IsolationLevel};

use super::params::{Cursor, Page};
use crate::filters::{Clauses, Filters, Param};
use audit_trail_contract::categories::CATEGORIES;

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
    let tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?;
    let timeout = format!("{}ms", timeout.as_millis().max(1));
    tx.execute(
        "SELECT pg_catalog.set_config('statement_timeout', $1, true), \
                pg_catalog.set_config('jit', 'off', true)",
        &[&timeout],
    )
    .await?;
    Ok(tx)
}

/// Floors a time to its UTC hour, as `audit.event_summary.hour` is.
pub fn hour_of(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(chrono::Duration::hours(1)).unwrap_or(t)
}

/// The SQL of one page of the list and its parameters.
pub struct PageSql {
    pub sql: String,
    pub params: Vec<Param>,
}

/// Today's page query: the newest (or, going back, oldest) `limit` matching events by the
/// (occurred_at, id) index. With a dimension filter that matches rarely or never, this walks
/// the index a long way: [`summarized_page_sql`] is used then.
pub fn plain_page_sql(filters: &Filters, page: Page, limit: i64) -> PageSql {
    let mut params = Vec::new();
    let mut clauses: Vec<String> = filters.clauses(&mut params).all().collect();
    let order = order_of(page);
    if let Some(k) = keyset(page, &mut params) {
        clauses.push(k);
    }
    params.push(Box::new(limit));
    PageSql {
        sql: format!(
            "SELECT {COLUMNS} FROM audit.events{where_} \
             ORDER BY occurred_at {order}, id {order} LIMIT ${limit}",
            where_ = where_(&clauses),
            limit = params.len(),
        ),
        params,
    }
}

/// A page found through the hourly summary: the hours whose summary rows match the
/// dimension filters, newest first (oldest first going back to newer pages), then in each
/// such hour the matching summarized events by the (occurred_at, id) index, and the events
/// not summarized yet (`txid >= watermark`) by the (txid, id) index. See [`counted_hours`]
/// for how the hours are found.
///
/// `limit + 3` hours are enough: every candidate hour holds a matching summarized event
/// except the cursor's hour (its matches may all lie on the other side of the cursor) and
/// the two hours cut by the time range, so the hours give at least `limit` events.
/// Fewer are read when the summary's counts show it: once the hours before one hold `limit`
/// matching events for certain (not counting those three hours, whose counts may include
/// events outside the page's bounds), that hour and older ones cannot reach the page; so a
/// filter that matches often reads an hour or two, not `limit + 3`.
pub fn summarized_page_sql(filters: &Filters, page: Page, limit: i64, watermark: &str) -> PageSql {
    let mut params = Vec::new();
    let clauses = filters.clauses(&mut params);
    let order = order_of(page);
    // The hours the page's bounds allow.
    let mut bounds = Vec::new();
    let mut uncertain = Vec::new();
    if let Some(since) = filters.since {
        params.push(Box::new(hour_of(since)));
        bounds.push(format!("hour >= ${}", params.len()));
        uncertain.push(hour_of(since));
    }
    if let Some(until) = filters.until {
        params.push(Box::new(until));
        bounds.push(format!("hour < ${}", params.len()));
        uncertain.push(hour_of(until));
    }
    let events: Vec<String> = clauses.all().collect();
    let mut tail = events.clone();
    let mut summarized = events;
    if let (Some(k), Page::Before(c) | Page::After(c)) = (keyset(page, &mut params), page) {
        // The cursor's time is the parameter before its id.
        let at = params.len() - 1;
        tail.push(k.clone());
        params.push(Box::new(hour_of(c.at)));
        let op = if order == "DESC" { "<=" } else { ">=" };
        bounds.push(format!("hour {op} ${}", params.len()));
        uncertain.push(hour_of(c.at));
        // In an hour's index scan the keyset bounds only the cursor's own hour. As an index
        // condition a row comparison would start every hour's scan at the cursor and walk
        // all the hours in between; so the time alone bounds the scan, and the row comparison
        // is a filter that only the cursor's hour needs.
        summarized.push(format!("occurred_at {op} ${at}"));
        summarized.push(format!("(h.hour <> ${} OR {k})", params.len()));
    }
    params.push(Box::new(uncertain));
    let uncertain = params.len();
    params.push(Box::new(watermark.to_owned()));
    let watermark = format!("${}::text::xid8", params.len());
    params.push(Box::new(limit + 3));
    let hours = HoursQuery {
        clauses: &clauses,
        distinct_actors: (0..filters.actors.len())
            .filter(|&i| !filters.actors[..i].contains(&filters.actors[i]))
            .map(|i| i + 1)
            .collect(),
        bounds: &bounds,
        order,
        limit: params.len(),
    };
    let counted = counted_hours(&hours, &mut params);
    params.push(Box::new(limit));
    let limit = params.len();
    summarized.push("occurred_at >= h.hour".into());
    summarized.push("occurred_at < h.hour + interval '1 hour'".into());
    summarized.push(format!("txid < {watermark}"));
    tail.push(format!("txid >= {watermark}"));
    PageSql {
        sql: format!(
            "SELECT {COLUMNS} FROM (\
             SELECT p.* FROM (SELECT hour FROM (\
             SELECT hour, pg_catalog.sum(CASE WHEN hour = ANY (${uncertain}) THEN 0 ELSE n END) \
             OVER (ORDER BY hour {order} ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS before \
             FROM {counted} AS c) AS c \
             WHERE before IS NULL OR before < ${limit}::bigint) AS h \
             CROSS JOIN LATERAL (SELECT {COLUMNS} FROM audit.events{summarized} \
             ORDER BY occurred_at {order}, id {order} LIMIT ${limit}) AS p \
             UNION ALL \
             (SELECT {COLUMNS} FROM (SELECT {COLUMNS} FROM audit.events{tail} ORDER BY txid, id) AS t \
             ORDER BY occurred_at {order}, id {order} LIMIT ${limit})) AS u \
             ORDER BY occurred_at {order}, id {order} LIMIT ${limit}",
            summarized = where_(&summarized),
            tail = where_(&tail),
        ),
        params,
    }
}

const COLUMNS: &str = "id, occurred_at, actor, action, entity, subject_id, source";

/// At most this many `audit.kind_hours` rows are read to learn whether the hours of a filter
/// on actors and other dimensions are few enough to probe one by one (each probe is one
/// index lookup of some tens of microseconds).
const PROBE_LIMIT: i64 = 1000;

/// What [`counted_hours`] needs: the filters' clauses, the hour bounds of the page, the
/// order, and the parameter that holds how many hours to return.
struct HoursQuery<'a> {
    clauses: &'a Clauses,
    /// The 1-based positions in `clauses.actors_array` of its distinct actors (a name given
    /// twice would otherwise be counted twice).
    distinct_actors: Vec<usize>,
    bounds: &'a [String],
    order: &'static str,
    limit: usize,
}

/// The candidate hours of a page and their matching events, `(hour, n)`, the first
/// `limit` in the page's order.
///
/// Without actors they come from `audit.kind_hours`, whose rows per hour do not grow with
/// the events. With actors they come from `audit.event_summary` by its (actor, hour) index;
/// with other dimensions too, that walk can read every hour of a busy actor that never
/// matches them. So when `audit.kind_hours` has fewer than [`PROBE_LIMIT`] rows for the
/// other dimensions (a rare or impossible combination), their hours are probed one by one
/// instead, in the page's order, until `limit` match. The count decides when the query runs
/// (a one-time filter): the way not taken is never executed.
fn counted_hours(q: &HoursQuery, params: &mut Vec<Param>) -> String {
    let HoursQuery {
        clauses,
        ref distinct_actors,
        bounds,
        order,
        limit,
    } = *q;
    let kind: Vec<String> = clauses.dimensions.iter().chain(bounds).cloned().collect();
    let Some(actors) = &clauses.actors else {
        return format!(
            "(SELECT hour, pg_catalog.sum(events) AS n FROM audit.kind_hours{kind} \
             GROUP BY hour ORDER BY hour {order} LIMIT ${limit})",
            kind = where_(&kind),
        );
    };
    let and_kind: String = kind.iter().map(|c| format!(" AND {c}")).collect();
    let by_actor = match &clauses.actors_array {
        // Several actors: each one's newest hours by its own index scan, then merged (the
        // newest hours of all are among each one's newest, with every count that makes them
        // up), rather than every hour of all of them sorted. Each scan names its actor as an
        // element of the array, which the plan knows the value of (not so a row of unnest,
        // which made every scan a bitmap over all of the actor's rows).
        Some(array) => format!(
            "(SELECT hour, pg_catalog.sum(n) AS n FROM ({per_actor}) AS per \
             GROUP BY hour ORDER BY hour {order} LIMIT ${limit})",
            per_actor = distinct_actors
                .iter()
                .map(|i| {
                    format!(
                        "(SELECT hour, pg_catalog.sum(events) AS n FROM audit.event_summary \
                         WHERE actor = ({array}::text[])[{i}]{and_kind} \
                         GROUP BY hour ORDER BY hour {order} LIMIT ${limit})"
                    )
                })
                .collect::<Vec<_>>()
                .join(" UNION ALL "),
        ),
        None => format!(
            "(SELECT hour, pg_catalog.sum(events) AS n FROM audit.event_summary \
             WHERE {actors}{and_kind} GROUP BY hour ORDER BY hour {order} LIMIT ${limit})",
        ),
    };
    if clauses.dimensions.is_empty() {
        return by_actor;
    }
    params.push(Box::new(PROBE_LIMIT));
    let probed = params.len();
    format!(
        "(WITH kind AS MATERIALIZED (SELECT hour FROM audit.kind_hours{kind} LIMIT ${probed}) \
         (SELECT k.hour, per.n FROM (SELECT DISTINCT hour FROM kind ORDER BY hour {order}) AS k \
         CROSS JOIN LATERAL (SELECT pg_catalog.sum(events) AS n FROM audit.event_summary \
         WHERE {actors}{and_dimensions} AND hour = k.hour) AS per \
         WHERE per.n IS NOT NULL AND (SELECT pg_catalog.count(*) FROM kind) < ${probed} \
         ORDER BY k.hour {order} LIMIT ${limit}) \
         UNION ALL \
         (SELECT hour, n FROM {by_actor} AS a \
         WHERE (SELECT pg_catalog.count(*) FROM kind) >= ${probed}))",
        kind = where_(&kind),
        and_dimensions = clauses
            .dimensions
            .iter()
            .map(|c| format!(" AND {c}"))
            .collect::<String>(),
    )
}

fn order_of(page: Page) -> &'static str {
    match page {
        Page::After(_) => "ASC",
        Page::Newest | Page::Before(_) => "DESC",
    }
}

fn keyset(page: Page, params: &mut Vec<Param>) -> Option<String> {
    let (op, c) = match page {
        Page::Newest => return None,
        Page::Before(c) => ("<", c),
        Page::After(c) => (">", c),
    };
    params.push(Box::new(c.at));
    params.push(Box::new(c.id));
    Some(format!(
        "(occurred_at, id) {op} (${}, ${})",
        params.len() - 1,
        params.len()
    ))
}

fn where_(clauses: &[String]) -> String {
    if clauses.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", clauses.join(" AND "))
    }
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
    let state = if filters.has_dimensions() && filters.subject.is_none() {
        summary_state(&tx).await?
    } else {
        SummaryState::Unavailable
    };
    let found = match state.watermark() {
        Some(w) => summarized_page_sql(filters, page, size + 1, w),
        None => plain_page_sql(filters, page, size + 1),
    };
    let order = order_of(page);
    let sql = format!(
        "SELECT e.id, e.occurred_at, e.actor, e.action, e.entity, e.subject_id, e.source,
                (SELECT r.summary FROM audit.report AS r
                  WHERE r.occurred_at = e.occurred_at AND r.id = e.id)
           FROM ({found}) AS e
          ORDER BY e.occurred_at {order}, e.id {order}",
        found = found.sql,
    );
    let params: Vec<&(dyn ToSql + Sync)> = found
        .params
        .iter()
        .map(|p| p.as_ref() as &(dyn ToSql + Sync))
        .collect();
    let rows = tx.query(&sql, &params).await?;
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
    /// When sealing has stalled (`audit.seal_stall_after`): the time of the oldest event
    /// waiting to be sealed.
    pub stalled_since: Option<chrono::DateTime<chrono::Utc>>,
    /// What in the audit schema no release made (row security, rules, triggers, ...): the
    /// contract's query, run here rather than through the extension's function.
    pub schema_findings: Vec<String>,
}

/// Unsealed events counted at most: past that the line says "more than", so a log that was
/// never sealed costs a page view no more than a sealed one.
pub const UNSEALED_COUNTED: i64 = 10_000;

pub async fn integrity(client: &Client) -> Result<Integrity, tokio_postgres::Error> {
    let row = client
        .query_one(
            "WITH last AS (SELECT last_txid, last_id FROM audit.seals ORDER BY seq DESC LIMIT 1),
             oldest AS (
                SELECT e.occurred_at FROM audit.events AS e
                 WHERE (e.txid, e.id) > coalesce((SELECT (l.last_txid, l.last_id) FROM last AS l),
                                                 ('0'::xid8, 0::bigint))
                 ORDER BY e.txid, e.id LIMIT 1)
             SELECT (SELECT l.last_id FROM last AS l),
                    (SELECT e.occurred_at FROM audit.events AS e, last AS l
                      WHERE e.txid = l.last_txid AND e.id = l.last_id),
                    (SELECT pg_catalog.count(*) FROM (
                        SELECT FROM audit.events AS e
                         WHERE (e.txid, e.id) > coalesce((SELECT (l.last_txid, l.last_id) FROM last AS l),
                                                         ('0'::xid8, 0::bigint))
                         LIMIT $1::bigint + 1) AS waiting),
                    (SELECT o.occurred_at FROM oldest AS o
                      WHERE pg_catalog.now() - o.occurred_at
                            > coalesce(NULLIF(pg_catalog.current_setting('audit.seal_stall_after', true), '')::interval,
                                       '15 minutes'))",
            &[&UNSEALED_COUNTED],
        )
        .await?;
    let schema_findings = client
        .query(audit_trail_contract::schema::FINDINGS, &[])
        .await?
        .iter()
        .map(|r| {
            Ok(format!(
                "{}: {}",
                r.try_get::<_, &str>(1)?,
                r.try_get::<_, &str>(2)?
            ))
        })
        .collect::<Result<Vec<_>, tokio_postgres::Error>>()?;
    Ok(Integrity {
        sealed_through_id: row.try_get(0)?,
        sealed_through_time: row.try_get(1)?,
        unsealed: row.try_get(2)?,
        stalled_since: row.try_get(3)?,
        schema_findings,
    })
}

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
pub async fn overview_counts(
    client: &mut Client,
    since: DateTime<Utc>,
    zone: &str,
    days_on_hours: bool,
    limit: i64,
    timeout: Duration,
) -> Result<OverviewCounts, tokio_postgres::Error> {
    let tx = snapshot(client, timeout).await?;
    let state = if days_on_hours {
        summary_state(&tx).await?
    } else {
        SummaryState::Unavailable
    };
    let (days_sql, actors_sql, watermark) = match state.watermark() {
        Some(w) => (SUMMARIZED_DAYS, SUMMARIZED_ACTORS, Some(w.to_owned())),
        None => (PLAIN_DAYS, PLAIN_ACTORS, None),
    };
    let days_sql = days_sql.replace("{CATEGORIES}", &category_counts());
    let mut days_params: Vec<&(dyn ToSql + Sync)> = vec![&since, &zone];
    let mut actors_params: Vec<&(dyn ToSql + Sync)> = vec![&since, &limit];
    if let Some(w) = &watermark {
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
pub async fn latest_alerts(
    client: &Client,
    limit: i64,
) -> Result<Vec<AlertRow>, tokio_postgres::Error> {
    client
        .query(
            "WITH alerts AS MATERIALIZED (
                 SELECT id, occurred_at, details FROM audit.events
                  WHERE entity = 'audit_log' AND action = 'alert')
             SELECT id, occurred_at, details ->> 'rule', details ->> 'severity',
                    details ->> 'actor', details ->> 'description'
               FROM alerts
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

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 30, h, m, 7).unwrap()
    }

    fn filters() -> Filters {
        Filters {
            since: Some(t(9, 30)),
            until: Some(t(17, 45)),
            actors: vec!["ann".into(), "bob".into()],
            source: Some("api; DROP TABLE x".into()),
            ..Filters::default()
        }
    }

    /// Whitespace-insensitive, so the tests read as SQL.
    fn squeeze(sql: &str) -> String {
        sql.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    #[test]
    fn the_plain_page_is_the_time_index_walk_it_always_was() {
        let q = plain_page_sql(&filters(), Page::Newest, 51);
        assert_eq!(
            squeeze(&q.sql),
            "SELECT id, occurred_at, actor, action, entity, subject_id, source FROM audit.events \
             WHERE occurred_at >= $1 AND occurred_at < $2 AND actor = ANY ($3) AND source = $4 \
             ORDER BY occurred_at DESC, id DESC LIMIT $5"
        );
        assert_eq!(q.params.len(), 5);
    }

    #[test]
    fn a_summarized_page_reads_candidate_hours_then_each_hour_and_the_tail() {
        let cursor = Cursor {
            at: t(15, 20),
            id: 99,
        };
        let q = summarized_page_sql(&filters(), Page::Before(cursor), 51, "12345");
        assert_eq!(
            squeeze(&q.sql),
            "SELECT id, occurred_at, actor, action, entity, subject_id, source FROM (\
             SELECT p.* FROM (SELECT hour FROM (SELECT hour, \
             pg_catalog.sum(CASE WHEN hour = ANY ($10) THEN 0 ELSE n END) OVER (ORDER BY hour DESC \
             ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS before \
             FROM (WITH kind AS MATERIALIZED (SELECT hour FROM audit.kind_hours \
             WHERE source = $4 AND hour >= $5 AND hour < $6 AND hour <= $9 LIMIT $13) \
             (SELECT k.hour, per.n FROM (SELECT DISTINCT hour FROM kind ORDER BY hour DESC) AS k \
             CROSS JOIN LATERAL (SELECT pg_catalog.sum(events) AS n FROM audit.event_summary \
             WHERE actor = ANY ($3) AND source = $4 AND hour = k.hour) AS per \
             WHERE per.n IS NOT NULL AND (SELECT pg_catalog.count(*) FROM kind) < $13 \
             ORDER BY k.hour DESC LIMIT $12) \
             UNION ALL \
             (SELECT hour, n FROM (SELECT hour, pg_catalog.sum(n) AS n FROM (\
             (SELECT hour, pg_catalog.sum(events) AS n FROM audit.event_summary \
             WHERE actor = ($3::text[])[1] AND source = $4 AND hour >= $5 AND hour < $6 AND hour <= $9 \
             GROUP BY hour ORDER BY hour DESC LIMIT $12) \
             UNION ALL \
             (SELECT hour, pg_catalog.sum(events) AS n FROM audit.event_summary \
             WHERE actor = ($3::text[])[2] AND source = $4 AND hour >= $5 AND hour < $6 AND hour <= $9 \
             GROUP BY hour ORDER BY hour DESC LIMIT $12)) AS per \
             GROUP BY hour ORDER BY hour DESC LIMIT $12) AS a \
             WHERE (SELECT pg_catalog.count(*) FROM kind) >= $13)) AS c) AS c \
             WHERE before IS NULL OR before < $14::bigint) AS h \
             CROSS JOIN LATERAL (SELECT id, occurred_at, actor, action, entity, subject_id, source \
             FROM audit.events WHERE occurred_at >= $1 AND occurred_at < $2 AND actor = ANY ($3) \
             AND source = $4 AND occurred_at <= $7 AND (h.hour <> $9 OR (occurred_at, id) < ($7, $8)) \
             AND occurred_at >= h.hour \
             AND occurred_at < h.hour + interval '1 hour' AND txid < $11::text::xid8 \
             ORDER BY occurred_at DESC, id DESC LIMIT $14) AS p \
             UNION ALL \
             (SELECT id, occurred_at, actor, action, entity, subject_id, source FROM (\
             SELECT id, occurred_at, actor, action, entity, subject_id, source FROM audit.events \
             WHERE occurred_at >= $1 AND occurred_at < $2 AND actor = ANY ($3) AND source = $4 \
             AND (occurred_at, id) < ($7, $8) AND txid >= $11::text::xid8 ORDER BY txid, id) AS t \
             ORDER BY occurred_at DESC, id DESC LIMIT $14)) AS u \
             ORDER BY occurred_at DESC, id DESC LIMIT $14"
        );
        assert_eq!(q.params.len(), 14);
        // Values travel as parameters only.
        assert!(!q.sql.contains("DROP") && !q.sql.contains("12345") && !q.sql.contains("ann"));
        // The hours: since's hour, until, the cursor's hour, and limit + 3 of them; the hours
        // whose counts are not certain: since's, until's and the cursor's.
        let shown: Vec<String> = q.params.iter().map(|p| format!("{p:?}")).collect();
        let hour = |h| Utc.with_ymd_and_hms(2026, 11, 30, h, 0, 0).unwrap();
        assert_eq!(shown[4], format!("{:?}", hour(9)));
        assert_eq!(shown[8], format!("{:?}", hour(15)));
        assert_eq!(shown[9], format!("{:?}", vec![hour(9), hour(17), hour(15)]));
        assert_eq!(shown[10], "\"12345\"");
        assert_eq!(
            (shown[11].as_str(), shown[12].as_str(), shown[13].as_str()),
            ("54", "1000", "51")
        );
    }

    #[test]
    fn newer_pages_read_hours_oldest_first_from_the_cursor() {
        let cursor = Cursor {
            at: t(15, 20),
            id: 99,
        };
        let only_entity = Filters {
            entities: vec!["user".into()],
            ..Filters::default()
        };
        let q = summarized_page_sql(&only_entity, Page::After(cursor), 11, "7");
        let sql = squeeze(&q.sql);
        assert!(
            sql.contains(
                "FROM audit.kind_hours WHERE entity = $1 AND hour >= $4 \
                 GROUP BY hour ORDER BY hour ASC LIMIT $7"
            ),
            "{sql}"
        );
        assert!(
            sql.contains("occurred_at >= $2 AND (h.hour <> $4 OR (occurred_at, id) > ($2, $3))"),
            "{sql}"
        );
        assert!(
            sql.contains("(occurred_at, id) > ($2, $3) AND txid >= $6::text::xid8"),
            "{sql}"
        );
        assert!(sql.contains("OVER (ORDER BY hour ASC"), "{sql}");
        assert!(
            sql.ends_with("ORDER BY occurred_at ASC, id ASC LIMIT $8"),
            "{sql}"
        );
        let newest = squeeze(&summarized_page_sql(&only_entity, Page::Newest, 11, "7").sql);
        assert!(
            newest.contains(
                "FROM audit.kind_hours WHERE entity = $1 GROUP BY hour ORDER BY hour DESC LIMIT $4"
            ),
            "{newest}"
        );
        assert!(!newest.contains("occurred_at, id) <"), "{newest}");
    }

    #[test]
    fn an_actor_named_twice_is_walked_once() {
        let twice = Filters {
            actors: vec!["ann".into(), "bob".into(), "ann".into()],
            ..Filters::default()
        };
        let sql = summarized_page_sql(&twice, Page::Newest, 11, "7").sql;
        assert!(
            sql.contains("($1::text[])[1]") && sql.contains("($1::text[])[2]"),
            "{sql}"
        );
        assert!(!sql.contains("($1::text[])[3]"), "{sql}");
    }

    #[test]
    fn hours_are_utc_hours() {
        assert_eq!(
            hour_of(t(9, 30)),
            Utc.with_ymd_and_hms(2026, 11, 30, 9, 0, 0).unwrap()
        );
    }
}
