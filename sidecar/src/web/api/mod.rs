//! The JSON API under `/api/v1`, for the application's own backend: its admins' organization's
//! events, with the same viewer tokens as the embed (`Authorization: Bearer JWT`).
//!
//! - `GET /api/v1/events`: a page of events, newest first, with the export's filters; keyset
//!   pages (`next_cursor`).
//! - `GET /api/v1/events/{id}`: one event (404 outside the token's organization).
//! - `GET /api/v1/events.csv`: the CSV of `audit-trail export --tenant T`, byte for byte,
//!   recorded before its first row as every export is (scope `audit_log:export`).
//! - `GET /api/v1/openapi.json`: this API as OpenAPI 3, generated from the handlers and
//!   types below (no token needed).
//!
//! Every query takes the organization from the verified token ([`Authorized`]); the request
//! can narrow what it sees, never widen it.

mod error;
mod params;

use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts, Path, RawQuery, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde::Serialize;
use serde_json::value::RawValue;
use utoipa::{Modify, OpenApi, ToSchema};

use super::export::respond;
use super::queries::api::{self as queries, After, ApiEventRow};
use super::state::{Settings, Viewers};
use super::viewer::{now_secs, Viewer};
use crate::event_row::TimeFormat;
use crate::export::{ExportRequest, Format};
use crate::own_events::OnBehalf;

use error::{json, ApiError, ErrorBody};
use params::{encode_cursor, EventQuery};

/// One event.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiEvent {
    pub id: i64,
    /// RFC 3339, UTC, to the microsecond.
    #[schema(example = "2026-11-25T14:03:07.123456Z")]
    pub occurred_at: String,
    /// The application user, as the writing transaction named them.
    pub actor: String,
    /// The database login role.
    pub db_user: String,
    pub source: String,
    pub entity: String,
    pub action: String,
    pub subject_id: Option<String>,
    pub table_name: Option<String>,
    /// For an update: the columns whose values changed.
    #[schema(value_type = Option<Vec<String>>)]
    pub changed_fields: Option<Box<RawValue>>,
    /// For a delete, the whole row before; for an update, the previous values of the changed
    /// columns.
    #[schema(value_type = Option<Object>)]
    pub old_data: Option<Box<RawValue>>,
    /// For a create or an update: the whole row after.
    #[schema(value_type = Option<Object>)]
    pub new_data: Option<Box<RawValue>>,
    #[schema(value_type = Option<Object>)]
    pub context: Option<Box<RawValue>>,
    #[schema(value_type = Option<Object>)]
    pub details: Option<Box<RawValue>>,
    /// The event's organization: always the token's.
    pub tenant: Option<String>,
    /// One line, as `audit.report` words it.
    #[schema(example = "alice@example.com updated contact 42: email")]
    pub summary: String,
}

impl ApiEvent {
    fn from_row(row: ApiEventRow) -> Result<ApiEvent, ApiError> {
        let raw = |v: Option<String>| {
            v.map(RawValue::from_string).transpose().map_err(|e| {
                ApiError::Web(super::error::WebError::internal(format!(
                    "a JSON column as read: {e}"
                )))
            })
        };
        let e = row.event;
        Ok(ApiEvent {
            id: e.id,
            occurred_at: TimeFormat::default().format(e.occurred_at),
            actor: e.actor,
            db_user: e.db_user,
            source: e.source,
            entity: e.entity,
            action: e.action,
            subject_id: e.subject_id,
            table_name: e.table_name,
            changed_fields: raw(e.changed_fields)?,
            old_data: raw(e.old_data)?,
            new_data: raw(e.new_data)?,
            context: raw(e.context)?,
            details: raw(e.details)?,
            tenant: e.tenant,
            summary: row.summary,
        })
    }
}

/// A page of events, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventList {
    pub events: Vec<ApiEvent>,
    /// The `cursor` of the next (older) page; null on the last page.
    pub next_cursor: Option<String>,
}

/// A request with a verified viewer token that grants reading, and what serves viewers.
pub struct Authorized {
    pub viewer: Viewer,
    pub viewers: Arc<Viewers>,
}

