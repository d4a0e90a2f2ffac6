//! The status line above the Audit Log: how far the log is sealed, and what in the audit
//! schema no release made.

use std::time::Duration;

use tokio_postgres::Client;

use crate::web::fresh::Fresh;

/// How far the log is sealed (audit.integrity), for the status line above the log.
pub struct Integrity {
    pub sealed_through_id: Option<i64>,
    pub sealed_through_time: Option<chrono::DateTime<chrono::Utc>>,
    pub unsealed: i64,
    /// When sealing has stalled (`audit.seal_stall_after`): the time of the oldest event
    /// waiting to be sealed.
    pub stalled_since: Option<chrono::DateTime<chrono::Utc>>,
    /// What in the audit schema no release made (row security, rules, triggers, ...): the
    /// contract's query, run here rather than through the extension's function.
    pub schema_findings: Vec<String>,
}

/// Unsealed events counted at most: past that the line says "more than", so a log that was
/// never sealed costs a page view no more than a sealed one.
pub const UNSEALED_COUNTED: i64 = 10_000;

/// The schema findings last read, shared by every session. Reading them walks the catalog
/// entries of every partition and summary table (milliseconds a page once a log has years of
/// partitions), and they change only when someone alters the audit schema: the line may show
/// such a change this much later. `verify`, the check an auditor relies on, reads them itself.
#[derive(Clone)]
pub struct SchemaFindings(Fresh<Vec<String>>);

impl Default for SchemaFindings {
    fn default() -> SchemaFindings {
        SchemaFindings(Fresh::new(Duration::from_secs(15)))
    }
}

impl SchemaFindings {
    async fn get(&self, client: &Client) -> Result<Vec<String>, tokio_postgres::Error> {
        if let Some(findings) = self.0.get() {
            return Ok(findings);
        }
        let findings = client
            .query(audit_trail_contract::schema::FINDINGS, &[])
            .await?
            .iter()
            .map(|r| {
                Ok(format!(
                    "{}: {}",
                    r.try_get::<_, &str>(1)?,
                    r.try_get::<_, &str>(2)?
                ))
            })
            .collect::<Result<Vec<_>, tokio_postgres::Error>>()?;
        self.0.put(findings.clone());
        Ok(findings)
    }
}

pub async fn integrity(
    client: &Client,
    findings: &SchemaFindings,
) -> Result<Integrity, tokio_postgres::Error> {
    let row = client
        .query_one(
            "WITH last AS (SELECT last_txid, last_id FROM audit.seals ORDER BY seq DESC LIMIT 1),
             oldest AS (
                SELECT e.occurred_at FROM audit.events AS e
                 WHERE (e.txid, e.id) > coalesce((SELECT (l.last_txid, l.last_id) FROM last AS l),
                                                 ('0'::xid8, 0::bigint))
                 ORDER BY e.txid, e.id LIMIT 1)
             SELECT (SELECT l.last_id FROM last AS l),
                    (SELECT e.occurred_at FROM audit.events AS e, last AS l
                      WHERE e.txid = l.last_txid AND e.id = l.last_id),
                    (SELECT pg_catalog.count(*) FROM (
                        SELECT FROM audit.events AS e
                         WHERE (e.txid, e.id) > coalesce((SELECT (l.last_txid, l.last_id) FROM last AS l),
                                                         ('0'::xid8, 0::bigint))
                         LIMIT $1::bigint + 1) AS waiting),
                    (SELECT o.occurred_at FROM oldest AS o
                      WHERE pg_catalog.now() - o.occurred_at
                            > coalesce(NULLIF(pg_catalog.current_setting('audit.seal_stall_after', true), '')::interval,
                                       '15 minutes'))",
            &[&UNSEALED_COUNTED],
        )
        .await?;
    let schema_findings = findings.get(client).await?;
    Ok(Integrity {
        sealed_through_id: row.try_get(0)?,
        sealed_through_time: row.try_get(1)?,
        unsealed: row.try_get(2)?,
        stalled_since: row.try_get(3)?,
        schema_findings,
    })
}
