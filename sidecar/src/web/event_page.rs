//! One event: who, when, from where; field | before | after for a change; the full row images,
//! context and details; a link to the whole history of its subject.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};

use super::error::WebError;
use super::params::LogParams;
use super::queries;
use super::session::SignedIn;
use super::state::Settings;
use super::templates::{render, EventPage, Layout};
use super::view::{EventView, Version};

/// Versions of the row an event page shows, newest first; the full history is the log
/// filtered by the subject.
const VERSIONS_SHOWN: i64 = 20;

pub async fn show(
    State(settings): State<Arc<Settings>>,
    SignedIn { session, .. }: SignedIn,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, WebError> {
    let id: i64 = id.parse().map_err(|_| WebError::NotFound)?;
    // The list's filters ride along, only to link back to the same view.
    let back = LogParams::parse(query.unwrap_or_default().as_bytes());
    let client = session.client().await?;
    let event = queries::event::event(&client, id, session.tenant())
        .await
        .map_err(|e| WebError::query(&session.role, "reading an event", &e))?
        .ok_or(WebError::NotFound)?;
    // A tracked table's row change: its versions and its revert, for a role's session (a
    // token viewer reads through a service role, which must not write for them).
    let ev = &event.event;
    let row_change = !session.is_viewer()
        && ev.entity != "audit_log"
        && matches!(ev.action.as_str(), "create" | "update" | "delete");
    let versions = match (&ev.table_name, &ev.subject_id) {
        (Some(table), Some(subject)) if row_change => {
            queries::event::versions(&client, table, subject, VERSIONS_SHOWN)
                .await
                .map_err(|e| WebError::query(&session.role, "reading a row's history", &e))?
        }
        _ => Vec::new(),
    };
    drop(client);
    let revert_href = (row_change && ev.table_name.is_some())
        .then(|| format!("/reports/audit-log/events/{id}/revert"));
    let history_href = event
        .event
        .subject_id
        .as_deref()
        .map(|subject| LogParams::subject_history(&event.event.entity, subject).href());
    let view = EventView::new(&event, settings.zone)
        .map_err(|e| WebError::internal(format!("event {id}: a JSON column as read: {e}")))?;
    let page = EventPage {
        layout: Layout::for_session(&format!("Event {id}"), &session),
        event: view,
        back_href: back.href(),
        history_href,
        revert_href,
        versions: versions
            .iter()
            .map(|v| Version::new(v, id, settings.zone))
            .collect(),
    };
    Ok(render(&page).into_response())
}