impl<S> FromRequestParts<S> for Authorized
where
    Option<Arc<Viewers>>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let viewers = Option::<Arc<Viewers>>::from_ref(state).ok_or(ApiError::NotEnabled)?;
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, token) = v.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then_some(token)
            })
            .unwrap_or("");
        let viewer = viewers.verifier.verify(token, now_secs()).map_err(|why| {
            tracing::warn!(path = %parts.uri.path(), reason = %why, "API: viewer token refused");
            ApiError::Unauthorized
        })?;
        if !viewer.may_read {
            return Err(ApiError::Forbidden(
                "the token does not grant audit_log:read",
            ));
        }
        Ok(Authorized { viewer, viewers })
    }
}

/// A connection for this request.
async fn connection(viewers: &Viewers) -> Result<super::viewer::pool::Pooled, ApiError> {
    viewers.db.clone().get().await.map_err(|e| {
        use super::viewer::pool::Unavailable;
        match e {
            Unavailable::Busy => ApiError::Web(super::error::WebError::Busy),
            Unavailable::Unreachable(why) => {
                tracing::error!("API: cannot connect to --viewer-db: {why}");
                ApiError::Web(super::error::WebError::DatabaseUnavailable)
            }
        }
    })
}

/// A page of the organization's events, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/events",
    params(EventQuery),
    security(("viewer_token" = [])),
    responses(
        (status = 200, description = "A page of events, newest first", body = EventList),
        (status = 400, description = "A parameter could not be used", body = ErrorBody),
        (status = 401, description = "No valid viewer token", body = ErrorBody),
        (status = 403, description = "The token does not grant reading", body = ErrorBody),
        (status = 503, description = "The query took too long, or the database is unavailable", body = ErrorBody),
    ),
    tag = "events"
)]
pub async fn list(
    State(settings): State<Arc<Settings>>,
    Authorized { viewer, viewers }: Authorized,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let query = EventQuery::parse(query.as_deref().unwrap_or("")).map_err(ApiError::BadRequest)?;
    let filters = query.filters(Utc::now()).map_err(ApiError::BadRequest)?;
    let after = query.after().map_err(ApiError::BadRequest)?;
    let limit = query.limit();
    let mut client = connection(&viewers).await?;
    // One more than the page, to learn whether there is a next one.
    let mut rows = queries::page(
        &mut client,
        &viewer.tenant,
        &filters,
        after,
        limit + 1,
        settings.query_timeout,
    )
    .await
    .map_err(|e| super::error::WebError::query(&viewer.name, "reading events for the API", &e))?;
    drop(client);
    let more = rows.len() as i64 > limit;
    rows.truncate(usize::try_from(limit).unwrap_or(0));
    let next_cursor = match rows.last() {
        Some(last) if more => Some(encode_cursor(After {
            at: last.event.occurred_at,
            id: last.event.id,
        })),
        _ => None,
    };
    let events = rows
        .into_iter()
        .map(ApiEvent::from_row)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(json(
        StatusCode::OK,
        &EventList {
            events,
            next_cursor,
        },
    ))
}

/// One event of the organization.
#[utoipa::path(
    get,
    path = "/api/v1/events/{id}",
    params(("id" = i64, Path, description = "The event's id")),
    security(("viewer_token" = [])),
    responses(
        (status = 200, description = "The event", body = ApiEvent),
        (status = 401, description = "No valid viewer token", body = ErrorBody),
        (status = 403, description = "The token does not grant reading", body = ErrorBody),
        (status = 404, description = "No such event in the token's organization", body = ErrorBody),
    ),
    tag = "events"
)]
pub async fn one(
    Authorized { viewer, viewers }: Authorized,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id: i64 = id.parse().map_err(|_| ApiError::NotFound)?;
    let client = connection(&viewers).await?;
    let row = queries::event(&client, &viewer.tenant, id)
        .await
        .map_err(|e| {
            super::error::WebError::query(&viewer.name, "reading an event for the API", &e)
        })?
        .ok_or(ApiError::NotFound)?;
    Ok(json(StatusCode::OK, &ApiEvent::from_row(row)?))
}

