//! The sidecar's own events in the log (entity `audit_log`, the actions of
//! `audit_trail_contract::sidecar_actions`): an export and how it ended, a dashboard sign-in,
//! a failed verification. Each is recorded through `audit.log_event`, as the role the command
//! runs as, in one statement of its own (its own transaction unless the caller holds one),
//! with `audit.source` saying how the sidecar ran (`cli`, `dashboard`).

use tokio_postgres::GenericClient;

use audit_trail_contract::AUDIT_LOG_ENTITY;

/// Records one event; returns its id. `source` is set for this statement's transaction only
/// (set first: the CTE is materialized before `log_event` reads it).
pub async fn record(
    client: &impl GenericClient,
    action: &str,
    source: &str,
    details: &serde_json::Value,
) -> Result<i64, tokio_postgres::Error> {
    record_for(client, action, source, details, None).await
}

/// Someone the sidecar acts for who is not the connected role: a token viewer of the
/// dashboard or the API, whom the application vouched for (`serve --viewer-db` connects).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnBehalf {
    /// The event's actor: the viewer's name.
    pub actor: String,
    /// Their organization.
    pub tenant: String,
}

/// As [`record`], naming `on_behalf` as the actor and the event's organization (`audit.actor`
/// and `audit.tenant`, set for this statement's transaction only, as the application would
/// with `audit.set_actor`).
pub async fn record_for(
    client: &impl GenericClient,
    action: &str,
    source: &str,
    details: &serde_json::Value,
    on_behalf: Option<&OnBehalf>,
) -> Result<i64, tokio_postgres::Error> {
    let Some(who) = on_behalf else {
        let row = client
            .query_one(
                "WITH source AS MATERIALIZED (
                     SELECT pg_catalog.set_config('audit.source', $1, true) AS s)
                 SELECT audit.log_event($2, $3, NULL, $4) FROM source",
                &[&source, &AUDIT_LOG_ENTITY, &action, details],
            )
            .await?;
        return row.try_get(0);
    };
    // The organization goes where the application's would: audit.tenant, SET LOCAL for this
    // statement's transaction (as audit.set_actor(..., tenant =>) sets it), so the event's
    // tenant column names it.
    let row = client
        .query_one(
            "WITH settings AS MATERIALIZED (
                 SELECT pg_catalog.set_config('audit.source', $1, true) AS s,
                        pg_catalog.set_config('audit.actor', $5, true) AS a,
                        pg_catalog.set_config('audit.tenant', $6, true) AS t)
             SELECT audit.log_event($2, $3, NULL, $4) FROM settings",
            &[
                &source,
                &AUDIT_LOG_ENTITY,
                &action,
                details,
                &who.actor,
                &who.tenant,
            ],
        )
        .await?;
    row.try_get(0)
}
