//! The report: the summary line of an intact log, every finding as JSON, and the error a
//! violation ends the command with.

use serde::Serialize;

use super::finding::Finding;
use super::ReportFormat;
use crate::error::{Error, Result};
use crate::integrity::retention::PurgeEvent;

#[derive(Debug, Serialize)]
pub(super) struct Report {
    pub(super) intact: bool,
    pub(super) seals: i64,
    /// Sealed events read from audit.events.
    pub(super) events: i64,
    pub(super) sealed_through_id: Option<i64>,
    /// Sealed events absent from audit.events that retention notes say were dropped.
    pub(super) dropped_events: i64,
    /// The purge events that dropped sealed events, in chain order.
    pub(super) purges: Vec<PurgeEvent>,
    /// With --archive: what the archives vouched for.
    pub(super) archives: Option<ArchiveReport>,
    /// Seals some of whose events retention dropped, by the strength of their check.
    pub(super) seals_with_dropped_events: DroppedSeals,
    pub(super) findings: Vec<Finding>,
}

/// How the seals with dropped events were checked: in full when every dropped event was
/// found in an archive (the batch root recomputed from the full hashes of the remaining
/// and the archived events, a 256-bit check), else only each remaining (and archived)
/// event against its 8-byte digest prefix (a 64-bit check each).
#[derive(Debug, Default, Clone, Copy, Serialize)]
pub(super) struct DroppedSeals {
    pub(super) checked_in_full: i64,
    pub(super) checked_by_prefix: i64,
}

#[derive(Debug, Default, Clone, Copy, Serialize)]
pub(super) struct ArchiveReport {
    /// Parquet files read (each checked against its manifest first).
    pub(super) files: usize,
    pub(super) rows_read: u64,
    /// Dropped events found in an archive whose hash matched their seal.
    pub(super) dropped_verified: i64,
    /// Dropped events found in no archive given.
    pub(super) dropped_without_archive: i64,
}

impl Report {
    /// Writes the report on stdout: with JSON every finding, with text only an intact log's
    /// summary line (a violation is told by the error [`Report::outcome`] returns).
    pub(super) fn print(&self, format: ReportFormat) -> Result<()> {
        match format {
            ReportFormat::Json => {
                let json =
                    serde_json::to_string_pretty(self).map_err(Error::encoding("the report"))?;
                println!("{json}");
            }
            ReportFormat::Text if self.intact => println!(
                "audit-trail: intact: {} seals over {} events{}{}",
                self.seals,
                self.events,
                self.sealed_through_id
                    .map_or(String::new(), |id| format!(", sealed through event {id}")),
                retention_summary(self)
            ),
            ReportFormat::Text => {}
        }
        Ok(())
    }

    /// The command's result: the first finding as its error, with how many more there are.
    pub(super) fn outcome(&self) -> Result<()> {
        match self.findings.first() {
            None => Ok(()),
            Some(first) => {
                let more = self.findings.len() - 1;
                Err(Error::Integrity(if more > 0 {
                    format!(
                        "{} ({more} more findings: --format json lists them)",
                        first.message
                    )
                } else {
                    first.message.clone()
                }))
            }
        }
    }
}

/// The summary line's account of retention: how many sealed events were dropped, by which
/// purge events, and what the archives vouched for.
fn retention_summary(report: &Report) -> String {
    let mut out = String::new();
    if report.dropped_events > 0 || !report.purges.is_empty() {
        out.push_str(&format!("; {} dropped by retention", report.dropped_events));
        if !report.purges.is_empty() {
            let purges: Vec<String> = report.purges.iter().map(PurgeEvent::describe).collect();
            out.push_str(&format!(" ({})", purges.join("; ")));
        }
    }
    let seals = report.seals_with_dropped_events;
    if seals.checked_in_full + seals.checked_by_prefix > 0 {
        out.push_str(&format!(
            "; {} seals with dropped events: {} checked in full (batch root recomputed with the archives), {} by 8-byte digest prefixes only",
            seals.checked_in_full + seals.checked_by_prefix,
            seals.checked_in_full,
            seals.checked_by_prefix
        ));
    }
    if let Some(a) = &report.archives {
        out.push_str(&format!(
            "; {} dropped events verified from archives ({} files, {} rows read), {} dropped without an archive",
            a.dropped_verified, a.files, a.rows_read, a.dropped_without_archive
        ));
    }
    out
}
