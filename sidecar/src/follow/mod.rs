//! `audit-trail follow`: a change-data-capture stream of committed audit events.
//!
//! Ordering without gaps: every event carries the id of the transaction that wrote it. A batch
//! is read in one snapshot, and only events of transactions older than that snapshot's
//! `xmin` (the oldest transaction still running) are delivered, in (txid, id) order. Every
//! transaction below `xmin` has ended, so no event can later appear before the cursor: a
//! transaction that commits late only holds back the stream (its own and every later
//! transaction's events wait until it ends), it never makes the follower skip it. See
//! docs/follow.md.
//!
//! Against a hot standby (`--db`), events are read there and the cursor is kept on the
//! primary (`--record-db`): the standby's snapshot counts as running every transaction the
//! primary had not finished as of the WAL replayed so far, so its `xmin` is as safe a
//! watermark as the primary's.

mod args;
pub(crate) mod cursor;
pub(crate) mod follower;
mod sink;
mod status;

pub use args::FollowArgs;

use std::time::Duration;

use crate::connections::Connections;
use crate::db;
use crate::error::Result;
use args::Mode;
use follower::{Follower, Handler, StreamOptions};
use sink::Sink;

/// The stream's watermark: the oldest transaction still running when the batch's snapshot
/// was taken. Everything older has ended.
pub(crate) const WATERMARK: &str = "pg_catalog.pg_snapshot_xmin(pg_catalog.pg_current_snapshot())";

const APPLICATION_NAME: &str = "audit-trail follow";
/// What follow writes, for the refusal on a standby without --record-db.
const WRITES: &str = "the consumer's position";

pub async fn run(db: Option<&str>, record_db: Option<&str>, args: FollowArgs) -> Result<()> {
    let mode = args.mode()?;
    let target = db::resolve(db, APPLICATION_NAME)?;
    let record_target = record_db
        .map(|text| db::resolve_record(text, APPLICATION_NAME))
        .transpose()?;
    match mode {
        Mode::Status => {
            // The cursor, and the sessions that hold the stream back, live on the primary:
            // shown from there when it is given. Nothing is written, so a standby alone is
            // fine too.
            let client = db::connect(record_target.as_ref().unwrap_or(&target)).await?;
            db::require_audit_admin(&client).await?;
            status::show(&client, &args.consumer).await
        }
        Mode::Reposition(from, sink) => {
            let connections = Connections::open(db, record_db, APPLICATION_NAME, WRITES).await?;
            let position = cursor::reposition(connections.writer(), &args.consumer, from).await?;
            tracing::info!(consumer = %args.consumer, %position, "cursor moved");
            match sink {
                Some(sink) => follow(target, record_target, args, sink).await,
                None => Ok(()),
            }
        }
        Mode::Follow(sink) => follow(target, record_target, args, sink).await,
    }
}

async fn follow(
    target: db::Target,
    record_target: Option<db::Target>,
    args: FollowArgs,
    sink: Sink,
) -> Result<()> {
    let options = StreamOptions {
        consumer: args.consumer,
        once: args.once,
        hold_timeout: Duration::from_secs(args.hold_timeout),
        poll: Duration::from_secs(args.poll_seconds),
        batch_size: args.batch_size,
        tenant: args.tenant,
        writes: WRITES,
    };
    Follower::new(target, record_target, options, sink)
        .run()
        .await
}

/// `follow` hands each batch to its sink: written and made durable before the cursor moves.
impl Handler for Sink {
    async fn handle(
        &mut self,
        _tx: &tokio_postgres::Transaction<'_>,
        events: &[crate::event_row::OutputEvent],
    ) -> Result<()> {
        self.deliver(events)
    }
}
