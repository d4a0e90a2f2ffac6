//! Sessions: a random token in an HttpOnly, SameSite=Strict cookie names a session held in
//! memory, which owns the signed-in role's database connection. Sessions end on sign-out,
//! after the idle timeout, or when their connection closes; a restart ends them all.
//!
//! An embed session (a token viewer's, opened by `GET /embed`) is the same but for its
//! cookie, [`EMBED_COOKIE`], which a cross-site frame can carry (see
//! [`super::token::set_embed_cookie`]), its connection (`--viewer-db`), and its [`Access`]:
//! one organization. A request carrying both cookies is served by the role's session.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::Method;
use tokio::sync::OwnedMutexGuard;
use tokio_postgres::Client;

use super::clock::Clock;
use super::error::{NoSession, WebError};
use super::token::{cookie, random_token, same_secret};
use super::viewer::Viewer;
use crate::filters::Filters;
use crate::own_events::OnBehalf;

/// What a session may read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// A database role signed in with its password: every organization, with the role's
    /// own rights.
    Role,
    /// A token viewer: their organization's events only, exports if the token allows.
    Viewer(Viewer),
}

pub const SESSION_COOKIE: &str = "audit_trail_session";
/// The cookie of an embed session (a token viewer's).
pub const EMBED_COOKIE: &str = "audit_trail_embed";

/// Sessions at once (each holds a database connection).
const MAX_SESSIONS: usize = 200;
/// How long a request waits for its session's connection while another request (an export)
/// uses it.
const BUSY_WAIT: Duration = Duration::from_secs(20);

pub struct Session {
    /// The database role signed in, or the token viewer's name: who pages say is signed in.
    pub role: String,
    pub access: Access,
    /// This session's CSRF token, in every form it is shown.
    pub csrf: String,
    client: Arc<tokio::sync::Mutex<Client>>,
    /// The role's connection to the primary (`--record-db`) when `client` reads a standby:
    /// exports are recorded through it.
    record: Option<Arc<tokio::sync::Mutex<Client>>>,
    /// Cleared by the connection's task when the connection ends.
    alive: Arc<AtomicBool>,
    idle: Idle,
}

