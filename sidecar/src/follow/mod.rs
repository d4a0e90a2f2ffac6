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

mod cursor;
mod sink;
mod status;

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, Client, GenericClient, IsolationLevel};

use crate::db::{self, Target};
use crate::error::{describe, Error, Result};
use crate::export::Format;
use crate::record::{EventRecord, SELECT_EVENTS};
use crate::timespec::{self, Bound};
use cursor::Position;
use sink::{FileSink, Rotation, Sink};

const RECHECK_AFTER_WAKEUP: Duration = Duration::from_millis(200);
/// The channel capture notifies at commit (the contract's name, plain ASCII).
fn channel() -> &'static str {
    audit_trail_contract::NOTIFY_CHANNEL
        .to_str()
        .unwrap_or("audit_trail_events")
}

/// The stream's watermark: the oldest transaction still running when the batch's snapshot
/// was taken. Everything older has ended.
const WATERMARK: &str = "pg_catalog.pg_snapshot_xmin(pg_catalog.pg_current_snapshot())";

#[derive(Debug, Args)]
pub struct FollowArgs {
    /// Name of the consumer: its position is kept in audit.consumers and resumed from.
    #[arg(long, value_name = "NAME")]
    pub consumer: String,
    /// Write JSON lines to stdout.
    #[arg(long, conflicts_with = "output_dir")]
    pub stdout: bool,
    /// Write rotated files (and manifest.json) into this directory.
    #[arg(long, value_name = "DIR")]
    pub output_dir: Option<PathBuf>,
    /// File format of --output-dir.
    #[arg(long, value_enum, default_value = "jsonl")]
    pub format: Format,
    /// Deliver everything committed so far, then exit.
    #[arg(long)]
    pub once: bool,
    /// Show the consumer's position and lag, then exit.
    #[arg(long, conflicts_with_all = ["reset", "from"])]
    pub status: bool,
    /// Move the consumer back to the start of the stream.
    #[arg(long, conflicts_with = "from")]
    pub reset: bool,
    /// Move the consumer so that events from this time on are delivered (again).
    #[arg(long, value_name = "TIME")]
    pub from: Option<String>,
    /// Events per batch (each batch is made durable before the cursor moves).
    #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(i64).range(1..=100_000))]
    pub batch_size: i64,
    /// Start a new file once the current one reaches this many bytes.
    #[arg(long, default_value_t = 64 * 1024 * 1024)]
    pub rotate_bytes: u64,
    /// Start a new file once the current one is this many seconds old.
    #[arg(long, default_value_t = 3600)]
    pub rotate_seconds: u64,
    /// With --once: how long to wait for committed events that an older, still running
    /// transaction holds back, before exiting without them.
    #[arg(long, default_value_t = 10, value_name = "SECONDS")]
    pub hold_timeout: u64,
    /// Look for new events at least this often when no notification arrives.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub poll_seconds: u64,
}

enum Mode {
    Status,
    Reposition(Option<chrono::DateTime<chrono::Utc>>, Option<Sink>),
    Follow(Sink),
}

impl FollowArgs {
    fn mode(&self) -> Result<Mode> {
        if !audit_trail_contract::is_consumer_name(&self.consumer) {
            return Err(Error::Usage(format!(
                "--consumer: use {}",
                audit_trail_contract::CONSUMER_NAME_RULE
            )));
        }
        if self.status {
            return Ok(Mode::Status);
        }
        let sink = match (&self.output_dir, self.stdout) {
            (Some(dir), _) => Some(Sink::Files(Box::new(FileSink::open(
                dir,
                &self.consumer,
                self.format,
                Rotation {
                    max_bytes: self.rotate_bytes.max(1),
                    max_age: Duration::from_secs(self.rotate_seconds.max(1)),
                },
            )?))),
            (None, true) => Some(Sink::Stdout(std::io::stdout())),
            (None, false) => None,
        };
        let from = self
            .from
            .as_deref()
            .map(|t| {
                timespec::parse(
                    "--from",
                    t,
                    Bound::Start,
                    chrono::Utc::now(),
                    chrono_tz::Tz::UTC,
                )
            })
            .transpose()
            .map_err(|e| Error::Usage(e.to_string()))?;
        if self.reset || from.is_some() {
            return Ok(Mode::Reposition(from, sink));
        }
        match sink {
            Some(sink) => Ok(Mode::Follow(sink)),
            None => Err(Error::Usage(
                "say where events go: --stdout or --output-dir DIR (or use --status)".into(),
            )),
        }
    }
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
            let client = db::connect(&target).await?;
            db::require_audit_admin(&client).await?;
            let record =
                db::record_connection(&client, record_db, APPLICATION_NAME, WRITES).await?;
            let position =
                cursor::reposition(record.as_ref().unwrap_or(&client), &args.consumer, from)
                    .await?;
            eprintln!(
                "audit-trail: consumer \"{}\" now at {position}",
                args.consumer
            );
            match sink {
                Some(sink) => Follower::new(target, record_target, args, sink).run().await,
                None => Ok(()),
            }
        }
        Mode::Follow(sink) => Follower::new(target, record_target, args, sink).run().await,
    }
}

struct Follower {
    target: Target,
    /// The primary, when `target` is a standby: the cursor is kept there.
    record_target: Option<Target>,
    args: FollowArgs,
    sink: Sink,
    stop: tokio::sync::watch::Receiver<bool>,
}

