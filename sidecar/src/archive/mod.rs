//! `audit-trail archive` (docs/archive.md).
//!
//! `archive` writes each closed, not yet archived partition of `audit.events` as Parquet in a
//! Hive layout, one file (or numbered parts) per UTC month the partition holds rows for, in
//! that month's directory (`DIR/year=2026/month=02/events_20260101.parquet`), with one
//! manifest in the directory of its first month, then records it with `audit.record_archive`,
//! which holds the rows written (their count, and the digest of their canonical hashes) to
//! the partition's own.
//! The order makes a partition's record the last thing to happen: retention may drop an
//! archived partition, so the record must never exist without durable files. Files appear
//! under their final names only once complete and synced; the manifest comes after them;
//! and if the record is refused, the files just placed are removed again.
//!
//! `archive --check DIR` holds the files under DIR to their manifests, without a database.

pub mod manifest;
pub mod parquet;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use clap::Args;
use futures_util::{pin_mut, TryStreamExt};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, IsolationLevel};

use crate::db;
use crate::error::{Error, Result};
use crate::integrity::archived;
use crate::timespec::{self, Bound};
use audit_trail_contract::chain::ArchiveDigest;
use manifest::{DatabaseIdentity, Layout, Manifest, ManifestFile, SCHEMA_VERSION};
use parquet::{ArchiveRow, Month, MonthFile, MonthlyWriter, DEFAULT_MAX_FILE_BYTES};

#[derive(Debug, Args)]
pub struct ArchiveArgs {
    /// Write the archives under this existing directory, as
    /// year=YYYY/month=MM/events_YYYYMMDD.parquet (one per month a partition has rows for),
    /// with a .manifest.json per partition in its first month's directory.
    // Not `required` in clap: its message for a missing argument is two lines, and the
    // binary prints one (see `run`).
    #[arg(long, value_name = "DIR", conflicts_with = "check")]
    pub output_dir: Option<PathBuf>,

    /// Only partitions that end at or before this time: a date (its midnight, UTC), RFC 3339,
    /// or relative (90d).
    #[arg(long, value_name = "DATE")]
    pub before: Option<String>,

    /// Only this partition (repeatable): audit.events_20260101, or events_20260101.
    #[arg(long = "partition", value_name = "NAME")]
    pub partitions: Vec<String>,

    /// Check the archives under DIR against their manifests (size, SHA-256, row count) and
    /// exit 4 naming the first file missing, truncated or altered. Needs no database.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["before", "partitions"])]
    pub check: Option<PathBuf>,

    /// Split a partition's archive into numbered parts past this many bytes.
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_FILE_BYTES, hide = true)]
    pub max_file_bytes: u64,
}

/// A partition as `audit.partitions` lists it.
#[derive(Debug, Clone)]
struct Partition {
    name: String,
    /// None for `-infinity`: the partition an upgrade from 0.1.0 attached, FROM (MINVALUE).
    from_time: Option<DateTime<Utc>>,
    /// None for `infinity` (and the default partition).
    to_time: Option<DateTime<Utc>>,
    is_default: bool,
    closed: bool,
    archived: bool,
}

/// The events of one partition, in the order they are archived (which the month split
/// follows). Parameters, never text: the bounds come from the database, but nothing read is
/// ever spliced into SQL.
macro_rules! select_events {
    ($range:literal) => {
        concat!(
            "SELECT id, occurred_at, actor, db_user, source, entity, action, \
             subject_id, table_name, changed_fields, old_data::text, new_data::text, \
             pg_catalog.host(client_addr), application_name, context::text, details::text, \
             txid::text FROM audit.events WHERE ",
            $range,
            " ORDER BY occurred_at, id"
        )
    };
}
const SELECT_RANGE: &str = select_events!("occurred_at >= $1 AND occurred_at < $2");
/// A partition without a start (FROM (MINVALUE), from the upgrade from 0.1.0): no other
/// partition holds rows before its end, and the default partition holds none a partition
/// covers.
const SELECT_BEFORE: &str = select_events!("occurred_at < $1");

