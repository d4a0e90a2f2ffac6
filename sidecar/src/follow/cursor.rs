//! A consumer's durable position in the stream: the last (txid, id) it has safely delivered,
//! kept in `audit.consumers`.

use chrono::{DateTime, Utc};
use tokio_postgres::{Client, GenericClient};

use crate::db::parse_txid;
use crate::error::{Error, Result};
use audit_trail_contract::chain::Position;

/// Creates the consumer if it is new (at the start of the stream, owned by this login role).
pub async fn ensure(client: &Client, name: &str) -> Result<()> {
    client
        .execute("SELECT audit.open_consumer($1)", &[&name])
        .await
        .map_err(|e| Error::database("creating the consumer", &e))?;
    Ok(())
}

/// Locks the consumer's row for this batch and returns its position. A second follower of
/// the same consumer is refused rather than made to deliver the same events.
pub async fn lock(client: &impl GenericClient, name: &str) -> Result<Position> {
    let row = client
        .query_opt(
            "SELECT last_txid::text, last_id FROM audit.lock_consumer($1)",
            &[&name],
        )
        .await
        .map_err(|e| {
            if e.code() == Some(&tokio_postgres::error::SqlState::LOCK_NOT_AVAILABLE) {
                Error::Busy(format!(
                    "consumer \"{name}\" is being followed by another process"
                ))
            } else {
                Error::database("reading the consumer's position", &e)
            }
        })?
        .ok_or_else(|| Error::Unexpected(format!("consumer \"{name}\" disappeared")))?;
    Ok(Position {
        txid: parse_txid(row.get(0))?,
        id: row.get(1),
    })
}

/// Moves the cursor past the `delivered` events up to `to`; the database refuses a move that
/// would skip one. The error is the driver's own, so the caller can tell a lost connection
/// (retried) from a refusal.
pub async fn advance(
    client: &impl GenericClient,
    name: &str,
    to: Position,
    delivered: i64,
) -> Result<(), tokio_postgres::Error> {
    client
        .execute(
            "SELECT audit.advance_consumer($1, $2::text::xid8, $3, $4)",
            &[&name, &to.txid.to_string(), &to.id, &delivered],
        )
        .await?;
    Ok(())
}

/// Moves the consumer: to the start of the stream, or to the first transaction that wrote an
/// event at or after `from` (so every event from then on is delivered again, possibly with a
/// few slightly older ones from the same transactions). The database records the move as an
/// `audit_log`/`consumer_moved` event, with the events it skips or will deliver again.
pub async fn reposition(
    client: &Client,
    name: &str,
    from: Option<DateTime<Utc>>,
) -> Result<Position> {
    let position = match from {
        None => Position::default(),
        Some(from) => {
            let row = client
                .query_one(
                    "SELECT (SELECT pg_catalog.min(txid)::text FROM audit.events
                              WHERE occurred_at >= $1),
                            (SELECT pg_catalog.max(txid)::text FROM audit.events),
                            (SELECT pg_catalog.max(id) FROM audit.events)",
                    &[&from],
                )
                .await
                .map_err(|e| Error::database("finding the position", &e))?;
            match (row.get::<_, Option<&str>>(0), row.get::<_, Option<&str>>(1)) {
                // Just before that transaction's first event.
                (Some(txid), _) => Position {
                    txid: parse_txid(txid)?,
                    id: 0,
                },
                // Nothing since then: the end of the stream.
                (None, Some(last)) => Position {
                    txid: parse_txid(last)?,
                    id: row.get::<_, Option<i64>>(2).unwrap_or(0),
                },
                (None, None) => Position::default(),
            }
        }
    };
    client
        .execute(
            "SELECT audit.move_consumer($1, $2::text::xid8, $3)",
            &[&name, &position.txid.to_string(), &position.id],
        )
        .await
        .map_err(|e| Error::database("moving the consumer", &e))?;
    Ok(position)
}
