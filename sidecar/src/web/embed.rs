//! `GET /embed?token=JWT`: the application's page frames this link to show one of its admins
//! their organization's audit log. The token is verified ([`super::viewer::Verifier`]), an
//! embed session opened for that viewer on a `--viewer-db` connection of its own, the
//! sign-in recorded under the viewer's name, and the browser sent on (303) to the Audit Log
//! with the session's cookie: the token stays in neither the address bar nor the page.
//!
//! Pages of embed sessions may be framed by the `--embed-origin`s only (`frame-ancestors`,
//! set in [`super::app`]); without any, by no one, as every other page.

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::auth::{ClientAddress, FormFields};
use super::error::WebError;
use super::session::{Access, Session, Sessions, EMBED_COOKIE};
use super::state::Viewers;
use super::token::{cookie, set_embed_cookie};
use super::viewer::{now_secs, Viewer};
use audit_trail_contract::sidecar_actions;

/// Where an embed session starts.
const LANDING: &str = "/reports/audit-log";

pub async fn open(
    State(viewers): State<Option<Arc<Viewers>>>,
    State(sessions): State<Sessions>,
    ClientAddress(address): ClientAddress,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, WebError> {
    let Some(viewers) = viewers else {
        return Err(WebError::NotFound);
    };
    let from = address.map_or_else(|| "?".to_owned(), |a| a.to_string());
    let query = FormFields::parse(query.unwrap_or_default().as_bytes());
    let viewer = viewers
        .verifier
        .verify(query.get("token").unwrap_or(""), now_secs())
        .map_err(|why| {
            tracing::warn!(%from, reason = %why, "embed refused: viewer token not accepted");
            WebError::TokenRefused
        })?;
    if !viewer.may_read {
        tracing::warn!(viewer = ?viewer.name, tenant = ?viewer.tenant, %from,
                       "embed refused: the token does not grant audit_log:read");
        return Err(WebError::NotAllowed(
            "This link does not give access to the audit log.",
        ));
    }
    let (client, alive) = viewers.db.connect_own().await.map_err(|e| {
        tracing::error!(viewer = ?viewer.name, %from, "embed: cannot connect to --viewer-db: {e:?}");
        WebError::DatabaseUnavailable
    })?;
    record_sign_in(&client, &viewer, &from)
        .await
        .map_err(|e| WebError::query(&viewer.name, "recording the embed sign-in", &e))?;
    // A new session at every embed (no fixation); this browser's previous one ends.
    if let Some(old) = cookie(&headers, EMBED_COOKIE) {
        sessions.remove(old);
    }
    let (name, tenant) = (viewer.name.clone(), viewer.tenant.clone());
    let session = Session::new(
        name.clone(),
        Access::Viewer(viewer),
        client,
        None,
        alive,
        sessions.clock(),
    )?;
    let token = sessions.insert(session)?;
    tracing::info!(viewer = ?name, tenant = ?tenant, %from, "embed session opened");
    Ok((
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, LANDING.to_owned()),
            (header::SET_COOKIE, set_embed_cookie(EMBED_COOKIE, &token)),
        ],
    )
        .into_response())
}

/// The viewer's sign-in, in the log under their name and organization (PCI DSS 10.2.1.3).
async fn record_sign_in(
    client: &tokio_postgres::Client,
    viewer: &Viewer,
    from: &str,
) -> Result<i64, tokio_postgres::Error> {
    let details = serde_json::json!({ "via": "embed", "from": from, "sub": viewer.subject });
    let on_behalf = crate::own_events::OnBehalf {
        actor: viewer.name.clone(),
        tenant: viewer.tenant.clone(),
    };
    crate::own_events::record_for(
        client,
        sidecar_actions::SIGN_IN,
        "embed",
        &details,
        Some(&on_behalf),
    )
    .await
}