fn archive_row(row: &tokio_postgres::Row) -> Result<ArchiveRow> {
    let decode = |e: tokio_postgres::Error| Error::database("decoding an event", &e);
    let txid: String = row.try_get(16).map_err(decode)?;
    let txid = txid
        .parse::<u64>()
        .ok()
        .and_then(|t| i64::try_from(t).ok())
        .ok_or_else(|| Error::Other(format!("txid {txid} does not fit a signed 64-bit integer")))?;
    Ok(ArchiveRow {
        id: row.try_get(0).map_err(decode)?,
        occurred_at: row.try_get(1).map_err(decode)?,
        actor: row.try_get(2).map_err(decode)?,
        db_user: row.try_get(3).map_err(decode)?,
        source: row.try_get(4).map_err(decode)?,
        entity: row.try_get(5).map_err(decode)?,
        action: row.try_get(6).map_err(decode)?,
        subject_id: row.try_get(7).map_err(decode)?,
        table_name: row.try_get(8).map_err(decode)?,
        changed_fields: row.try_get(9).map_err(decode)?,
        old_data: row.try_get(10).map_err(decode)?,
        new_data: row.try_get(11).map_err(decode)?,
        client_addr: row.try_get(12).map_err(decode)?,
        application_name: row.try_get(13).map_err(decode)?,
        context: row.try_get(14).map_err(decode)?,
        details: row.try_get(15).map_err(decode)?,
        txid,
    })
}

/// `--before`, read as the other commands read times (a bare date is its midnight in UTC).
fn parse_before(text: &str) -> Result<DateTime<Utc>> {
    timespec::parse("--before", text, Bound::Start, Utc::now(), Tz::UTC)
        .map_err(|e| Error::Usage(e.to_string()))
}

/// Refuses (exit 2) an output directory that is missing, not a directory, or not writable,
/// before anything is read: a bad path must not cost a partition's worth of reading.
fn check_output_dir(dir: &Path) -> Result<PathBuf> {
    let flag = |what: String| Error::Usage(format!("--output-dir {}: {what}", dir.display()));
    let meta = std::fs::metadata(dir).map_err(|e| flag(e.to_string()))?;
    if !meta.is_dir() {
        return Err(flag("not a directory".into()));
    }
    // A real attempt answers for permissions, read-only mounts and ACLs alike.
    tempfile::Builder::new()
        .prefix(".audit-trail-probe-")
        .tempfile_in(dir)
        .map_err(|e| flag(format!("cannot write there: {e}")))?;
    std::fs::canonicalize(dir).map_err(|e| flag(e.to_string()))
}

/// The database the connection reads: its cluster's system identifier (a standby's is its
/// primary's) and its name.
pub async fn database_identity(client: &Client) -> Result<DatabaseIdentity> {
    let row = client
        .query_one(
            "SELECT system_identifier::text, pg_catalog.current_database()::text \
               FROM pg_catalog.pg_control_system()",
            &[],
        )
        .await
        .map_err(|e| Error::database("reading the database's identity", &e))?;
    let decode = |e: tokio_postgres::Error| Error::database("reading the database's identity", &e);
    Ok(DatabaseIdentity {
        system_identifier: row.try_get(0).map_err(decode)?,
        name: row.try_get(1).map_err(decode)?,
    })
}

/// Refuses to write where another database's archive of a partition of the same name lies:
/// a manifest there that names another database (or none: written before archives were
/// kept per database, by whichever database it was). One of this database's own is replaced
/// (the partition is archived again: it changed, or its record was never made).
fn refuse_another_databases(manifest_path: &Path, ours: &DatabaseIdentity) -> Result<()> {
    let text = match std::fs::read(manifest_path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(Error::File {
                path: manifest_path.to_path_buf(),
                source,
            })
        }
    };
    let theirs = serde_json::from_slice::<Manifest>(&text)
        .ok()
        .and_then(|m| m.database);
    match theirs {
        Some(theirs) if &theirs == ours => Ok(()),
        other => Err(Error::Other(format!(
            "{} holds an archive of {}, not of this {ours}: not overwritten (archive each \
             database into a directory of its own)",
            manifest_path.display(),
            other.map_or_else(|| "an unnamed database".to_owned(), |d| d.to_string())
        ))),
    }
}

/// `audit.events_20260101` for `events_20260101`.
fn qualified(name: &str) -> String {
    if name.contains('.') {
        name.to_owned()
    } else {
        format!("audit.{name}")
    }
}

