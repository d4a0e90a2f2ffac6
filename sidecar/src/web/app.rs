//! The one routing table, and the headers every response carries.

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{header, HeaderValue};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

use super::error::WebError;
use super::state::AppState;
use super::{
    api, assets, auth, csrf, embed, event_page, export, log_page, overview_page, revert_page,
};

/// Scripts and styles only from this server's own files, no inline script, no framing, forms
/// only to this server.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; \
     frame-ancestors 'none'; base-uri 'none'";

/// Largest request body read (a form of filters, or a sign-in).
const MAX_BODY: usize = 64 * 1024;

pub fn create_app(state: AppState) -> Router {
    Router::new()
        .route("/", get(log_page::home))
        .route("/sign-in", get(auth::sign_in_form).post(auth::sign_in))
        .route("/sign-out", post(auth::sign_out))
        .route("/reports/audit-log", get(log_page::show))
        .route("/reports/overview", get(overview_page::show))
        .route("/reports/audit-log/events/{id}", get(event_page::show))
        .route(
            "/reports/audit-log/events/{id}/revert",
            get(revert_page::confirm).post(revert_page::revert),
        )
        .route("/reports/audit-log/export", post(export::download))
        .route("/embed", get(embed::open))
        .route("/api/v1/openapi.json", get(api::openapi))
        .route("/api/v1/events", get(api::list))
        .route("/api/v1/events.csv", get(api::csv))
        .route("/api/v1/events/{id}", get(api::one))
        .route("/assets/{name}", get(assets::serve))
        .fallback(not_found)
        .layer(middleware::from_fn(csrf::same_origin_only))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            known_host_only,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            security_headers,
        ))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

/// Refuses requests addressed to a host name the dashboard does not answer to.
async fn known_host_only(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let allowed = &state.settings.allowed_hosts;
    if !allowed.is_empty() {
        let host = request
            .headers()
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .map(str::to_ascii_lowercase);
        if !host.is_some_and(|h| allowed.contains(&h)) {
            return WebError::BadRequest(
                "This dashboard does not answer to that host name.".into(),
            )
            .into_response();
        }
    }
    next.run(request).await
}

async fn not_found() -> WebError {
    WebError::NotFound
}

/// Whether a response may be framed by the `--embed-origin`s: the embed link itself, and
/// the report pages of an embed session (live or ended). Never a page of a role's session,
/// nor the sign-in form.
fn embed_framing(state: &AppState, request: &Request) -> bool {
    let path = request.uri().path();
    !state.settings.embed_origins.is_empty()
        && (path == "/embed"
            || (path.starts_with("/reports/") && state.sessions.embed_request(request.headers())))
}

async fn security_headers(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let framed = embed_framing(&state, &request);
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    for (name, value) in [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "same-origin"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    let framing = if framed {
        // No X-Frame-Options, which has no list of origins: frame-ancestors decides.
        headers.remove(header::X_FRAME_OPTIONS);
        HeaderValue::from_str(&CONTENT_SECURITY_POLICY.replace(
            "frame-ancestors 'none'",
            &format!("frame-ancestors {}", state.settings.embed_origins.join(" ")),
        ))
        .ok()
    } else {
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        None
    };
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        framing.unwrap_or(HeaderValue::from_static(CONTENT_SECURITY_POLICY)),
    );
    headers.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    // The audit log is sensitive: no page of it is kept in a cache.
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod viewer_tests;

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt;

    use super::*;
    use crate::web::state::Settings;

    fn app() -> Router {
        create_app(AppState::new(Settings {
            database: tokio_postgres::Config::new(),
            tls: crate::tls::connector(&crate::tls::Verification::None).expect("TLS set-up"),
            record_database: None,
            zone: chrono_tz::Tz::UTC,
            idle_timeout: Duration::from_secs(60),
            query_timeout: Duration::from_secs(30),
            page_size: 50,
            allowed_hosts: Vec::new(),
            trusted_proxies: Vec::new(),
            embed_origins: Vec::new(),
        }))
    }

    async fn send(request: Request<Body>) -> (StatusCode, axum::http::HeaderMap, String) {
        let response = app().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, headers, String::from_utf8_lossy(&body).into_owned())
    }

    fn get(uri: &str) -> Request<Body> {
        Request::get(uri).body(Body::empty()).unwrap()
    }

    #[tokio::test]
    async fn pages_need_a_session_and_come_back_after_sign_in() {
        let (status, headers, _) = send(get("/reports/audit-log?entity=group")).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        assert_eq!(
            headers[header::LOCATION],
            "/sign-in?next=%2Freports%2Faudit-log%3Fentity%3Dgroup"
        );
        let (status, headers, _) = send(get("/")).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        assert_eq!(headers[header::LOCATION], "/reports/audit-log");
        let (status, _, body) = send(
            Request::post("/reports/audit-log/export")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from("entity=contact"))
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(body.contains("Please sign in"));
    }

    #[tokio::test]
    async fn every_response_carries_the_security_headers() {
        for uri in [
            "/sign-in",
            "/no/such/page",
            "/assets/app.css",
            "/reports/audit-log",
        ] {
            let (_, headers, _) = send(get(uri)).await;
            let csp = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
            assert!(
                csp.contains("script-src 'self'") && !csp.contains("unsafe"),
                "{uri}"
            );
            assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff", "{uri}");
            assert_eq!(headers[header::X_FRAME_OPTIONS], "DENY", "{uri}");
        }
        let (_, headers, _) = send(get("/sign-in")).await;
        assert_eq!(headers[header::CACHE_CONTROL], "no-store");
    }

    #[tokio::test]
    async fn the_sign_in_form_carries_a_token_matching_its_cookie() {
        let (status, headers, body) = send(get("/sign-in")).await;
        assert_eq!(status, StatusCode::OK);
        let cookie = headers[header::SET_COOKIE].to_str().unwrap();
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
        let token = cookie
            .strip_prefix("audit_trail_sign_in=")
            .and_then(|c| c.split(';').next())
            .unwrap();
        assert_eq!(token.len(), 64);
        assert!(body.contains(&format!("name=\"csrf\" value=\"{token}\"")));
        assert!(!body.contains("<script>"), "no inline script");
        // Posted without the cookie, or from another site: refused before any connection.
        for (cookie, origin) in [
            (None, None),
            (
                Some(format!("audit_trail_sign_in={token}")),
                Some("http://evil.example"),
            ),
        ] {
            let mut request = Request::post("/sign-in")
                .header(header::HOST, "127.0.0.1:8080")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
            if let Some(c) = cookie {
                request = request.header(header::COOKIE, c);
            }
            if let Some(o) = origin {
                request = request.header(header::ORIGIN, o);
            }
            let body = format!("csrf={token}&role=alice&password=x");
            let (status, _, page) = send(request.body(Body::from(body)).unwrap()).await;
            assert_eq!(status, StatusCode::FORBIDDEN);
            assert!(page.contains("This form has expired"));
        }
    }

    #[tokio::test]
    async fn assets_are_embedded_and_unknown_ones_are_404() {
        let (status, headers, body) = send(get("/assets/app.js")).await;
        assert_eq!(status, StatusCode::OK);
        assert!(headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/javascript"));
        assert!(body.contains("use strict"));
        let (status, _, body) = send(get("/assets/../Cargo.toml")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(body.contains("Not found"));
    }
}
