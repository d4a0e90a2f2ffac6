//! Where a partition's archive goes (the Hive layout), the manifest that describes it, and
//! `archive --check`, which holds the files to their manifests without a database.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Datelike, Utc};
use parquet::file::reader::{FileReader, SerializedFileReader};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::parquet::PlacedFile;
use crate::error::{Error, Result};

/// The manifest format's version; a reader refuses versions it does not know.
pub const SCHEMA_VERSION: u32 = 1;

/// The name every manifest ends with, which `--check` looks for.
pub const MANIFEST_SUFFIX: &str = ".manifest.json";

/// One partition's archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub schema_version: u32,
    /// Qualified, as in `audit.partitions`: `audit.events_20260101`.
    pub partition: String,
    /// The partition's range: `from_time <= occurred_at < to_time`.
    pub from_time: DateTime<Utc>,
    pub to_time: DateTime<Utc>,
    pub rows: u64,
    /// The smallest and largest event id archived (None for an empty partition).
    pub first_id: Option<i64>,
    pub last_id: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
    pub files: Vec<ManifestFile>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestFile {
    /// Relative to the manifest's own directory (the partition's `year=/month=` directory),
    /// so a month's directory can be moved or copied as it is.
    pub path: String,
    pub bytes: u64,
    pub rows: u64,
    /// Lower-case hex.
    pub sha256: String,
}

impl From<&PlacedFile> for ManifestFile {
    fn from(p: &PlacedFile) -> ManifestFile {
        ManifestFile {
            path: p.name.clone(),
            bytes: p.bytes,
            rows: p.rows,
            sha256: p.sha256.clone(),
        }
    }
}

/// Where a partition's files go under the archive's root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// `year=2026/month=01`, relative to the root: Hive-style, so engines read `year` and
    /// `month` as columns and skip directories on them.
    pub dir: PathBuf,
    /// `events_20260101`: the partition's table name, the stem of its files and manifest.
    pub stem: String,
}

impl Layout {
    /// The layout of a partition, from its qualified name and start. The name comes from the
    /// database: only a plain `schema.table` of letters, digits and `_` is used as a file name,
    /// so no name can reach outside the archive's directory.
    pub fn of(partition: &str, from_time: DateTime<Utc>) -> Result<Layout> {
        let stem = partition.rsplit('.').next().unwrap_or(partition);
        let plain =
            |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !plain(stem) || !partition.split('.').all(plain) || partition.split('.').count() > 2 {
            return Err(Error::Other(format!(
                "partition name \"{partition}\" is not a plain schema.table name; not archived"
            )));
        }
        Ok(Layout {
            dir: PathBuf::from(format!("year={:04}", from_time.year()))
                .join(format!("month={:02}", from_time.month())),
            stem: stem.to_owned(),
        })
    }

    pub fn manifest_name(&self) -> String {
        format!("{}{MANIFEST_SUFFIX}", self.stem)
    }
}

impl Manifest {
    pub fn to_pretty_json(&self) -> Result<Vec<u8>> {
        let mut text = serde_json::to_vec_pretty(self)
            .map_err(|e| Error::Other(format!("encoding the manifest: {e}")))?;
        text.push(b'\n');
        Ok(text)
    }
}

/// What `--check` found intact.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CheckSummary {
    pub manifests: usize,
    pub files: usize,
    pub rows: u64,
    pub bytes: u64,
}

/// Every manifest under `root`, in a stable (sorted) order.
pub fn find_manifests(root: &Path) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|source| Error::File {
            path: dir.clone(),
            source,
        })?;
        for entry in entries {
            let entry = entry.map_err(|source| Error::File {
                path: dir.clone(),
                source,
            })?;
            let path = entry.path();
            let kind = entry.file_type().map_err(|source| Error::File {
                path: path.clone(),
                source,
            })?;
            if kind.is_dir() {
                pending.push(path);
            } else if kind.is_file()
                && entry
                    .file_name()
                    .to_str()
                    .is_some_and(|n| n.ends_with(MANIFEST_SUFFIX) && !n.starts_with('.'))
            {
                found.push(path);
            }
        }
    }
    found.sort();
    Ok(found)
}

/// A path for messages: relative to the root the user named.
pub fn shown(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string()
}

/// SHA-256 and length of a file, read in blocks.
fn digest(path: &Path) -> std::io::Result<(String, u64)> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    Ok((hex::encode(hasher.finalize()), total))
}

