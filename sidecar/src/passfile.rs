//! The password of a connection from a password file, as libpq reads `~/.pgpass`: lines of
//! `hostname:port:database:username:password`, `*` matching anything, `\:` and `\\` escaped,
//! the first matching line wins. `PGPASSFILE` names the file, else `~/.pgpass`.
//!
//! So that a service's secret lives in a file of its own (`/etc/audit-trail/pgpass`) and
//! never in its configuration or environment. Where libpq quietly skips a file that others
//! may read, this refuses it with an error that names it: a service that then fails to log
//! in would otherwise say nothing of why. As for libpq's key files, a file owned by root may
//! also be read by its group (0640: the services' group reads it, only root changes it).

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Who a password is looked up for: the host as libpq names it (`localhost` for a unix
/// socket), the port, the database and the role.
pub struct Lookup<'a> {
    pub host: &'a str,
    pub port: u16,
    pub database: &'a str,
    pub user: &'a str,
}

/// The password file to read: `PGPASSFILE`, else `~/.pgpass` (if it exists).
pub fn location() -> Option<(PathBuf, bool)> {
    match std::env::var_os("PGPASSFILE").filter(|v| !v.is_empty()) {
        Some(path) => Some((PathBuf::from(path), true)),
        None => std::env::var_os("HOME")
            .filter(|v| !v.is_empty())
            .map(|home| (Path::new(&home).join(".pgpass"), false)),
    }
}

/// The password for `lookup` in the file at `path`; None when no line matches, or when a
/// default `~/.pgpass` (not `named`) does not exist.
pub fn password(path: &Path, named: bool, lookup: &Lookup) -> Result<Option<String>> {
    let cannot = |e: std::io::Error| {
        Error::Usage(format!(
            "PGPASSFILE {}: cannot read it: {e}",
            path.display()
        ))
    };
    // Checked before it is read: a device or a pipe named by mistake is refused, not read.
    match std::fs::metadata(path) {
        Err(e) if !named && e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(cannot(e)),
        Ok(_) => check_access(path)?,
    }
    let text = std::fs::read_to_string(path).map_err(cannot)?;
    Ok(text.lines().find_map(|line| matching(line, lookup)))
}

#[cfg(unix)]
fn check_access(path: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path)
        .map_err(|e| Error::Usage(format!("PGPASSFILE {}: {e}", path.display())))?;
    let mode = meta.mode() & 0o777;
    let allowed = if meta.uid() == 0 { 0o740 } else { 0o700 };
    if !meta.is_file() || mode & !allowed != 0 {
        return Err(Error::Usage(format!(
            "PGPASSFILE {}: others may read or change it (mode {mode:04o}); make it 0600, \
             or 0640 owned by root",
            path.display()
        )));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_access(_: &Path) -> Result<()> {
    Ok(())
}

/// The password of `line` if its first four fields match `lookup`.
fn matching(line: &str, lookup: &Lookup) -> Option<String> {
    if line.starts_with('#') {
        return None;
    }
    let fields = split(line);
    let [host, port, database, user, password] = fields.as_slice() else {
        return None;
    };
    let port_text = lookup.port.to_string();
    let matches = |field: &str, value: &str| field == "*" || field == value;
    (matches(host, lookup.host)
        && matches(port, &port_text)
        && matches(database, lookup.database)
        && matches(user, lookup.user))
    .then(|| password.clone())
}

/// The fields of a line: split at unescaped colons, `\x` read as `x`. The password is the
/// rest of the line, colons and all, as libpq reads it.
fn split(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => field.extend(chars.next()),
            ':' if fields.len() < 4 => fields.push(std::mem::take(&mut field)),
            c => field.push(c),
        }
    }
    fields.push(field);
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup() -> Lookup<'static> {
        Lookup {
            host: "db.example.com",
            port: 5432,
            database: "app",
            user: "audit-trail",
        }
    }

    #[test]
    fn the_first_matching_line_wins_with_wildcards_and_escapes() {
        let l = lookup();
        assert_eq!(
            matching("db.example.com:5432:app:audit-trail:s3cret", &l).as_deref(),
            Some("s3cret")
        );
        assert_eq!(
            matching("*:*:*:audit-trail:a\\:b\\\\c:d", &l).as_deref(),
            Some("a:b\\c:d")
        );
        assert_eq!(matching("db.example.com:5433:app:audit-trail:x", &l), None);
        assert_eq!(matching("*:*:other:*:x", &l), None);
        assert_eq!(matching("# *:*:*:*:x", &l), None);
        assert_eq!(matching("*:*:*", &l), None);
    }

    #[cfg(unix)]
    #[test]
    fn a_file_others_may_read_is_refused_and_a_missing_default_is_none() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("pgpass");
        std::fs::write(&file, "wrong:*:*:*:no\n*:*:app:*:yes\n").expect("write");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        assert_eq!(
            password(&file, true, &lookup()).expect("read").as_deref(),
            Some("yes")
        );
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let err = password(&file, true, &lookup()).expect_err("world-readable");
        assert!(err.to_string().contains("mode 0644"), "{err}");
        let missing = dir.path().join("none");
        assert_eq!(
            password(&missing, false, &lookup()).expect("no default file"),
            None
        );
        assert!(password(&missing, true, &lookup()).is_err());
        let device = password(Path::new("/dev/zero"), true, &lookup()).expect_err("a device");
        assert!(device.to_string().contains("/dev/zero"), "{device}");
    }
}
