//! Command-line arguments, and their validation into the typed requests commands run.

use std::io::IsTerminal;
use std::path::PathBuf;

use chrono::Utc;
use chrono_tz::Tz;
use clap::{Args, Parser, Subcommand};

use crate::error::{Error, Result};
use crate::event_row::TimeFormat;
use crate::export::{ExportRequest, Format};
use crate::filters::Filters;
use crate::logging::LogFormat;
use crate::timespec::{self, Bound};

#[derive(Debug, Parser)]
#[command(
    name = "audit-trail",
    version,
    about = "Read the audit_trail log: export it, follow it, browse it.",
    after_help = "Connection: --db, else DATABASE_URL, else PGHOST PGPORT PGUSER PGPASSWORD PGDATABASE;\n\
                  a password from PGPASSFILE (else ~/.pgpass) when none is given.\n\
                  Against a hot standby, give the primary as --record-db for what commands write.\n\
                  Exit codes: 0 success, 2 bad usage or input, 3 permission denied, 4 integrity\n\
                  violation found by verify or archive --check, 1 anything else."
)]
pub struct Cli {
    /// Connection string: a postgresql:// URL or libpq key=value pairs.
    #[arg(long, global = true, value_name = "CONNINFO")]
    pub db: Option<String>,

    /// Where commands write (export records, follow cursors, the dashboard's export
    /// records) when --db is a read-only hot standby: the primary. Without it, writes go to
    /// --db.
    #[arg(
        long,
        global = true,
        value_name = "CONNINFO",
        env = "AUDIT_TRAIL_RECORD_DB",
        hide_env_values = true
    )]
    pub record_db: Option<String>,

    /// How progress and service logs are written on stderr: text lines, or JSON lines for a
    /// log collector. What is logged: AUDIT_TRAIL_LOG (info by default; warn, debug, ...).
    #[arg(
        long,
        global = true,
        value_enum,
        default_value_t = LogFormat::Text,
        env = "AUDIT_TRAIL_LOG_FORMAT"
    )]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write the filtered audit events as CSV (or JSON lines) to a file or stdout.
    Export(ExportArgs),
    /// Stream committed events, in commit-safe order, from a durable per-consumer cursor.
    Follow(crate::follow::FollowArgs),
    /// Evaluate alert rules over the committed event stream; record and deliver alerts.
    Alert(crate::alert::AlertArgs),
    /// Serve the Audit Log dashboard.
    Serve(crate::web::ServeArgs),
    /// Write closed partitions of the log as Parquet with manifests (or --check them).
    Archive(crate::archive::ArchiveArgs),
    /// Run audit.maintain() once (partitions ahead, retention) and print what it did.
    Maintain(crate::maintain::MaintainArgs),
    /// Put back what one event or one transaction changed, as this role; --dry-run shows it.
    Revert(crate::revert::RevertArgs),
    /// Install audit_trail as plain SQL for capture from the WAL (--wal-capture), where the
    /// extension cannot be installed (managed PostgreSQL).
    Install(crate::capture::install::InstallArgs),
    /// Write the events of tracked tables' committed changes from the WAL (a WAL capture
    /// install), advancing the slot once they are committed.
    Capture(crate::capture::service::CaptureArgs),
    /// Make an Ed25519 key for sealing: KEYFILE (secret) and KEYFILE.pub.
    Keygen(crate::integrity::KeygenArgs),
    /// Seal committed events into the signed hash chain and write checkpoints.
    Seal(crate::integrity::seal::SealArgs),
    /// Check the events and seals against the given public key(s); exit 4 on any change.
    Verify(crate::integrity::verify::VerifyArgs),
}

