//! `verify --archive`: the archived files, checked against their manifests before the
//! database is read, and the dropped events they hold, read back one run of seals at a time.

use std::collections::HashMap;
use std::path::PathBuf;

use super::finding::{push, Finding, FindingKind};
use super::report::ArchiveReport;
use crate::archive::manifest::{self, DatabaseIdentity};
use crate::error::{Error, Result};
use crate::integrity::archived;
use audit_trail_contract::chain::{Hash, Position};

/// Archived files that matched their manifests, and the violations of those that did not.
#[derive(Default)]
pub(super) struct Archives {
    pub(super) files: Vec<PathBuf>,
    pub(super) violations: Vec<String>,
    /// The database each file's manifest names (None before manifests named one).
    pub(super) databases: Vec<Option<DatabaseIdentity>>,
}

impl Archives {
    /// Only the files of `identity`'s archives (and of archives that name no database):
    /// another database archived into the same directory holds partitions of the same names
    /// and other events.
    pub(super) fn of(self, identity: &DatabaseIdentity) -> Archives {
        let (files, databases) = self
            .files
            .into_iter()
            .zip(self.databases)
            .filter(|(_, d)| d.as_ref().is_none_or(|d| d == identity))
            .unzip();
        Archives {
            files,
            violations: self.violations,
            databases,
        }
    }
}

/// Checks the archives under each directory against their manifests (as `archive --check`
/// does), before the database is read. A directory that is missing or holds no manifest is
/// bad usage; a file that does not match its manifest is a violation, and its files are not
/// read.
pub(super) fn check_archives(dirs: &[PathBuf]) -> Result<Archives> {
    let mut out = Archives::default();
    for dir in dirs {
        for path in manifest::manifests_under("--archive", dir)? {
            match manifest::check_manifest(dir, &path, &mut |_| {}) {
                Ok(checked) => {
                    let database = checked.manifest.database;
                    out.databases
                        .extend(checked.files.iter().map(|_| database.clone()));
                    out.files.extend(checked.files);
                }
                Err(Error::Integrity(what)) => {
                    out.violations.push(format!("{}: {what}", dir.display()))
                }
                Err(e) => return Err(e),
            }
        }
    }
    Ok(out)
}

/// What `verify --archive` holds: the files, which of them could not be read, the report,
/// and, for one run of seals at a time, the archived hashes of its dropped events. Memory:
/// one run's dropped events (as for the run's digests), never the whole archive.
pub(super) struct ArchiveState {
    pub(super) files: Vec<PathBuf>,
    pub(super) unreadable: Vec<bool>,
    pub(super) report: ArchiveReport,
    /// The current run's noted events found in the archives, by position.
    pub(super) run: HashMap<Position, Archived>,
}

/// One dropped event as the archives hold it.
#[derive(Debug, Default, Clone)]
pub(super) struct Archived {
    /// Its full hash, from an archive where its 8-byte prefix matched the seal's digest.
    pub(super) hash: Option<Hash>,
    /// The archived files (indexes into `files`) where it differs from its digest entry.
    pub(super) altered_in: Vec<usize>,
}

impl ArchiveState {
    pub(super) fn new(archives: &Archives) -> ArchiveState {
        ArchiveState {
            files: archives.files.clone(),
            unreadable: vec![false; archives.files.len()],
            report: ArchiveReport {
                files: archives.files.len(),
                ..ArchiveReport::default()
            },
            run: HashMap::new(),
        }
    }

    /// Reads from the archived files the events a run's notes mark as dropped (`wanted`:
    /// position to digest prefix), hashing each in the canonical encoding; only the row
    /// groups whose ids may hold them are read.
    pub(super) fn read_run(
        &mut self,
        wanted: &HashMap<Position, [u8; 8]>,
        findings: &mut Vec<Finding>,
    ) {
        self.run.clear();
        let (Some(min), Some(max)) = (
            wanted.keys().map(|p| p.id).min(),
            wanted.keys().map(|p| p.id).max(),
        ) else {
            return;
        };
        for (k, path) in self.files.iter().enumerate() {
            if self.unreadable[k] {
                continue;
            }
            let run = &mut self.run;
            let read = archived::for_each_event_between(
                path,
                (min, max),
                |p| wanted.contains_key(&p),
                |p, hash| {
                    let entry = run.entry(p).or_default();
                    if wanted.get(&p).is_some_and(|short| hash[..8] == *short) {
                        entry.hash = Some(hash);
                    } else {
                        entry.altered_in.push(k);
                    }
                },
            );
            match read {
                Ok(rows) => self.report.rows_read += rows,
                Err(e) => {
                    self.unreadable[k] = true;
                    push(
                        findings,
                        FindingKind::ArchiveUnreadable,
                        None,
                        None,
                        format!("{}: {e}", path.display()),
                    );
                }
            }
        }
    }
}

/// A dropped event's archived copy: its full hash when an archive holds it as sealed
/// (counted as verified); every archived file where it differs is a finding.
pub(super) fn archived_copy(
    archive: &mut ArchiveState,
    seq: i64,
    position: Position,
    findings: &mut Vec<Finding>,
) -> Option<Hash> {
    let found = archive.run.get(&position).cloned().unwrap_or_default();
    for k in found.altered_in {
        push(
            findings,
            FindingKind::ArchiveEventAltered,
            Some(seq),
            Some(position.id),
            format!(
                "event {} ({position}) in archive {} differs from what seal {seq} sealed",
                position.id,
                archive.files[k].display(),
            ),
        );
    }
    match found.hash {
        Some(_) => archive.report.dropped_verified += 1,
        None => archive.report.dropped_without_archive += 1,
    }
    found.hash
}

#[cfg(test)]
mod tests {
    use super::*;

    fn position(id: i64) -> Position {
        Position { txid: 700, id }
    }

    #[test]
    fn an_archived_copy_that_differs_from_its_digest_is_named() {
        let mut state = ArchiveState::new(&Archives {
            files: vec![PathBuf::from("archive/events.parquet")],
            ..Archives::default()
        });
        state.run.insert(
            position(1),
            Archived {
                hash: Some([1; 32]),
                altered_in: Vec::new(),
            },
        );
        state.run.insert(
            position(2),
            Archived {
                hash: None,
                altered_in: vec![0],
            },
        );
        let mut findings = Vec::new();
        assert_eq!(
            archived_copy(&mut state, 2, position(2), &mut findings),
            None
        );
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].kind, FindingKind::ArchiveEventAltered);
        assert!(findings[0]
            .message
            .contains("in archive archive/events.parquet differs from what seal 2 sealed"));
    }
}
