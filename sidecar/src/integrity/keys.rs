//! Sealing keys: an Ed25519 secret in a file only the operator holds, its public half in a
//! `.pub` file the auditor is given (formats in docs/integrity.md).

use std::io::Write;
use std::path::{Path, PathBuf};

use ed25519_dalek::{SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

const SECRET_HEADER: &str = "audit_trail ed25519 secret v1";
const PUBLIC_HEADER: &str = "audit_trail ed25519 public v1";

/// The first 16 hex digits of SHA-256 of the public key: how seals name their key.
pub fn key_id(key: &VerifyingKey) -> String {
    hex::encode(&Sha256::digest(key.as_bytes())[..8])
}

/// The `.pub` file beside a key file.
pub fn public_path(keyfile: &Path) -> PathBuf {
    let mut name = keyfile.as_os_str().to_owned();
    name.push(".pub");
    PathBuf::from(name)
}

/// A new key from the operating system's random source.
pub fn generate() -> Result<SigningKey> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed)
        .map_err(|e| Error::System(format!("no random bytes for a key: {e}")))?;
    Ok(SigningKey::from_bytes(&seed))
}

/// Writes KEYFILE (mode 0600) and KEYFILE.pub; refuses to replace either.
pub fn write(keyfile: &Path, key: &SigningKey) -> Result<()> {
    let public = public_path(keyfile);
    for path in [keyfile, public.as_path()] {
        if path.exists() {
            return Err(Error::Usage(format!(
                "{} exists already: keygen never replaces a key",
                path.display()
            )));
        }
    }
    write_new(
        keyfile,
        0o600,
        &format!("{SECRET_HEADER}\n{}\n", hex::encode(key.to_bytes())),
    )?;
    write_new(
        &public,
        0o644,
        &format!(
            "{PUBLIC_HEADER}\n{}\n",
            hex::encode(key.verifying_key().as_bytes())
        ),
    )
}

fn write_new(path: &Path, mode: u32, text: &str) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let file_error = |source| Error::File {
        path: path.to_owned(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(file_error)?;
    file.write_all(text.as_bytes()).map_err(file_error)?;
    file.sync_all().map_err(file_error)
}

/// The 32 bytes after `header` in a key file, refusing anything else with a line that
/// names the file. A key file that is missing or unreadable is bad input (exit 2), like a
/// malformed one: the operator named it.
fn read_key_bytes(path: &Path, header: &str, what: &str) -> Result<[u8; 32]> {
    let text = std::fs::read_to_string(path).map_err(|source| {
        Error::Usage(format!(
            "cannot read the {what} key file {}: {source}",
            path.display()
        ))
    })?;
    let bad = || {
        Error::Usage(format!(
            "{} is not an audit_trail {what} key file (expected \"{header}\" and 64 hex digits)",
            path.display()
        ))
    };
    let mut lines = text.lines();
    if lines.next() != Some(header) {
        return Err(bad());
    }
    let bytes = lines
        .next()
        .and_then(|l| hex::decode(l.trim()).ok())
        .ok_or_else(bad)?;
    if lines.any(|l| !l.trim().is_empty()) {
        return Err(bad());
    }
    bytes.try_into().map_err(|_| bad())
}

pub fn read_secret(path: &Path) -> Result<SigningKey> {
    Ok(SigningKey::from_bytes(&read_key_bytes(
        path,
        SECRET_HEADER,
        "secret",
    )?))
}

pub fn read_public(path: &Path) -> Result<VerifyingKey> {
    let bytes = read_key_bytes(path, PUBLIC_HEADER, "public")?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| {
        Error::Usage(format!(
            "{} does not hold a valid Ed25519 public key",
            path.display()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_never_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seal.key");
        let key = generate().unwrap();
        write(&path, &key).unwrap();
        assert_eq!(read_secret(&path).unwrap().to_bytes(), key.to_bytes());
        let public = read_public(&public_path(&path)).unwrap();
        assert_eq!(public, key.verifying_key());
        assert_eq!(key_id(&public).len(), 16);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(matches!(write(&path, &key), Err(Error::Usage(_))));
        // A public key file is not a secret one, and the other way round.
        assert!(matches!(
            read_secret(&public_path(&path)),
            Err(Error::Usage(_))
        ));
        assert!(matches!(read_public(&path), Err(Error::Usage(_))));
        // Missing: bad input too, naming the file.
        let missing = dir.path().join("nowhere.key");
        match read_secret(&missing) {
            Err(Error::Usage(message)) => assert!(message.contains("nowhere.key"), "{message}"),
            other => panic!("{other:?}"),
        }
    }
}