async fn list_partitions(client: &Client) -> Result<Vec<Partition>> {
    let rows = client
        .query(
            // A partition attached by an upgrade from 0.1.0 starts at -infinity, which no
            // chrono time holds: such a bound reads as NULL, and the partition's months are
            // those of its rows.
            "SELECT partition, \
                    CASE WHEN pg_catalog.isfinite(from_time) THEN from_time END, \
                    CASE WHEN pg_catalog.isfinite(to_time) THEN to_time END, \
                    is_default, closed, archived \
               FROM audit.partitions ORDER BY is_default, from_time, partition",
            &[],
        )
        .await
        .map_err(|e| {
            if e.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE) {
                Error::Other(
                    "this database's audit_trail has no audit.partitions: update it \
                     (ALTER EXTENSION audit_trail UPDATE)"
                        .into(),
                )
            } else {
                Error::database("listing partitions", &e)
            }
        })?;
    rows.iter()
        .map(|r| {
            let decode = |e: tokio_postgres::Error| Error::database("listing partitions", &e);
            Ok(Partition {
                name: r.try_get(0).map_err(decode)?,
                from_time: r.try_get(1).map_err(decode)?,
                to_time: r.try_get(2).map_err(decode)?,
                is_default: r.try_get(3).map_err(decode)?,
                closed: r.try_get(4).map_err(decode)?,
                archived: r.try_get(5).map_err(decode)?,
            })
        })
        .collect()
}

/// The partitions to archive, oldest first. Named partitions that cannot be archived are
/// refused (exit 2) before anything is written; named ones already archived are skipped
/// with a note.
fn select(
    all: &[Partition],
    names: &[String],
    before: Option<DateTime<Utc>>,
) -> Result<Vec<Partition>> {
    let fits_before = |p: &Partition| match (before, p.to_time) {
        (None, _) => true,
        (Some(b), Some(t)) => t <= b,
        (Some(_), None) => false,
    };
    // A closed partition has an end; only its start may be -infinity (0.1.0's partition).
    let bounded = |p: &Partition| p.to_time.is_some();
    if names.is_empty() {
        return Ok(all
            .iter()
            .filter(|p| !p.is_default && p.closed && !p.archived && fits_before(p) && bounded(p))
            .cloned()
            .collect());
    }
    let mut chosen: Vec<Partition> = Vec::new();
    for name in names {
        let name = qualified(name.trim());
        let p = all.iter().find(|p| p.name == name).ok_or_else(|| {
            Error::Usage(format!(
                "--partition {name}: no such partition (see audit.partitions)"
            ))
        })?;
        if p.is_default {
            return Err(Error::Usage(format!(
                "--partition {name}: the default partition is never archived (audit.maintain() \
                 moves its rows into partitions of their own)"
            )));
        }
        if !p.closed {
            return Err(Error::Usage(format!(
                "--partition {name}: still open (it ends {})",
                p.to_time.map_or_else(|| "never".into(), |t| t.to_rfc3339())
            )));
        }
        if !bounded(p) {
            return Err(Error::Usage(format!(
                "--partition {name}: has no end; cannot be archived"
            )));
        }
        if p.archived {
            eprintln!("audit-trail: {name} is already archived; skipped");
            continue;
        }
        if !fits_before(p) {
            eprintln!("audit-trail: {name} ends after --before; skipped");
            continue;
        }
        if !chosen.iter().any(|c| c.name == p.name) {
            chosen.push(p.clone());
        }
    }
    chosen.sort_by_key(|p| p.from_time);
    Ok(chosen)
}

/// What one partition's archive came to.
struct Archived {
    rows: u64,
    bytes: u64,
    files: usize,
}

/// Writes a file under a temporary name in `dir`, syncs it and renames it to `name`.
fn write_durably(dir: &Path, name: &str, contents: &[u8]) -> Result<PathBuf> {
    let target = dir.join(name);
    let file_error = |source| Error::File {
        path: target.clone(),
        source,
    };
    let mut temp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(file_error)?;
    temp.write_all(contents).map_err(file_error)?;
    temp.as_file().sync_all().map_err(file_error)?;
    temp.persist(&target).map_err(|e| file_error(e.error))?;
    parquet::sync_dir(dir).map_err(file_error)?;
    Ok(target)
}

fn write_error(e: parquet::WriteError) -> Error {
    Error::Other(format!("writing the archive: {e}"))
}

