//! Token viewers: the admins of one customer organization, whom the application (not the
//! database) vouches for with a short-lived JWT it signs. A viewer is no database role: what
//! they see is read through `serve --viewer-db` (a role in audit_admin), always restricted to
//! the organization the token names (`Filters.tenant`), never to one a request names.
//!
//! [`Verifier`] checks a token with the `jsonwebtoken` crate against the keys `serve` was
//! given (`--viewer-secret-file`, HS256; `--viewer-key`, EdDSA): the header's algorithm picks
//! the key, so a token signed one way is never checked against the other key (no algorithm
//! confusion), and `none` or any other algorithm is refused. Every refusal is one answer to
//! the client (401, nothing shown); its [`Refusal`] is for the server's log, which never
//! holds a token or a key. [`pool`] is the `--viewer-db` connections.

pub mod pool;

use std::path::Path;

use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use crate::error::{Error, Result};

/// The longest a token may still live when it is presented: a token whose `exp` is further
/// ahead is refused, so that a leaked one (a URL in a proxy's log, a browser history) dies
/// soon whatever its issuer chose.
pub const MAX_TOKEN_LIFETIME_SECS: u64 = 3600;
/// Clock skew allowed between the application that mints tokens and this server, on `exp`
/// (and `iat`, and the lifetime bound).
pub const CLOCK_SKEW_SECS: u64 = 30;
/// An HS256 secret shorter than this is refused at start (RFC 7518 3.2: at least the hash's
/// size).
pub const MIN_SECRET_BYTES: usize = 32;
/// Longest token read; anything longer is refused before it is decoded.
const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// Longest `sub`, `name` or `tenant` accepted (they go into the log and into every query).
const MAX_CLAIM_BYTES: usize = 256;

/// The scope a token grants when it names none.
pub const READ_SCOPE: &str = "audit_log:read";
/// The scope that allows CSV exports (the Export button, `GET /api/v1/events.csv`).
pub const EXPORT_SCOPE: &str = "audit_log:export";

/// A verified viewer: who (`subject`, shown as `name`), which organization, and what they may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Viewer {
    /// The `sub` claim: the application's id of the person.
    pub subject: String,
    /// What the log names them: the `name` claim, else `sub`.
    pub name: String,
    /// The organization whose events they see: the `tenant` claim, never empty.
    pub tenant: String,
    pub may_read: bool,
    pub may_export: bool,
}

/// The claims read from a token. Unknown claims are ignored; a missing required one (or one
/// of the wrong type) fails deserialization, which refuses the token.
#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
    tenant: String,
    exp: u64,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    iat: Option<u64>,
    #[serde(default)]
    scope: Option<String>,
}