/// The event filters shared by every command that reads events.
#[derive(Debug, Args, Default)]
pub struct FilterArgs {
    /// Events at or after this time: RFC 3339, a date (2026-11-25), or relative (7d, 12h, 30m).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Events before this time (a bare date includes that whole day).
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// Only events by this actor (repeatable).
    #[arg(long = "actor", value_name = "ACTOR")]
    pub actors: Vec<String>,
    /// Only events about this entity: contact, group, user, ... (repeatable).
    #[arg(long = "entity", value_name = "ENTITY")]
    pub entities: Vec<String>,
    /// Only this action: create, update, delete, truncate, export, ... (repeatable).
    #[arg(long = "action", value_name = "ACTION")]
    pub actions: Vec<String>,
    /// No events of this action (repeatable): `--entity contact --except-action export` is
    /// the report's contact changes.
    #[arg(long = "except-action", value_name = "ACTION")]
    pub except_actions: Vec<String>,
    /// Only changes to this table, schema-qualified as in table_name (crm.contacts).
    #[arg(long, value_name = "TABLE")]
    pub table: Option<String>,
    /// Only events about this subject id.
    #[arg(long, value_name = "ID")]
    pub subject: Option<String>,
    /// Only events from this source: manual, import, api, ...
    #[arg(long, value_name = "SOURCE")]
    pub source: Option<String>,
    /// Only one organization's events (the tenant column of audit.events).
    #[arg(long, value_name = "TENANT")]
    pub tenant: Option<String>,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub filters: FilterArgs,
    /// Output format.
    #[arg(long, value_enum, default_value = "csv")]
    pub format: Format,
    /// Write to this file (replaced only when the export succeeds) instead of stdout.
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Start the CSV with a UTF-8 byte-order mark, for Excel.
    #[arg(long)]
    pub bom: bool,
    /// Write times in this zone (IANA name, or "local") instead of UTC; also the zone of
    /// dates and times given without an offset.
    #[arg(long, value_name = "ZONE")]
    pub tz: Option<String>,
}

impl FilterArgs {
    pub fn to_filters(&self, zone: Option<Tz>) -> Result<Filters> {
        let now = Utc::now();
        let zone = zone.unwrap_or(Tz::UTC);
        let time = |flag, value: &Option<String>, bound| {
            value
                .as_deref()
                .map(|v| timespec::parse(flag, v, bound, now, zone))
                .transpose()
                .map_err(|e| Error::Usage(e.to_string()))
        };
        let non_empty = |flag: &str, values: &[String]| -> Result<Vec<String>> {
            values
                .iter()
                .map(|v| {
                    let v = v.trim();
                    if v.is_empty() {
                        Err(Error::Usage(format!("{flag}: value must not be empty")))
                    } else {
                        Ok(v.to_owned())
                    }
                })
                .collect()
        };
        let one = |flag: &str, value: &Option<String>| -> Result<Option<String>> {
            Ok(non_empty(flag, value.as_slice())?.into_iter().next())
        };
        let filters = Filters {
            since: time("--since", &self.since, Bound::Start)?,
            until: time("--until", &self.until, Bound::End)?,
            actors: non_empty("--actor", &self.actors)?,
            entities: non_empty("--entity", &self.entities)?,
            actions: non_empty("--action", &self.actions)?,
            except_actions: non_empty("--except-action", &self.except_actions)?,
            table: one("--table", &self.table)?,
            subject: one("--subject", &self.subject)?,
            source: one("--source", &self.source)?,
            tenant: one("--tenant", &self.tenant)?,
        };
        filters.validate()?;
        Ok(filters)
    }
}

impl ExportArgs {
    pub fn to_request(&self) -> Result<ExportRequest> {
        let zone = self
            .tz
            .as_deref()
            .map(timespec::parse_zone)
            .transpose()
            .map_err(Error::Usage)?;
        if self.bom && self.format != Format::Csv {
            return Err(Error::Usage("--bom applies only to --format csv".into()));
        }
        Ok(ExportRequest {
            filters: self.filters.to_filters(zone)?,
            format: self.format,
            bom: self.bom,
            times: TimeFormat { zone },
            record_id: None,
        })
    }

    /// The output file, None for stdout (`-o -` also means stdout).
    pub fn output_path(&self) -> Option<&std::path::Path> {
        self.output.as_deref().filter(|p| p.as_os_str() != "-")
    }

    pub fn show_progress(&self) -> bool {
        std::io::stderr().is_terminal()
    }
}