/// Archives one partition: read from `client`, recorded through `record` (the primary, when
/// `client` is a standby), else through `client` once its read has ended.
async fn archive_partition(
    client: &mut Client,
    record: Option<&mut Client>,
    root: &Path,
    identity: &DatabaseIdentity,
    partition: &Partition,
    max_file_bytes: u64,
) -> Result<Archived> {
    let Some(to_time) = partition.to_time else {
        return Err(Error::Other(format!(
            "{}: a partition without an end cannot be archived",
            partition.name
        )));
    };
    // Checked before anything is read or written.
    Layout::of(&partition.name, to_time)?;

    // One repeatable-read snapshot: the files hold exactly what one moment of the partition
    // held, which is what audit.record_archive then counts again.
    let tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .map_err(|e| Error::database("starting the archive read", &e))?;
    // The partition's first month: that of its start, or, for the partition without one
    // (0.1.0's), that of its oldest row (of its last month when it has none). The manifest's
    // from_time is that month's start: no row of the partition is older.
    let from_time = match partition.from_time {
        Some(t) => t,
        None => {
            let oldest: Option<DateTime<Utc>> = tx
                .query_one(
                    "SELECT min(occurred_at) FROM audit.events WHERE occurred_at < $1",
                    &[&to_time],
                )
                .await
                .map_err(|e| Error::database("reading audit.events", &e))?
                .try_get(0)
                .map_err(|e| Error::database("reading audit.events", &e))?;
            let last = to_time - chrono::Duration::microseconds(1);
            Month::of(oldest.unwrap_or(last)).start()
        }
    };
    let layout = Layout::of(&partition.name, from_time)?;
    let dir = root.join(&layout.dir);
    refuse_another_databases(&dir.join(layout.manifest_name()), identity)?;
    std::fs::create_dir_all(&dir).map_err(|source| Error::File {
        path: dir.clone(),
        source,
    })?;
    let writer = MonthlyWriter::new(root, &layout.stem, layout.month, max_file_bytes);

    // Encoding runs on a thread of its own, fed through a short queue: while it compresses
    // a row group, rows keep arriving, so the server never waits on a full socket. The
    // queue bounds the rows in flight to CHUNK_ROWS * QUEUED_CHUNKS.
    let (sender, mut receiver) = tokio::sync::mpsc::channel::<Vec<ArchiveRow>>(QUEUED_CHUNKS);
    let encoder = tokio::task::spawn_blocking(move || {
        let mut writer = writer;
        while let Some(chunk) = receiver.blocking_recv() {
            for row in &chunk {
                writer.push(row)?;
            }
        }
        writer.finish()?;
        Ok::<_, parquet::WriteError>(writer)
    });

    let read = async {
        let rows = match partition.from_time {
            Some(from_time) => {
                let params: [&(dyn ToSql + Sync); 2] = [&from_time, &to_time];
                tx.query_raw(SELECT_RANGE, params).await
            }
            None => {
                let params: [&(dyn ToSql + Sync); 1] = [&to_time];
                tx.query_raw(SELECT_BEFORE, params).await
            }
        }
        .map_err(|e| Error::database("reading audit.events", &e))?;
        pin_mut!(rows);
        let mut count = 0u64;
        let mut first_id: Option<i64> = None;
        let mut last_id: Option<i64> = None;
        // Over the rows as written, in the order written: what audit.record_archive holds
        // to the partition's own digest.
        let mut digest = ArchiveDigest::new();
        let mut chunk = Vec::with_capacity(CHUNK_ROWS);
        while let Some(row) = rows
            .try_next()
            .await
            .map_err(|e| Error::database("reading audit.events", &e))?
        {
            let event = archive_row(&row)?;
            digest.push(&archived::row_hash(&event));
            first_id = Some(first_id.map_or(event.id, |f| f.min(event.id)));
            last_id = Some(last_id.map_or(event.id, |l| l.max(event.id)));
            chunk.push(event);
            count += 1;
            if chunk.len() == CHUNK_ROWS {
                let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK_ROWS));
                if sender.send(full).await.is_err() {
                    // The encoder stopped: its error is reported below.
                    return Ok((count, first_id, last_id, digest.finish_hex()));
                }
            }
        }
        if !chunk.is_empty() && sender.send(chunk).await.is_err() {
            return Ok((count, first_id, last_id, digest.finish_hex()));
        }
        tx.commit()
            .await
            .map_err(|e| Error::database("finishing the archive read", &e))?;
        Ok::<_, Error>((count, first_id, last_id, digest.finish_hex()))
    };
    let read = read.await;
    // Ends the encoder's loop (after a failed read too: its files are then dropped unplaced,
    // which removes them).
    drop(sender);
    let encoded = encoder
        .await
        .map_err(|e| Error::Other(format!("the Parquet encoder stopped: {e}")))?;
    let writer = encoded.map_err(write_error)?;
    let (count, first_id, last_id, events_sha256) = read?;
    let placed = writer.place().map_err(write_error)?;
    let mut unrecorded = Unrecorded::new(root, &placed);

    let manifest = Manifest {
        schema_version: SCHEMA_VERSION,
        partition: partition.name.clone(),
        from_time,
        to_time,
        rows: count,
        first_id,
        last_id,
        created_at: Utc::now(),
        created_by: format!("audit-trail {}", env!("CARGO_PKG_VERSION")),
        database: Some(identity.clone()),
        files: placed
            .iter()
            .map(|p| ManifestFile::of(p, layout.month))
            .collect(),
    };
    let manifest_path = write_durably(&dir, &layout.manifest_name(), &manifest.to_pretty_json()?)?;
    unrecorded.manifest_written(&dir, manifest_path.clone());
    let manifest_json = serde_json::to_value(&manifest)
        .map_err(|e| Error::Other(format!("encoding the manifest: {e}")))?;
    let rows_param = i64::try_from(count)
        .map_err(|_| Error::Other(format!("{count} rows do not fit a bigint")))?;
    let location = manifest_path.display().to_string();
    let recorder = record.unwrap_or(client);
    recorder
        .execute(
            "SELECT audit.record_archive($1, $2, $3, $4, $5)",
            &[
                &partition.name,
                &rows_param,
                &location,
                &manifest_json,
                &events_sha256,
            ],
        )
        .await
        .map_err(|e| Error::database("recording the archive", &e))?;
    unrecorded.disarm();
    Ok(Archived {
        rows: count,
        bytes: placed.iter().map(|p| p.file.bytes).sum(),
        files: placed.len(),
    })
}

