//! Where a partition's archive goes (the Hive layout), the manifest that describes it, and
//! `archive --check`, which holds the files to their manifests without a database.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use parquet::file::reader::{FileReader, SerializedFileReader};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::parquet::{Month, MonthFile};
use crate::error::{Error, Result};

/// The manifest format's version, written by this audit-trail; a reader refuses versions it
/// does not know. Version 3: the manifest names the database it was written from
/// (`database`), and lies under that database's own directory. Version 2 (per-month files):
/// a file's `path` may also name a file in another month's directory of the same archive, as
/// `../../year=YYYY/month=MM/NAME`. Version 1 (a partition's files all beside its manifest)
/// is still read.
pub const SCHEMA_VERSION: u32 = 3;

/// The oldest manifest version read.
pub const OLDEST_SCHEMA_VERSION: u32 = 1;

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
    /// The database whose partition this is (version 3; absent before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<DatabaseIdentity>,
    pub files: Vec<ManifestFile>,
}

/// Which database an archive comes from: its cluster's system identifier (which a physical
/// standby shares with its primary) and its name. Two databases archived into one directory
/// go to directories of their own (see [`DatabaseIdentity::dir`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseIdentity {
    /// `pg_control_system().system_identifier`, in decimal.
    pub system_identifier: String,
    pub name: String,
}

impl DatabaseIdentity {
    /// `cluster=SYSID/database=NAME`, relative to the archive's root: Hive-style, so readers
    /// of the whole directory can tell (and filter) databases apart. Bytes of the name other
    /// than ASCII letters, digits, `_`, `-` and `.` (and a leading `.`) are written `%XX`, so
    /// no name reaches outside its directory or collides with another's.
    pub fn dir(&self) -> PathBuf {
        let mut name = String::with_capacity(self.name.len());
        for (i, b) in self.name.bytes().enumerate() {
            let plain = b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || (b == b'.' && i > 0);
            if plain {
                name.push(char::from(b));
            } else {
                name.push_str(&format!("%{b:02X}"));
            }
        }
        PathBuf::from(format!("cluster={}", self.system_identifier))
            .join(format!("database={name}"))
    }
}

impl std::fmt::Display for DatabaseIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "database {:?} of cluster {}",
            self.name, self.system_identifier
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestFile {
    /// Relative to the manifest's own directory (the `year=/month=` directory of the
    /// partition's first month): `events_20260101.parquet` beside it, or
    /// `../../year=2026/month=02/events_20260101.parquet` in another month's directory.
    pub path: String,
    pub bytes: u64,
    pub rows: u64,
    /// Lower-case hex.
    pub sha256: String,
}

impl ManifestFile {
    /// The entry of a placed file, named relative to the manifest's directory, `manifest_month`.
    pub fn of(file: &MonthFile, manifest_month: Month) -> ManifestFile {
        let path = if file.month == manifest_month {
            file.file.name.clone()
        } else {
            format!(
                "../../year={:04}/month={:02}/{}",
                file.month.year, file.month.month, file.file.name
            )
        };
        ManifestFile {
            path,
            bytes: file.file.bytes,
            rows: file.file.rows,
            sha256: file.file.sha256.clone(),
        }
    }
}

/// Whether a manifest of `version` may name `path`: a plain file name beside it (every
/// version), or a file of another month of the same archive (version 2). Nothing else is
/// written by archive, and nothing else may reach outside the archive.
fn valid_file_path(version: u32, path: &str) -> bool {
    let plain =
        |n: &str| !n.is_empty() && !n.starts_with('.') && !n.contains('/') && !n.contains('\\');
    let digits = |s: Option<&str>, n: usize| {
        s.is_some_and(|d| d.len() == n && d.bytes().all(|b| b.is_ascii_digit()))
    };
    if plain(path) {
        return true;
    }
    if version < 2 {
        return false;
    }
    match path.split('/').collect::<Vec<_>>().as_slice() {
        ["..", "..", year, month, name] => {
            digits(year.strip_prefix("year="), 4)
                && digits(month.strip_prefix("month="), 2)
                && plain(name)
        }
        _ => false,
    }
}

/// Where a partition's manifest goes under the archive's root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// `year=2026/month=01`, relative to the root: the directory of the partition's first
    /// month (that of its start; for a partition without a start, that of its oldest row).
    pub dir: PathBuf,
    /// The same month.
    pub month: Month,
    /// `events_20260101`: the partition's table name, the stem of its files and manifest.
    pub stem: String,
}

