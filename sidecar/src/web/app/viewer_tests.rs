//! Token viewers through the one routing table, in-process: every refusal that comes before
//! a database connection is needed (tokens, scopes, parameters), and which pages may be
//! framed by whom.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderMap, Request, StatusCode};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use tower::ServiceExt;

use super::*;
use crate::web::state::{Settings, Viewers};
use crate::web::viewer::pool::ViewerDb;
use crate::web::viewer::{now_secs, Verifier};

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
const APP: &str = "https://app.example.com";

fn settings(embed_origins: Vec<String>) -> Settings {
    Settings {
        database: tokio_postgres::Config::new(),
        tls: crate::tls::connector(&crate::tls::Verification::None).expect("TLS set-up"),
        record_database: None,
        zone: chrono_tz::Tz::UTC,
        idle_timeout: Duration::from_secs(60),
        query_timeout: Duration::from_secs(30),
        page_size: 50,
        allowed_hosts: Vec::new(),
        trusted_proxies: Vec::new(),
        embed_origins,
    }
}

/// The dashboard serving token viewers (HS256), with `APP` as the embed origin.
fn with_viewers() -> Router {
    let viewers = Viewers {
        verifier: Verifier::new(Some(Verifier::secret_key(SECRET).unwrap()), None),
        db: Arc::new(ViewerDb::unconnected()),
    };
    create_app(AppState::new(settings(vec![APP.into()])).with_viewers(viewers))
}

fn without_viewers() -> Router {
    create_app(AppState::new(settings(Vec::new())))
}

fn token(claims: Value) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET).unwrap(),
    )
    .unwrap()
}

fn viewer_token(scope: Option<&str>) -> String {
    let mut claims = json!({"sub": "u-1", "tenant": "acme", "exp": now_secs() + 300});
    if let Some(scope) = scope {
        claims["scope"] = json!(scope);
    }
    token(claims)
}

async fn send(app: Router, request: Request<Body>) -> (StatusCode, HeaderMap, String) {
    let response = app.oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

fn get(uri: &str, headers: &[(&str, &str)]) -> Request<Body> {
    let mut request = Request::get(uri);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    request.body(Body::empty()).unwrap()
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn csp(headers: &HeaderMap) -> &str {
    headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap()
}

#[tokio::test]
async fn without_a_viewer_key_there_is_no_embed_and_no_api_but_the_document() {
    let (status, _, _) = send(without_viewers(), get("/embed?token=x", &[])).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, headers, body) = send(without_viewers(), get("/api/v1/events", &[])).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(headers[header::CONTENT_TYPE], "application/json");
    assert!(body.contains("\"error\""), "{body}");
    let (status, headers, body) = send(without_viewers(), get("/api/v1/openapi.json", &[])).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "application/json");
    let doc: Value = serde_json::from_str(&body).unwrap();
    assert!(doc["paths"]["/api/v1/events"].is_object());
}

#[tokio::test]
async fn a_refused_embed_token_is_a_401_with_no_session() {
    let expired = token(json!({"sub": "u-1", "tenant": "acme", "exp": now_secs() - 600}));
    let other_key = encode(
        &Header::new(Algorithm::HS256),
        &json!({"sub": "u-1", "tenant": "acme", "exp": now_secs() + 300}),
        &EncodingKey::from_secret(b"some other secret, long enough..").unwrap(),
    )
    .unwrap();
    let no_tenant = token(json!({"sub": "u-1", "exp": now_secs() + 300}));
    for uri in [
        "/embed".to_owned(),
        "/embed?token=".to_owned(),
        "/embed?token=not.a.jwt".to_owned(),
        format!("/embed?token={expired}"),
        format!("/embed?token={other_key}"),
        format!("/embed?token={no_tenant}"),
    ] {
        let (status, headers, body) = send(with_viewers(), get(&uri, &[])).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{uri}");
        assert!(headers.get(header::SET_COOKIE).is_none(), "{uri}");
        assert!(body.contains("This link is not valid"), "{uri}");
        assert!(!body.contains("acme"), "{uri}");
        // The refusal may be shown inside the application's frame.
        assert!(
            csp(&headers).contains(&format!("frame-ancestors {APP}")),
            "{uri}"
        );
        assert!(headers.get(header::X_FRAME_OPTIONS).is_none(), "{uri}");
    }
    // A token granting something else than reading: 403.
    let uri = format!("/embed?token={}", viewer_token(Some("profile")));
    let (status, headers, _) = send(with_viewers(), get(&uri, &[])).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(headers.get(header::SET_COOKIE).is_none());
}

