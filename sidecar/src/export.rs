//! `audit-trail export`: the filtered events as CSV or JSON lines, streamed from the database
//! to the output in constant memory, recorded as an `audit_log`/`export` event before the
//! first row leaves and an `audit_log`/`export_end` event once it ended.
//!
//! The same code serves the dashboard's Export button: an [`Encoder`] turns rows into bytes,
//! a [`ChunkSink`] takes them away (a file, stdout, an HTTP response).

use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures_util::{pin_mut, TryStreamExt};
use serde::Serialize;
use tokio_postgres::Client;

use crate::connections::Connections;
use crate::csv::CsvWriter;
use crate::error::{Error, Result};
use crate::event_row::{OutputEvent, TimeFormat, SELECT_EVENTS};
use crate::filters::Filters;
use crate::own_events::OnBehalf;
use audit_trail_contract::sidecar_actions;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Csv,
    Jsonl,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Csv => "text/csv; charset=utf-8",
            Format::Jsonl => "application/x-ndjson",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Jsonl => "jsonl",
        }
    }
}

#[derive(Debug, Clone)]
pub struct ExportRequest {
    pub filters: Filters,
    pub format: Format,
    pub bom: bool,
    pub times: TimeFormat,
    /// The export's own `audit_log`/`export` event, committed before its rows are read:
    /// left out of them (it is what the export did, not what it exports).
    pub record_id: Option<i64>,
}

/// Bytes flushed to the sink at a time.
const CHUNK: usize = 64 * 1024;

/// Turns records into output bytes, buffering up to about one chunk.
pub struct Encoder {
    kind: EncoderKind,
}

enum EncoderKind {
    Csv(CsvWriter),
    Jsonl { buffer: Vec<u8>, times: TimeFormat },
}

impl Encoder {
    pub fn new(request: &ExportRequest) -> std::io::Result<Encoder> {
        Encoder::with(request.format, request.bom, request.times)
    }

    /// An encoder for a format; a CSV one starts with its header row.
    pub fn with(format: Format, bom: bool, times: TimeFormat) -> std::io::Result<Encoder> {
        let kind = match format {
            Format::Csv => EncoderKind::Csv(CsvWriter::new(bom, times)),
            Format::Jsonl => EncoderKind::Jsonl {
                buffer: Vec::with_capacity(CHUNK),
                times,
            },
        };
        Ok(Encoder { kind })
    }

    pub fn push(&mut self, event: &OutputEvent) -> std::io::Result<()> {
        match &mut self.kind {
            EncoderKind::Csv(w) => {
                w.write(event);
                Ok(())
            }
            EncoderKind::Jsonl { buffer, times } => {
                let line = event.to_json_line(times).map_err(std::io::Error::other)?;
                buffer.extend_from_slice(line.as_bytes());
                buffer.push(b'\n');
                Ok(())
            }
        }
    }

    /// Whatever is encoded so far, removed from the buffer.
    pub fn take(&mut self) -> std::io::Result<Vec<u8>> {
        match &mut self.kind {
            EncoderKind::Csv(w) => Ok(w.take()),
            EncoderKind::Jsonl { buffer, .. } => Ok(std::mem::take(buffer)),
        }
    }

    pub fn buffered(&self) -> usize {
        match &self.kind {
            EncoderKind::Csv(w) => w.buffered(),
            EncoderKind::Jsonl { buffer, .. } => buffer.len(),
        }
    }
}

/// Where encoded bytes go.
pub trait ChunkSink {
    fn send(&mut self, chunk: Vec<u8>) -> impl Future<Output = std::io::Result<()>> + Send;
}

/// Reports rows so far on stderr, for exports run in a terminal.
pub struct Progress {
    enabled: bool,
    started: Instant,
    last: Instant,
    shown: bool,
}

impl Progress {
    pub fn new(enabled: bool) -> Progress {
        let now = Instant::now();
        Progress {
            enabled,
            started: now,
            last: now,
            shown: false,
        }
    }

    fn tick(&mut self, rows: u64) {
        if !self.enabled || self.last.elapsed() < Duration::from_millis(250) {
            return;
        }
        let elapsed = self.started.elapsed();
        if elapsed < Duration::from_secs(1) {
            return;
        }
        self.last = Instant::now();
        self.shown = true;
        let rate = rows as f64 / elapsed.as_secs_f64();
        eprint!("\r\x1b[2K{rows} events exported ({rate:.0}/s)");
    }

    fn done(&self) {
        if self.shown {
            eprint!("\r\x1b[2K");
        }
    }
}

/// Streams the filtered events through `encoder` into `sink`, inside one read-only,
/// repeatable-read transaction so the export is one consistent snapshot. Returns the count.
pub async fn stream_events(
    client: &mut Client,
    request: &ExportRequest,
    sink: &mut impl ChunkSink,
    progress: &mut Progress,
) -> Result<u64> {
    let mut sent = 0;
    stream_counting(client, request, sink, progress, &mut sent).await?;
    Ok(sent)
}