/// An archive's files from the moment they are placed until the database records them.
/// Unrecorded files must not look like an archive: dropped before [`Unrecorded::disarm`]
/// (any error on the way to the record), it removes them, the manifest first, so that what
/// remains if a removal fails is at worst files no manifest vouches for.
struct Unrecorded<'a> {
    root: &'a Path,
    placed: &'a [MonthFile],
    /// The manifest's directory and the manifest, once written.
    manifest: Option<(&'a Path, PathBuf)>,
    armed: bool,
}

impl<'a> Unrecorded<'a> {
    fn new(root: &'a Path, placed: &'a [MonthFile]) -> Unrecorded<'a> {
        Unrecorded {
            root,
            placed,
            manifest: None,
            armed: true,
        }
    }

    fn manifest_written(&mut self, dir: &'a Path, path: PathBuf) {
        self.manifest = Some((dir, path));
    }

    /// The archive is recorded: its files stay.
    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for Unrecorded<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Some((dir, path)) = &self.manifest {
            let _ = std::fs::remove_file(path);
            let _ = parquet::sync_dir(dir);
        }
        let mut dirs: Vec<PathBuf> = Vec::new();
        for p in self.placed {
            let _ = std::fs::remove_file(self.root.join(p.relative_path()));
            let month_dir = self.root.join(p.month.dir());
            if !dirs.contains(&month_dir) {
                dirs.push(month_dir);
            }
        }
        for d in &dirs {
            let _ = parquet::sync_dir(d);
        }
    }
}

/// Rows handed to the encoder thread at a time, and how many such chunks may wait for it.
const CHUNK_ROWS: usize = 2048;
const QUEUED_CHUNKS: usize = 8;

