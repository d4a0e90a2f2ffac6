//! Cross-site request forgery defences, three deep:
//!
//! 1. the cookies are `SameSite=Strict`, so a browser does not send them with a request that
//!    another site starts;
//! 2. a state-changing request (anything but GET and HEAD) whose `Origin` is another site, or
//!    that the browser labels `Sec-Fetch-Site: cross-site`, is refused before any handler runs;
//! 3. every form carries a token the handler checks: signed in, the session's own token
//!    ([`super::session::Session::check_csrf`]); on the sign-in form, which has no session yet,
//!    a token that must match a cookie set with the form (double submit).

use std::time::Duration;

use axum::extract::Request;
use axum::http::{header, HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::WebError;
use super::token::{cookie, same_secret};

pub const SIGN_IN_COOKIE: &str = "audit_trail_sign_in";
/// How long a sign-in form stays usable.
pub const SIGN_IN_FORM_LIFETIME: Duration = Duration::from_secs(3600);

/// Checks the sign-in form's token against its cookie.
pub fn check_sign_in(headers: &HeaderMap, submitted: Option<&str>) -> Result<(), WebError> {
    match (cookie(headers, SIGN_IN_COOKIE), submitted) {
        (Some(expected), Some(got)) if !expected.is_empty() && same_secret(expected, got) => Ok(()),
        _ => Err(WebError::Csrf),
    }
}

/// Whether the request comes from a page of another site.
fn cross_site(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        if site.eq_ignore_ascii_case("cross-site") {
            return true;
        }
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        // Not sent by every client (curl, scripts): the token still has to match.
        return false;
    };
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let origin = origin.to_str().ok();
    match (origin, host) {
        (Some(origin), Some(host)) => {
            let authority = origin
                .strip_prefix("http://")
                .or_else(|| origin.strip_prefix("https://"));
            authority != Some(host)
        }
        // "null" origins (sandboxed frames, some redirects) and anything unreadable.
        _ => true,
    }
}

/// Middleware: refuses state-changing requests from other sites.
pub async fn same_origin_only(request: Request, next: Next) -> Response {
    let safe = matches!(*request.method(), Method::GET | Method::HEAD);
    if !safe && cross_site(request.headers()) {
        return WebError::Csrf.into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn origin_must_be_this_host() {
        assert!(!cross_site(&headers(&[("host", "127.0.0.1:8080")])));
        assert!(!cross_site(&headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://127.0.0.1:8080")
        ])));
        assert!(cross_site(&headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://evil.example")
        ])));
        assert!(cross_site(&headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "null")
        ])));
        assert!(cross_site(&headers(&[
            ("host", "127.0.0.1:8080"),
            ("sec-fetch-site", "cross-site")
        ])));
    }

    #[test]
    fn sign_in_token_must_match_its_cookie() {
        let h = headers(&[("cookie", "audit_trail_sign_in=abc123")]);
        assert!(check_sign_in(&h, Some("abc123")).is_ok());
        assert!(check_sign_in(&h, Some("abc124")).is_err());
        assert!(check_sign_in(&h, None).is_err());
        assert!(check_sign_in(&HeaderMap::new(), Some("abc123")).is_err());
        let empty = headers(&[("cookie", "audit_trail_sign_in=")]);
        assert!(check_sign_in(&empty, Some("")).is_err());
    }
}