/// Why a token was refused: for the server's log only (the client is told nothing more than
/// 401).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("no token")]
    Missing,
    #[error("not a JWT")]
    Malformed,
    #[error("algorithm {0} is not one this server was given a key for")]
    Algorithm(String),
    #[error("bad signature")]
    Signature,
    #[error("expired")]
    Expired,
    #[error("missing or invalid claim {0}")]
    Claim(&'static str),
    #[error("empty claim {0}")]
    Empty(&'static str),
    #[error("claim {0} is longer than {MAX_CLAIM_BYTES} bytes or holds control characters")]
    Unfit(&'static str),
    #[error("exp is more than {MAX_TOKEN_LIFETIME_SECS} s ahead")]
    LivesTooLong,
    #[error("issued in the future (iat)")]
    IssuedInTheFuture,
}

/// The keys viewer tokens are checked against (at least one).
pub struct Verifier {
    /// `--viewer-secret-file`: HS256.
    secret: Option<DecodingKey>,
    /// `--viewer-key`: EdDSA (Ed25519).
    public: Option<DecodingKey>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the keys.
        f.debug_struct("Verifier")
            .field("hs256", &self.secret.is_some())
            .field("eddsa", &self.public.is_some())
            .finish()
    }
}

impl Verifier {
    /// Reads the key files `serve` was given; None when neither was. Any fault is a usage
    /// error (exit 2) naming the flag and the file, never the key.
    pub fn from_files(secret: Option<&Path>, public: Option<&Path>) -> Result<Option<Verifier>> {
        if secret.is_none() && public.is_none() {
            return Ok(None);
        }
        if jsonwebtoken::crypto::CryptoProvider::try_get_default().is_none() {
            return Err(Error::System(
                "no JWT crypto provider in this build of audit-trail".into(),
            ));
        }
        let read = |flag: &str, path: &Path| {
            std::fs::read(path)
                .map_err(|e| Error::Usage(format!("{flag}: cannot read {}: {e}", path.display())))
        };
        let secret = secret
            .map(|path| {
                Verifier::secret_key(&read("--viewer-secret-file", path)?).map_err(|why| {
                    Error::Usage(format!("--viewer-secret-file: {}: {why}", path.display()))
                })
            })
            .transpose()?;
        let public = public
            .map(|path| {
                Verifier::public_key(&read("--viewer-key", path)?)
                    .map_err(|why| Error::Usage(format!("--viewer-key: {}: {why}", path.display())))
            })
            .transpose()?;
        Ok(Some(Verifier { secret, public }))
    }

    /// The HS256 key of a secret file's bytes: all of them but one trailing newline.
    pub fn secret_key(bytes: &[u8]) -> std::result::Result<DecodingKey, String> {
        let bytes = bytes.strip_suffix(b"\n").unwrap_or(bytes);
        let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
        if bytes.len() < MIN_SECRET_BYTES {
            return Err(format!(
                "the secret is {} bytes; at least {MIN_SECRET_BYTES} are needed",
                bytes.len()
            ));
        }
        DecodingKey::from_secret(bytes).map_err(|e| e.to_string())
    }

    /// The EdDSA key of a PEM file holding an Ed25519 public key (`BEGIN PUBLIC KEY`).
    pub fn public_key(pem: &[u8]) -> std::result::Result<DecodingKey, String> {
        let key = DecodingKey::from_ed_pem(pem)
            .map_err(|_| "not an Ed25519 public key in PEM (BEGIN PUBLIC KEY)".to_owned())?;
        // Checked here, once: the verifier takes the first 32 bytes of the key as it is.
        let raw = key
            .try_get_as_bytes()
            .map_err(|_| "not an Ed25519 public key".to_owned())?;
        let raw: &[u8; 32] = raw
            .try_into()
            .map_err(|_| "not an Ed25519 public key (32 bytes)".to_owned())?;
        ed25519_dalek::VerifyingKey::from_bytes(raw)
            .map_err(|_| "not a valid Ed25519 public key".to_owned())?;
        Ok(key)
    }

    #[cfg(test)]
    pub(crate) fn new(secret: Option<DecodingKey>, public: Option<DecodingKey>) -> Verifier {
        Verifier { secret, public }
    }

    /// The viewer a token names, if it is valid now (`now`: seconds since 1970).
    pub fn verify(&self, token: &str, now: u64) -> std::result::Result<Viewer, Refusal> {
        let token = token.trim();
        if token.is_empty() {
            return Err(Refusal::Missing);
        }
        if token.len() > MAX_TOKEN_BYTES {
            return Err(Refusal::Malformed);
        }
        let header = decode_header(token).map_err(|_| Refusal::Malformed)?;
        let key = match header.alg {
            Algorithm::HS256 => self.secret.as_ref(),
            Algorithm::EdDSA => self.public.as_ref(),
            _ => None,
        }
        .ok_or_else(|| Refusal::Algorithm(format!("{:?}", header.alg)))?;
        let mut validation = Validation::new(header.alg);
        validation.leeway = CLOCK_SKEW_SECS;
        validation.set_required_spec_claims(&["exp", "sub"]);
        // There is no audience to check against: the key is this server's alone.
        validation.validate_aud = false;
        let claims = decode::<Claims>(token, key, &validation)
            .map_err(|e| refusal(e.into_kind()))?
            .claims;
        viewer(claims, now)
    }
}

fn refusal(kind: jsonwebtoken::errors::ErrorKind) -> Refusal {
    use jsonwebtoken::errors::ErrorKind as K;
    match kind {
        K::InvalidSignature => Refusal::Signature,
        K::ExpiredSignature => Refusal::Expired,
        K::InvalidAlgorithm | K::InvalidAlgorithmName | K::MissingAlgorithm => {
            Refusal::Algorithm("unexpected".into())
        }
        K::MissingRequiredClaim(c) if c == "exp" => Refusal::Claim("exp"),
        K::MissingRequiredClaim(c) if c == "sub" => Refusal::Claim("sub"),
        K::InvalidClaimFormat(c) if c == "exp" => Refusal::Claim("exp"),
        // serde's "missing field" and the like: tenant missing, or a claim of the wrong type.
        K::Json(_) => Refusal::Claim("sub, tenant or exp"),
        _ => Refusal::Malformed,
    }
}

/// The viewer of verified claims, after the checks the library does not make.
fn viewer(claims: Claims, now: u64) -> std::result::Result<Viewer, Refusal> {
    if claims.exp > now.saturating_add(MAX_TOKEN_LIFETIME_SECS + CLOCK_SKEW_SECS) {
        return Err(Refusal::LivesTooLong);
    }
    if claims.exp.saturating_add(CLOCK_SKEW_SECS) < now {
        return Err(Refusal::Expired);
    }
    if claims.iat.is_some_and(|iat| iat > now + CLOCK_SKEW_SECS) {
        return Err(Refusal::IssuedInTheFuture);
    }
    let checked = |claim: &'static str, value: String| {
        if value.trim().is_empty() {
            Err(Refusal::Empty(claim))
        } else if value.len() > MAX_CLAIM_BYTES || value.chars().any(char::is_control) {
            Err(Refusal::Unfit(claim))
        } else {
            Ok(value)
        }
    };
    let subject = checked("sub", claims.sub)?;
    let tenant = checked("tenant", claims.tenant)?;
    let name = match claims.name {
        Some(name) if !name.trim().is_empty() => checked("name", name)?,
        _ => subject.clone(),
    };
    let (may_read, may_export) = match claims.scope.as_deref() {
        None => (true, false),
        Some(scope) => {
            let has = |s: &str| scope.split_whitespace().any(|x| x == s);
            // Exporting is reading: a token granting only the export may read too.
            let export = has(EXPORT_SCOPE);
            (has(READ_SCOPE) || export, export)
        }
    };
    Ok(Viewer {
        subject,
        name,
        tenant,
        may_read,
        may_export,
    })
}

/// Now, in seconds since 1970 (the time tokens are checked at).
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests;