/// `audit-trail archive` (or `--check`).
pub async fn run(db_arg: Option<&str>, record_db: Option<&str>, args: ArchiveArgs) -> Result<()> {
    if let Some(dir) = &args.check {
        let summary = manifest::check(dir, |line| println!("{line}"))?;
        println!(
            "checked {} manifests, {} files, {} rows, {} bytes: all intact",
            summary.manifests, summary.files, summary.rows, summary.bytes
        );
        return Ok(());
    }
    let Some(output_dir) = &args.output_dir else {
        return Err(Error::Usage("give --output-dir DIR or --check DIR".into()));
    };
    let before = args.before.as_deref().map(parse_before).transpose()?;
    if args.partitions.iter().any(|p| p.trim().is_empty()) {
        return Err(Error::Usage("--partition: value must not be empty".into()));
    }
    let root = check_output_dir(output_dir)?;

    let target = db::resolve(db_arg, "audit-trail archive")?;
    let mut client = db::connect(&target).await?;
    db::require_audit_admin(&client).await?;
    let mut record = db::record_connection(
        &client,
        record_db,
        "audit-trail archive",
        "the archive record",
    )
    .await?;
    db::require_audit_service(record.as_ref().unwrap_or(&client)).await?;

    // Taken before the partitions are listed, so a run never archives again what another
    // run archived after this one looked: the service's lock, which only the product's
    // services can take, held by a transaction of a connection of its own for the whole run
    // (it needs no transaction id, so it holds back no change stream).
    let lock_target = match record_db {
        Some(text) => db::resolve_record(text, "audit-trail archive")?,
        None => db::resolve(db_arg, "audit-trail archive")?,
    };
    let holder = db::connect(&lock_target).await?;
    let locking = |e: tokio_postgres::Error| Error::database("taking the archive lock", &e);
    holder.batch_execute("BEGIN").await.map_err(locking)?;
    let taken: bool = holder
        .query_one("SELECT audit.take_service_lock('archive')", &[])
        .await
        .map_err(locking)?
        .get(0);
    if !taken {
        return Err(Error::Other(
            "another audit-trail archive is running on this database".into(),
        ));
    }

    // Each database archives under a directory of its own, so that two databases archived
    // into one --output-dir never write over each other's files.
    let identity = database_identity(&client).await?;
    let database_root = root.join(identity.dir());
    std::fs::create_dir_all(&database_root).map_err(|source| Error::File {
        path: database_root.clone(),
        source,
    })?;

    // Listed where archives are recorded: a standby may not show the last run's records yet.
    let all = list_partitions(record.as_ref().unwrap_or(&client)).await?;
    let chosen = select(&all, &args.partitions, before)?;
    if chosen.is_empty() {
        println!("nothing to archive");
    }
    let started = Instant::now();
    let (mut total_rows, mut total_bytes, mut done) = (0u64, 0u64, 0usize);
    let mut written = Vec::new();
    for partition in &chosen {
        let t = Instant::now();
        let archived = archive_partition(
            &mut client,
            record.as_mut(),
            &database_root,
            &identity,
            partition,
            args.max_file_bytes,
        )
        .await?;
        total_rows += archived.rows;
        total_bytes += archived.bytes;
        done += 1;
        written.push(partition.name.clone());
        println!(
            "{}: {} rows, {} bytes in {} file{}, {:.2} s",
            partition.name,
            archived.rows,
            archived.bytes,
            archived.files,
            if archived.files == 1 { "" } else { "s" },
            t.elapsed().as_secs_f64()
        );
    }
    if done > 0 {
        println!(
            "archived {done} partition{}: {total_rows} rows, {total_bytes} bytes, {:.2} s",
            if done == 1 { "" } else { "s" },
            started.elapsed().as_secs_f64()
        );
    }
    check_archives(
        record.as_ref().unwrap_or(&client),
        &written,
        &root,
        &database_root,
        &identity,
    )
    .await
}

/// An archive record that retention will soon rely on (`audit.archives_to_check()`).
struct Due {
    partition: String,
    location: String,
    manifest: serde_json::Value,
    events_sha256: String,
}

