//! `audit-trail capture`: reads committed transactions of tracked tables from a logical slot
//! and writes their events, exactly once (docs/wal-capture.md).
//!
//! Each round: note the server's WAL position, read (peek) the slot's transactions committed
//! before it, write their events and the position they reach in one database transaction,
//! commit, and only then advance the slot. A crash between the commit and the advance reads
//! the same transactions again; `audit.wal_record` finds them written and writes nothing. A
//! round that read everything before the noted position advances the slot to it even when
//! no tracked table changed, so an idle slot holds back no WAL.

use std::time::Duration;

use clap::Args;
use futures_util::{pin_mut, TryStreamExt};
use tokio_postgres::Client;

use super::pgoutput::{decode, Lsn};
use super::record::{Batcher, Part, PartLimits};
use super::transactions::Assembler;
use crate::db::{self, Target};
use crate::error::{Error, Result};

/// The publication `audit.track` adds tables to (the portable install makes it).
pub const PUBLICATION: &str = "audit_trail";

#[derive(Debug, Args)]
pub struct CaptureArgs {
    /// The logical replication slot to read; made (plugin pgoutput) when it does not exist
    /// and nothing was captured through it yet.
    #[arg(long, default_value = "audit_trail", value_parser = slot_name)]
    pub slot: String,
    /// Write everything committed so far, then exit.
    #[arg(long)]
    pub once: bool,
    /// Decoded messages read per round (whole transactions: a larger one is read whole).
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(i32).range(1..=1_000_000))]
    pub batch: i32,
    /// How long to wait before looking again when a round found nothing, in milliseconds.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(10..=60_000))]
    pub poll_ms: u64,
}

/// A slot name as PostgreSQL takes one: lowercase letters, digits and _, at most 63.
pub fn slot_name(text: &str) -> std::result::Result<String, String> {
    let ok = !text.is_empty()
        && text.len() <= 63
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(text.to_owned())
    } else {
        Err("a slot name is 1 to 63 lowercase letters, digits and _".into())
    }
}

/// What one round did.
#[derive(Debug, Default, Clone, Copy)]
pub struct Round {
    pub transactions: usize,
    pub events: i64,
    /// The round read everything committed before the position noted at its start.
    pub caught_up: bool,
    /// That position: the WAL flushed to disk when the round began.
    pub until: Lsn,
}

/// The service's two connections: one reads the slot while the other writes events (a
/// stream of changes occupies its connection until it ends).
pub struct Capture {
    reader: Client,
    writer: Client,
    slot: String,
    batch: i32,
    assembler: Assembler,
    /// Where the events written so far reach (audit.capture_progress).
    written: Option<Lsn>,
}

fn db_error(doing: &'static str) -> impl Fn(tokio_postgres::Error) -> Error {
    move |e| Error::database(doing, &e)
}

/// Values of the decoded rows are the text the server's output functions write in the
/// reading session: these settings make it read back exactly (`audit.wal_changes`).
/// The events' commit must be durable before the slot forgets their changes: the service
/// commits synchronously whatever the server's default.
const SESSION: &str = "SET DateStyle = ISO; SET IntervalStyle = postgres; \
                       SET extra_float_digits = 3; SET bytea_output = hex; \
                       SET synchronous_commit = on";

