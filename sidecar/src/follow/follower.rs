//! The follower: one connection (two against a standby), batches in the commit-safe order,
//! delivery to the sink, then the cursor; wake-ups, reconnects and stopping on a signal.

use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, Client, GenericClient, IsolationLevel, Transaction};

use super::cursor;
use super::WATERMARK;
use crate::connections::Connections;
use crate::db::parse_txid;
use crate::db::{self, Target};
use crate::error::{describe, Error, Result};
use crate::event_row::{OutputEvent, SELECT_EVENTS};
use audit_trail_contract::chain::Position;

const RECHECK_AFTER_WAKEUP: Duration = Duration::from_millis(200);
/// The channel capture notifies at commit (the contract's name, plain ASCII).
fn channel() -> &'static str {
    audit_trail_contract::NOTIFY_CHANNEL
        .to_str()
        .unwrap_or("audit_trail_events")
}

/// A connection whose notifications are forwarded to a channel; the channel closes when the
/// connection does.
async fn connect_listening(target: &Target) -> Result<(Client, mpsc::UnboundedReceiver<()>)> {
    let (client, mut connection) = db::open(target).await?;
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(_)) => {
                    if tx.send(()).is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    });
    Ok((client, rx))
}

/// How a consumer reads the stream: shared by `follow` and `alert`.
pub(crate) struct StreamOptions {
    pub consumer: String,
    /// Deliver everything committed so far, then return.
    pub once: bool,
    /// With `once`: how long to wait for events held back by an older transaction.
    pub hold_timeout: Duration,
    pub poll: Duration,
    pub batch_size: i64,
    /// Deliver only this organization's events (`follow --tenant`); the cursor still moves
    /// past the others, so a quiet organization costs one pass over the stream, not one per
    /// poll.
    pub tenant: Option<String>,
    /// What the command writes, for the refusal on a standby without --record-db.
    pub writes: &'static str,
}

