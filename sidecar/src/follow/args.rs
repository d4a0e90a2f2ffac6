//! `follow`'s command line, and what it asks for: a status, a repositioning, or following.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::sink::{FileSink, Rotation, Sink};
use crate::error::{Error, Result};
use crate::export::Format;
use crate::timespec::{self, Bound};

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
    /// Deliver only this organization's events (the tenant column); the consumer's position
    /// still moves past every other event.
    #[arg(long, value_name = "TENANT", value_parser = non_empty)]
    pub tenant: Option<String>,
    /// Look for new events at least this often when no notification arrives.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub poll_seconds: u64,
}

pub(super) enum Mode {
    Status,
    Reposition(Option<chrono::DateTime<chrono::Utc>>, Option<Sink>),
    Follow(Sink),
}

impl FollowArgs {
    pub(super) fn mode(&self) -> Result<Mode> {
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

fn non_empty(value: &str) -> std::result::Result<String, String> {
    if value.is_empty() {
        Err("value must not be empty".into())
    } else {
        Ok(value.to_owned())
    }
}
