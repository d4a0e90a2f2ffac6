//! Sessions: a random token in an HttpOnly, SameSite=Strict cookie names a session held in
//! memory, which owns the signed-in role's database connection. Sessions end on sign-out,
//! after the idle timeout, or when their connection closes; a restart ends them all.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method};
use tokio::sync::OwnedMutexGuard;
use tokio_postgres::Client;

use super::error::WebError;

pub const SESSION_COOKIE: &str = "audit_trail_session";

/// Sessions at once (each holds a database connection).
const MAX_SESSIONS: usize = 200;
/// How long a request waits for its session's connection while another request (an export)
/// uses it.
const BUSY_WAIT: Duration = Duration::from_secs(20);

/// 32 bytes from the operating system's random source, as 64 hex digits.
pub fn random_token() -> Result<String, WebError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| WebError::internal(format!("no random bytes for a token: {e}")))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Compares two secrets in time independent of where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The value of a cookie in the request.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// `Set-Cookie` for a cookie only this site's pages send back, and no script can read.
pub fn set_cookie(name: &str, value: &str, max_age: Option<Duration>) -> String {
    let mut c = format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict");
    if let Some(age) = max_age {
        c.push_str(&format!("; Max-Age={}", age.as_secs()));
    }
    c
}

pub fn clear_cookie(name: &str) -> String {
    format!("{name}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
}

pub struct Session {
    /// The database role signed in.
    pub role: String,
    /// This session's CSRF token, in every form it is shown.
    pub csrf: String,
    client: Arc<tokio::sync::Mutex<Client>>,
    /// The role's connection to the primary (`--record-db`) when `client` reads a standby:
    /// exports are recorded through it.
    record: Option<Arc<tokio::sync::Mutex<Client>>>,
    /// Cleared by the connection's task when the connection ends.
    alive: Arc<AtomicBool>,
    last_seen: Mutex<Instant>,
}

impl Session {
    pub fn new(
        role: String,
        client: Client,
        record: Option<Client>,
        alive: Arc<AtomicBool>,
    ) -> Result<Session, WebError> {
        Ok(Session {
            role,
            csrf: random_token()?,
            client: Arc::new(tokio::sync::Mutex::new(client)),
            record: record.map(|r| Arc::new(tokio::sync::Mutex::new(r))),
            alive,
            last_seen: Mutex::new(Instant::now()),
        })
    }

    /// The session's database connection, for one request (or one export) at a time.
    pub async fn client(&self) -> Result<OwnedMutexGuard<Client>, WebError> {
        let guard = tokio::time::timeout(BUSY_WAIT, self.client.clone().lock_owned())
            .await
            .map_err(|_| WebError::Busy)?;
        if guard.is_closed() {
            return Err(WebError::ConnectionLost);
        }
        Ok(guard)
    }

    /// The connection to record through, when it is not [`Session::client`]'s.
    pub async fn record_client(&self) -> Result<Option<OwnedMutexGuard<Client>>, WebError> {
        let Some(record) = &self.record else {
            return Ok(None);
        };
        let guard = tokio::time::timeout(BUSY_WAIT, record.clone().lock_owned())
            .await
            .map_err(|_| WebError::Busy)?;
        if guard.is_closed() {
            return Err(WebError::ConnectionLost);
        }
        Ok(Some(guard))
    }

    /// Refuses a form whose CSRF token is not this session's.
    pub fn check_csrf(&self, submitted: Option<&str>) -> Result<(), WebError> {
        match submitted {
            Some(token) if same_secret(token, &self.csrf) => Ok(()),
            _ => Err(WebError::Csrf),
        }
    }

    fn idle_for(&self) -> Duration {
        lock(&self.last_seen).elapsed()
    }

    fn touch(&self) {
        *lock(&self.last_seen) = Instant::now();
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[derive(Clone)]
pub struct Sessions {
    map: Arc<Mutex<HashMap<String, Arc<Session>>>>,
    idle_timeout: Duration,
}

/// Why a request has no session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoSession {
    /// No cookie, or one naming no session (never signed in, signed out, server restarted).
    Missing,
    /// Idle for longer than the timeout.
    Expired,
    /// The database closed the session's connection.
    ConnectionLost,
}

impl Sessions {
    pub fn new(idle_timeout: Duration) -> Sessions {
        Sessions {
            map: Arc::default(),
            idle_timeout,
        }
    }

    /// Adds a session and returns its token.
    pub fn insert(&self, session: Session) -> Result<String, WebError> {
        let token = random_token()?;
        let mut map = lock(&self.map);
        if map.len() >= MAX_SESSIONS {
            let idle = self.idle_timeout;
            map.retain(|_, s| s.idle_for() < idle && s.alive.load(Ordering::Relaxed));
        }
        if map.len() >= MAX_SESSIONS {
            return Err(WebError::TooManySessions);
        }
        map.insert(token.clone(), Arc::new(session));
        Ok(token)
    }

    /// The live session a token names, marked as used now.
    pub fn get(&self, token: &str) -> Result<Arc<Session>, NoSession> {
        let mut map = lock(&self.map);
        let session = map.get(token).cloned().ok_or(NoSession::Missing)?;
        if session.idle_for() >= self.idle_timeout {
            map.remove(token);
            return Err(NoSession::Expired);
        }
        if !session.alive.load(Ordering::Relaxed) {
            map.remove(token);
            return Err(NoSession::ConnectionLost);
        }
        session.touch();
        Ok(session)
    }

    /// Ends a session; its connection closes once no request uses it.
    pub fn remove(&self, token: &str) -> Option<Arc<Session>> {
        lock(&self.map).remove(token)
    }

    /// Ends the sessions idle for longer than the timeout, and those whose connection closed.
    pub fn remove_idle(&self) {
        let idle = self.idle_timeout;
        lock(&self.map).retain(|_, s| s.idle_for() < idle && s.alive.load(Ordering::Relaxed));
    }
}

/// A request from a signed-in admin. Without one, a page request is sent to the sign-in page
/// (and back afterwards); any other request is refused.
pub struct SignedIn {
    pub token: String,
    pub session: Arc<Session>,
}

impl<S> FromRequestParts<S> for SignedIn
where
    Sessions: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let sessions = Sessions::from_ref(state);
        let reason = match cookie(&parts.headers, SESSION_COOKIE) {
            Some(token) => match sessions.get(token) {
                Ok(session) => {
                    return Ok(SignedIn {
                        token: token.to_owned(),
                        session,
                    })
                }
                Err(reason) => reason,
            },
            None => NoSession::Missing,
        };
        let next = (parts.method == Method::GET).then(|| {
            parts
                .uri
                .path_and_query()
                .map(|pq| pq.as_str().to_owned())
                .unwrap_or_else(|| "/".into())
        });
        Err(WebError::SignInRequired { next, reason })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_random_and_distinct() {
        let a = random_token().unwrap();
        let b = random_token().unwrap();
        assert_eq!(a.len(), 64);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn secrets_compare_exactly() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "abcd"));
        assert!(!same_secret("", "a"));
    }

    #[test]
    fn cookies_are_found_by_exact_name() {
        let mut h = HeaderMap::new();
        h.insert(
            axum::http::header::COOKIE,
            "x_audit_trail_session=evil; audit_trail_session=good; other=1"
                .parse()
                .unwrap(),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("good"));
        assert_eq!(cookie(&h, "missing"), None);
        let set = set_cookie(SESSION_COOKIE, "t", None);
        assert!(
            set.contains("HttpOnly") && set.contains("SameSite=Strict") && set.contains("Path=/")
        );
    }
}