/// As [`stream_events`], counting in `sent` the rows handed to the sink so far (an upper
/// bound of what left), which a caller still knows when the export fails half-way.
pub async fn stream_counting(
    client: &mut Client,
    request: &ExportRequest,
    sink: &mut impl ChunkSink,
    progress: &mut Progress,
    sent: &mut u64,
) -> Result<()> {
    let mut encoder = Encoder::new(request).map_err(Error::Output)?;
    let tx = crate::db::read_snapshot(client)
        .await
        .map_err(|e| Error::database("starting the export", &e))?;
    let mut condition = request.filters.condition();
    if let Some(id) = request.record_id {
        condition = condition.except_id(id);
    }
    let sql = format!(
        "{SELECT_EVENTS}{} ORDER BY events.occurred_at, events.id",
        condition.sql
    );
    let rows = tx
        .query_raw(&sql, condition.param_refs())
        .await
        .map_err(|e| Error::database("reading audit.events", &e))?;
    pin_mut!(rows);
    let mut count = 0u64;
    *sent = 0;
    while let Some(row) = rows
        .try_next()
        .await
        .map_err(|e| Error::database("reading audit.events", &e))?
    {
        let event =
            OutputEvent::from_row(&row).map_err(|e| Error::database("decoding an event", &e))?;
        encoder.push(&event).map_err(Error::Output)?;
        count += 1;
        if encoder.buffered() >= CHUNK {
            // Counted before sending: once the sink has them, some may have left even if
            // the send then fails, and an audit record errs on the side of more.
            *sent = count;
            sink.send(encoder.take().map_err(Error::Output)?)
                .await
                .map_err(Error::Output)?;
            progress.tick(count);
        }
    }
    *sent = count;
    sink.send(encoder.take().map_err(Error::Output)?)
        .await
        .map_err(Error::Output)?;
    progress.done();
    tx.commit()
        .await
        .map_err(|e| Error::database("finishing the export", &e))?;
    Ok(())
}

/// What the record of an export says before its first row leaves.
#[derive(Serialize)]
struct ExportStarted<'a> {
    format: Format,
    /// The events matching the filters when the export began: what it is about to send.
    rows: u64,
    filters: &'a Filters,
    via: &'a str,
    status: &'static str,
}

/// How an export ended, recorded after its last row (or once it was cut off).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Every row went out.
    Complete,
    /// The reader stopped taking rows (a closed pipe, a browser that cancelled).
    CutOff,
    /// Reading or writing failed.
    Failed,
}

impl Ending {
    fn as_str(self) -> &'static str {
        match self {
            Ending::Complete => "complete",
            Ending::CutOff => "cut_off",
            Ending::Failed => "failed",
        }
    }

    /// How a failed export ended: a reader that went away cut it off.
    pub fn of(error: &Error) -> Ending {
        match error {
            Error::Output(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ending::CutOff,
            _ => Ending::Failed,
        }
    }
}

/// An export's two records: the `audit_log`/`export` event, committed before the first row
/// leaves (with the filters and how many events match them), and the `audit_log`/
/// `export_end` event saying how it ended. Both are attributed to the connected role: the
/// dashboard connects as the signed-in person's own role, so the database names who
/// exported without the sidecar saying so. A reader cut off after the first record cannot
/// take rows unrecorded, and the mass-export rules count the first.
pub struct ExportRecord {
    id: i64,
    via: String,
    /// A token viewer the export is for (the dashboard's embed, the API): named as its actor.
    on_behalf: Option<OnBehalf>,
}

impl ExportRecord {
    /// Counts what the export will send (in `reader`, the database it reads) and records it
    /// through `recorder` (the same database, or the primary when that is a standby).
    pub async fn start(
        reader: &Client,
        recorder: &Client,
        request: &ExportRequest,
        via: &str,
    ) -> Result<ExportRecord> {
        ExportRecord::start_for(reader, recorder, request, via, None).await
    }

    /// As [`ExportRecord::start`], both records naming `on_behalf` as the actor.
    pub async fn start_for(
        reader: &Client,
        recorder: &Client,
        request: &ExportRequest,
        via: &str,
        on_behalf: Option<OnBehalf>,
    ) -> Result<ExportRecord> {
        let condition = request.filters.condition();
        let counting = |e: tokio_postgres::Error| Error::database("counting the export", &e);
        let rows: i64 = reader
            .query_one(
                &format!(
                    "SELECT pg_catalog.count(*) FROM audit.events{}",
                    condition.sql
                ),
                &condition.param_refs(),
            )
            .await
            .map_err(counting)?
            .get(0);
        let details = serde_json::to_value(ExportStarted {
            format: request.format,
            rows: u64::try_from(rows).unwrap_or(0),
            filters: &request.filters,
            via,
            status: "started",
        })
        .map_err(Error::encoding("export details"))?;
        let id = record(
            recorder,
            via,
            sidecar_actions::EXPORT,
            &details,
            on_behalf.as_ref(),
        )
        .await?;
        Ok(ExportRecord {
            id,
            via: via.to_owned(),
            on_behalf,
        })
    }

