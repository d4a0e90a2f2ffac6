//! `audit-trail revert`: puts back what one event, or one transaction, changed, through
//! `audit.revert` / `audit.revert_transaction` as the connecting role (docs/undo.md), and
//! prints each change the revert made. `--dry-run` makes the same changes in a transaction
//! that is rolled back: what it prints is exactly what a real run would do now.

use clap::Args;
use serde_json::Value;
use tokio_postgres::types::ToSql;
use tokio_postgres::Client;

use crate::db;
use crate::error::{Error, Result};

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("what").required(true).args(["event", "transaction"]))]
pub struct RevertArgs {
    /// The event to put back (its id in audit.events).
    #[arg(long, value_name = "ID")]
    pub event: Option<i64>,
    /// Every change of this transaction (its txid), newest first, all or nothing.
    #[arg(long, value_name = "TXID")]
    pub transaction: Option<u64>,
    /// Put back the rest when a value was redacted (a deleted row comes back with the
    /// column's default; an update leaves the column as it is), instead of refusing.
    #[arg(long)]
    pub skip_redacted: bool,
    /// Print what would change, change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// One change a revert made, as audit.report shows it.
pub struct Change {
    pub id: i64,
    pub summary: String,
    pub action: String,
    pub changed_fields: Option<Vec<String>>,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

impl Change {
    /// What the change did to the row, for people: the columns set back, or the row that
    /// comes back or goes.
    pub fn describe(&self) -> String {
        let value = |row: &Option<Value>, column: &str| {
            row.as_ref()
                .and_then(|r| r.get(column))
                .map_or_else(|| "null".to_owned(), Value::to_string)
        };
        match self.action.as_str() {
            "update" => self
                .changed_fields
                .iter()
                .flatten()
                .map(|c| {
                    format!(
                        "{c}: {} -> {}",
                        value(&self.before, c),
                        value(&self.after, c)
                    )
                })
                .collect::<Vec<_>>()
                .join(", "),
            "create" => format!(
                "the row comes back: {}",
                self.after
                    .as_ref()
                    .map_or_else(String::new, Value::to_string)
            ),
            _ => format!(
                "the row goes: {}",
                self.before
                    .as_ref()
                    .map_or_else(String::new, Value::to_string)
            ),
        }
    }
}

/// What to put back.
#[derive(Debug, Clone, Copy)]
pub enum Target {
    Event(i64),
    Transaction(u64),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Event(id) => write!(f, "event {id}"),
            Target::Transaction(txid) => write!(f, "transaction {txid}"),
        }
    }
}

/// Puts `target` back on `client`'s connection, as its role, and returns the changes the
/// revert made (as audit.report shows them); committed, or rolled back for a `dry_run`.
/// What the database refuses (a later change, a redacted value, no rights) comes back as
/// its error, nothing changed.
pub async fn apply(
    client: &mut Client,
    target: Target,
    skip_redacted: bool,
    dry_run: bool,
) -> Result<Vec<Change>> {
    let tx = client
        .transaction()
        .await
        .map_err(|e| Error::database("starting a transaction", &e))?;
    let txid = match target {
        Target::Transaction(txid) => txid.to_string(),
        Target::Event(_) => String::new(),
    };
    let (sql, key): (&str, &(dyn ToSql + Sync)) = match &target {
        Target::Event(id) => ("SELECT audit.revert($1, $2)", id),
        Target::Transaction(_) => ("SELECT audit.revert_transaction($1::text::xid8, $2)", &txid),
    };
    tx.execute(sql, &[key, &skip_redacted])
        .await
        .map_err(|e| refused(&e))?;
    let rows = tx
        .query(
            "SELECT id, summary, action, changed_fields, before, after FROM audit.report
              WHERE txid = pg_catalog.pg_current_xact_id() AND source = 'revert'
              ORDER BY id",
            &[],
        )
        .await
        .map_err(|e| Error::database("reading back what the revert changed", &e))?;
    let changes = rows
        .iter()
        .map(|r| Change {
            id: r.get(0),
            summary: r.get(1),
            action: r.get(2),
            changed_fields: r.get(3),
            before: r.get(4),
            after: r.get(5),
        })
        .collect();
    if dry_run {
        tx.rollback()
            .await
            .map_err(|e| Error::database("rolling back the dry run", &e))?;
    } else {
        tx.commit()
            .await
            .map_err(|e| Error::database("committing the revert", &e))?;
    }
    Ok(changes)
}

/// The database's refusal: an event that does not exist or cannot be reverted is bad input
/// (exit 2); a conflict with a later change, or anything else, is an error of the run.
fn refused(e: &tokio_postgres::Error) -> Error {
    use tokio_postgres::error::SqlState;
    match e.as_db_error() {
        Some(db)
            if [
                SqlState::INVALID_PARAMETER_VALUE,
                SqlState::FEATURE_NOT_SUPPORTED,
            ]
            .contains(db.code()) =>
        {
            Error::Usage(db.message().to_owned())
        }
        _ => Error::database("reverting", e),
    }
}

/// `audit-trail revert`. It writes, so it runs where writes go: `--record-db` when given (the
/// primary, when `--db` is a standby), else `--db`.
pub async fn run(db_arg: Option<&str>, record_db: Option<&str>, args: RevertArgs) -> Result<()> {
    let target = match (args.event, args.transaction) {
        (Some(id), _) => Target::Event(id),
        (None, Some(txid)) => Target::Transaction(txid),
        (None, None) => return Err(Error::Usage("give --event ID or --transaction TXID".into())),
    };
    let conninfo = match record_db {
        Some(text) => db::resolve_record(text, "audit-trail revert")?,
        None => db::resolve(db_arg, "audit-trail revert")?,
    };
    let mut client = db::connect(&conninfo).await?;
    db::require_audit_admin(&client).await?;
    if db::in_recovery(&client).await? {
        return Err(db::standby_without_record_db("the revert"));
    }
    let changes = apply(&mut client, target, args.skip_redacted, args.dry_run).await?;
    for change in &changes {
        println!("{}: {}", change.summary, change.describe());
    }
    let ids: Vec<String> = changes.iter().map(|c| c.id.to_string()).collect();
    eprintln!(
        "audit-trail: {} {target}: {} change{}{}",
        if args.dry_run {
            "would revert"
        } else {
            "reverted"
        },
        changes.len(),
        if changes.len() == 1 { "" } else { "s" },
        if args.dry_run || ids.is_empty() {
            String::new()
        } else {
            format!(" (events {})", ids.join(", "))
        }
    );
    Ok(())
}
