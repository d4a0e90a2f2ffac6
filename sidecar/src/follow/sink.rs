//! Where followed events go, durably before the cursor moves: stdout (JSON lines), or a
//! directory of rotated files with a manifest.
//!
//! The file sink appends each batch to the current file and syncs it, then records the
//! file's new length in `manifest.json` (written to a temporary file, synced, renamed). On
//! start it truncates the current file to the length the manifest vouches for and removes
//! files the manifest does not know: a crash mid-batch leaves no torn line and no half batch,
//! and the batch is delivered again because the cursor had not moved.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::event_row::{OutputEvent, TimeFormat};
use crate::export::{Encoder, Format};

pub enum Sink {
    Stdout(std::io::Stdout),
    Files(Box<FileSink>),
}

impl Sink {
    /// Writes the batch and makes it durable: flushed to stdout, or synced to disk.
    pub fn deliver(&mut self, batch: &[OutputEvent]) -> Result<()> {
        match self {
            Sink::Stdout(out) => {
                let mut encoder = Encoder::with(Format::Jsonl, false, TimeFormat::default())
                    .map_err(Error::Output)?;
                for event in batch {
                    encoder.push(event).map_err(Error::Output)?;
                }
                let bytes = encoder.take().map_err(Error::Output)?;
                let mut lock = out.lock();
                lock.write_all(&bytes).map_err(Error::Output)?;
                lock.flush().map_err(Error::Output)
            }
            Sink::Files(files) => files.deliver(batch),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileEntry {
    pub name: String,
    /// Bytes of complete, delivered batches.
    pub bytes: u64,
    pub events: u64,
    pub first_id: Option<i64>,
    pub last_id: Option<i64>,
    pub first_txid: Option<String>,
    pub last_txid: Option<String>,
    pub first_occurred_at: Option<DateTime<Utc>>,
    pub last_occurred_at: Option<DateTime<Utc>>,
    pub opened_at: DateTime<Utc>,
    /// No more events will be appended.
    pub closed: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub version: u32,
    pub consumer: String,
    pub format: Format,
    pub files: Vec<FileEntry>,
}

pub struct Rotation {
    pub max_bytes: u64,
    pub max_age: Duration,
}

pub struct FileSink {
    dir: PathBuf,
    manifest: Manifest,
    rotation: Rotation,
    current: Option<File>,
}

const MANIFEST: &str = "manifest.json";

fn io(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |source| Error::File {
        path: path.to_path_buf(),
        source,
    }
}

impl FileSink {
    pub fn open(
        dir: &Path,
        consumer: &str,
        format: Format,
        rotation: Rotation,
    ) -> Result<FileSink> {
        // Audit data is sensitive: only the owner may read what the follower writes.
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io(dir))?;
        let manifest_path = dir.join(MANIFEST);
        let manifest = match fs::read(&manifest_path) {
            Ok(bytes) => {
                let manifest: Manifest = serde_json::from_slice(&bytes).map_err(|e| {
                    Error::Unexpected(format!(
                        "{}: not a manifest this tool wrote: {e}",
                        manifest_path.display()
                    ))
                })?;
                if manifest.consumer != consumer || manifest.format != format {
                    return Err(Error::Usage(format!(
                        "{} holds consumer \"{}\" in {:?} format; use another directory",
                        dir.display(),
                        manifest.consumer,
                        manifest.format
                    )));
                }
                manifest
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Manifest {
                version: 1,
                consumer: consumer.to_owned(),
                format,
                files: Vec::new(),
            },
            Err(e) => return Err(io(&manifest_path)(e)),
        };
        let mut sink = FileSink {
            dir: dir.to_path_buf(),
            manifest,
            rotation,
            current: None,
        };
        sink.recover()?;
        Ok(sink)
    }

    /// Cuts the open file back to what the manifest vouches for, and removes files it does
    /// not list (created for a batch whose delivery never completed).
    fn recover(&mut self) -> Result<()> {
        let extension = format!(".{}", self.manifest.format.extension());
        // Only names this tool writes: a manifest must not steer it at other files.
        let ours = |name: &str| {
            name.strip_prefix("audit-")
                .and_then(|rest| rest.strip_suffix(&extension))
                .is_some_and(|n| n.len() == 6 && n.bytes().all(|b| b.is_ascii_digit()))
        };
        if let Some(bad) = self.manifest.files.iter().find(|f| !ours(&f.name)) {
            return Err(Error::Unexpected(format!(
                "{}: lists \"{}\", not a file this tool writes",
                self.dir.join(MANIFEST).display(),
                bad.name
            )));
        }
        let known: Vec<String> = self.manifest.files.iter().map(|f| f.name.clone()).collect();
        for entry in fs::read_dir(&self.dir).map_err(io(&self.dir))? {
            let entry = entry.map_err(io(&self.dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if ours(&name) && !known.contains(&name) {
                fs::remove_file(entry.path()).map_err(io(&entry.path()))?;
            }
        }
        if let Some(last) = self.manifest.files.last().filter(|f| !f.closed) {
            let path = self.dir.join(&last.name);
            // Not through a symlink planted in place of the file.
            let file = OpenOptions::new()
                .append(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&path)
                .map_err(io(&path))?;
            file.set_len(last.bytes).map_err(io(&path))?;
            file.sync_all().map_err(io(&path))?;
            self.current = Some(file);
        }
        Ok(())
    }

    fn needs_rotation(&self) -> bool {
        match self.manifest.files.last() {
            None => true,
            Some(f) if f.closed => true,
            Some(f) => {
                let age = Utc::now().signed_duration_since(f.opened_at);
                f.bytes >= self.rotation.max_bytes
                    || age.to_std().unwrap_or_default() >= self.rotation.max_age
            }
        }
    }

    fn rotate(&mut self) -> Result<()> {
        if let Some(last) = self.manifest.files.last_mut() {
            last.closed = true;
        }
        let sequence = self.manifest.files.len() + 1;
        let name = format!("audit-{sequence:06}.{}", self.manifest.format.extension());
        let path = self.dir.join(&name);
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .mode(0o600)
            .open(&path)
            .map_err(io(&path))?;
        self.current = Some(file);
        self.manifest.files.push(FileEntry {
            name,
            bytes: 0,
            events: 0,
            first_id: None,
            last_id: None,
            first_txid: None,
            last_txid: None,
            first_occurred_at: None,
            last_occurred_at: None,
            opened_at: Utc::now(),
            closed: false,
        });
        Ok(())
    }

    fn deliver(&mut self, batch: &[OutputEvent]) -> Result<()> {
        let (Some(first), Some(last)) = (batch.first(), batch.last()) else {
            return Ok(());
        };
        if self.needs_rotation() || self.current.is_none() {
            self.rotate()?;
        }
        let Some(entry) = self.manifest.files.last_mut() else {
            return Err(Error::Unexpected("no current file".into()));
        };
        // A new CSV file starts with its header row.
        let mut encoder = Encoder::with(self.manifest.format, false, TimeFormat::default())
            .map_err(Error::Output)?;
        if entry.bytes > 0 {
            encoder.take().map_err(Error::Output)?;
        }
        for event in batch {
            encoder.push(event).map_err(Error::Output)?;
        }
        let bytes = encoder.take().map_err(Error::Output)?;
        let path = self.dir.join(&entry.name);
        let Some(file) = self.current.as_mut() else {
            return Err(Error::Unexpected("no current file".into()));
        };
        file.write_all(&bytes).map_err(io(&path))?;
        file.sync_data().map_err(io(&path))?;

        entry.bytes += bytes.len() as u64;
        entry.events += batch.len() as u64;
        entry.first_id.get_or_insert(first.id);
        entry.first_txid.get_or_insert_with(|| first.txid.clone());
        entry.first_occurred_at.get_or_insert(first.occurred_at);
        entry.last_id = Some(last.id);
        entry.last_txid = Some(last.txid.clone());
        entry.last_occurred_at = Some(last.occurred_at);
        self.write_manifest()
    }

    fn write_manifest(&self) -> Result<()> {
        let path = self.dir.join(MANIFEST);
        let temp = self.dir.join(".manifest.json.tmp");
        let bytes =
            serde_json::to_vec_pretty(&self.manifest).map_err(Error::encoding("the manifest"))?;
        // A fresh file: never write through something already there (a planted symlink).
        match fs::remove_file(&temp) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(&temp)(e)),
            _ => {}
        }
        let mut file = OpenOptions::new()
            .create_new(true)
            .write(true)
            .mode(0o600)
            .open(&temp)
            .map_err(io(&temp))?;
        file.write_all(&bytes).map_err(io(&temp))?;
        file.sync_all().map_err(io(&temp))?;
        fs::rename(&temp, &path).map_err(io(&path))?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io(&self.dir))?;
        Ok(())
    }
}
