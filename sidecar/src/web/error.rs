//! What a person sees when a request cannot be served. Every variant renders a friendly page
//! with the right status; internal details (database messages, I/O errors) go to the server's
//! log with a short reference the page shows, never to the browser.

use std::time::Duration;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};

use super::templates::{render, ErrorPage, Layout, NotAdminPage};
use super::token::random_token;

/// Why a request has no session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoSession {
    /// No cookie, or one naming no session (never signed in, signed out, server restarted).
    Missing,
    /// Idle for longer than the timeout.
    Expired,
    /// The database closed the session's connection.
    ConnectionLost,
}

#[derive(Debug)]
pub enum WebError {
    NotFound,
    /// Something in the request a person can fix; the text is for them.
    BadRequest(String),
    /// No session: pages go to the sign-in page (`next` brings them back).
    SignInRequired {
        next: Option<String>,
        reason: NoSession,
    },
    /// A form without this session's token, or from another site.
    Csrf,
    /// A request from inside the application's frame whose embed session has ended (idle,
    /// or the server restarted): the application opens a new one.
    EmbedEnded,
    /// A viewer token refused (`GET /embed`): 401, and nothing more said.
    TokenRefused,
    /// Signed in, but this session's access does not include what was asked (a token
    /// viewer's export without the export scope); the text says what.
    NotAllowed(&'static str),
    /// Signed in, but the database says this role may not read the audit log.
    NotAdmin {
        role: String,
    },
    /// The session's connection is busy with a long request (an export).
    Busy,
    /// The page's queries ran past `--query-timeout` (or were cancelled) and were stopped.
    QueryStopped,
    ConnectionLost,
    TooManySessions,
    TooManyAttempts {
        wait: Duration,
    },
    DatabaseUnavailable,
    /// The database lets the role in without checking its password (trust or peer in
    /// pg_hba.conf), so a password typed here would prove nothing.
    PasswordNotChecked,
    /// The database is a read-only hot standby and the dashboard was started without
    /// `--record-db`, so an export could not be recorded.
    StandbyWithoutRecordDb,
    /// Anything else: logged in full, shown as a reference number.
    Internal(String),
}

impl WebError {
    pub fn internal(detail: impl Into<String>) -> WebError {
        WebError::Internal(detail.into())
    }

    /// A failed query on a signed-in role's connection.
    pub fn query(role: &str, doing: &str, e: &tokio_postgres::Error) -> WebError {
        use tokio_postgres::error::SqlState;
        if e.is_closed() {
            return WebError::ConnectionLost;
        }
        if let Some(db) = e.as_db_error() {
            if db.code() == &SqlState::INSUFFICIENT_PRIVILEGE {
                return WebError::NotAdmin {
                    role: role.to_owned(),
                };
            }
            if db.code() == &SqlState::QUERY_CANCELED {
                tracing::warn!(role = ?role, "{doing} was stopped: {}", db.message());
                return WebError::QueryStopped;
            }
        }
        WebError::Internal(format!(
            "{doing} as {role:?}: {}",
            crate::error::describe(e)
        ))
    }

