//! The event page's Revert button: a confirmation that shows exactly what the revert would
//! change (it runs, and is rolled back), then the revert itself, on the signed-in role's own
//! connection (to the primary through `--record-db` when the dashboard reads a standby): the
//! database's privileges decide, and the change is captured as that role's, with source
//! `revert` (docs/undo.md). Token viewers never get it: they read through a service role.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
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

/// `skip_redacted=1` (in the query, or the form): the admin chose to put back the rest of a
/// row whose image holds a redacted value (docs/undo.md).
fn skip_redacted(fields: &FormFields) -> bool {
    fields.get("skip_redacted") == Some("1")
}

/// Runs the revert of event `id` as the session's role (rolled back for a `dry_run`): the
/// changes it made, or why the database refused it.
async fn run(
    session: &Session,
    id: i64,
    skip_redacted: bool,
    dry_run: bool,
) -> Result<Result<Vec<Change>, String>, WebError> {
    let target = Target::Event(id);
    let outcome = match session.record_client().await? {
        Some(mut record) => apply(&mut record, target, skip_redacted, dry_run).await,
        None => {
            let mut client = session.client().await?;
            apply(&mut client, target, skip_redacted, dry_run).await
        }
    };
    Ok(outcome.map_err(|e| e.to_string()))
}

fn page(
    session: &Session,
    id: i64,
    skip_redacted: bool,
    outcome: &Result<Vec<Change>, String>,
) -> RevertPage {
    RevertPage {
        layout: Layout::for_session(&format!("Revert event {id}"), session),
        id,
        skip_redacted,
        skip_offered: false,
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
/// cannot be reverted. When only a redacted value stands in the way (the same dry run
/// leaving redacted columns out goes through), the page offers that instead: whether it
/// does is the database's answer, not a reading of its message.
pub async fn confirm(
    State(_settings): State<Arc<Settings>>,
    SignedIn { session, .. }: SignedIn,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, WebError> {
    admins_only(&session)?;
    let id = event_id(&id)?;
    let skip_redacted = skip_redacted(&FormFields::parse(query.unwrap_or_default().as_bytes()));
    let outcome = run(&session, id, skip_redacted, true).await?;
    let mut shown = page(&session, id, skip_redacted, &outcome);
    if outcome.is_err() && !skip_redacted {
        shown.skip_offered = run(&session, id, true, true).await?.is_ok();
    }
    Ok(render(&shown).into_response())
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
    let form = FormFields::parse(&body);
    session.check_csrf(form.get("csrf"))?;
    let id = event_id(&id)?;
    let skip_redacted = skip_redacted(&form);
    let outcome = run(&session, id, skip_redacted, false).await?;
    tracing::info!(role = %session.role, event = id, skip_redacted, refused = outcome.is_err(), "revert");
    match outcome.as_ref().ok().and_then(|changes| changes.first()) {
        Some(first) => {
            Ok(Redirect::to(&format!("/reports/audit-log/events/{}", first.id)).into_response())
        }
        None => Ok((
            StatusCode::CONFLICT,
            render(&page(&session, id, skip_redacted, &outcome)),
        )
            .into_response()),
    }
}
