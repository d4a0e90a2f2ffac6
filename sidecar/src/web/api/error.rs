//! What an API client is told when a request cannot be served: `{"error": "..."}` with the
//! status, as the dashboard's error pages map the same faults (database trouble is a 503 or,
//! with a reference to the server's log, a 500), never an internal message.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::web::error::WebError;
use crate::web::token::random_token;

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong, for the developer calling the API.
    #[schema(example = "limit: a number from 1 to 1000, not \"0\"")]
    pub error: String,
}

#[derive(Debug)]
pub enum ApiError {
    /// 400: the request's parameters; the text says which.
    BadRequest(String),
    /// 401: no token, or one refused (why is in the server's log only).
    Unauthorized,
    /// 403: the token does not grant this.
    Forbidden(&'static str),
    /// 404.
    NotFound,
    /// 404: the API is not served (no viewer key given to `serve`).
    NotEnabled,
    /// Anything the dashboard's error module maps (database trouble, internal faults).
    Web(WebError),
}

impl From<WebError> for ApiError {
    fn from(e: WebError) -> Self {
        match e {
            WebError::NotFound => ApiError::NotFound,
            WebError::BadRequest(m) => ApiError::BadRequest(m),
            other => ApiError::Web(other),
        }
    }
}

/// A JSON response.
pub fn json<T: Serialize>(status: StatusCode, body: &T) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => (
            status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            bytes,
        )
            .into_response(),
        Err(e) => {
            ApiError::Web(WebError::internal(format!("encoding a response: {e}"))).into_response()
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            ApiError::BadRequest(m) => (StatusCode::BAD_REQUEST, m),
            ApiError::Unauthorized => {
                let mut response = json(
                    StatusCode::UNAUTHORIZED,
                    &ErrorBody {
                        error: "a valid viewer token is required (Authorization: Bearer)".into(),
                    },
                );
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer error=\"invalid_token\""),
                );
                return response;
            }
            ApiError::Forbidden(m) => (StatusCode::FORBIDDEN, m.to_owned()),
            ApiError::NotFound => (StatusCode::NOT_FOUND, "not found".into()),
            ApiError::NotEnabled => (
                StatusCode::NOT_FOUND,
                "the API is not enabled on this server".into(),
            ),
            ApiError::Web(e) => web(e),
        };
        json(status, &ErrorBody { error: message })
    }
}

/// The status and message of a dashboard error, as the API says it.
fn web(e: WebError) -> (StatusCode, String) {
    let unavailable = |m: &str| (StatusCode::SERVICE_UNAVAILABLE, m.to_owned());
    match e {
        WebError::QueryStopped => unavailable(
            "the query took longer than the server allows and was stopped: narrow the time \
             range or add a filter",
        ),
        WebError::Busy | WebError::TooManySessions => {
            unavailable("the server is busy: try again in a moment")
        }
        WebError::ConnectionLost | WebError::DatabaseUnavailable => {
            unavailable("the database is not reachable: try again in a moment")
        }
        WebError::NotFound => (StatusCode::NOT_FOUND, "not found".into()),
        WebError::BadRequest(m) => (StatusCode::BAD_REQUEST, m),
        WebError::NotAllowed(m) => (StatusCode::FORBIDDEN, m.to_owned()),
        other => {
            let reference: String = random_token()
                .map(|t| t[..8].to_owned())
                .unwrap_or_else(|_| "--------".into());
            tracing::error!(reference = %reference, "API: {other:?}");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the request could not be completed (reference {reference})"),
            )
        }
    }
}