    /// The request with this record left out of its rows.
    pub fn leave_out(&self, request: &ExportRequest) -> ExportRequest {
        ExportRequest {
            record_id: Some(self.id),
            ..request.clone()
        }
    }

    /// Records how the export ended: the rows handed to the reader, and whether all of them.
    pub async fn end(&self, recorder: &Client, rows: u64, ending: Ending) -> Result<i64> {
        let details = serde_json::json!({
            "export": self.id,
            "rows": rows,
            "complete": ending == Ending::Complete,
            "status": ending.as_str(),
        });
        record(
            recorder,
            &self.via,
            sidecar_actions::EXPORT_END,
            &details,
            self.on_behalf.as_ref(),
        )
        .await
    }
}

/// Records one of the export's own events, committed (one statement, its own transaction),
/// with `audit.source` the way it ran.
async fn record(
    client: &Client,
    via: &str,
    action: &str,
    details: &serde_json::Value,
    on_behalf: Option<&OnBehalf>,
) -> Result<i64> {
    crate::own_events::record_for(client, action, via, details, on_behalf)
        .await
        .map_err(|e| Error::database("recording the export", &e))
}

struct WriterSink<W: Write + Send>(W);

impl<W: Write + Send> ChunkSink for WriterSink<W> {
    async fn send(&mut self, chunk: Vec<u8>) -> std::io::Result<()> {
        self.0.write_all(&chunk)
    }
}

/// Exports to a file or (without one) stdout, recorded before its first row and again when
/// it ends ([`ExportRecord`]). A file is written under a temporary name in the same
/// directory, synced, and renamed into place only once the export is complete and its end
/// recorded: a failed export never leaves a file that looks finished. The export is read
/// from `connections.reader` and recorded through `connections.writer()`, between its reads.
pub async fn run(
    connections: &mut Connections,
    request: &ExportRequest,
    output: Option<&Path>,
    progress: bool,
) -> Result<u64> {
    let mut progress = Progress::new(progress);
    match output {
        None => {
            // The records are single statements between the read's transactions (through the
            // reader itself when there is no --record-db).
            let record =
                ExportRecord::start(&connections.reader, connections.writer(), request, "cli")
                    .await?;
            let request = record.leave_out(request);
            let mut sink = WriterSink(std::io::BufWriter::new(std::io::stdout()));
            let mut sent = 0;
            let result = stream_counting(
                &mut connections.reader,
                &request,
                &mut sink,
                &mut progress,
                &mut sent,
            )
            .await;
            let flushed = sink.0.flush().map_err(Error::Output);
            match result.and(flushed) {
                Ok(()) => {
                    record
                        .end(connections.writer(), sent, Ending::Complete)
                        .await?;
                    Ok(sent)
                }
                Err(e) => {
                    // Rows may have gone out (a closed pipe, an interrupted read): say how
                    // the export ended, if the database allows.
                    let _ = record.end(connections.writer(), sent, Ending::of(&e)).await;
                    Err(e)
                }
            }
        }
        Some(path) => {
            let dir = match path.parent() {
                Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                _ => PathBuf::from("."),
            };
            let file_error = |source| Error::File {
                path: path.to_path_buf(),
                source,
            };
            // Created 0600: the audit log is sensitive.
            let temp = tempfile::Builder::new()
                .prefix(".audit-trail-export-")
                .tempfile_in(&dir)
                .map_err(file_error)?;
            let record =
                ExportRecord::start(&connections.reader, connections.writer(), request, "cli")
                    .await?;
            let request = record.leave_out(request);
            let mut sink = WriterSink(std::io::BufWriter::new(temp.as_file()));
            let written = async {
                let rows =
                    stream_events(&mut connections.reader, &request, &mut sink, &mut progress)
                        .await?;
                sink.0.flush().map_err(file_error)?;
                temp.as_file().sync_all().map_err(file_error)?;
                Ok::<u64, Error>(rows)
            }
            .await;
            drop(sink);
            let rows = match written {
                Ok(rows) => rows,
                Err(e) => {
                    // Nothing left the process: the temporary file goes with the error.
                    let _ = record.end(connections.writer(), 0, Ending::Failed).await;
                    return Err(e);
                }
            };
            record
                .end(connections.writer(), rows, Ending::Complete)
                .await?;
            temp.persist(path).map_err(|e| file_error(e.error))?;
            Ok(rows)
        }
    }
}