/// The manifests under a directory the user named with `flag` (`--check`, `--archive`):
/// refused (exit 2) when it is not a directory or holds none, since a check that checks
/// nothing must not pass for one that found everything intact.
pub fn manifests_under(flag: &str, root: &Path) -> Result<Vec<PathBuf>> {
    let meta = std::fs::metadata(root)
        .map_err(|e| Error::Usage(format!("{flag} {}: {e}", root.display())))?;
    if !meta.is_dir() {
        return Err(Error::Usage(format!(
            "{flag} {}: not a directory",
            root.display()
        )));
    }
    let manifests = find_manifests(root)?;
    if manifests.is_empty() {
        return Err(Error::Usage(format!(
            "{flag} {}: no *{MANIFEST_SUFFIX} under this directory",
            root.display()
        )));
    }
    Ok(manifests)
}

/// One manifest whose files all matched it.
#[derive(Debug, Clone)]
pub struct CheckedManifest {
    pub manifest: Manifest,
    /// Its files, in the manifest's order.
    pub files: Vec<PathBuf>,
    pub rows: u64,
    pub bytes: u64,
}

/// Checks every manifest under `root`: each file exists with its size, SHA-256 and (read
/// from the Parquet footer) row count, and the files add up to the manifest's rows. Calls
/// `report` with one line per file checked. The first file that is missing, truncated or
/// altered is an integrity violation naming it (exit 4).
pub fn check(root: &Path, mut report: impl FnMut(&str)) -> Result<CheckSummary> {
    let mut summary = CheckSummary::default();
    for manifest_path in manifests_under("--check", root)? {
        let checked = check_manifest(root, &manifest_path, &mut report)?;
        summary.manifests += 1;
        summary.files += checked.files.len();
        summary.rows += checked.rows;
        summary.bytes += checked.bytes;
    }
    Ok(summary)
}