impl Session {
    pub fn new(
        role: String,
        access: Access,
        client: Client,
        record: Option<Client>,
        alive: Arc<AtomicBool>,
        clock: Clock,
    ) -> Result<Session, WebError> {
        Ok(Session {
            role,
            access,
            csrf: random_token()?,
            client: Arc::new(tokio::sync::Mutex::new(client)),
            record: record.map(|r| Arc::new(tokio::sync::Mutex::new(r))),
            alive,
            idle: Idle::new(clock),
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

    /// The organization this session is restricted to (a token viewer's), None for a role.
    pub fn tenant(&self) -> Option<&str> {
        match &self.access {
            Access::Role => None,
            Access::Viewer(v) => Some(&v.tenant),
        }
    }

    pub fn is_viewer(&self) -> bool {
        matches!(self.access, Access::Viewer(_))
    }

    /// Whether this session may export: every admin role, and a viewer whose token grants it.
    pub fn may_export(&self) -> bool {
        match &self.access {
            Access::Role => true,
            Access::Viewer(v) => v.may_export,
        }
    }

    /// `filters` restricted to what this session may read: a viewer's organization always,
    /// whatever the request asked (for a role, as they are: a whole-database admin may
    /// choose an organization, or none).
    pub fn scope(&self, mut filters: Filters) -> Filters {
        if let Some(tenant) = self.tenant() {
            filters.tenant = Some(tenant.to_owned());
        }
        filters
    }

    /// Whom the sidecar's records name when not the connected role: the token viewer.
    pub fn on_behalf(&self) -> Option<OnBehalf> {
        match &self.access {
            Access::Role => None,
            Access::Viewer(v) => Some(OnBehalf {
                actor: v.name.clone(),
                tenant: v.tenant.clone(),
            }),
        }
    }

    /// Refuses a form whose CSRF token is not this session's.
    pub fn check_csrf(&self, submitted: Option<&str>) -> Result<(), WebError> {
        match submitted {
            Some(token) if same_secret(token, &self.csrf) => Ok(()),
            _ => Err(WebError::Csrf),
        }
    }

    /// Whether the session should end: idle too long, or its connection closed.
    fn over(&self, idle_timeout: Duration) -> bool {
        self.idle.expired(idle_timeout) || !self.alive.load(Ordering::Relaxed)
    }
}

/// When a session was last used, on the dashboard's clock: kept apart from [`Session`] (which
/// needs a database connection) so that idle expiry is tested on its own.
struct Idle {
    last_seen: Mutex<Instant>,
    clock: Clock,
}

impl Idle {
    fn new(clock: Clock) -> Idle {
        Idle {
            last_seen: Mutex::new(clock.now()),
            clock,
        }
    }

    /// Unused for `timeout` or longer.
    fn expired(&self, timeout: Duration) -> bool {
        let last_seen = *lock(&self.last_seen);
        self.clock.now().saturating_duration_since(last_seen) >= timeout
    }

    fn touch(&self) {
        *lock(&self.last_seen) = self.clock.now();
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[derive(Clone)]
pub struct Sessions {
    map: Arc<Mutex<HashMap<String, Arc<Session>>>>,
    idle_timeout: Duration,
    clock: Clock,
}

impl Sessions {
    pub fn new(idle_timeout: Duration, clock: Clock) -> Sessions {
        Sessions {
            map: Arc::default(),
            idle_timeout,
            clock,
        }
    }

    /// The clock a new [`Session`] counts its idle time by.
    pub fn clock(&self) -> Clock {
        self.clock.clone()
    }

    /// Adds a session and returns its token.
    pub fn insert(&self, session: Session) -> Result<String, WebError> {
        let token = random_token()?;
        let mut map = lock(&self.map);
        if map.len() >= MAX_SESSIONS {
            map.retain(|_, s| !s.over(self.idle_timeout));
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
        if session.idle.expired(self.idle_timeout) {
            map.remove(token);
            return Err(NoSession::Expired);
        }
        if !session.alive.load(Ordering::Relaxed) {
            map.remove(token);
            return Err(NoSession::ConnectionLost);
        }
        session.idle.touch();
        Ok(session)
    }

    /// Whether a token names a live session, without marking it used.
    fn live(&self, token: &str) -> bool {
        lock(&self.map)
            .get(token)
            .is_some_and(|s| !s.over(self.idle_timeout))
    }

    /// Whether a request is an embed session's, live or ended: it carries the embed cookie
    /// and no live role session. Its pages may be framed by `--embed-origin`s; a role's never.
    pub fn embed_request(&self, headers: &axum::http::HeaderMap) -> bool {
        cookie(headers, EMBED_COOKIE).is_some()
            && !cookie(headers, SESSION_COOKIE).is_some_and(|t| self.live(t))
    }

    /// Ends a session; its connection closes once no request uses it.
    pub fn remove(&self, token: &str) -> Option<Arc<Session>> {
        lock(&self.map).remove(token)
    }

    /// Ends the sessions idle for longer than the timeout, and those whose connection closed.
    pub fn remove_idle(&self) {
        lock(&self.map).retain(|_, s| !s.over(self.idle_timeout));
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
        if let Some(token) = cookie(&parts.headers, EMBED_COOKIE) {
            return match sessions.get(token) {
                Ok(session) if session.is_viewer() => Ok(SignedIn {
                    token: token.to_owned(),
                    session,
                }),
                // Inside the application's frame: no sign-in form there, the application
                // opens a new embed session.
                _ => Err(WebError::EmbedEnded),
            };
        }
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

    const TIMEOUT: Duration = Duration::from_secs(600);

    #[test]
    fn a_session_expires_at_exactly_the_idle_timeout() {
        let clock = Clock::manual();
        let idle = Idle::new(clock.clone());
        assert!(!idle.expired(TIMEOUT));
        clock.advance(TIMEOUT - Duration::from_nanos(1));
        assert!(!idle.expired(TIMEOUT));
        clock.advance(Duration::from_nanos(1));
        assert!(idle.expired(TIMEOUT));
    }

    #[test]
    fn each_use_starts_the_idle_time_over() {
        let clock = Clock::manual();
        let idle = Idle::new(clock.clone());
        for _ in 0..3 {
            clock.advance(TIMEOUT - Duration::from_secs(1));
            assert!(!idle.expired(TIMEOUT));
            idle.touch();
        }
        clock.advance(TIMEOUT - Duration::from_secs(1));
        assert!(!idle.expired(TIMEOUT));
        clock.advance(Duration::from_secs(1));
        assert!(idle.expired(TIMEOUT));
    }
}