/// The organization's events as the CSV of `audit-trail export --tenant T` (RFC 4180, the
/// export's header and cells), oldest first, recorded as an export before the first row.
#[utoipa::path(
    get,
    path = "/api/v1/events.csv",
    params(EventQuery),
    security(("viewer_token" = [])),
    responses(
        (status = 200, description = "The CSV", content_type = "text/csv", body = String),
        (status = 400, description = "A parameter could not be used", body = ErrorBody),
        (status = 401, description = "No valid viewer token", body = ErrorBody),
        (status = 403, description = "The token does not grant audit_log:export", body = ErrorBody),
    ),
    tag = "events"
)]
pub async fn csv(
    Authorized { viewer, viewers }: Authorized,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    if !viewer.may_export {
        return Err(ApiError::Forbidden(
            "the token does not grant audit_log:export",
        ));
    }
    let query = EventQuery::parse(query.as_deref().unwrap_or("")).map_err(ApiError::BadRequest)?;
    if query.limit.is_some() || query.cursor.is_some() {
        return Err(ApiError::BadRequest(
            "limit and cursor page the JSON list; the CSV holds every matching event".into(),
        ));
    }
    let now = Utc::now();
    let mut filters = query.filters(now).map_err(ApiError::BadRequest)?;
    filters.tenant = Some(viewer.tenant.clone());
    let request = ExportRequest {
        filters,
        format: Format::Csv,
        bom: false,
        times: TimeFormat::default(),
        record_id: None,
    };
    let client = connection(&viewers).await?;
    let on_behalf = OnBehalf {
        actor: viewer.name.clone(),
        tenant: viewer.tenant.clone(),
    };
    respond(
        client,
        None::<super::viewer::pool::Pooled>,
        request,
        "api",
        Some(on_behalf),
        viewer.name,
        now,
    )
    .await
    .map_err(ApiError::from)
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "audit_trail viewer API",
        description = "One organization's audit events, for the application's backend. \
                       Authenticate with the viewer token (a JWT the application signs: \
                       sub, tenant, exp, and optionally name, iat, scope) as a Bearer token."
    ),
    paths(list, one, csv),
    components(schemas(ApiEvent, EventList, ErrorBody, params::FilterValue)),
    modifiers(&ViewerToken),
    tags((name = "events", description = "Audit events of the token's organization"))
)]
struct ApiDoc;

/// The bearer scheme every path but this document needs.
struct ViewerToken;

impl Modify for ViewerToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "viewer_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// The OpenAPI 3 document of this API.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    doc
}

/// `GET /api/v1/openapi.json`.
pub async fn openapi() -> Response {
    match document().to_json() {
        Ok(text) => ([(header::CONTENT_TYPE, "application/json")], text).into_response(),
        Err(e) => ApiError::Web(super::error::WebError::internal(format!(
            "the OpenAPI document: {e}"
        )))
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_describes_every_path_with_the_bearer_scheme() {
        let doc: serde_json::Value = serde_json::from_str(&document().to_json().unwrap()).unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
        for path in [
            "/api/v1/events",
            "/api/v1/events/{id}",
            "/api/v1/events.csv",
        ] {
            let get = &doc["paths"][path]["get"];
            assert!(get.is_object(), "{path}");
            assert_eq!(
                get["security"][0]["viewer_token"],
                serde_json::json!([]),
                "{path}"
            );
        }
        let params: Vec<&str> = doc["paths"]["/api/v1/events"]["get"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        for name in [
            "since", "until", "actor", "entity", "action", "source", "subject", "table", "limit",
            "cursor",
        ] {
            assert!(params.contains(&name), "{name}: {params:?}");
        }
        assert!(!params.contains(&"tenant"));
        let event = &doc["components"]["schemas"]["ApiEvent"]["properties"];
        for field in [
            "id",
            "occurred_at",
            "actor",
            "db_user",
            "source",
            "entity",
            "action",
            "subject_id",
            "table_name",
            "changed_fields",
            "old_data",
            "new_data",
            "context",
            "details",
            "tenant",
            "summary",
        ] {
            assert!(event[field].is_object(), "{field}");
        }
        assert_eq!(
            doc["components"]["securitySchemes"]["viewer_token"]["scheme"],
            "bearer"
        );
    }
}
