//! Writing one partition's archive: its events read in one snapshot, encoded as Parquet
//! month by month, placed with a manifest, then recorded with `audit.record_archive`.

use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use futures_util::{pin_mut, TryStreamExt};
use tokio_postgres::types::ToSql;
use tokio_postgres::Client;

use super::columns::ArchiveRow;
use super::manifest::{DatabaseIdentity, Layout, Manifest, ManifestFile, SCHEMA_VERSION};
use super::parquet::{self, Month, MonthFile, MonthlyWriter};
use super::select::Partition;
use crate::error::{Error, Result};
use crate::event_row::{ArrayEvent, ARRAY_EVENT_COLUMNS_SQL};
use crate::integrity::archived;
use audit_trail_contract::chain::ArchiveDigest;

/// The events of one partition (`range`, a condition on occurred_at), in the order they are
/// archived (which the month split follows). Parameters, never text: the bounds come from the
/// database, but nothing read is ever spliced into SQL.
fn select_events(range: &str) -> String {
    format!(
        "SELECT {ARRAY_EVENT_COLUMNS_SQL} FROM audit.events WHERE {range} ORDER BY occurred_at, id"
    )
}
const RANGE: &str = "occurred_at >= $1 AND occurred_at < $2";
/// A partition without a start (FROM (MINVALUE), from the upgrade from 0.1.0): no other
/// partition holds rows before its end, and the default partition holds none a partition
/// covers.
const BEFORE: &str = "occurred_at < $1";

fn archive_row(row: &tokio_postgres::Row) -> Result<ArchiveRow> {
    let event = ArrayEvent::from_row(row).map_err(|e| Error::database("decoding an event", &e))?;
    ArchiveRow::from_event(event).map_err(|e| Error::Unexpected(e.to_string()))
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
        other => Err(Error::Unexpected(format!(
            "{} holds an archive of {}, not of this {ours}: not overwritten (archive each \
             database into a directory of its own)",
            manifest_path.display(),
            other.map_or_else(|| "an unnamed database".to_owned(), |d| d.to_string())
        ))),
    }
}

/// What one partition's archive came to.
pub(super) struct Archived {
    pub(super) rows: u64,
    pub(super) bytes: u64,
    pub(super) files: usize,
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
    Error::Archive(format!("writing the archive: {e}"))
}

/// Archives one partition: read from `client`, recorded through `record` (the primary, when
/// `client` is a standby), else through `client` once its read has ended.
pub(super) async fn archive_partition(
    client: &mut Client,
    record: Option<&mut Client>,
    root: &Path,
    identity: &DatabaseIdentity,
    partition: &Partition,
    max_file_bytes: u64,
) -> Result<Archived> {
    let Some(to_time) = partition.to_time else {
        return Err(Error::Unexpected(format!(
            "{}: a partition without an end cannot be archived",
            partition.name
        )));
    };
    // Checked before anything is read or written.
    Layout::of(&partition.name, to_time)?;

    // One repeatable-read snapshot: the files hold exactly what one moment of the partition
    // held, which is what audit.record_archive then counts again.
    let tx = crate::db::read_snapshot(client)
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
                tx.query_raw(select_events(RANGE).as_str(), params).await
            }
            None => {
                let params: [&(dyn ToSql + Sync); 1] = [&to_time];
                tx.query_raw(select_events(BEFORE).as_str(), params).await
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
        .map_err(|e| Error::Archive(format!("the Parquet encoder stopped: {e}")))?;
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
    let manifest_json = serde_json::to_value(&manifest).map_err(Error::encoding("the manifest"))?;
    let rows_param = i64::try_from(count)
        .map_err(|_| Error::Unexpected(format!("{count} rows do not fit a bigint")))?;
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

#[cfg(test)]
mod tests {
    use super::parquet::PlacedFile;
    use super::*;

    #[test]
    fn unrecorded_files_are_removed_unless_disarmed() {
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
