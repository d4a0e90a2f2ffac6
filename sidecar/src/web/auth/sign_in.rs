//! The sign-in form's answer, one step each: read the form, throttle, let the database check
//! the password, require audit_admin membership, record the sign-in, make the session. Every
//! refusal that depends on the role or its password gets one answer, [`refuse`].

use std::future::Future;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Config};

use super::super::csrf::{check_sign_in, SIGN_IN_COOKIE};
use super::super::error::WebError;
use super::super::limiter::{Attempt, SignInLimiter};
use super::super::session::{Access, Session, Sessions, SESSION_COOKIE};
use super::super::state::Settings;
use super::super::token::{clear_cookie, cookie, random_token, set_cookie};
use super::{form_page, safe_next, ClientAddress, FormFields};
use crate::error::Error;
use audit_trail_contract::sidecar_actions;

/// PostgreSQL role names are at most 63 bytes.
const MAX_ROLE: usize = 63;
const MAX_PASSWORD: usize = 1024;

/// The one answer to a sign-in refused for the role or its password, whatever the reason.
const REFUSED: &str =
    "The role or password is not correct, or the role may not read the audit log.";
/// A refused sign-in is answered no sooner than this after the request arrived: more than
/// the database takes to check a password, open a session and look up the role's
/// memberships, so the time of the answer does not say which of them refused it either.
const SIGN_IN_REFUSAL_TIME: std::time::Duration = std::time::Duration::from_millis(400);

