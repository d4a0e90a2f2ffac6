//! Signing in and out. The sign-in form's role and password go straight into a PostgreSQL
//! connection: the database decides (pg_hba.conf, SCRAM), then only members of audit_admin
//! (and superusers) are let in. The password is never stored, logged or put in a URL; the
//! connection it opened is kept for the session.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRef, FromRequestParts, RawQuery, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use tokio_postgres::error::SqlState;

use super::csrf::{check_sign_in, SIGN_IN_COOKIE, SIGN_IN_FORM_LIFETIME};
use super::error::WebError;
use super::limiter::SignInLimiter;
use super::proxy::client_address;
use super::session::{Session, Sessions, SignedIn, SESSION_COOKIE};
use super::state::Settings;
use super::templates::{render, Layout, SignInPage};
use super::token::{clear_cookie, cookie, random_token, set_cookie};
use crate::error::Error;

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

/// The client's address, when the server knows it (absent in in-process tests): the peer's,
/// or the one a trusted proxy forwarded (see [`super::proxy`]).
pub struct ClientAddress(pub Option<IpAddr>);

impl<S> FromRequestParts<S> for ClientAddress
where
    Arc<Settings>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let settings = Arc::<Settings>::from_ref(state);
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        Ok(ClientAddress(client_address(
            peer,
            &parts.headers,
            &settings.trusted_proxies,
        )))
    }
}

/// A form body, read leniently: the first value of each name.
pub struct FormFields(Vec<(String, String)>);

