//! The connections token viewers are served through (`serve --viewer-db`): one role in
//! audit_admin, checked when `serve` starts.
//!
//! Two uses. An embed session gets a connection of its own for its life, as a signed-in
//! role's session does: one request at a time per person, an export holds only its own
//! session's connection, and the idle reaper closes it. API requests, which have no session,
//! borrow one from a small pool ([`ViewerDb::get`]) for the request (or the CSV export) and
//! give it back. Sharing connections between organizations is safe because nothing about a
//! viewer lives in the connection: every query carries the organization as a parameter, and
//! what a request sets (`statement_timeout`, the actor of a record) is `SET LOCAL`, gone at
//! the end of its transaction.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_postgres::Client;

use crate::db;
use crate::error::{Error, Result};

/// API requests served at once (each holds one connection).
const MAX_API_CONNECTIONS: usize = 8;
/// How long an API request waits for a connection before it is told the server is busy.
const WAIT_FOR_CONNECTION: Duration = Duration::from_secs(10);

pub struct ViewerDb {
    target: db::Target,
    idle: Mutex<Vec<Client>>,
    permits: Arc<Semaphore>,
}

/// Why no connection could be had.
#[derive(Debug)]
pub enum Unavailable {
    /// Every pooled connection is in use.
    Busy,
    /// The database could not be reached (the cause, for the log).
    Unreachable(String),
}

impl ViewerDb {
    /// Resolves `--viewer-db`, connects, and refuses (before `serve` listens) a role that may
    /// not read the log or a standby, where viewers' sign-ins and exports cannot be recorded.
    pub async fn open(text: &str, application_name: &str) -> Result<ViewerDb> {
        let target = db::resolve_as(Some(text), application_name, db::DefaultUser::OsUser)
            .map_err(|e| match e {
                Error::Usage(m) => Error::Usage(
                    m.strip_prefix("--db")
                        .map_or_else(|| m.clone(), |rest| format!("--viewer-db{rest}")),
                ),
                other => other,
            })?;
        let client = db::connect(&target).await.map_err(|e| match e {
            Error::Connect { target, reason } => Error::Connect {
                target: format!("--viewer-db {target}"),
                reason,
            },
            other => other,
        })?;
        db::require_audit_admin(&client)
            .await
            .map_err(|e| match e {
                Error::PermissionDenied(m) => Error::PermissionDenied(format!("--viewer-db: {m}")),
                other => other,
            })?;
        if db::in_recovery(&client).await? {
            return Err(Error::Usage(format!(
                "--viewer-db: {} is a read-only standby; token viewers' sign-ins and exports \
                 are recorded through it: name the primary",
                target.description
            )));
        }
        prepare(&client)
            .await
            .map_err(|e| Error::database("setting up --viewer-db", &e))?;
        Ok(ViewerDb {
            target,
            idle: Mutex::new(vec![client]),
            permits: Arc::new(Semaphore::new(MAX_API_CONNECTIONS)),
        })
    }

    /// A pool that has never connected (and cannot: nothing listens where it points), for
    /// tests of what is refused before a connection is needed.
    #[cfg(test)]
    pub fn unconnected() -> ViewerDb {
        let mut config = tokio_postgres::Config::new();
        config
            .host("/nonexistent-audit-trail-test")
            .user("nobody")
            .dbname("none");
        ViewerDb {
            target: db::Target {
                config,
                description: "nobody@/nonexistent-audit-trail-test/none".into(),
                tls: crate::tls::connector(&crate::tls::Verification::None).expect("TLS set-up"),
            },
            idle: Mutex::new(Vec::new()),
            permits: Arc::new(Semaphore::new(MAX_API_CONNECTIONS)),
        }
    }

    /// `role@host:port/dbname`, for logs (never the password).
    pub fn description(&self) -> &str {
        &self.target.description
    }

    /// A new connection of its own (an embed session's), and the flag its end clears.
    pub async fn connect_own(&self) -> std::result::Result<(Client, Arc<AtomicBool>), Unavailable> {
        let alive = Arc::new(AtomicBool::new(true));
        let (client, connection) = db::open(&self.target)
            .await
            .map_err(|e| Unavailable::Unreachable(e.to_string()))?;
        watch(connection, &alive);
        prepare(&client)
            .await
            .map_err(|e| Unavailable::Unreachable(crate::error::describe(&e)))?;
        Ok((client, alive))
    }

    /// A pooled connection for one API request, waiting up to [`WAIT_FOR_CONNECTION`].
    pub async fn get(self: &Arc<Self>) -> std::result::Result<Pooled, Unavailable> {
        let permit =
            tokio::time::timeout(WAIT_FOR_CONNECTION, self.permits.clone().acquire_owned())
                .await
                .map_err(|_| Unavailable::Busy)?
                .map_err(|_| Unavailable::Busy)?;
        let reused = {
            let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
            idle.retain(|c| !c.is_closed());
            idle.pop()
        };
        let client = match reused {
            Some(client) => client,
            None => self.connect_own().await?.0,
        };
        Ok(Pooled {
            client: Some(client),
            pool: self.clone(),
            _permit: permit,
        })
    }
}

/// Dashboard queries are short; JIT compilation would cost more than it saves (as for a
/// signed-in role's session).
async fn prepare(client: &Client) -> std::result::Result<(), tokio_postgres::Error> {
    client.batch_execute("SET jit = off").await
}

/// Drives a connection in the background; `alive` turns false when it ends.
fn watch<C>(connection: C, alive: &Arc<AtomicBool>)
where
    C: Future + Send + 'static,
{
    let flag = alive.clone();
    tokio::spawn(async move {
        let _ = connection.await;
        flag.store(false, Ordering::Relaxed);
    });
}

/// A connection borrowed from the pool; given back when dropped (unless it closed).
pub struct Pooled {
    client: Option<Client>,
    pool: Arc<ViewerDb>,
    _permit: OwnedSemaphorePermit,
}

impl std::ops::Deref for Pooled {
    type Target = Client;
    fn deref(&self) -> &Client {
        self.client
            .as_ref()
            .expect("a pooled connection until dropped")
    }
}

impl std::ops::DerefMut for Pooled {
    fn deref_mut(&mut self) -> &mut Client {
        self.client
            .as_mut()
            .expect("a pooled connection until dropped")
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            if !client.is_closed() {
                let mut idle = self.pool.idle.lock().unwrap_or_else(|p| p.into_inner());
                idle.push(client);
            }
        }
    }
}