pub async fn sign_in(
    State(settings): State<Arc<Settings>>,
    State(sessions): State<Sessions>,
    State(limiter): State<SignInLimiter>,
    ClientAddress(address): ClientAddress,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, WebError> {
    let started = tokio::time::Instant::now();
    let form = SignInForm::read(&headers, &body)?;
    if let Some(again) = unfit_form(&settings, &form) {
        return again;
    }
    let from = address.map_or_else(|| "?".to_owned(), |a| a.to_string());
    let attempt = throttle(&limiter, address, &form.role, &from)?;
    let mut connections = match admit(&settings, &form, &from).await {
        Ok(connections) => connections,
        Err(Refused::ForTheRole(reason)) => {
            return refuse(&settings, started, form.next, form.role, &from, &reason).await
        }
        Err(Refused::Unreachable) => {
            // Not the role's fault: the attempt is not held against it.
            limiter.refund(attempt);
            return Err(WebError::DatabaseUnavailable);
        }
        Err(Refused::Other(e)) => return Err(e),
    };
    limiter.succeeded(attempt);
    // From here on, on failure no session is kept: its connections close as they drop.
    record_sign_in(connections.recorder(), &from)
        .await
        .map_err(|e| WebError::query(&form.role, "recording the sign-in", &e))?;
    let token = make_session(&sessions, &headers, &form.role, connections).await?;
    tracing::info!(role = ?form.role, %from, "signed in");
    Ok(signed_in(&form.next, &token))
}

/// The sign-in form's fields, its CSRF token checked.
struct SignInForm {
    next: String,
    role: String,
    password: String,
}

impl SignInForm {
    fn read(headers: &HeaderMap, body: &[u8]) -> Result<SignInForm, WebError> {
        let form = FormFields::parse(body);
        check_sign_in(headers, form.get("csrf"))?;
        Ok(SignInForm {
            next: safe_next(form.get("next")),
            role: form.get("role").unwrap_or("").trim().to_owned(),
            password: form.get("password").unwrap_or("").to_owned(),
        })
    }
}

/// The form again, when it is unfit to ask the database about.
fn unfit_form(settings: &Settings, form: &SignInForm) -> Option<Result<Response, WebError>> {
    let (status, error, role) = if form.role.is_empty() || form.password.is_empty() {
        (
            StatusCode::BAD_REQUEST,
            "Enter your database role and its password.",
            form.role.clone(),
        )
    } else if form.role.len() > MAX_ROLE
        || form.password.len() > MAX_PASSWORD
        || form.role.contains('\0')
    {
        (StatusCode::UNAUTHORIZED, REFUSED, String::new())
    } else {
        return None;
    };
    Some(form_page(
        settings,
        status,
        form.next.clone(),
        role,
        Some(error.to_owned()),
        None,
    ))
}

/// The attempt, unless the role or the address failed too often lately. It counts as a
/// failure until the database has accepted the password and the role is found to be an admin.
fn throttle(
    limiter: &SignInLimiter,
    address: Option<IpAddr>,
    role: &str,
    from: &str,
) -> Result<Attempt, WebError> {
    limiter.begin(address, role).map_err(|wait| {
        tracing::warn!(
            role = ?role,
            %from,
            wait_s = wait.as_secs_f64().ceil(),
            "sign-in refused: waiting after failures"
        );
        WebError::TooManyAttempts { wait }
    })
}

/// Why a sign-in got no session.
enum Refused {
    /// For the role or its password: answered by [`refuse`]; the reason is for the server's
    /// log only.
    ForTheRole(String),
    /// `--db` could not be reached.
    Unreachable,
    /// Anything else, answered as it is.
    Other(WebError),
}

impl From<WebError> for Refused {
    fn from(e: WebError) -> Refused {
        Refused::Other(e)
    }
}

/// The signed-in role's connections, before they become a session.
struct Connections {
    client: Client,
    /// To `--record-db`, when given.
    record: Option<Client>,
    /// False once either connection has ended, which ends the session.
    alive: Arc<AtomicBool>,
}

impl Connections {
    /// Access to the log is itself logged (PCI DSS 10.2.1.3): a sign-in is an audit_log
    /// event of the role, written where exports are (the primary when --db is a standby).
    fn recorder(&mut self) -> &mut Client {
        match self.record.as_mut() {
            Some(record) => record,
            None => &mut self.client,
        }
    }
}

/// The role's connections, once the database has checked its password and it is an admin
/// both where the log is read and where it is recorded.
async fn admit(settings: &Settings, form: &SignInForm, from: &str) -> Result<Connections, Refused> {
    let alive = Arc::new(AtomicBool::new(true));
    let client = check_password(settings, &form.role, &form.password, from, &alive).await?;
    require_admin(
        &client,
        &form.role,
        "the password is right but the role is not a member of audit_admin",
    )
    .await?;
    let record =
        record_connection(settings, &client, &form.role, &form.password, from, &alive).await?;
    Ok(Connections {
        client,
        record,
        alive,
    })
}

/// The role's connection to `--db`, opened with its password.
///
/// The password counts only if the database checked it: with trust or peer authentication
/// any password gets in. A random one must be refused as a wrong password; any other outcome
/// (accepted, or refused for another reason such as a connection limit) proves nothing, and
/// the sign-in is refused.
async fn check_password(
    settings: &Settings,
    role: &str,
    password: &str,
    from: &str,
    alive: &Arc<AtomicBool>,
) -> Result<Client, Refused> {
    let (client, connection) = match as_role(&settings.database, role, password)
        .connect(settings.tls.clone())
        .await
    {
        Ok(c) => c,
        Err(e) if refused_for_the_role(&e) => {
            return Err(Refused::ForTheRole(crate::error::describe(&e)))
        }
        Err(e) => {
            tracing::error!(
                role = ?role,
                %from,
                "sign-in: cannot connect to {}: {}",
                settings.database_description(),
                crate::error::describe(&e)
            );
            return Err(Refused::Unreachable);
        }
    };
    watch(connection, alive);
    let random = random_token().map_err(WebError::from)?;
    let checked = match as_role(&settings.database, role, &random)
        .connect(settings.tls.clone())
        .await
    {
        Ok(_) => false,
        Err(e) => refused_for_the_role(&e),
    };
    if !checked {
        tracing::error!(
            role = ?role,
            %from,
            "sign-in refused: {} did not check the password",
            settings.database_description()
        );
        return Err(WebError::PasswordNotChecked.into());
    }
    Ok(client)
}

/// Always with a password (the form refuses an empty one): the server's answer to a wrong
/// one is then its SQLSTATE, never the client's own "password missing".
fn as_role(config: &Config, role: &str, password: &str) -> Config {
    let mut config = config.clone();
    config.user(role);
    config.password(password);
    config
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

/// Whether the role is a member of audit_admin (or a superuser) where `client` is
/// connected; `not_admin` is the refusal's reason.
async fn require_admin(client: &Client, role: &str, not_admin: &str) -> Result<(), Refused> {
    match crate::db::require_audit_admin(client).await {
        Ok(_) => Ok(()),
        Err(Error::PermissionDenied(_)) => Err(Refused::ForTheRole(not_admin.to_owned())),
        Err(other) => Err(WebError::internal(format!("sign-in as {role:?}: {other}")).into()),
    }
}

/// The signed-in role's connection to the primary (`--record-db`), admitted as on `--db`
/// and, like every sidecar connection, with its `search_path` pinned (the configuration came
/// from [`crate::db::resolve`]). Without `--record-db`, a standby is refused here, at sign-in,
/// before any page reads the log: an export could not be recorded there.
async fn record_connection(
    settings: &Settings,
    client: &Client,
    role: &str,
    password: &str,
    from: &str,
    alive: &Arc<AtomicBool>,
) -> Result<Option<Client>, Refused> {
    let Some((config, tls)) = &settings.record_database else {
        let standby = crate::db::in_recovery(client)
            .await
            .map_err(|e| WebError::internal(format!("sign-in as {role:?}: {e}")))?;
        if standby {
            tracing::error!(
                role = ?role,
                %from,
                "sign-in refused: {} is a standby and no --record-db was given",
                settings.database_description()
            );
            return Err(WebError::StandbyWithoutRecordDb.into());
        }
        return Ok(None);
    };
    let (record, connection) = as_role(config, role, password)
        .connect(tls.clone())
        .await
        .map_err(|e| {
            tracing::error!(
                role = ?role,
                %from,
                "sign-in: cannot connect to --record-db: {}",
                crate::error::describe(&e)
            );
            WebError::DatabaseUnavailable
        })?;
    watch(connection, alive);
    require_admin(
        &record,
        role,
        "the password is right but the role is not a member of audit_admin on --record-db",
    )
    .await?;
    let standby = crate::db::in_recovery(&record)
        .await
        .map_err(|e| WebError::internal(format!("sign-in as {role:?}: {e}")))?;
    if standby {
        return Err(WebError::internal(
            "--record-db is a standby too: exports cannot be recorded there",
        )
        .into());
    }
    Ok(Some(record))
}

async fn record_sign_in(client: &mut Client, from: &str) -> Result<(), tokio_postgres::Error> {
    let details = serde_json::json!({ "via": "dashboard", "from": from });
    crate::own_events::record(&*client, sidecar_actions::SIGN_IN, "dashboard", &details)
        .await
        .map(drop)
}

/// The session of `connections`, and its token.
async fn make_session(
    sessions: &Sessions,
    headers: &HeaderMap,
    role: &str,
    connections: Connections,
) -> Result<String, WebError> {
    // Dashboard queries are short; JIT compilation would cost more than it saves (the page
    // query's summary subquery is estimated high enough to trigger it).
    connections
        .client
        .batch_execute("SET jit = off")
        .await
        .map_err(|e| WebError::query(role, "setting up the session", &e))?;
    // A new token at every sign-in (no session fixation); an old session of this browser ends.
    if let Some(old) = cookie(headers, SESSION_COOKIE) {
        sessions.remove(old);
    }
    let Connections {
        client,
        record,
        alive,
    } = connections;
    sessions.insert(Session::new(
        role.to_owned(),
        Access::Role,
        client,
        record,
        alive,
        sessions.clock(),
    )?)
}

/// The way on to `next`, with the session's cookie and without the sign-in form's.
fn signed_in(next: &str, token: &str) -> Response {
    let mut response = Redirect::to(next).into_response();
    let headers = response.headers_mut();
    for c in [
        set_cookie(SESSION_COOKIE, token, None),
        clear_cookie(SIGN_IN_COOKIE),
    ] {
        if let Ok(v) = c.parse() {
            headers.append(header::SET_COOKIE, v);
        }
    }
    response
}

/// The uniform refusal (see [`REFUSED`]), after [`SIGN_IN_REFUSAL_TIME`]; the reason goes to
/// the server's log only.
async fn refuse(
    settings: &Settings,
    started: tokio::time::Instant,
    next: String,
    role: String,
    from: &str,
    reason: &str,
) -> Result<Response, WebError> {
    tracing::warn!(role = ?role, %from, "sign-in failed: {reason}");
    tokio::time::sleep_until(started + SIGN_IN_REFUSAL_TIME).await;
    form_page(
        settings,
        StatusCode::UNAUTHORIZED,
        next,
        role,
        Some(REFUSED.to_owned()),
        None,
    )
}

/// Whether the database refused the connection for the role or its password: a wrong
/// password, a role that may not log in (or is unknown), or one without the CONNECT
/// privilege (PostgreSQL checks that after the password, so it too means "right password").
fn refused_for_the_role(e: &tokio_postgres::Error) -> bool {
    let code = e.as_db_error().map(|d| d.code().clone());
    code == Some(SqlState::INVALID_PASSWORD)
        || code == Some(SqlState::INVALID_AUTHORIZATION_SPECIFICATION)
        || code == Some(SqlState::INSUFFICIENT_PRIVILEGE)
}
