//! `follow --status`: where a consumer is, what is ready for it, and, when committed events
//! are held back, which transactions hold them: the stream delivers an event only once
//! every transaction that got its id earlier has ended (see docs/follow.md), so one session
//! left idle in a transaction, or a forgotten prepared transaction, stops delivery for all.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use tokio_postgres::{Client, Row};

use super::WATERMARK;
use crate::error::{Error, Result};

/// Blocking sessions listed at most.
const MAX_LISTED: i64 = 10;

struct Consumer {
    last_txid: String,
    last_id: i64,
    delivered: i64,
    updated_at: DateTime<Utc>,
    updated_by: String,
    watermark: String,
    ready: i64,
    oldest_undelivered: Option<DateTime<Utc>>,
    held: i64,
    /// The newest held-back transaction: every running one older than it holds back some
    /// of the held events (the oldest of them holds back all).
    last_held_txid: Option<String>,
    now: DateTime<Utc>,
}

impl Consumer {
    fn from_row(row: &Row) -> Result<Consumer, tokio_postgres::Error> {
        Ok(Consumer {
            last_txid: row.try_get(0)?,
            last_id: row.try_get(1)?,
            delivered: row.try_get(2)?,
            updated_at: row.try_get(3)?,
            updated_by: row.try_get(4)?,
            watermark: row.try_get(5)?,
            ready: row.try_get(6)?,
            oldest_undelivered: row.try_get(7)?,
            held: row.try_get(8)?,
            last_held_txid: row.try_get(9)?,
            now: row.try_get(10)?,
        })
    }
}

/// A session whose transaction holds the stream back.
struct Blocker {
    pid: i32,
    role: Option<String>,
    database: Option<String>,
    application: Option<String>,
    state: Option<String>,
    open_for: Option<f64>,
    /// Whether the connected role may see the session's details: pg_stat_activity shows
    /// every session's pid and transaction id, but when its transaction started and what it
    /// is doing only to a role with that role's privileges or pg_read_all_stats.
    visible: bool,
}

/// A prepared (two-phase) transaction that holds the stream back: it has no session.
struct Prepared {
    gid: String,
    owner: Option<String>,
    database: Option<String>,
    prepared_for: Option<f64>,
}

/// Who holds the stream back, as far as the connected role can see.
struct Holders {
    sessions: Vec<Blocker>,
    prepared: Vec<Prepared>,
    /// Further holders beyond the ones listed.
    unlisted: i64,
    /// The connected role.
    role: String,
}

pub async fn show(client: &Client, consumer: &str) -> Result<()> {
    let sql = format!(
        "SELECT c.last_txid::text, c.last_id, c.delivered, c.updated_at, c.updated_by,
                {WATERMARK}::text,
                (SELECT pg_catalog.count(*) FROM audit.events e
                  WHERE (e.txid, e.id) > (c.last_txid, c.last_id) AND e.txid < {WATERMARK}),
                (SELECT pg_catalog.min(e.occurred_at) FROM audit.events e
                  WHERE (e.txid, e.id) > (c.last_txid, c.last_id)),
                (SELECT pg_catalog.count(*) FROM audit.events e
                  WHERE e.txid >= {WATERMARK} AND (e.txid, e.id) > (c.last_txid, c.last_id)),
                (SELECT pg_catalog.max(e.txid)::text FROM audit.events e
                  WHERE e.txid >= {WATERMARK} AND (e.txid, e.id) > (c.last_txid, c.last_id)),
                pg_catalog.now()
           FROM audit.consumers c WHERE c.name = $1"
    );
    let row = client
        .query_opt(&sql, &[&consumer])
        .await
        .map_err(|e| Error::database("reading the consumer", &e))?
        .ok_or_else(|| {
            Error::Usage(format!(
                "no consumer named \"{consumer}\" (it is created by its first follow)"
            ))
        })?;
    let c = Consumer::from_row(&row).map_err(|e| Error::database("reading the consumer", &e))?;
    println!("consumer:  {consumer}");
    println!(
        "position:  txid {}, id {} ({} events delivered; moved {} by {})",
        c.last_txid,
        c.last_id,
        c.delivered,
        c.updated_at.to_rfc3339_opts(SecondsFormat::Secs, true),
        c.updated_by
    );
    println!("ready:     {} events", c.ready);
    if let (true, Some(last_held)) = (c.held > 0, &c.last_held_txid) {
        println!(
            "held back: {} committed events wait for transactions older than txid {} to end",
            c.held, c.watermark
        );
        let holders = holders(client, last_held).await?;
        print_holders(&holders);
    }
    match c.oldest_undelivered {
        Some(t) => println!(
            "lag:       {:.1}s (oldest undelivered event at {})",
            (c.now - t).num_milliseconds().max(0) as f64 / 1000.0,
            t.to_rfc3339_opts(SecondsFormat::Secs, true)
        ),
        None => println!("lag:       0s (up to date)"),
    }
    Ok(())
}

