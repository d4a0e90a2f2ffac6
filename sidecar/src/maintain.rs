//! `audit-trail maintain`: runs `audit.maintain()` once, for schedulers (docs/archive.md).

use clap::Args;

use crate::db;
use crate::error::{Error, Result};

#[derive(Debug, Args)]
pub struct MaintainArgs {}

/// `audit-trail maintain`: `audit.maintain()` once, its jsonb printed (pretty) on stdout.
/// It writes (partitions, moved rows, retention), so it runs where writes go: `--record-db`
/// when given (the primary, when `--db` is a standby), else `--db`.
pub async fn run(db_arg: Option<&str>, record_db: Option<&str>) -> Result<()> {
    let target = match record_db {
        Some(text) => db::resolve_record(text, "audit-trail maintain")?,
        None => db::resolve(db_arg, "audit-trail maintain")?,
    };
    let client = db::connect(&target).await?;
    db::require_audit_admin(&client).await?;
    if db::in_recovery(&client).await? {
        return Err(match record_db {
            Some(_) => Error::Usage(format!(
                "--record-db: {} is a standby; name the primary",
                target.description
            )),
            None => db::standby_without_record_db("audit.maintain()"),
        });
    }
    // Retention counts a partition after locking it: its snapshot must come after the lock,
    // whatever default_transaction_isolation the role or database sets.
    client
        .batch_execute("SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL READ COMMITTED")
        .await
        .map_err(|e| Error::database("choosing READ COMMITTED", &e))?;
    let done: serde_json::Value = client
        .query_one("SELECT audit.maintain()", &[])
        .await
        .map_err(|e| Error::database("running audit.maintain()", &e))?
        .try_get(0)
        .map_err(|e| Error::database("reading what audit.maintain() did", &e))?;
    let text = serde_json::to_string_pretty(&done).map_err(Error::encoding("the result"))?;
    println!("{text}");
    Ok(())
}
