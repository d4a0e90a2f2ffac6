//! Signing in and out. The sign-in form's role and password go straight into a PostgreSQL
//! connection: the database decides (pg_hba.conf, SCRAM), then only members of audit_admin
//! (and superusers) are let in. The password is never stored, logged or put in a URL; the
//! connection it opened is kept for the session. [`sign_in`] answers the form.

mod sign_in;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRef, FromRequestParts, RawQuery, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};

use super::csrf::{SIGN_IN_COOKIE, SIGN_IN_FORM_LIFETIME};
use super::error::WebError;
use super::proxy::client_address;
use super::session::{Sessions, SignedIn, EMBED_COOKIE, SESSION_COOKIE};
use super::state::Settings;
use super::templates::{render, Layout, SignInPage};
use super::token::{clear_cookie, cookie, random_token, set_cookie};

pub use sign_in::sign_in;

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

pub async fn sign_out(
    State(sessions): State<Sessions>,
    signed_in: SignedIn,
    body: Bytes,
) -> Result<Response, WebError> {
    let form = FormFields::parse(&body);
    signed_in.session.check_csrf(form.get("csrf"))?;
    sessions.remove(&signed_in.token);
    if signed_in.session.is_viewer() {
        // An embed session: no sign-in form to go back to inside the application's frame.
        tracing::info!(viewer = ?signed_in.session.role, "embed session closed");
        return Ok((
            [(header::SET_COOKIE, clear_cookie(EMBED_COOKIE))],
            WebError::EmbedEnded,
        )
            .into_response());
    }
    tracing::info!(role = ?signed_in.session.role, "signed out");
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