/// The running transactions older than `last_held` (an xid8 as text), oldest first.
/// pg_stat_activity and pg_prepared_xacts show 32-bit xids: they are compared by age, which
/// is exact within the two billion transactions a cluster can have running at once.
async fn holders(client: &Client, last_held: &str) -> Result<Holders> {
    const HORIZON: &str =
        "pg_catalog.age(pg_catalog.mod($1::text::numeric, 4294967296)::text::xid)";
    let reading = |e: tokio_postgres::Error| Error::database("reading running transactions", &e);
    // The last column of each list counts every match, beyond the ones listed.
    let total = |rows: &[Row], column: usize| -> Result<i64, tokio_postgres::Error> {
        rows.first().map_or(Ok(0), |r| r.try_get::<_, i64>(column))
    };
    let rows = client
        .query(
            &format!(
                "SELECT a.pid, a.usename::text, a.datname::text, a.application_name, a.state,
                        pg_catalog.date_part('epoch', pg_catalog.now() - a.xact_start),
                        pg_catalog.pg_has_role(a.usesysid, 'USAGE')
                            OR pg_catalog.pg_has_role('pg_read_all_stats', 'USAGE'),
                        pg_catalog.count(*) OVER ()
                   FROM pg_catalog.pg_stat_activity a
                  WHERE a.backend_xid IS NOT NULL
                    AND pg_catalog.age(a.backend_xid) > {HORIZON}
                    AND a.pid <> pg_catalog.pg_backend_pid()
                  ORDER BY pg_catalog.age(a.backend_xid) DESC
                  LIMIT {MAX_LISTED}"
            ),
            &[&last_held],
        )
        .await
        .map_err(reading)?;
    let sessions = rows
        .iter()
        .map(|r| {
            Ok(Blocker {
                pid: r.try_get(0)?,
                role: r.try_get(1)?,
                database: r.try_get(2)?,
                application: r.try_get(3)?,
                state: r.try_get(4)?,
                open_for: r.try_get(5)?,
                visible: r.try_get::<_, Option<bool>>(6)?.unwrap_or(false),
            })
        })
        .collect::<Result<Vec<_>, tokio_postgres::Error>>()
        .map_err(reading)?;
    let all_sessions = total(&rows, 7).map_err(reading)?;
    let rows = client
        .query(
            &format!(
                "SELECT p.gid, p.owner::text, p.database::text,
                        pg_catalog.date_part('epoch', pg_catalog.now() - p.prepared),
                        pg_catalog.count(*) OVER ()
                   FROM pg_catalog.pg_prepared_xacts p
                  WHERE pg_catalog.age(p.transaction) > {HORIZON}
                  ORDER BY p.prepared
                  LIMIT {MAX_LISTED}"
            ),
            &[&last_held],
        )
        .await
        .map_err(reading)?;
    let prepared = rows
        .iter()
        .map(|r| {
            Ok(Prepared {
                gid: r.try_get(0)?,
                owner: r.try_get(1)?,
                database: r.try_get(2)?,
                prepared_for: r.try_get(3)?,
            })
        })
        .collect::<Result<Vec<_>, tokio_postgres::Error>>()
        .map_err(reading)?;
    let all_prepared = total(&rows, 4).map_err(reading)?;
    let role: String = client
        .query_one("SELECT current_user::text", &[])
        .await
        .and_then(|r| r.try_get(0))
        .map_err(reading)?;
    Ok(Holders {
        unlisted: (all_sessions - sessions.len() as i64) + (all_prepared - prepared.len() as i64),
        sessions,
        prepared,
        role,
    })
}

fn print_holders(h: &Holders) {
    let mut label = "held by:  ";
    let mut line = |text: String| {
        println!("{label} {text}");
        label = "          ";
    };
    for s in &h.sessions {
        line(format!(
            "pid {} ({}), transaction open {}{}",
            s.pid,
            describe_session(s),
            match (s.visible, s.open_for) {
                (true, Some(t)) => seconds(t),
                _ => "for an unknown time".to_owned(),
            },
            s.state
                .as_deref()
                .map(|st| format!(", {st}"))
                .unwrap_or_default()
        ));
    }
    for p in &h.prepared {
        line(format!(
            "prepared transaction '{}' (role {}, database {}), prepared {} ago: \
             COMMIT PREPARED or ROLLBACK PREPARED it",
            p.gid,
            p.owner.as_deref().unwrap_or("?"),
            p.database.as_deref().unwrap_or("?"),
            p.prepared_for.map_or_else(|| "?".to_owned(), seconds),
        ));
    }
    if h.unlisted > 0 {
        line(format!("and {} more", h.unlisted));
    }
    if h.sessions.iter().any(|s| !s.visible) {
        line(format!(
            "role \"{}\" cannot see when other roles' transactions started or what they do \
             (GRANT pg_monitor TO \"{}\" to see it)",
            h.role, h.role
        ));
    } else if h.sessions.is_empty() && h.prepared.is_empty() {
        line("no transaction older than them is running any more: look again".into());
    }
    if !h.sessions.is_empty() {
        line(
            "a session idle in a transaction holds the stream until it ends: \
             idle_in_transaction_session_timeout bounds that (see README)"
                .into(),
        );
    }
}

fn describe_session(s: &Blocker) -> String {
    let mut parts = vec![format!("role {}", s.role.as_deref().unwrap_or("?"))];
    if let Some(d) = &s.database {
        parts.push(format!("database {d}"));
    }
    if let Some(a) = s.application.as_deref().filter(|a| !a.is_empty()) {
        parts.push(format!("application {a:?}"));
    }
    parts.join(", ")
}

/// `42s`, `12m 5s`, `3h 2m`, `2d 4h`.
fn seconds(total: f64) -> String {
    let d = Duration::try_from_secs_f64(total.max(0.0)).unwrap_or(Duration::MAX);
    let s = d.as_secs();
    match s {
        0..60 => format!("{:.1}s", d.as_secs_f64()),
        60..3600 => format!("{}m {}s", s / 60, s % 60),
        3600..86400 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {}h", s / 86400, s % 86400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_well() {
        assert_eq!(seconds(4.3), "4.3s");
        assert_eq!(seconds(725.0), "12m 5s");
        assert_eq!(seconds(3.0 * 3600.0 + 120.0), "3h 2m");
        assert_eq!(seconds(2.0 * 86400.0 + 4.0 * 3600.0), "2d 4h");
        assert_eq!(seconds(-1.0), "0.0s");
        assert_eq!(seconds(f64::NAN), "0.0s");
    }
}