impl FormFields {
    pub fn parse(body: &[u8]) -> FormFields {
        FormFields(
            form_urlencoded::parse(body)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Where to go after signing in: a page of the reports only. Anything else (another host,
/// a scheme, control characters or backslashes that browsers strip or rewrite) goes to the
/// Audit Log.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with("/reports/")
                && !n.bytes().any(|b| b < 0x20 || b == 0x7f || b == b'\\') =>
        {
            n.to_owned()
        }
        _ => "/reports/audit-log".to_owned(),
    }
}

fn notice_text(code: Option<&str>) -> Option<&'static str> {
    match code? {
        "expired" => Some("You were signed out after a period of inactivity."),
        "lost" => Some("Your database connection closed. Please sign in again."),
        "signed-out" => Some("You have signed out."),
        _ => None,
    }
}

/// The form, with a fresh token in it and in its cookie.
fn form_page(
    settings: &Settings,
    status: StatusCode,
    next: String,
    role: String,
    error: Option<String>,
    notice: Option<&'static str>,
) -> Result<Response, WebError> {
    let token = random_token()?;
    let page = SignInPage {
        layout: Layout::public("Sign in"),
        csrf: token.clone(),
        next,
        role,
        error,
        notice,
        database: settings.database.get_dbname().unwrap_or("").to_owned(),
    };
    let cookie = set_cookie(SIGN_IN_COOKIE, &token, Some(SIGN_IN_FORM_LIFETIME));
    Ok((status, [(header::SET_COOKIE, cookie)], render(&page)).into_response())
}

pub async fn sign_in_form(
    State(settings): State<Arc<Settings>>,
    State(sessions): State<Sessions>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, WebError> {
    let query = FormFields::parse(query.unwrap_or_default().as_bytes());
    let next = safe_next(query.get("next"));
    if let Some(token) = cookie(&headers, SESSION_COOKIE) {
        if sessions.get(token).is_ok() {
            return Ok(Redirect::to(&next).into_response());
        }
    }
    form_page(
        &settings,
        StatusCode::OK,
        next,
        String::new(),
        None,
        notice_text(query.get("notice")),
    )
}

pub async fn sign_in(
    State(settings): State<Arc<Settings>>,
    State(sessions): State<Sessions>,
    State(limiter): State<SignInLimiter>,
    ClientAddress(address): ClientAddress,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, WebError> {
    let started = tokio::time::Instant::now();
    let form = FormFields::parse(&body);
    check_sign_in(&headers, form.get("csrf"))?;
    let next = safe_next(form.get("next"));
    let role = form.get("role").unwrap_or("").trim().to_owned();
    let password = form.get("password").unwrap_or("");
    let again = |status, error: &str, role: String| {
        form_page(
            &settings,
            status,
            next.clone(),
            role,
            Some(error.to_owned()),
            None,
        )
    };
    if role.is_empty() || password.is_empty() {
        return again(
            StatusCode::BAD_REQUEST,
            "Enter your database role and its password.",
            role,
        );
    }
    if role.len() > MAX_ROLE || password.len() > MAX_PASSWORD || role.contains('\0') {
        return again(StatusCode::UNAUTHORIZED, REFUSED, String::new());
    }
    let from = address.map_or_else(|| "?".to_owned(), |a| a.to_string());
    // Counted as a failure until the database has accepted the password and the role is
    // found to be an admin.
    let attempt = match limiter.begin(address, &role) {
        Ok(attempt) => attempt,
        Err(wait) => {
            eprintln!(
                "audit-trail: sign-in refused for role {role:?} from {from}: {}s to wait after failures",
                wait.as_secs_f64().ceil()
            );
            return Err(WebError::TooManyAttempts { wait });
        }
    };
    let mut config = settings.database.clone();
    config.user(&role);
    config.password(password);
    let (mut client, connection) = match config.connect(settings.tls.clone()).await {
        Ok(c) => c,
        Err(e) => {
            if refused_for_the_role(&e) {
                let reason = crate::error::describe(&e);
                return refuse(&settings, started, next, role, &from, &reason).await;
            }
            limiter.refund(attempt);
            eprintln!(
                "audit-trail: sign-in as {role:?} from {from}: cannot connect to {}: {}",
                settings.database_description(),
                crate::error::describe(&e)
            );
            return Err(WebError::DatabaseUnavailable);
        }
    };
    let alive = Arc::new(AtomicBool::new(true));
    let flag = alive.clone();
    tokio::spawn(async move {
        let _ = connection.await;
        flag.store(false, Ordering::Relaxed);
    });
    // The password counts only if the database checked it: with trust or peer
    // authentication any password gets in. A random one must be refused as a wrong
    // password; any other outcome (accepted, or refused for another reason such as a
    // connection limit) proves nothing, and the sign-in is refused.
    let mut probe = settings.database.clone();
    probe.user(&role);
    probe.password(random_token()?);
    let checked = match probe.connect(settings.tls.clone()).await {
        Ok(_) => false,
        Err(e) => refused_for_the_role(&e),
    };
    if !checked {
        eprintln!(
            "audit-trail: sign-in refused for role {role:?} from {from}: {} did not check the password",
            settings.database_description()
        );
        return Err(WebError::PasswordNotChecked);
    }

    match crate::db::require_audit_admin(&client).await {
        Ok(_) => {}
        Err(Error::PermissionDenied(_)) => {
            let reason = "the password is right but the role is not a member of audit_admin";
            return refuse(&settings, started, next, role, &from, reason).await;
        }
        Err(other) => return Err(WebError::internal(format!("sign-in as {role:?}: {other}"))),
    }
    let mut record = match record_connection(&settings, &client, &role, password, &from, &alive)
        .await
    {
        Ok(record) => record,
        Err(RecordConnection::NotAdmin) => {
            let reason = "the password is right but the role is not a member of audit_admin on \
                          --record-db";
            return refuse(&settings, started, next, role, &from, reason).await;
        }
        Err(RecordConnection::Failed(e)) => return Err(e),
    };
    limiter.succeeded(attempt);
    // From here on, on failure no session is kept: its connections close as they drop.
    // Access to the log is itself logged (PCI DSS 10.2.1.3): a sign-in is an audit_log event
    // of the role, written where exports are (the primary when --db is a standby).
    let recorder = match record.as_mut() {
        Some(record) => record,
        None => &mut client,
    };
    record_sign_in(recorder, &from)
        .await
        .map_err(|e| WebError::query(&role, "recording the sign-in", &e))?;
    // Dashboard queries are short; JIT compilation would cost more than it saves (the page
    // query's summary subquery is estimated high enough to trigger it).
    client
        .batch_execute("SET jit = off")
        .await
        .map_err(|e| WebError::query(&role, "setting up the session", &e))?;

    // A new token at every sign-in (no session fixation); an old session of this browser ends.
    if let Some(old) = cookie(&headers, SESSION_COOKIE) {
        sessions.remove(old);
    }
    let session = Session::new(role.clone(), client, record, alive)?;
    let token = sessions.insert(session)?;
    eprintln!("audit-trail: {role:?} signed in from {from}");
    let mut response = Redirect::to(&next).into_response();
    let headers = response.headers_mut();
    for c in [
        set_cookie(SESSION_COOKIE, &token, None),
        clear_cookie(SIGN_IN_COOKIE),
    ] {
        if let Ok(v) = c.parse() {
            headers.append(header::SET_COOKIE, v);
        }
    }
    Ok(response)
}

/// Why [`record_connection`] gave none.
enum RecordConnection {
    /// The role is no admin there: refused like any sign-in refused for the role.
    NotAdmin,
    Failed(WebError),
}

impl From<WebError> for RecordConnection {
    fn from(e: WebError) -> RecordConnection {
        RecordConnection::Failed(e)
    }
}

/// The signed-in role's connection to the primary (`--record-db`), admitted as on `--db`
/// and, like every sidecar connection, with its `search_path` pinned (the configuration came
/// from [`crate::db::resolve`]). Without `--record-db`, a standby is refused here, at sign-in,
/// before any page reads the log: an export could not be recorded there.
async fn record_connection(
    settings: &Settings,
    client: &tokio_postgres::Client,
    role: &str,
    password: &str,
    from: &str,
    alive: &Arc<AtomicBool>,
) -> Result<Option<tokio_postgres::Client>, RecordConnection> {
    let Some((config, tls)) = &settings.record_database else {
        let standby = crate::db::in_recovery(client)
            .await
            .map_err(|e| WebError::internal(format!("sign-in as {role:?}: {e}")))?;
        if standby {
            eprintln!(
                "audit-trail: sign-in refused for role {role:?} from {from}: {} is a standby \
                 and no --record-db was given",
                settings.database_description()
            );
            return Err(WebError::StandbyWithoutRecordDb.into());
        }
        return Ok(None);
    };
    let mut config = config.clone();
    config.user(role);
    config.password(password);
    let (record, connection) = config.connect(tls.clone()).await.map_err(|e| {
        eprintln!(
            "audit-trail: sign-in as {role:?} from {from}: cannot connect to --record-db: {}",
            crate::error::describe(&e)
        );
        WebError::DatabaseUnavailable
    })?;
    // The session ends when either of its connections does.
    let flag = alive.clone();
    tokio::spawn(async move {
        let _ = connection.await;
        flag.store(false, Ordering::Relaxed);
    });
    match crate::db::require_audit_admin(&record).await {
        Ok(_) => {}
        Err(Error::PermissionDenied(_)) => {
            return Err(RecordConnection::NotAdmin);
        }
        Err(other) => {
            return Err(WebError::internal(format!("sign-in as {role:?}: {other}")).into())
        }
    }
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

async fn record_sign_in(
    client: &mut tokio_postgres::Client,
    from: &str,
) -> Result<(), tokio_postgres::Error> {
    let details = serde_json::json!({ "via": "dashboard", "from": from });
    let tx = client.transaction().await?;
    tx.execute(
        "SELECT pg_catalog.set_config('audit.source', 'dashboard', true)",
        &[],
    )
    .await?;
    tx.execute(
        "SELECT audit.log_event('audit_log', 'sign_in', NULL, $1)",
        &[&details],
    )
    .await?;
    tx.commit().await
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
    eprintln!("audit-trail: sign-in failed for role {role:?} from {from}: {reason}");
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
        || is_password_missing(e)
}

/// tokio-postgres' own error when the server asks for a password it was not given.
fn is_password_missing(e: &tokio_postgres::Error) -> bool {
    e.as_db_error().is_none() && e.to_string().contains("password missing")
}

pub async fn sign_out(
    State(sessions): State<Sessions>,
    signed_in: SignedIn,
    body: Bytes,
) -> Result<Response, WebError> {
    let form = FormFields::parse(&body);
    signed_in.session.check_csrf(form.get("csrf"))?;
    sessions.remove(&signed_in.token);
    eprintln!("audit-trail: {:?} signed out", signed_in.session.role);
    Ok((
        [(header::SET_COOKIE, clear_cookie(SESSION_COOKIE))],
        Redirect::to("/sign-in?notice=signed-out"),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_on_this_site() {
        assert_eq!(
            safe_next(Some("/reports/audit-log?entity=contact")),
            "/reports/audit-log?entity=contact"
        );
        for bad in [
            "https://evil.example/",
            "//evil.example/",
            "/\\evil.example",
            "evil",
            "/sign-out",
            "/\t/evil.example",
            "/reports/\t//evil.example",
            "/reports\\..\\..\\evil",
        ] {
            assert_eq!(safe_next(Some(bad)), "/reports/audit-log", "{bad}");
        }
        assert_eq!(safe_next(None), "/reports/audit-log");
    }
}