    /// A failure of the shared export code.
    pub fn from_export(role: &str, e: crate::error::Error) -> WebError {
        match e {
            crate::error::Error::PermissionDenied(_) => WebError::NotAdmin {
                role: role.to_owned(),
            },
            other => WebError::Internal(format!("export as {role:?}: {other}")),
        }
    }
}

struct Shown {
    status: StatusCode,
    title: &'static str,
    message: String,
    link: Option<(&'static str, String)>,
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let mut reference = None;
        let shown = match self {
            WebError::SignInRequired {
                next: Some(next),
                reason,
            } => {
                let mut query = form_urlencoded::Serializer::new(String::new());
                if next != "/" {
                    query.append_pair("next", &next);
                }
                match reason {
                    NoSession::Missing => {}
                    NoSession::Expired => {
                        query.append_pair("notice", "expired");
                    }
                    NoSession::ConnectionLost => {
                        query.append_pair("notice", "lost");
                    }
                }
                let query = query.finish();
                let to = if query.is_empty() {
                    "/sign-in".to_owned()
                } else {
                    format!("/sign-in?{query}")
                };
                return Redirect::to(&to).into_response();
            }
            WebError::SignInRequired { next: None, .. } => Shown {
                status: StatusCode::UNAUTHORIZED,
                title: "Please sign in",
                message: "Your session has ended, or you have not signed in. Nothing was done."
                    .into(),
                link: Some(("Sign in", "/sign-in".into())),
            },
            WebError::NotAdmin { role } => {
                let page = NotAdminPage::new(role);
                return (StatusCode::FORBIDDEN, render(&page)).into_response();
            }
            WebError::NotFound => Shown {
                status: StatusCode::NOT_FOUND,
                title: "Not found",
                message: "There is no such page or event.".into(),
                link: Some(("Go to the Audit Log", "/reports/audit-log".into())),
            },
            WebError::BadRequest(message) => Shown {
                status: StatusCode::BAD_REQUEST,
                title: "That request could not be read",
                message,
                link: Some(("Go to the Audit Log", "/reports/audit-log".into())),
            },
            WebError::Csrf => Shown {
                status: StatusCode::FORBIDDEN,
                title: "This form has expired",
                message: "The form was not sent from a page of this dashboard in your current \
                          session, so nothing was done. Reload the page and try again."
                    .into(),
                link: Some(("Go to the Audit Log", "/reports/audit-log".into())),
            },
            WebError::EmbedEnded => Shown {
                status: StatusCode::UNAUTHORIZED,
                title: "This view has ended",
                message: "This embedded audit log was closed after a period of inactivity, or \
                          the server restarted. Reload the page in your application to open it \
                          again."
                    .into(),
                link: None,
            },
            WebError::TokenRefused => Shown {
                status: StatusCode::UNAUTHORIZED,
                title: "This link is not valid",
                message: "The link to the audit log is not valid or has expired. Reload the \
                          page in your application to get a new one."
                    .into(),
                link: None,
            },
            WebError::NotAllowed(what) => Shown {
                status: StatusCode::FORBIDDEN,
                title: "Not allowed",
                message: what.into(),
                link: None,
            },
            WebError::Busy => Shown {
                status: StatusCode::SERVICE_UNAVAILABLE,
                title: "Still busy",
                message: "An export you started is still running on your connection. Try again \
                          when it has finished."
                    .into(),
                link: None,
            },
            WebError::QueryStopped => Shown {
                status: StatusCode::SERVICE_UNAVAILABLE,
                title: "This view took too long",
                message: "Reading this view took longer than the dashboard allows, so it was \
                          stopped and nothing was shown. Narrow the time range or add a \
                          filter. If common views are slow, the summary may be out of date: \
                          ask the administrator to schedule audit-trail maintain (hourly)."
                    .into(),
                link: Some(("Go to the Audit Log", "/reports/audit-log".into())),
            },
            WebError::ConnectionLost => Shown {
                status: StatusCode::SERVICE_UNAVAILABLE,
                title: "The database connection was lost",
                message: "Your connection to the database closed (the server may have \
                          restarted). Please sign in again."
                    .into(),
                link: Some(("Sign in", "/sign-in?notice=lost".into())),
            },
            WebError::TooManySessions => Shown {
                status: StatusCode::SERVICE_UNAVAILABLE,
                title: "Too many people are signed in",
                message: "The dashboard has reached its limit of open sessions. Try again later."
                    .into(),
                link: None,
            },
            WebError::TooManyAttempts { wait } => {
                let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                let seconds = seconds.max(1);
                let shown = Shown {
                    status: StatusCode::TOO_MANY_REQUESTS,
                    title: "Too many failed sign-ins",
                    message: format!(
                        "After several wrong passwords, sign-in for this role from your \
                         address waits a little longer each time. Try again in {seconds} \
                         second{}.",
                        if seconds == 1 { "" } else { "s" }
                    ),
                    link: Some(("Back to sign-in", "/sign-in".into())),
                };
                let mut response = page(shown, None);
                if let Ok(v) = HeaderValue::from_str(&seconds.to_string()) {
                    response.headers_mut().insert(header::RETRY_AFTER, v);
                }
                return response;
            }
            WebError::DatabaseUnavailable => Shown {
                status: StatusCode::SERVICE_UNAVAILABLE,
                title: "The database is not reachable",
                message: "The dashboard could not reach the database. Try again in a moment; if \
                          this goes on, ask the administrator to check the server log."
                    .into(),
                link: Some(("Back to sign-in", "/sign-in".into())),
            },
            WebError::PasswordNotChecked => Shown {
                status: StatusCode::FORBIDDEN,
                title: "Sign-in is not possible on this connection",
                message: "The database accepts this role without checking its password, so the \
                          dashboard cannot tell who you are. Ask the administrator to point the \
                          dashboard at a connection that requires passwords (scram-sha-256)."
                    .into(),
                link: Some(("Back to sign-in", "/sign-in".into())),
            },
            WebError::StandbyWithoutRecordDb => Shown {
                status: StatusCode::SERVICE_UNAVAILABLE,
                title: "The dashboard cannot record on this database",
                message: "The database is a read-only standby, where exports cannot be \
                          recorded. Ask the administrator to start the dashboard with \
                          --record-db naming the primary."
                    .into(),
                link: Some(("Back to sign-in", "/sign-in".into())),
            },
            WebError::Internal(detail) => {
                let id: String = random_token()
                    .map(|t| t[..8].to_owned())
                    .unwrap_or_else(|_| "--------".into());
                tracing::error!(reference = %id, "{detail}");
                reference = Some(id);
                Shown {
                    status: StatusCode::INTERNAL_SERVER_ERROR,
                    title: "Something went wrong",
                    message: "The request could not be completed. The details are in the \
                              dashboard's log."
                        .into(),
                    link: Some(("Go to the Audit Log", "/reports/audit-log".into())),
                }
            }
        };
        page(shown, reference)
    }
}

fn page(shown: Shown, reference: Option<String>) -> Response {
    let page = ErrorPage {
        layout: Layout::public(shown.title),
        status: shown.status.as_u16(),
        heading: shown.title,
        message: shown.message,
        reference,
        link: shown.link,
    };
    (shown.status, render(&page)).into_response()
}

/// No random bytes for a token: the system's random source failed (a server fault).
impl From<getrandom::Error> for WebError {
    fn from(e: getrandom::Error) -> Self {
        WebError::internal(format!("no random bytes for a token: {e}"))
    }
}