impl Layout {
    /// The layout of a partition, from its qualified name and first month's start. The name
    /// comes from the database: only a plain `schema.table` of letters, digits and `_` is used
    /// as a file name, so no name can reach outside the archive's directory.
    pub fn of(partition: &str, from_time: DateTime<Utc>) -> Result<Layout> {
        let stem = partition.rsplit('.').next().unwrap_or(partition);
        let plain =
            |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !plain(stem) || !partition.split('.').all(plain) || partition.split('.').count() > 2 {
            return Err(Error::Unexpected(format!(
                "partition name \"{partition}\" is not a plain schema.table name; not archived"
            )));
        }
        let month = Month::of(from_time);
        Ok(Layout {
            dir: month.dir(),
            month,
            stem: stem.to_owned(),
        })
    }

    pub fn manifest_name(&self) -> String {
        format!("{}{MANIFEST_SUFFIX}", self.stem)
    }
}

impl Manifest {
    pub fn to_pretty_json(&self) -> Result<Vec<u8>> {
        let mut text = serde_json::to_vec_pretty(self).map_err(Error::encoding("the manifest"))?;
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
    if !(OLDEST_SCHEMA_VERSION..=SCHEMA_VERSION).contains(&manifest.schema_version) {
        return Err(Error::Unexpected(format!(
            "{name}: manifest schema_version {} is not one this audit-trail reads \
             ({OLDEST_SCHEMA_VERSION} to {SCHEMA_VERSION})",
            manifest.schema_version
        )));
    }
    let dir = manifest_path.parent().unwrap_or(root);
    let mut rows = 0u64;
    let mut bytes = 0u64;
    let mut files = Vec::with_capacity(manifest.files.len());
    for file in &manifest.files {
        // Manifests name files beside themselves or in another month's directory of the same
        // archive; anything else was not written by archive.
        if !valid_file_path(manifest.schema_version, &file.path) {
            return Err(violation(format!(
                "{name}: names a file outside its directory: {}",
                file.path
            )));
        }
        // `../../year=/month=/NAME`, resolved without the `..` so that messages name the
        // file as it lies under the archive's root.
        let path = match file.path.strip_prefix("../../") {
            Some(rest) => dir
                .parent()
                .and_then(Path::parent)
                .map(|base| base.join(rest))
                .ok_or_else(|| {
                    violation(format!(
                        "{name}: names a file outside its archive: {}",
                        file.path
                    ))
                })?,
            None => dir.join(&file.path),
        };
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
    use crate::archive::parquet::MonthlyWriter;
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
            database: Some(DatabaseIdentity {
                system_identifier: "7312345678901234567".into(),
                name: "crm/../x é".into(),
            }),
            files: vec![ManifestFile {
                path: "events_20260101.parquet".into(),
                bytes: 1234,
                rows: 3,
                sha256: "ab".repeat(32),
            }],
        };
        let text = m.to_pretty_json().expect("json");
        let value: serde_json::Value = serde_json::from_slice(&text).expect("valid JSON");
        assert_eq!(value["schema_version"], 3);
        assert_eq!(value["from_time"], "2026-01-01T00:00:00Z");
        assert_eq!(value["database"]["name"], "crm/../x é");
        // The name cannot reach outside its directory, nor collide with a plain one.
        assert_eq!(
            m.database.as_ref().map(DatabaseIdentity::dir),
            Some(PathBuf::from(
                "cluster=7312345678901234567/database=crm%2F..%2Fx%20%C3%A9"
            ))
        );
        let dotted = DatabaseIdentity {
            system_identifier: "1".into(),
            name: "..".into(),
        };
        assert_eq!(dotted.dir(), PathBuf::from("cluster=1/database=%2E."));
        assert_eq!(value["files"][0]["path"], "events_20260101.parquet");
        let back: Manifest = serde_json::from_slice(&text).expect("reads back");
        assert_eq!(back, m);
    }

    fn event(id: i64, at: DateTime<Utc>) -> super::super::columns::ArchiveRow {
        super::super::columns::ArchiveRow {
            id,
            occurred_at: at,
            actor: "alice".into(),
            db_user: "app".into(),
            source: "manual".into(),
            entity: "contact".into(),
            action: "update".into(),
            subject_id: None,
            table_name: None,
            changed_fields: None,
            old_data: None,
            new_data: None,
            client_addr: None,
            application_name: None,
            context: None,
            details: None,
            txid: 1,
            tenant: None,
        }
    }

