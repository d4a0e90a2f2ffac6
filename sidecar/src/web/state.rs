//! What the handlers share. Each handler takes only the piece it needs (`State<Sessions>`,
//! `State<Arc<Settings>>`, ...) through `FromRef`.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::FromRef;
use chrono_tz::Tz;
use tokio_postgres::config::Host;

use super::actions::ActionChoices;
use super::clock::Clock;
use super::limiter::SignInLimiter;
use super::queries::integrity::SchemaFindings;
use super::session::Sessions;
use super::viewer::pool::ViewerDb;
use super::viewer::Verifier;

/// How the dashboard was started.
pub struct Settings {
    /// Where to connect: host, port, database and options. The role and password come from
    /// the sign-in form; any in the configuration are replaced.
    pub database: tokio_postgres::Config,
    /// How connections to it are encrypted (libpq's sslmode meanings, see `crate::tls`).
    pub tls: crate::tls::Tls,
    /// Where the signed-in role's exports are recorded when `database` is a standby
    /// (`--record-db`, the primary), and how that connection is encrypted; role and password
    /// again from the sign-in form. None: recorded in `database`.
    pub record_database: Option<(tokio_postgres::Config, crate::tls::Tls)>,
    /// The zone times are shown in, and custom date ranges read in.
    pub zone: Tz,
    pub idle_timeout: Duration,
    /// How long a page's queries may run (`--query-timeout`).
    pub query_timeout: Duration,
    pub page_size: i64,
    /// `Host` header values requests may carry (lowercase); empty accepts any. A page of
    /// another site that resolves its own name to this address (DNS rebinding) sends its
    /// own name, and is refused.
    pub allowed_hosts: Vec<String>,
    /// Peers whose `X-Forwarded-For` names the client (`--trusted-proxy`).
    pub trusted_proxies: Vec<super::proxy::TrustedProxy>,
    /// Origins whose pages may frame embed sessions (`--embed-origin`), as CSP sources.
    pub embed_origins: Vec<String>,
}

impl Settings {
    /// `host:port/dbname`, for the startup line and logs (no role, no password).
    pub fn database_description(&self) -> String {
        let host = match self.database.get_hosts().first() {
            Some(Host::Tcp(h)) => h.clone(),
            #[cfg(unix)]
            Some(Host::Unix(p)) => p.display().to_string(),
            None => "?".into(),
        };
        let port = self.database.get_ports().first().copied().unwrap_or(5432);
        format!(
            "{host}:{port}/{}",
            self.database.get_dbname().unwrap_or("?")
        )
    }
}

/// Token viewers: how their tokens are checked, and the connections they read through
/// (`--viewer-secret-file`, `--viewer-key`, `--viewer-db`).
pub struct Viewers {
    pub verifier: Verifier,
    pub db: Arc<ViewerDb>,
}

#[derive(Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub sessions: Sessions,
    pub limiter: SignInLimiter,
    pub actions: ActionChoices,
    pub findings: SchemaFindings,
    /// None: no token viewers (no embed, no API).
    pub viewers: Option<Arc<Viewers>>,
}

impl AppState {
    pub fn new(settings: Settings) -> AppState {
        let clock = Clock::System;
        AppState {
            sessions: Sessions::new(settings.idle_timeout, clock.clone()),
            settings: Arc::new(settings),
            limiter: SignInLimiter::new(clock),
            actions: ActionChoices::default(),
            findings: SchemaFindings::default(),
            viewers: None,
        }
    }

    /// This state, serving token viewers too.
    pub fn with_viewers(self, viewers: Viewers) -> AppState {
        AppState {
            viewers: Some(Arc::new(viewers)),
            ..self
        }
    }
}

impl FromRef<AppState> for Option<Arc<Viewers>> {
    fn from_ref(state: &AppState) -> Self {
        state.viewers.clone()
    }
}

impl FromRef<AppState> for Arc<Settings> {
    fn from_ref(state: &AppState) -> Self {
        state.settings.clone()
    }
}

impl FromRef<AppState> for Sessions {
    fn from_ref(state: &AppState) -> Self {
        state.sessions.clone()
    }
}

impl FromRef<AppState> for SignInLimiter {
    fn from_ref(state: &AppState) -> Self {
        state.limiter.clone()
    }
}

impl FromRef<AppState> for ActionChoices {
    fn from_ref(state: &AppState) -> Self {
        state.actions.clone()
    }
}

impl FromRef<AppState> for SchemaFindings {
    fn from_ref(state: &AppState) -> Self {
        state.findings.clone()
    }
}
