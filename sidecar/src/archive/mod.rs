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
//!
//! `select` chooses the partitions, `write` writes and records each, `check` checks the
//! archives after the run; `columns`, `parquet` and `manifest` are the formats of the files.

mod check;
pub mod columns;
pub mod manifest;
pub mod parquet;
mod select;
mod write;

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Args;
use tokio_postgres::Client;

use crate::connections::Connections;
use crate::db;
use crate::error::{Error, Result};
use check::check_archives;
use manifest::DatabaseIdentity;
use parquet::DEFAULT_MAX_FILE_BYTES;
use select::{list_partitions, parse_before, select};
use write::archive_partition;

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

    let mut connections = Connections::open(
        db_arg,
        record_db,
        "audit-trail archive",
        "the archive record",
    )
    .await?;
    db::require_audit_service(connections.writer()).await?;

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
    // A run that just ended may still be ending its transaction on the server (its backend
    // notices the closed connection a moment later): look again once before refusing.
    let mut taken = false;
    for attempt in 0..2 {
        if attempt > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
        taken = holder
            .query_one("SELECT audit.take_service_lock('archive')", &[])
            .await
            .map_err(locking)?
            .get(0);
        if taken {
            break;
        }
    }
    if !taken {
        return Err(Error::Busy(
            "another audit-trail archive is running on this database".into(),
        ));
    }

    // Each database archives under a directory of its own, so that two databases archived
    // into one --output-dir never write over each other's files.
    let identity = database_identity(&connections.reader).await?;
    let database_root = root.join(identity.dir());
    std::fs::create_dir_all(&database_root).map_err(|source| Error::File {
        path: database_root.clone(),
        source,
    })?;

    // Listed where archives are recorded: a standby may not show the last run's records yet.
    let all = list_partitions(connections.writer()).await?;
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
            &mut connections.reader,
            connections.record.as_mut(),
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
    let checked = check_archives(
        connections.writer(),
        &written,
        &root,
        &database_root,
        &identity,
    )
    .await;
    // Released before the process ends, so that the next run (a retry, the next scheduled
    // one) finds the lock free rather than held by a backend still ending this one.
    holder
        .batch_execute("COMMIT")
        .await
        .map_err(|e| Error::database("releasing the archive lock", &e))?;
    checked
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