/// Checks the files of the archives just `written` and of every archive that retention may
/// drop its partition for within `audit.archive_check_window()`, and records each one found
/// intact (`audit.record_archive_check`), which retention requires. An archive whose files
/// are missing, altered, or no longer the ones recorded is named, and the run ends with
/// exit 4 once every one is checked: retention keeps its partition.
async fn check_archives(
    client: &Client,
    written: &[String],
    root: &Path,
    database_root: &Path,
    identity: &DatabaseIdentity,
) -> Result<()> {
    let listing = |e: tokio_postgres::Error| Error::database("listing archives to check", &e);
    let due: Vec<Due> = client
        .query(
            "SELECT partition, location, manifest, events_sha256 \
               FROM audit.archives_to_check() \
             UNION \
             SELECT * FROM (SELECT DISTINCT ON (partition) \
                                   partition, location, manifest, events_sha256 \
                              FROM audit.archives \
                             WHERE partition OPERATOR(pg_catalog.=) ANY ($1) \
                             ORDER BY partition, archived_at DESC) AS just_written \
             ORDER BY 1",
            &[&written],
        )
        .await
        .map_err(listing)?
        .iter()
        .map(|r| {
            Ok(Due {
                partition: r.try_get(0).map_err(listing)?,
                location: r.try_get(1).map_err(listing)?,
                manifest: r.try_get(2).map_err(listing)?,
                events_sha256: r.try_get(3).map_err(listing)?,
            })
        })
        .collect::<Result<_>>()?;
    let mut failed = Vec::new();
    for archive in &due {
        let (location, problem) = match check_due(root, database_root, identity, archive) {
            Ok(path) => (path, None),
            Err(Error::Integrity(what)) => (archive.location.clone(), Some(what)),
            Err(other) => return Err(other),
        };
        // A failed check is recorded too: retention goes by the latest one.
        client
            .execute(
                "SELECT audit.record_archive_check($1, $2, $3, $4)",
                &[
                    &archive.partition,
                    &archive.events_sha256,
                    &location,
                    &problem,
                ],
            )
            .await
            .map_err(|e| Error::database("recording the archive check", &e))?;
        match problem {
            None if written.contains(&archive.partition) => {}
            // The line above said what was just written; an older one's check is news.
            None => println!("{}: archive checked, intact", archive.partition),
            Some(what) => failed.push((archive.partition.clone(), what)),
        }
    }
    let Some((partition, what)) = failed.first() else {
        return Ok(());
    };
    let others: Vec<&str> = failed[1..].iter().map(|(p, _)| p.as_str()).collect();
    Err(Error::Integrity(format!(
        "{partition}: {what}; retention keeps the partition{}",
        if others.is_empty() {
            String::new()
        } else {
            format!(
                " (and the archives of {} fail their checks too)",
                others.join(", ")
            )
        }
    )))
}