#[tokio::test]
async fn only_embed_pages_may_be_framed_and_only_by_the_embed_origins() {
    // An ended (or forged) embed session inside the frame: said so, framable by APP.
    let cookie = "audit_trail_embed=0000";
    let (status, headers, body) = send(
        with_viewers(),
        get("/reports/audit-log", &[("cookie", cookie)]),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body.contains("This view has ended"), "{body}");
    assert!(csp(&headers).contains(&format!("frame-ancestors {APP}")));
    assert!(!csp(&headers).contains("frame-ancestors 'none'"));
    // Everything else: framed by no one, as without viewers.
    for (uri, cookie) in [
        ("/reports/audit-log", None),
        ("/sign-in", None),
        ("/sign-in", Some(cookie)),
        ("/reports/audit-log", Some("audit_trail_session=0000")),
    ] {
        let headers_in: Vec<(&str, &str)> = cookie.map(|c| ("cookie", c)).into_iter().collect();
        let (_, headers, _) = send(with_viewers(), get(uri, &headers_in)).await;
        assert!(
            csp(&headers).contains("frame-ancestors 'none'"),
            "{uri} {cookie:?}"
        );
        assert_eq!(headers[header::X_FRAME_OPTIONS], "DENY", "{uri} {cookie:?}");
    }
    let (_, headers, _) = send(without_viewers(), get("/embed?token=x", &[])).await;
    assert!(csp(&headers).contains("frame-ancestors 'none'"));
}

#[tokio::test]
async fn the_api_refuses_requests_without_a_valid_bearer_token() {
    let expired = token(json!({"sub": "u-1", "tenant": "acme", "exp": now_secs() - 600}));
    let good = viewer_token(None);
    for path in ["/api/v1/events", "/api/v1/events/1", "/api/v1/events.csv"] {
        for authorization in [
            None,
            Some(String::new()),
            Some("Bearer".to_owned()),
            Some("Bearer not.a.jwt".to_owned()),
            Some(bearer(&expired)),
            Some(format!("Basic {good}")),
        ] {
            let headers_in: Vec<(&str, &str)> = authorization
                .as_deref()
                .map(|a| ("authorization", a))
                .into_iter()
                .collect();
            let (status, headers, body) = send(with_viewers(), get(path, &headers_in)).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{path} {authorization:?}");
            assert!(headers[header::WWW_AUTHENTICATE]
                .to_str()
                .unwrap()
                .starts_with("Bearer"));
            let body: Value = serde_json::from_str(&body).unwrap();
            assert!(body["error"].is_string(), "{body}");
            assert!(body.get("events").is_none());
        }
    }
}

#[tokio::test]
async fn the_api_refuses_scopes_and_parameters_before_reading_anything() {
    let read = bearer(&viewer_token(None));
    let export = bearer(&viewer_token(Some("audit_log:export")));
    let nothing = bearer(&viewer_token(Some("profile")));
    for (path, authorization, status, says) in [
        (
            "/api/v1/events",
            &nothing,
            StatusCode::FORBIDDEN,
            "audit_log:read",
        ),
        (
            "/api/v1/events.csv",
            &read,
            StatusCode::FORBIDDEN,
            "audit_log:export",
        ),
        (
            "/api/v1/events?tenant=globex",
            &read,
            StatusCode::BAD_REQUEST,
            "token",
        ),
        (
            "/api/v1/events?limit=0",
            &read,
            StatusCode::BAD_REQUEST,
            "limit",
        ),
        (
            "/api/v1/events?limit=1001",
            &read,
            StatusCode::BAD_REQUEST,
            "limit",
        ),
        (
            "/api/v1/events?cursor=junk",
            &read,
            StatusCode::BAD_REQUEST,
            "cursor",
        ),
        (
            "/api/v1/events?since=someday",
            &read,
            StatusCode::BAD_REQUEST,
            "since",
        ),
        (
            "/api/v1/events?colour=red",
            &read,
            StatusCode::BAD_REQUEST,
            "unknown",
        ),
        (
            "/api/v1/events.csv?tenant=globex",
            &export,
            StatusCode::BAD_REQUEST,
            "token",
        ),
        (
            "/api/v1/events.csv?limit=5",
            &export,
            StatusCode::BAD_REQUEST,
            "limit",
        ),
        (
            "/api/v1/events/abc",
            &read,
            StatusCode::NOT_FOUND,
            "not found",
        ),
    ] {
        let (got, headers, body) = send(
            with_viewers(),
            get(path, &[("authorization", authorization)]),
        )
        .await;
        assert_eq!(got, status, "{path}: {body}");
        assert_eq!(headers[header::CONTENT_TYPE], "application/json", "{path}");
        let body: Value = serde_json::from_str(&body).unwrap();
        assert!(
            body["error"].as_str().unwrap().contains(says),
            "{path}: {body}"
        );
    }
}

#[tokio::test]
async fn database_trouble_is_a_json_503() {
    // A valid request: the pool cannot reach its database.
    let (status, _, body) = send(
        with_viewers(),
        get(
            "/api/v1/events",
            &[("authorization", &bearer(&viewer_token(None)))],
        ),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("database"),
        "{body}"
    );
}