impl Capture {
    /// Connects twice, checks the install, and makes the slot if it is missing and nothing
    /// was captured yet (a slot that existed and is gone is a gap, never quietly replaced).
    pub async fn open(target: &Target, slot: &str, batch: i32) -> Result<Capture> {
        let reader = db::connect(target).await?;
        let writer = db::connect(target).await?;
        for c in [&reader, &writer] {
            c.batch_execute(SESSION)
                .await
                .map_err(db_error("setting up the session"))?;
        }
        let row = writer
            .query_one(
                "SELECT p IS NOT NULL,
                        p IS NOT NULL AND pg_catalog.has_function_privilege(p, 'EXECUTE'),
                        current_user::text
                   FROM pg_catalog.to_regprocedure('audit.wal_record(text, jsonb)') AS p",
                &[],
            )
            .await
            .map_err(db_error("looking for the WAL capture install"))?;
        let (installed, allowed, role): (bool, bool, String) = (row.get(0), row.get(1), row.get(2));
        if !installed {
            return Err(Error::NotInstalled(
                "this database has no WAL capture install: run audit-trail install --wal-capture"
                    .into(),
            ));
        }
        if !allowed {
            return Err(Error::PermissionDenied(format!(
                "role {role} may not write captured events: GRANT audit_capture TO {role}"
            )));
        }
        let written: Option<String> = writer
            .query_opt(
                "SELECT end_lsn::text FROM audit.capture_progress WHERE slot = $1",
                &[&slot],
            )
            .await
            .map_err(db_error("reading the captured position"))?
            .map(|r| r.get(0));
        let written = written
            .map(|t| t.parse::<Lsn>())
            .transpose()
            .map_err(|e| Error::Unexpected(format!("audit.capture_progress: {e}")))?
            .filter(|lsn| lsn.0 > 0);
        ensure_slot(&writer, slot, written).await?;
        Ok(Capture {
            reader,
            writer,
            slot: slot.to_owned(),
            batch,
            assembler: Assembler::default(),
            written,
        })
    }

    /// One round: read, write, commit, advance.
    pub async fn round(&mut self) -> Result<Round> {
        // Decoding reads only WAL on disk: the flushed position, never the written one (a
        // transaction committed asynchronously between the two would be skipped by the
        // advance below).
        let until: String = self
            .reader
            .query_one("SELECT pg_catalog.pg_current_wal_flush_lsn()::text", &[])
            .await
            .map_err(db_error("reading the WAL position"))?
            .get(0);
        let mut round = Round {
            until: until
                .parse()
                .map_err(|e| Error::Unexpected(format!("the WAL position {until}: {e}")))?,
            ..Round::default()
        };
        let mut messages = 0i64;
        let mut last_end: Option<Lsn> = None;
        self.writer
            .batch_execute("BEGIN")
            .await
            .map_err(db_error("starting to write events"))?;
        let stream = self
            .reader
            .query_raw(
                "SELECT data FROM pg_catalog.pg_logical_slot_peek_binary_changes(
                   $1, $2::text::pg_lsn, $3,
                   'proto_version', '1', 'publication_names', $4, 'messages', 'true')",
                [
                    &self.slot as &(dyn tokio_postgres::types::ToSql + Sync),
                    &until,
                    &self.batch,
                    &PUBLICATION,
                ],
            )
            .await
            .map_err(db_error("reading the slot"))?;
        pin_mut!(stream);
        let mut batcher = Batcher::new(PartLimits::default());
        while let Some(row) = stream
            .try_next()
            .await
            .map_err(db_error("reading the slot"))?
        {
            messages += 1;
            let bytes: &[u8] = row.get(0);
            let message =
                decode(bytes).map_err(|e| Error::Unexpected(format!("slot {}: {e}", self.slot)))?;
            let done = self
                .assembler
                .push(message)
                .map_err(|e| Error::Unexpected(format!("slot {}: {e}", self.slot)))?;
            if let Some(tx) = done {
                last_end = Some(tx.end_lsn);
                if self.written.is_some_and(|w| tx.end_lsn <= w) {
                    continue;
                }
                round.transactions += 1;
                for change in &tx.changes {
                    if let Some(part) = batcher.add_change(&tx, change) {
                        round.events += self.write(&part).await?;
                    }
                }
                batcher.complete(&tx);
            }
        }
        if let Some(part) = batcher.finish() {
            round.events += self.write(&part).await?;
        }
        self.writer
            .batch_execute("COMMIT")
            .await
            .map_err(db_error("committing events"))?;
        if let Some(end) = last_end {
            self.written = Some(self.written.map_or(end, |w| w.max(end)));
        }
        round.caught_up = messages < i64::from(self.batch);
        // Everything before `until` is written: the slot may forget it. Otherwise, up to the
        // last transaction read.
        let advance = if round.caught_up {
            Some(until.clone())
        } else {
            last_end.map(|l| l.to_string())
        };
        if let Some(to) = advance {
            self.reader
                .execute(
                    "SELECT pg_catalog.pg_replication_slot_advance($1, $2::text::pg_lsn)",
                    &[&self.slot, &to],
                )
                .await
                .map_err(db_error("advancing the slot"))?;
        }
        Ok(round)
    }

    /// The end of the WAL written so far (flushed or not).
    pub async fn inserted(&self) -> Result<Lsn> {
        let text: String = self
            .reader
            .query_one("SELECT pg_catalog.pg_current_wal_insert_lsn()::text", &[])
            .await
            .map_err(db_error("reading the WAL position"))?
            .get(0);
        text.parse()
            .map_err(|e| Error::Unexpected(format!("the WAL position {text}: {e}")))
    }

    async fn write(&self, part: &Part) -> Result<i64> {
        Ok(self
            .writer
            .query_one(
                "SELECT audit.wal_record($1, $2)",
                &[&self.slot, &part.batch],
            )
            .await
            .map_err(db_error("writing events"))?
            .get(0))
    }
}

