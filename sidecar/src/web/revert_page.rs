//! The event page's Revert button: a confirmation that shows exactly what the revert would
//! change (it runs, and is rolled back), then the revert itself, on the signed-in role's own
//! connection (to the primary through `--record-db` when the dashboard reads a standby): the
//! database's privileges decide, and the change is captured as that role's, with source
//! `revert` (docs/undo.md). Token viewers never get it: they read through a service role.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};

use super::auth::FormFields;
use super::error::WebError;
use super::session::{Session, SignedIn};
use super::state::Settings;
use super::templates::{render, Layout, RevertPage};
use crate::revert::{apply, Change, Target};

fn event_id(id: &str) -> Result<i64, WebError> {
    id.parse().map_err(|_| WebError::NotFound)
}

fn admins_only(session: &Session) -> Result<(), WebError> {
    if session.is_viewer() {
        return Err(WebError::NotAllowed(
            "Putting a change back is for the database's own admins, with their own rights.",
        ));
    }
    Ok(())
}

/// Runs the revert of event `id` as the session's role (rolled back for a `dry_run`): the
/// changes it made, or why the database refused it.
async fn run(
    session: &Session,
    id: i64,
    dry_run: bool,
) -> Result<Result<Vec<Change>, String>, WebError> {
    let outcome = match session.record_client().await? {
        Some(mut record) => apply(&mut record, Target::Event(id), false, dry_run).await,
        None => {
            let mut client = session.client().await?;
            apply(&mut client, Target::Event(id), false, dry_run).await
        }
    };
    Ok(outcome.map_err(|e| e.to_string()))
}

fn page(session: &Session, id: i64, outcome: &Result<Vec<Change>, String>) -> RevertPage {
    RevertPage {
        layout: Layout::for_session(&format!("Revert event {id}"), session),
        id,
        changes: outcome
            .iter()
            .flatten()
            .map(|c| (c.summary.clone(), c.describe()))
            .collect(),
        refusal: outcome.as_ref().err().cloned(),
        role: session.role.clone(),
        csrf: session.csrf.clone(),
    }
}

/// GET: what reverting the event would change, and the button that does it; or why it
/// cannot be reverted.
pub async fn confirm(
    State(_settings): State<Arc<Settings>>,
    SignedIn { session, .. }: SignedIn,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    admins_only(&session)?;
    let id = event_id(&id)?;
    let outcome = run(&session, id, true).await?;
    Ok(render(&page(&session, id, &outcome)).into_response())
}

/// POST: the revert, then the page of the first event it wrote; a refusal (a later change,
/// no rights) is shown on the confirmation page, nothing changed.
pub async fn revert(
    State(_settings): State<Arc<Settings>>,
    SignedIn { session, .. }: SignedIn,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, WebError> {
    admins_only(&session)?;
    session.check_csrf(FormFields::parse(&body).get("csrf"))?;
    let id = event_id(&id)?;
    let outcome = run(&session, id, false).await?;
    tracing::info!(role = %session.role, event = id, refused = outcome.is_err(), "revert");
    match outcome.as_ref().ok().and_then(|changes| changes.first()) {
        Some(first) => {
            Ok(Redirect::to(&format!("/reports/audit-log/events/{}", first.id)).into_response())
        }
        None => Ok((StatusCode::CONFLICT, render(&page(&session, id, &outcome))).into_response()),
    }
}