/// Finds a due archive's manifest (under this database's directory, else where it was
/// recorded) and holds its files to it, and it to the manifest recorded with the archive.
/// Returns the manifest's path.
fn check_due(
    root: &Path,
    database_root: &Path,
    identity: &DatabaseIdentity,
    archive: &Due,
) -> Result<String> {
    let recorded: Manifest = serde_json::from_value(archive.manifest.clone())
        .map_err(|e| Error::Integrity(format!("its recorded manifest is not readable: {e}")))?;
    // The manifest lies in the directory of the partition's first month, which its
    // from_time names (that of its oldest row, for a partition without a start).
    let layout = Layout::of(&archive.partition, recorded.from_time)?;
    let here = database_root.join(&layout.dir).join(layout.manifest_name());
    let recorded_at = PathBuf::from(&archive.location);
    let path = [here, recorded_at]
        .into_iter()
        .find(|p| p.is_file())
        .ok_or_else(|| {
            Error::Integrity(format!(
                "its manifest is neither under {} nor at {}, where it was recorded",
                database_root.display(),
                archive.location
            ))
        })?;
    let checked = manifest::check_manifest(root, &path, &mut |_| {})?;
    let on_disk = &checked.manifest;
    let shown = manifest::shown(root, &path);
    if on_disk.database.as_ref().is_some_and(|d| d != identity) {
        return Err(Error::Integrity(format!(
            "{shown} is an archive of another database"
        )));
    }
    if on_disk.partition != recorded.partition
        || on_disk.rows != recorded.rows
        || on_disk.files != recorded.files
    {
        return Err(Error::Integrity(format!(
            "{shown} is not the archive recorded for it (its files or rows differ from the \
             manifest recorded in audit.archives)"
        )));
    }
    Ok(path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn month(y: i32, m: u32) -> Option<DateTime<Utc>> {
        Utc.with_ymd_and_hms(y, m, 1, 0, 0, 0).single()
    }

    fn partitions() -> Vec<Partition> {
        let p = |name: &str, from, to, closed, archived| Partition {
            name: name.into(),
            from_time: from,
            to_time: to,
            is_default: false,
            closed,
            archived,
        };
        vec![
            p(
                "audit.events_20260101",
                month(2026, 1),
                month(2026, 2),
                true,
                true,
            ),
            p(
                "audit.events_20260201",
                month(2026, 2),
                month(2026, 3),
                true,
                false,
            ),
            p(
                "audit.events_20260301",
                month(2026, 3),
                month(2026, 4),
                true,
                false,
            ),
            p(
                "audit.events_20261201",
                month(2026, 12),
                month(2027, 1),
                false,
                false,
            ),
            Partition {
                name: "audit.events_default".into(),
                from_time: None,
                to_time: None,
                is_default: true,
                closed: false,
                archived: false,
            },
        ]
    }

    fn names(ps: &[Partition]) -> Vec<&str> {
        ps.iter().map(|p| p.name.as_str()).collect()
    }

    #[test]
    fn selects_closed_unarchived_partitions_before_a_date() {
        let all = partitions();
        let chosen = select(&all, &[], None).expect("select");
        assert_eq!(
            names(&chosen),
            ["audit.events_20260201", "audit.events_20260301"]
        );
        let before = parse_before("2026-03-01").expect("a date");
        let chosen = select(&all, &[], Some(before)).expect("select");
        assert_eq!(names(&chosen), ["audit.events_20260201"]);
        let chosen = select(&all, &["events_20260301".into()], None).expect("select");
        assert_eq!(names(&chosen), ["audit.events_20260301"]);
    }

    #[test]
    fn the_partition_of_an_upgrade_from_0_1_0_is_archived_once_closed() {
        let mut all = partitions();
        all.insert(
            0,
            Partition {
                name: "audit.events_0_1_0".into(),
                from_time: None,
                to_time: month(2026, 1),
                is_default: false,
                closed: true,
                archived: false,
            },
        );
        let chosen = select(&all, &[], None).expect("select");
        assert_eq!(names(&chosen)[0], "audit.events_0_1_0");
        let chosen = select(
            &all,
            &["events_20260201".into(), "events_0_1_0".into()],
            None,
        )
        .expect("select");
        assert_eq!(
            names(&chosen),
            ["audit.events_0_1_0", "audit.events_20260201"]
        );
    }

    #[test]
    fn refuses_unknown_open_and_default_partitions() {
        let all = partitions();
        for bad in ["events_20250101", "audit.events_20261201", "events_default"] {
            let err = select(&all, &[bad.into()], None).expect_err(bad);
            assert_eq!(err.exit_code(), 2, "{bad}: {err}");
        }
        assert_eq!(
            parse_before("last tuesday").expect_err("bad").exit_code(),
            2
        );
    }

    #[test]
    fn a_missing_or_file_output_dir_is_bad_usage() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("nope");
        assert_eq!(
            check_output_dir(&missing).expect_err("missing").exit_code(),
            2
        );
        let file = dir.path().join("file");
        std::fs::write(&file, b"x").expect("write");
        assert_eq!(check_output_dir(&file).expect_err("a file").exit_code(), 2);
        check_output_dir(dir.path()).expect("writable");
        // The probe leaves nothing behind.
        assert_eq!(std::fs::read_dir(dir.path()).expect("list").count(), 1);
    }

    #[test]
    fn unrecorded_files_are_removed_unless_disarmed() {
        use crate::archive::parquet::PlacedFile;
        let root = tempfile::tempdir().expect("tempdir");
        let month = Month {
            year: 2026,
            month: 2,
        };
        let dir = root.path().join(month.dir());
        std::fs::create_dir_all(&dir).expect("mkdir");
        let placed = vec![MonthFile {
            month,
            file: PlacedFile {
                name: "events_20260201.parquet".into(),
                rows: 0,
                bytes: 1,
                sha256: String::new(),
            },
        }];
        let parquet_file = root.path().join(placed[0].relative_path());
        let manifest_file = dir.join("events_20260201.manifest.json");
        let write_both = || {
            std::fs::write(&parquet_file, b"x").expect("write");
            std::fs::write(&manifest_file, b"{}").expect("write");
        };

        write_both();
        {
            let mut unrecorded = Unrecorded::new(root.path(), &placed);
            unrecorded.manifest_written(&dir, manifest_file.clone());
        }
        assert!(!parquet_file.exists() && !manifest_file.exists());

        // Before the manifest is written, only the placed files are there to remove.
        write_both();
        drop(Unrecorded::new(root.path(), &placed));
        assert!(!parquet_file.exists() && manifest_file.exists());

        write_both();
        let mut unrecorded = Unrecorded::new(root.path(), &placed);
        unrecorded.manifest_written(&dir, manifest_file.clone());
        unrecorded.disarm();
        assert!(parquet_file.exists() && manifest_file.exists());
    }
}