/// Makes the slot when it is missing and nothing was captured through it; refuses a slot of
/// another plugin or database, and a missing slot that had captured (its changes since are
/// gone: a gap to be told, not papered over).
async fn ensure_slot(client: &Client, slot: &str, written: Option<Lsn>) -> Result<()> {
    let found = client
        .query_opt(
            "SELECT FROM pg_catalog.pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await
        .map_err(db_error("looking for the slot"))?;
    match found {
        Some(_) => check_slot(client, slot).await,
        None if written.is_some() => Err(Error::Unexpected(format!(
            "slot {slot} is gone, after events up to {} were captured through it: changes \
             committed since may be missing from the log",
            written.map(|w| w.to_string()).unwrap_or_default()
        ))),
        None => {
            client
                .execute(
                    "SELECT pg_catalog.pg_create_logical_replication_slot($1, 'pgoutput')",
                    &[&slot],
                )
                .await
                .map_err(db_error("making the slot"))?;
            tracing::info!("made logical replication slot {slot}");
            Ok(())
        }
    }
}

/// Refuses a slot of another plugin or database: slots are the server's, and another
/// database's changes are not this one's events.
pub async fn check_slot(client: &Client, slot: &str) -> Result<()> {
    let row = client
        .query_one(
            "SELECT plugin::text, database::text, database = pg_catalog.current_database()
               FROM pg_catalog.pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await
        .map_err(db_error("looking for the slot"))?;
    let (plugin, database, here): (Option<String>, Option<String>, Option<bool>) =
        (row.get(0), row.get(1), row.get(2));
    if plugin.as_deref() != Some("pgoutput") || here != Some(true) {
        return Err(Error::Usage(format!(
            "slot {slot} is a slot of {} (plugin {}), not a pgoutput slot of this database: \
             name another with --slot",
            database.as_deref().unwrap_or("no database"),
            plugin.as_deref().unwrap_or("none")
        )));
    }
    Ok(())
}

/// `audit-trail capture`.
pub async fn run(db_arg: Option<&str>, args: CaptureArgs) -> Result<()> {
    let target = db::resolve(db_arg, "audit-trail capture")?;
    let mut capture = Capture::open(&target, &args.slot, args.batch).await?;
    tracing::info!(slot = %args.slot, "capturing from {}", target.description);
    let stop = stop_signal();
    let mut total = (0usize, 0i64);
    // With --once: everything committed before now, once the server has flushed it.
    let goal = capture.inserted().await?;
    loop {
        let round = capture.round().await?;
        total.0 += round.transactions;
        total.1 += round.events;
        if round.transactions > 0 {
            tracing::debug!(
                transactions = round.transactions,
                events = round.events,
                "round written"
            );
        }
        if round.caught_up && args.once && round.until >= goal {
            eprintln!(
                "audit-trail: captured {} transaction{} ({} events)",
                total.0,
                if total.0 == 1 { "" } else { "s" },
                total.1
            );
            return Ok(());
        }
        if *stop.borrow() {
            return Ok(());
        }
        if round.caught_up {
            let mut stop = stop.clone();
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(args.poll_ms)) => {}
                _ = stop.changed() => return Ok(()),
            }
        }
    }
}

/// Turns true on SIGTERM or Ctrl-C: the round under way finishes first.
fn stop_signal() -> tokio::sync::watch::Receiver<bool> {
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        crate::follow::follower::wait_for_signal().await;
        let _ = tx.send(true);
    });
    rx
}