/// Checks one manifest (found under `root`, which messages name paths relative to) and
/// every file it lists; see [`check`].
pub fn check_manifest(
    root: &Path,
    manifest_path: &Path,
    report: &mut impl FnMut(&str),
) -> Result<CheckedManifest> {
    let name = shown(root, manifest_path);
    let violation = |what: String| Error::Integrity(what);
    let text = std::fs::read(manifest_path)
        .map_err(|e| violation(format!("{name}: cannot read the manifest: {e}")))?;
    let manifest: Manifest = serde_json::from_slice(&text)
        .map_err(|e| violation(format!("{name}: not a valid manifest: {e}")))?;
    if manifest.schema_version != SCHEMA_VERSION {
        return Err(Error::Other(format!(
            "{name}: manifest schema_version {} is not one this audit-trail reads ({SCHEMA_VERSION})",
            manifest.schema_version
        )));
    }
    let dir = manifest_path.parent().unwrap_or(root);
    let mut rows = 0u64;
    let mut bytes = 0u64;
    let mut files = Vec::with_capacity(manifest.files.len());
    for file in &manifest.files {
        // Manifests name files beside themselves; anything else was not written by archive.
        if file.path.contains('/') || file.path.contains('\\') || file.path.starts_with('.') {
            return Err(violation(format!(
                "{name}: names a file outside its directory: {}",
                file.path
            )));
        }
        let path = dir.join(&file.path);
        let shown_file = shown(root, &path);
        let on_disk = match std::fs::metadata(&path) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(violation(format!("{shown_file}: missing")));
            }
            Err(e) => return Err(violation(format!("{shown_file}: {e}"))),
        };
        if on_disk < file.bytes {
            return Err(violation(format!(
                "{shown_file}: truncated ({on_disk} bytes, the manifest says {})",
                file.bytes
            )));
        }
        if on_disk > file.bytes {
            return Err(violation(format!(
                "{shown_file}: altered ({on_disk} bytes, the manifest says {})",
                file.bytes
            )));
        }
        let (sha256, _) = digest(&path).map_err(|e| violation(format!("{shown_file}: {e}")))?;
        if sha256 != file.sha256 {
            return Err(violation(format!(
                "{shown_file}: altered (SHA-256 {sha256}, the manifest says {})",
                file.sha256
            )));
        }
        let footer_rows = File::open(&path)
            .map_err(parquet::errors::ParquetError::from)
            .and_then(SerializedFileReader::new)
            .map(|r| r.metadata().file_metadata().num_rows())
            .map_err(|e| violation(format!("{shown_file}: not a readable Parquet file: {e}")))?;
        if u64::try_from(footer_rows).ok() != Some(file.rows) {
            return Err(violation(format!(
                "{shown_file}: holds {footer_rows} rows, the manifest says {}",
                file.rows
            )));
        }
        rows += file.rows;
        bytes += file.bytes;
        report(&format!(
            "ok {shown_file}: {} rows, {} bytes, sha256 {}",
            file.rows,
            file.bytes,
            &file.sha256[..file.sha256.len().min(16)]
        ));
        files.push(path);
    }
    if rows != manifest.rows {
        return Err(violation(format!(
            "{name}: its files hold {rows} rows, the manifest says {}",
            manifest.rows
        )));
    }
    Ok(CheckedManifest {
        manifest,
        files,
        rows,
        bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(y: i32, m: u32, d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, 0, 0, 0)
            .single()
            .expect("a valid date")
    }

    #[test]
    fn layout_is_hive_style_and_refuses_odd_names() {
        let l = Layout::of("audit.events_20260101", at(2026, 1, 1)).expect("layout");
        assert_eq!(l.dir, PathBuf::from("year=2026/month=01"));
        assert_eq!(l.stem, "events_20260101");
        assert_eq!(l.manifest_name(), "events_20260101.manifest.json");
        for bad in [
            "audit.../x",
            "audit.a/b",
            "",
            "a.b.c",
            "audit.ev ents",
            "audit.",
        ] {
            assert!(Layout::of(bad, at(2026, 1, 1)).is_err(), "{bad}");
        }
    }

    #[test]
    fn manifest_round_trips_with_its_documented_fields() {
        let m = Manifest {
            schema_version: SCHEMA_VERSION,
            partition: "audit.events_20260101".into(),
            from_time: at(2026, 1, 1),
            to_time: at(2026, 2, 1),
            rows: 3,
            first_id: Some(10),
            last_id: Some(12),
            created_at: at(2026, 12, 1),
            created_by: "audit-trail 0.1.0".into(),
            files: vec![ManifestFile {
                path: "events_20260101.parquet".into(),
                bytes: 1234,
                rows: 3,
                sha256: "ab".repeat(32),
            }],
        };
        let text = m.to_pretty_json().expect("json");
        let value: serde_json::Value = serde_json::from_slice(&text).expect("valid JSON");
        assert_eq!(value["schema_version"], 1);
        assert_eq!(value["from_time"], "2026-01-01T00:00:00Z");
        assert_eq!(value["files"][0]["path"], "events_20260101.parquet");
        let back: Manifest = serde_json::from_slice(&text).expect("reads back");
        assert_eq!(back, m);
    }

    #[test]
    fn check_names_a_missing_or_altered_file() {
        let root = tempfile::tempdir().expect("tempdir");
        let l = Layout::of("audit.events_20260101", at(2026, 1, 1)).expect("layout");
        let dir = root.path().join(&l.dir);
        std::fs::create_dir_all(&dir).expect("mkdir");
        let mut w = super::super::parquet::PartitionWriter::new(&dir, &l.stem, 1 << 30);
        w.finish().expect("finish");
        let placed = w.place().expect("place");
        let m = Manifest {
            schema_version: SCHEMA_VERSION,
            partition: "audit.events_20260101".into(),
            from_time: at(2026, 1, 1),
            to_time: at(2026, 2, 1),
            rows: 0,
            first_id: None,
            last_id: None,
            created_at: at(2026, 12, 1),
            created_by: "test".into(),
            files: placed.iter().map(ManifestFile::from).collect(),
        };
        std::fs::write(
            dir.join(l.manifest_name()),
            m.to_pretty_json().expect("json"),
        )
        .expect("write manifest");
        let mut lines = Vec::new();
        let summary = check(root.path(), |l| lines.push(l.to_owned())).expect("intact");
        assert_eq!(summary.manifests, 1);
        assert_eq!(summary.files, 1);
        assert!(lines[0].starts_with("ok year=2026/month=01/events_20260101.parquet"));

        let file = dir.join(&placed[0].name);
        let mut bytes = std::fs::read(&file).expect("read");
        bytes[10] ^= 1;
        std::fs::write(&file, &bytes).expect("write");
        let err = check(root.path(), |_| {}).expect_err("altered");
        assert_eq!(err.exit_code(), 4);
        assert!(
            err.to_string().contains("events_20260101.parquet: altered"),
            "{err}"
        );

        std::fs::remove_file(&file).expect("rm");
        let err = check(root.path(), |_| {}).expect_err("missing");
        assert!(
            err.to_string().contains("events_20260101.parquet: missing"),
            "{err}"
        );

        let empty = tempfile::tempdir().expect("tempdir");
        assert_eq!(
            check(empty.path(), |_| {}).expect_err("none").exit_code(),
            2
        );
    }
}
