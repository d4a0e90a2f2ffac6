//! `audit-trail alert`: rules evaluated over the committed event stream, each alert recorded
//! as an `audit_log`/`alert` event and delivered to webhooks and/or stdout. See docs/alerts.md.
//!
//! The stream is `follow`'s: the same commit-safe order and durable per-consumer cursor
//! (docs/follow.md), so each event is evaluated once per consumer across restarts. The
//! alerts of a batch are written in the transaction that moves the cursor past it: a
//! restart neither loses nor repeats one. They are delivered after that commit.

mod deliver;
mod engine;
mod rules;
mod stall;

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use futures_util::{pin_mut, TryStreamExt};
use tokio_postgres::{Client, Transaction};

use crate::connections::Connections;
use crate::db;
use crate::db::parse_txid;
use crate::error::{Error, Result};
use crate::event_row::{OutputEvent, SELECT_EVENTS};
use crate::follow::cursor;
use crate::follow::follower::{Follower, Handler, StreamOptions};
use audit_trail_contract::chain::Position;
use deliver::{Delivery, Webhook};
use engine::Engine;
use stall::StallWatch;

const APPLICATION_NAME: &str = "audit-trail alert";
const WRITES: &str = "the alerts and the consumer's position";

#[derive(Debug, Args)]
pub struct AlertArgs {
    /// Rules file (TOML, see docs/alerts.md); without it, the built-in set.
    #[arg(long, value_name = "FILE")]
    pub rules: Option<PathBuf>,
    /// Name of the consumer: its position is kept in audit.consumers and resumed from.
    #[arg(long, value_name = "NAME", default_value = "alerts")]
    pub consumer: String,
    /// POST each alert as JSON to this URL (repeatable).
    #[arg(long, value_name = "URL")]
    pub webhook: Vec<String>,
    /// Write each alert as a JSON line to stdout.
    #[arg(long)]
    pub stdout: bool,
    /// Evaluate everything committed so far, then exit.
    #[arg(long)]
    pub once: bool,
    /// Events per batch.
    #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(i64).range(1..=100_000))]
    pub batch_size: i64,
    /// With --once: how long to wait for committed events that an older, still running
    /// transaction holds back, before exiting without them.
    #[arg(long, default_value_t = 10, value_name = "SECONDS")]
    pub hold_timeout: u64,
    /// Look for new events at least this often when no notification arrives.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub poll_seconds: u64,
}

pub async fn run(db: Option<&str>, record_db: Option<&str>, args: AlertArgs) -> Result<()> {
    if !audit_trail_contract::is_consumer_name(&args.consumer) {
        return Err(Error::Usage(format!(
            "--consumer: use {}",
            audit_trail_contract::CONSUMER_NAME_RULE
        )));
    }
    let rules = match &args.rules {
        Some(path) => rules::load(path)?,
        None => rules::builtin(),
    };
    let webhooks = args
        .webhook
        .iter()
        .map(|u| Webhook::parse(u))
        .collect::<Result<Vec<_>>>()?;
    let target = db::resolve(db, APPLICATION_NAME)?;
    let record_target = record_db
        .map(|text| db::resolve_record(text, APPLICATION_NAME))
        .transpose()?;

    let mut engine = Engine::new(rules, &args.consumer);
    {
        let connections = Connections::open(db, record_db, APPLICATION_NAME, WRITES).await?;
        let primary = connections.writer();
        let writer: String = primary
            .query_one("SELECT session_user::text", &[])
            .await
            .map_err(|e| Error::database("reading the role", &e))?
            .get(0);
        engine = engine.recorded_by(&writer);
        cursor::ensure(primary, &args.consumer).await?;
        let position = position(primary, &args.consumer).await?;
        warm_up(&connections.reader, &mut engine, position).await?;
    }

    let options = StreamOptions {
        consumer: args.consumer,
        once: args.once,
        hold_timeout: Duration::from_secs(args.hold_timeout),
        poll: Duration::from_secs(args.poll_seconds),
        batch_size: args.batch_size,
        tenant: None,
        writes: WRITES,
    };
    let handler = Alerter {
        engine,
        before_batch: None,
        recorded: Vec::new(),
        stall: StallWatch::default(),
        stall_recorded: Vec::new(),
        delivery: Delivery::new(webhooks, args.stdout),
    };
    Follower::new(target, record_target, options, handler)
        .run()
        .await
}