/// What one batch found.
struct Batch {
    delivered: usize,
    /// Committed events exist that wait for an older transaction to end.
    held_back: bool,
}

impl Follower {
    fn new(
        target: Target,
        record_target: Option<Target>,
        args: FollowArgs,
        sink: Sink,
    ) -> Follower {
        let (stop_tx, stop) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            wait_for_signal().await;
            let _ = stop_tx.send(true);
        });
        Follower {
            target,
            record_target,
            args,
            sink,
            stop,
        }
    }

    fn stopping(&self) -> bool {
        *self.stop.borrow()
    }

    /// Follows until stopped (or drained, with --once), reconnecting when the server goes away.
    async fn run(mut self) -> Result<()> {
        let mut backoff = Duration::from_secs(1);
        let mut first = true;
        loop {
            let connected = self.connect().await;
            let (client, record, notifications) = match connected {
                Ok(c) => c,
                // Nothing reached yet, or a one-shot run: report, don't retry.
                Err(e) if first || self.args.once => return Err(e),
                Err(e) => {
                    eprintln!("audit-trail: {e}; retrying in {}s", backoff.as_secs());
                    if self.pause(backoff).await {
                        return Ok(());
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                    continue;
                }
            };
            if first {
                db::require_audit_admin(&client).await?;
                match &record {
                    Some(record) => {
                        db::require_audit_admin(record).await?;
                        let description = self
                            .record_target
                            .as_ref()
                            .map_or("?", |t| t.description.as_str());
                        db::require_primary(record, description).await?;
                    }
                    None if db::in_recovery(&client).await? => {
                        return Err(db::standby_without_record_db(WRITES));
                    }
                    None => {}
                }
                cursor::ensure(record.as_ref().unwrap_or(&client), &self.args.consumer).await?;
            } else {
                eprintln!("audit-trail: reconnected to {}", self.target.description);
            }
            first = false;
            backoff = Duration::from_secs(1);
            match self.follow(client, record, notifications).await {
                Ok(()) => return Ok(()),
                Err(Failure::Lost(reason)) if !self.args.once => {
                    eprintln!(
                        "audit-trail: lost the connection to {} ({reason}); reconnecting",
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
    async fn connect(&self) -> Result<(Client, Option<Client>, mpsc::UnboundedReceiver<()>)> {
        match &self.record_target {
            None => {
                let (client, notifications) = connect_listening(&self.target).await?;
                Ok((client, None, notifications))
            }
            Some(record_target) => {
                let client = db::connect(&self.target).await?;
                let (record, notifications) = connect_listening(record_target).await?;
                Ok((client, Some(record), notifications))
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
        mut client: Client,
        mut record: Option<Client>,
        mut notifications: mpsc::UnboundedReceiver<()>,
    ) -> Result<(), Failure> {
        record
            .as_ref()
            .unwrap_or(&client)
            .batch_execute(&format!("LISTEN {}", channel()))
            .await
            .map_err(Failure::from_db("listening for new events"))?;
        let poll = Duration::from_secs(self.args.poll_seconds);
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
                if !batch.held_back || waited >= Duration::from_secs(self.args.hold_timeout) {
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
            .map_err(Failure::Fatal)?;
        let (events, held_back) = self.read(&tx, from).await?;
        self.deliver(&tx, &events).await?;
        tx.commit()
            .await
            .map_err(Failure::from_db("saving the position"))?;
        Ok(Batch {
            delivered: events.len(),
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
            .map_err(Failure::Fatal)?;
        let read = client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(Failure::from_db("starting a batch"))?;
        let (events, held_back) = self.read(&read, from).await?;
        read.commit()
            .await
            .map_err(Failure::from_db("reading events"))?;
        self.deliver(&held, &events).await?;
        held.commit()
            .await
            .map_err(Failure::from_db("saving the position"))?;
        Ok(Batch {
            delivered: events.len(),
            held_back,
        })
    }

    /// The next events after `from` below the watermark, and whether committed events wait
    /// above it. Both queries run in `tx`'s one snapshot, on the server events are read from.
    async fn read(
        &self,
        tx: &impl GenericClient,
        from: Position,
    ) -> Result<(Vec<EventRecord>, bool), Failure> {
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
            .map(EventRecord::from_row)
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

    /// Hands the events to the sink, then moves the cursor past them in `tx` (committed by
    /// the caller): an event is acknowledged only once the sink has it.
    async fn deliver(
        &mut self,
        tx: &impl GenericClient,
        events: &[EventRecord],
    ) -> Result<(), Failure> {
        if let Some(last) = events.last() {
            self.sink.deliver(events).map_err(Failure::Fatal)?;
            let to = Position {
                txid: cursor::parse_txid(&last.txid).map_err(Failure::Fatal)?,
                id: last.id,
            };
            cursor::advance(tx, &self.args.consumer, to, events.len() as i64)
                .await
                .map_err(Failure::Fatal)?;
        }
        Ok(())
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
            let server_going_away = e.as_db_error().is_some_and(|db| {
                db.code().code().starts_with("57P") // admin_shutdown, crash_shutdown, ...
            });
            let io_error = std::error::Error::source(&e).is_some_and(|c| c.is::<std::io::Error>());
            if e.is_closed() || server_going_away || io_error {
                Failure::Lost(describe(&e))
            } else {
                Failure::Fatal(Error::database(doing, &e))
            }
        }
    }
}

async fn wait_for_signal() {
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
