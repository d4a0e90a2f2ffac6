//! Checking archives after a run: those just written, and those retention will soon rely
//! on, held to their manifests and recorded as checked (`audit.record_archive_check`).

use std::path::{Path, PathBuf};

use tokio_postgres::Client;

use super::manifest::{self, DatabaseIdentity, Layout, Manifest};
use crate::error::{Error, Result};

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
pub(super) async fn check_archives(
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