async fn position(client: &Client, consumer: &str) -> Result<Position> {
    let row = client
        .query_one(
            "SELECT last_txid::text, last_id FROM audit.consumers WHERE name = $1",
            &[&consumer],
        )
        .await
        .map_err(|e| Error::database("reading the consumer's position", &e))?;
    Ok(Position {
        txid: parse_txid(row.get(0))?,
        id: row.get(1),
    })
}

/// Rebuilds the windows a restart would otherwise have forgotten (150 deletes before it and
/// 60 after are still more than 200... within the window): replays, without alerting, the
/// events already evaluated within the longest window before the cursor. A threshold
/// crossed there was alerted then, and the alerts recorded since bring back their quiet
/// periods. Streamed: memory holds the matching events of the windows, not the replay.
async fn warm_up(client: &Client, engine: &mut Engine, at: Position) -> Result<()> {
    if at == Position::default() {
        return Ok(());
    }
    let replaying = |e: tokio_postgres::Error| Error::database("replaying recent events", &e);
    let seconds = engine.longest_window().as_secs_f64();
    let sql = format!(
        "{SELECT_EVENTS}
          WHERE (txid, id) <= ($1::text::xid8, $2)
            AND occurred_at >= (SELECT e.occurred_at FROM audit.events e
                                 WHERE (e.txid, e.id) <= ($1::text::xid8, $2)
                                 ORDER BY e.txid DESC, e.id DESC LIMIT 1)
                               - pg_catalog.make_interval(secs => $3)
          ORDER BY events.txid, events.id"
    );
    let txid = at.txid.to_string();
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 3] = [&txid, &at.id, &seconds];
    let rows = client.query_raw(&sql, params).await.map_err(replaying)?;
    pin_mut!(rows);
    while let Some(row) = rows.try_next().await.map_err(replaying)? {
        let event = OutputEvent::from_row(&row).map_err(replaying)?;
        engine.observe(&event, false);
    }
    Ok(())
}

struct Alerter {
    engine: Engine,
    /// The engine as it was before the batch in progress: a batch that does not commit is
    /// read again, and must find the windows as they were.
    before_batch: Option<Engine>,
    /// Alerts of the batch, recorded in its transaction, delivered once it commits.
    recorded: Vec<serde_json::Value>,
    stall: StallWatch,
    /// The sealing-stalled alert of the batch, if any (as `recorded`).
    stall_recorded: Vec<serde_json::Value>,
    delivery: Delivery,
}

/// Records an alert in the batch's transaction; what is delivered, with its event's id.
async fn record(
    tx: &Transaction<'_>,
    consumer: &str,
    alert: &engine::Alert,
) -> Result<serde_json::Value> {
    let details = serde_json::to_value(alert).map_err(Error::encoding("an alert"))?;
    let id: i64 = tx
        .query_one("SELECT audit.record_alert($1, $2)", &[&consumer, &details])
        .await
        .map_err(|e| Error::database("recording an alert", &e))?
        .get(0);
    let mut delivered = details;
    if let Some(object) = delivered.as_object_mut() {
        object.insert("alert_id".into(), id.into());
    }
    Ok(delivered)
}

impl Handler for Alerter {
    async fn handle(&mut self, tx: &Transaction<'_>, events: &[OutputEvent]) -> Result<()> {
        if let Some(before) = self.before_batch.take() {
            self.engine = before;
        }
        self.recorded.clear();
        self.before_batch = Some(self.engine.clone());
        for event in events {
            self.engine.observe(event, true);
        }
        if let Some(last) = events.last() {
            self.engine.prune(last.occurred_at);
        }
        for alert in self.engine.take() {
            let delivered = record(tx, self.engine.consumer(), &alert).await?;
            self.recorded.push(delivered);
        }
        Ok(())
    }

    async fn checked(&mut self, tx: &Transaction<'_>) -> Result<()> {
        self.stall_recorded.clear();
        if let Some(alert) = self.stall.look(tx, self.engine.consumer()).await? {
            let delivered = record(tx, self.engine.consumer(), &alert).await?;
            self.stall_recorded.push(delivered);
        }
        Ok(())
    }

    async fn committed(&mut self) -> Result<()> {
        self.before_batch = None;
        self.stall.committed();
        let mut alerts = std::mem::take(&mut self.recorded);
        alerts.append(&mut self.stall_recorded);
        self.delivery.deliver(alerts).await
    }
}