/// What a consumer does with each batch. Both calls run inside the batch's transaction on
/// the primary (the one that advances the cursor, committed after them), so whatever
/// `handle` writes there commits together with the new position, or not at all.
/// Not `pub`: the futures need not be `Send` (the follower runs on the caller's task).
#[allow(async_fn_in_trait)]
pub(crate) trait Handler {
    /// Takes the batch (not empty) before the cursor moves past it: once this returns, the
    /// events are acknowledged.
    async fn handle(&mut self, tx: &Transaction<'_>, events: &[OutputEvent]) -> Result<()>;
    /// Called in every batch's transaction (with or without events), after `handle`: for
    /// what a handler watches besides the events (the alert engine: a stalled sealer).
    async fn checked(&mut self, _tx: &Transaction<'_>) -> Result<()> {
        Ok(())
    }
    /// The batch's transaction committed: what `handle` and `checked` wrote is durable.
    async fn committed(&mut self) -> Result<()> {
        Ok(())
    }
}

pub(crate) struct Follower<H> {
    target: Target,
    /// The primary, when `target` is a standby: the cursor is kept there.
    record_target: Option<Target>,
    args: StreamOptions,
    handler: H,
    stop: tokio::sync::watch::Receiver<bool>,
}

/// What one batch found.
struct Batch {
    delivered: usize,
    /// Committed events exist that wait for an older transaction to end.
    held_back: bool,
}

impl<H: Handler> Follower<H> {
    pub(crate) fn new(
        target: Target,
        record_target: Option<Target>,
        args: StreamOptions,
        handler: H,
    ) -> Follower<H> {
        let (stop_tx, stop) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            wait_for_signal().await;
            let _ = stop_tx.send(true);
        });
        Follower {
            target,
            record_target,
            args,
            handler,
            stop,
        }
    }

    fn stopping(&self) -> bool {
        *self.stop.borrow()
    }

    /// Follows until stopped (or drained, with --once), reconnecting when the server goes away.
    pub(crate) async fn run(mut self) -> Result<()> {
        let mut backoff = Duration::from_secs(1);
        let mut first = true;
        loop {
            let connected = self.connect().await;
            let (connections, notifications) = match connected {
                Ok(c) => c,
                // Nothing reached yet, or a one-shot run: report, don't retry.
                Err(e) if first || self.args.once => return Err(e),
                Err(e) => {
                    tracing::warn!(retry_in_s = backoff.as_secs(), "{e}; retrying");
                    if self.pause(backoff).await {
                        return Ok(());
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                    continue;
                }
            };
            if first {
                connections
                    .admit(self.record_target.as_ref(), self.args.writes)
                    .await?;
                cursor::ensure(connections.writer(), &self.args.consumer).await?;
            } else {
                tracing::info!("reconnected to {}", self.target.description);
            }
            first = false;
            backoff = Duration::from_secs(1);
            match self.follow(connections, notifications).await {
                Ok(()) => return Ok(()),
                Err(Failure::Lost(reason)) if !self.args.once => {
                    tracing::warn!(
                        "lost the connection to {} ({reason}); reconnecting",
                        self.target.description
                    );
                    if self.pause(backoff).await {
                        return Ok(());
                    }
                }
                Err(Failure::Lost(reason)) => {
                    return Err(Error::Connect {
                        target: self.target.description.clone(),
                        reason,
                    })
                }
                Err(Failure::Fatal(e)) => return Err(e),
            }
        }
    }

    /// The connection events are read from and, with a primary to record on, the connection
    /// to it; the notifications come from whichever of them is the primary. A standby
    /// cannot LISTEN, and NOTIFY is not replicated: the primary's notification arrives as
    /// the events commit there, and the look again shortly after a wake-up (and the poll)
    /// finds them once the standby has replayed them.
    async fn connect(&self) -> Result<(Connections, mpsc::UnboundedReceiver<()>)> {
        match &self.record_target {
            None => {
                let (reader, notifications) = connect_listening(&self.target).await?;
                Ok((
                    Connections {
                        reader,
                        record: None,
                    },
                    notifications,
                ))
            }
            Some(record_target) => {
                let reader = db::connect(&self.target).await?;
                let (record, notifications) = connect_listening(record_target).await?;
                let record = Some(record);
                Ok((Connections { reader, record }, notifications))
            }
        }
    }

    /// Sleeps, unless a stop is requested first (then returns true).
    async fn pause(&mut self, how_long: Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(how_long) => self.stopping(),
            _ = self.stop.changed() => true,
        }
    }

    async fn follow(
        &mut self,
        connections: Connections,
        mut notifications: mpsc::UnboundedReceiver<()>,
    ) -> Result<(), Failure> {
        connections
            .writer()
            .batch_execute(&format!("LISTEN {}", channel()))
            .await
            .map_err(Failure::from_db("listening for new events"))?;
        let Connections {
            reader: mut client,
            mut record,
        } = connections;
        let poll = self.args.poll;
        let mut quick = Duration::from_millis(50);
        let once_started = std::time::Instant::now();
        let mut recheck = false;
        loop {
            if self.stopping() {
                return Ok(());
            }
            // Drop wake-ups that arrived before this batch: it will see their events.
            while notifications.try_recv().is_ok() {}
            let batch = match record.as_mut() {
                None => self.batch(&mut client).await?,
                Some(record) => self.batch_recorded(&mut client, record).await?,
            };
            if batch.delivered as i64 == self.args.batch_size {
                continue;
            }
            if self.args.once {
                let waited = once_started.elapsed();
                if !batch.held_back || waited >= self.args.hold_timeout {
                    return Ok(());
                }
            }
            // Events held back by an older, still running transaction get no notification
            // when that transaction ends if it wrote no events itself: look again soon.
            let wait = if batch.held_back {
                let wait = quick;
                quick = (quick * 2).min(Duration::from_secs(1));
                wait
            } else if recheck {
                // Writers notify at most once per 100 ms each (see the extension's wakeup.rs):
                // transactions committing right after a notifying one are found by looking
                // again shortly after a wake-up.
                RECHECK_AFTER_WAKEUP
            } else {
                quick = Duration::from_millis(50);
                poll
            };
            recheck = false;
            tokio::select! {
                woke = notifications.recv() => {
                    if woke.is_none() {
                        return Err(Failure::Lost("the server closed the connection".into()));
                    }
                    recheck = true;
                }
                _ = tokio::time::sleep(wait) => {}
                _ = self.stop.changed() => return Ok(()),
            }
        }
    }

    /// Reads, delivers and acknowledges one batch, in one transaction holding the consumer.
    async fn batch(&mut self, client: &mut Client) -> Result<Batch, Failure> {
        let tx = client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .start()
            .await
            .map_err(Failure::from_db("starting a batch"))?;
        let from = cursor::lock(&tx, &self.args.consumer)
            .await
            .map_err(Failure::from_error)?;
        let (events, held_back) = self.read(&tx, from).await?;
        let read = events.len();
        self.deliver(&tx, events).await?;
        tx.commit()
            .await
            .map_err(Failure::from_db("saving the position"))?;
        self.handler.committed().await.map_err(Failure::Fatal)?;
        Ok(Batch {
            delivered: read,
            held_back,
        })
    }

    /// As [`Follower::batch`], reading from a standby and keeping the cursor on the primary:
    /// the primary's transaction holds the consumer (locked first, so a second follower is
    /// refused before reading) while the events are read in one snapshot of the standby.
    async fn batch_recorded(
        &mut self,
        client: &mut Client,
        record: &mut Client,
    ) -> Result<Batch, Failure> {
        let held = record
            .transaction()
            .await
            .map_err(Failure::from_db("starting a batch"))?;
        let from = cursor::lock(&held, &self.args.consumer)
            .await
            .map_err(Failure::from_error)?;
        let read = crate::db::read_snapshot(client)
            .await
            .map_err(Failure::from_db("starting a batch"))?;
        let (events, held_back) = self.read(&read, from).await?;
        read.commit()
            .await
            .map_err(Failure::from_db("reading events"))?;
        let read = events.len();
        self.deliver(&held, events).await?;
        held.commit()
            .await
            .map_err(Failure::from_db("saving the position"))?;
        self.handler.committed().await.map_err(Failure::Fatal)?;
        Ok(Batch {
            delivered: read,
            held_back,
        })
    }

    /// The next events after `from` below the watermark, and whether committed events wait
    /// above it. Both queries run in `tx`'s one snapshot, on the server events are read from.
    async fn read(
        &self,
        tx: &impl GenericClient,
        from: Position,
    ) -> Result<(Vec<OutputEvent>, bool), Failure> {
        let rows = tx
            .query(
                &format!(
                    "{SELECT_EVENTS}
                      WHERE (txid, id) > ($1::text::xid8, $2)
                        AND txid < {WATERMARK}
                      ORDER BY events.txid, events.id
                      LIMIT $3"
                ),
                &[&from.txid.to_string(), &from.id, &self.args.batch_size],
            )
            .await
            .map_err(Failure::from_db("reading events"))?;
        let events = rows
            .iter()
            .map(OutputEvent::from_row)
            .collect::<Result<Vec<_>, _>>()
            .map_err(Failure::from_db("decoding events"))?;
        let held_back = if (events.len() as i64) < self.args.batch_size {
            tx.query_one(
                &format!("SELECT EXISTS (SELECT FROM audit.events WHERE txid >= {WATERMARK})"),
                &[],
            )
            .await
            .map_err(Failure::from_db("reading events"))?
            .get(0)
        } else {
            false
        };
        Ok((events, held_back))
    }

    /// Hands the events to the handler, then moves the cursor past them in `tx` (committed
    /// by the caller): an event is acknowledged only once the handler has it.
    async fn deliver(
        &mut self,
        tx: &Transaction<'_>,
        mut events: Vec<OutputEvent>,
    ) -> Result<(), Failure> {
        if let Some(last) = events.last() {
            let to = Position {
                txid: parse_txid(&last.txid).map_err(Failure::Fatal)?,
                id: last.id,
            };
            // The cursor passes every event read, delivered or outside the organization:
            // audit.advance_consumer holds the count to the events between the positions.
            let passed = events.len() as i64;
            if let Some(tenant) = &self.args.tenant {
                events.retain(|e| e.tenant.as_ref() == Some(tenant));
            }
            if !events.is_empty() {
                self.handler
                    .handle(tx, &events)
                    .await
                    .map_err(Failure::from_error)?;
            }
            cursor::advance(tx, &self.args.consumer, to, passed)
                .await
                .map_err(Failure::from_db("saving the consumer's position"))?;
        }
        self.handler.checked(tx).await.map_err(Failure::from_error)
    }
}

/// Why following stopped: a lost connection is retried, anything else ends the command.
enum Failure {
    Lost(String),
    Fatal(Error),
}

impl Failure {
    fn from_db(doing: &'static str) -> impl Fn(tokio_postgres::Error) -> Failure {
        move |e| {
            if crate::error::connection_lost(&e) {
                Failure::Lost(describe(&e))
            } else {
                Failure::Fatal(Error::database(doing, &e))
            }
        }
    }

    /// A failure of the handler's or the cursor's: a lost connection is retried too.
    fn from_error(e: Error) -> Failure {
        if e.is_connection_lost() {
            Failure::Lost(e.to_string())
        } else {
            Failure::Fatal(e)
        }
    }
}

/// Returns on SIGTERM or Ctrl-C (the services' way to stop between batches).
pub(crate) async fn wait_for_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
}
