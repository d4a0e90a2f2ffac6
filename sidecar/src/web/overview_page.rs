//! Reports → Overview: what happened lately at a glance, linking into the log.

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use chrono::Utc;

use super::error::WebError;
use super::params::Range;
use super::queries;
use super::session::SignedIn;
use super::state::Settings;
use super::templates::{render, Layout, Nav, OverviewPage};
use super::view::OverviewView;

/// Busiest actors and latest alerts shown.
const LISTED: i64 = 5;

pub async fn show(
    State(settings): State<Arc<Settings>>,
    SignedIn { session, .. }: SignedIn,
    RawQuery(query): RawQuery,
) -> Result<Response, WebError> {
    let query = query.unwrap_or_default();
    let param = |name: &str| {
        form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    // One organization's overview: a token viewer's always, whatever is asked; an admin's
    // when asked (`?tenant=`), counted from its events as a viewer's is.
    let tenant = match session.tenant() {
        Some(own) => Some(own.to_owned()),
        None => param("tenant").map(|t| t.replace('\0', "\u{FFFD}")),
    };
    let range = match param("range").as_deref() {
        None | Some("30d") => Range::Month,
        Some("7d") => Range::Week,
        Some(other) => {
            return Err(WebError::BadRequest(format!(
                "the overview shows the last 7d or 30d, not \"{other}\""
            )))
        }
    };
    let zone = settings.zone;
    let today = Utc::now().with_timezone(&zone).date_naive();
    let days_back = if range == Range::Week { 6 } else { 29 };
    let first_day = today - chrono::Duration::days(days_back);
    // Midnight of the first day, in the dashboard's zone.
    let since = first_day
        .and_hms_opt(0, 0, 0)
        .and_then(|t| t.and_local_timezone(zone).earliest())
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(|| WebError::internal("no midnight on the overview's first day"))?;
    let role = &session.role;
    // The summary counts UTC hours: they make up the days only if every midnight does.
    let days_on_hours = (0..=days_back).all(|d| {
        (first_day + chrono::Duration::days(d))
            .and_hms_opt(0, 0, 0)
            .and_then(|t| t.and_local_timezone(zone).earliest())
            .is_some_and(|t| t.timestamp() % 3600 == 0)
    });
    let mut client = session.client().await?;
    let counts = queries::overview::overview_counts(
        &mut client,
        since,
        zone.name(),
        days_on_hours,
        LISTED,
        settings.query_timeout,
        tenant.as_deref(),
    )
    .await
    .map_err(|e| WebError::query(role, "counting events per day and actor", &e))?;
    let alerts = queries::overview::latest_alerts(&client, LISTED, tenant.as_deref())
        .await
        .map_err(|e| WebError::query(role, "reading the latest alerts", &e))?;
    // A token viewer's counts never come from the summary: no notice about it.
    let summary = if tenant.is_some() {
        None
    } else {
        let state = queries::summary_state(&*client)
            .await
            .map_err(|e| WebError::query(role, "reading audit.summary_state", &e))?;
        Some(state)
    };
    drop(client);
    let page = OverviewPage {
        layout: Layout::for_session("Overview", &session).on(Nav::Overview),
        view: OverviewView::new(
            range,
            today,
            &counts.days,
            &counts.actors,
            &alerts,
            zone,
            // The viewer's own goes without saying (their links are scoped anyway).
            tenant.as_deref().filter(|_| !session.is_viewer()),
        ),
        summary_notice: summary.and_then(|s| super::view::summary_notice(&s, Utc::now(), zone)),
    };
    Ok(render(&page).into_response())
}
