//! Reports → Audit Log: the filtered, newest-first table of events.

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;

use super::actions::ActionChoices;
use super::error::WebError;
use super::params::LogParams;
use super::queries;
use super::session::SignedIn;
use super::state::Settings;
use super::templates::{render, Layout, LogPage};
use super::view::LogView;

pub async fn home() -> Redirect {
    Redirect::to("/reports/audit-log")
}

pub async fn show(
    State(settings): State<Arc<Settings>>,
    State(action_choices): State<ActionChoices>,
    State(findings): State<queries::integrity::SchemaFindings>,
    SignedIn { session, .. }: SignedIn,
    RawQuery(query): RawQuery,
) -> Result<Response, WebError> {
    let params = LogParams::parse(query.unwrap_or_default().as_bytes());
    let role = &session.role;
    let mut client = session.client().await?;
    let tracked = queries::log::tracked_entities(&client)
        .await
        .map_err(|e| WebError::query(role, "reading tracked tables", &e))?;
    let actions = match session.tenant() {
        None => action_choices.get(&client).await,
        Some(tenant) => action_choices.for_tenant(&client, tenant).await,
    }
    .map_err(|e| WebError::query(role, "reading the actions in the log", &e))?;
    // A token viewer sees one organization: never the filter or the column.
    let organizations = !session.is_viewer()
        && (!params.tenant.is_empty()
            || queries::log::organizations_in_use(&client)
                .await
                .map_err(|e| WebError::query(role, "reading tracked tables", &e))?);
    let (listed, error) = match params.to_filters(Utc::now(), settings.zone) {
        Ok(filters) => {
            let page = queries::log::list(
                &mut client,
                &session.scope(filters),
                params.page,
                settings.page_size,
                settings.query_timeout,
            )
            .await
            .map_err(|e| WebError::query(role, "reading the audit log", &e))?;
            (Some(page), None)
        }
        Err(message) => (None, Some(message)),
    };
    // How far the whole log is sealed, and whether its summary is fresh: every
    // organization's numbers, so not for a token viewer (whose pages never use the summary).
    let (integrity, summary) = if session.is_viewer() {
        (None, None)
    } else {
        let integrity = queries::integrity::integrity(&client, &findings)
            .await
            .map_err(|e| WebError::query(role, "reading audit.integrity", &e))?;
        let summary = queries::summary_state(&*client)
            .await
            .map_err(|e| WebError::query(role, "reading audit.summary_state", &e))?;
        (Some(integrity), Some(summary))
    };
    drop(client);
    let status = if error.is_some() {
        axum::http::StatusCode::BAD_REQUEST
    } else {
        axum::http::StatusCode::OK
    };
    let mut view = LogView::new(
        &params,
        listed,
        error,
        &tracked,
        &actions,
        settings.zone,
        &session.csrf,
    );
    view.organizations = organizations;
    let page = LogPage {
        layout: Layout::for_session("Audit Log", &session),
        view,
        integrity: integrity.map(|i| integrity_line(&i, settings.zone)),
        can_export: session.may_export(),
        summary_notice: summary
            .and_then(|s| super::view::summary_notice(&s, Utc::now(), settings.zone)),
    };
    Ok((status, render(&page)).into_response())
}

/// "Sealed through event 812 (2026-12-01 12:00:00 UTC) · 3 events waiting to be sealed".
fn integrity_line(i: &queries::integrity::Integrity, zone: chrono_tz::Tz) -> String {
    let waiting = match i.unsealed {
        0 => "nothing waiting to be sealed".to_owned(),
        1 => "1 event waiting to be sealed".to_owned(),
        n if n > queries::integrity::UNSEALED_COUNTED => {
            format!(
                "more than {} events waiting to be sealed",
                queries::integrity::UNSEALED_COUNTED
            )
        }
        n => format!("{n} events waiting to be sealed"),
    };
    let sealed = match (i.sealed_through_id, i.sealed_through_time) {
        (Some(id), Some(t)) => format!(
            "Sealed through event {id} ({}) · {waiting}",
            super::view::format_time(t, zone)
        ),
        (Some(id), None) => format!("Sealed through event {id} · {waiting}"),
        _ => format!("Not sealed yet (audit-trail seal) · {waiting}"),
    };
    let sealed = match i.stalled_since {
        None => sealed,
        Some(t) => format!(
            "Warning: sealing has stalled: events since {} wait to be sealed, and changes to \
             them would go undetected; check that audit-trail seal runs · {sealed}",
            super::view::format_time(t, zone)
        ),
    };
    match i.schema_findings.as_slice() {
        [] => sealed,
        [first, rest @ ..] => {
            let more = match rest.len() {
                0 => String::new(),
                n => format!(" (and {n} more)"),
            };
            format!(
                "Warning: the audit schema was changed, readers may not all see the same log: {first}{more}; run audit-trail verify · {sealed}"
            )
        }
    }
}
