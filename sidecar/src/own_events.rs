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
    let row = client
        .query_one(
            "WITH source AS MATERIALIZED (
                 SELECT pg_catalog.set_config('audit.source', $1, true) AS s)
             SELECT audit.log_event($2, $3, NULL, $4) FROM source",
            &[&source, &AUDIT_LOG_ENTITY, &action, details],
        )
        .await?;
    row.try_get(0)
}
