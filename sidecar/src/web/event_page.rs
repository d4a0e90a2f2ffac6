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
use super::view::EventView;

pub async fn show(
    State(settings): State<Arc<Settings>>,
    SignedIn { session, .. }: SignedIn,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, WebError> {
    let id: i64 = id.parse().map_err(|_| WebError::NotFound)?;
    // The list's filters ride along, only to link back to the same view.
    let back = LogParams::parse(query.unwrap_or_default().as_bytes());
    let event = {
        let client = session.client().await?;
        queries::event::event(&client, id, session.tenant())
            .await
            .map_err(|e| WebError::query(&session.role, "reading an event", &e))?
    };
    let event = event.ok_or(WebError::NotFound)?;
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
    };
    Ok(render(&page).into_response())
}