    /// A quarter's partition with rows in its first and third months, archived as archive
    /// does: one file per month with rows, the manifest in the first month's directory.
    fn archive_quarter(root: &Path) -> (Layout, Manifest) {
        let l = Layout::of("audit.events_20260101", at(2026, 1, 1)).expect("layout");
        let mut w = MonthlyWriter::new(root, &l.stem, l.month, 1 << 30);
        w.push(&event(1, at(2026, 1, 5))).expect("push");
        w.push(&event(2, at(2026, 3, 31))).expect("push");
        w.push(&event(3, at(2026, 3, 31))).expect("push");
        w.finish().expect("finish");
        let placed = w.place().expect("place");
        let m = Manifest {
            schema_version: SCHEMA_VERSION,
            partition: "audit.events_20260101".into(),
            from_time: at(2026, 1, 1),
            to_time: at(2026, 4, 1),
            rows: 3,
            first_id: Some(1),
            last_id: Some(3),
            created_at: at(2026, 12, 1),
            created_by: "test".into(),
            database: None,
            files: placed
                .iter()
                .map(|p| ManifestFile::of(p, l.month))
                .collect(),
        };
        std::fs::write(
            root.join(&l.dir).join(l.manifest_name()),
            m.to_pretty_json().expect("json"),
        )
        .expect("write manifest");
        (l, m)
    }

    #[test]
    fn check_names_a_missing_or_altered_file() {
        let root = tempfile::tempdir().expect("tempdir");
        let (_, m) = archive_quarter(root.path());
        assert_eq!(
            m.files.iter().map(|f| f.path.as_str()).collect::<Vec<_>>(),
            [
                "events_20260101.parquet",
                "../../year=2026/month=03/events_20260101.parquet"
            ]
        );
        let mut lines = Vec::new();
        let summary = check(root.path(), |l| lines.push(l.to_owned())).expect("intact");
        assert_eq!(summary.manifests, 1);
        assert_eq!(summary.files, 2);
        assert_eq!(summary.rows, 3);
        assert!(lines[0].starts_with("ok year=2026/month=01/events_20260101.parquet: 1 rows"));
        assert!(lines[1].starts_with("ok year=2026/month=03/events_20260101.parquet: 2 rows"));
        assert!(!root.path().join("year=2026/month=02").exists());

        let file = root
            .path()
            .join("year=2026/month=03/events_20260101.parquet");
        let mut bytes = std::fs::read(&file).expect("read");
        bytes[10] ^= 1;
        std::fs::write(&file, &bytes).expect("write");
        let err = check(root.path(), |_| {}).expect_err("altered");
        assert_eq!(err.exit_code(), 4);
        assert!(
            err.to_string()
                .contains("year=2026/month=03/events_20260101.parquet: altered"),
            "{err}"
        );

        std::fs::remove_file(&file).expect("rm");
        let err = check(root.path(), |_| {}).expect_err("missing");
        assert!(
            err.to_string()
                .contains("year=2026/month=03/events_20260101.parquet: missing"),
            "{err}"
        );

        let empty = tempfile::tempdir().expect("tempdir");
        assert_eq!(
            check(empty.path(), |_| {}).expect_err("none").exit_code(),
            2
        );
    }

    #[test]
    fn version_1_manifests_are_read_and_may_name_only_files_beside_them() {
        let root = tempfile::tempdir().expect("tempdir");
        let (l, mut m) = archive_quarter(root.path());
        let manifest_path = root.path().join(&l.dir).join(l.manifest_name());
        // A version-1 manifest of the first month's file alone (as 0.2.0's archive wrote).
        m.schema_version = 1;
        m.rows = 1;
        m.files.truncate(1);
        std::fs::write(&manifest_path, m.to_pretty_json().expect("json")).expect("write");
        let summary = check(root.path(), |_| {}).expect("a version-1 manifest");
        assert_eq!((summary.files, summary.rows), (1, 1));

        // Version 1 names no other directory; version 2 only another month's.
        m.files[0].path = "../../year=2026/month=03/events_20260101.parquet".into();
        std::fs::write(&manifest_path, m.to_pretty_json().expect("json")).expect("write");
        let err = check(root.path(), |_| {}).expect_err("outside");
        assert!(err.to_string().contains("outside its directory"), "{err}");
        for bad in [
            "../../../etc/passwd",
            "../month=03/events_20260101.parquet",
            "../../year=2026/month=03/.hidden.parquet",
            "../../year=26/month=3/events_20260101.parquet",
            "year=2026/month=03/events_20260101.parquet",
            "/tmp/x.parquet",
        ] {
            assert!(!valid_file_path(2, bad), "{bad}");
        }
        assert!(valid_file_path(
            2,
            "../../year=2026/month=03/events_20260101_part-0002.parquet"
        ));

        m.schema_version = SCHEMA_VERSION + 1;
        std::fs::write(&manifest_path, m.to_pretty_json().expect("json")).expect("write");
        let err = check(root.path(), |_| {}).expect_err("unknown version");
        assert!(
            err.to_string()
                .contains(&format!("schema_version {}", SCHEMA_VERSION + 1)),
            "{err}"
        );
    }
}
