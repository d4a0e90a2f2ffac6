//! `audit-trail verify`: recomputes the chain from the events and checks every seal against
//! the public keys it is given, and the checkpoints against the database. Trusts nothing the
//! database says about keys.

mod archives;
mod checkpoints;
mod compare;
mod events;
mod finding;
mod gap_notes;
mod report;
mod seals;

use std::collections::HashMap;
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use ed25519_dalek::VerifyingKey;
use tokio_postgres::Client;

use self::archives::{check_archives, ArchiveState, Archives};
use self::checkpoints::{check_checkpoint_files, read_checkpoints, CheckpointFiles};
use self::compare::Gaps;
use self::events::check_events;
use self::finding::push;
pub(crate) use self::finding::FindingKind;
use self::gap_notes::check_gap_notes;
use self::report::{DroppedSeals, Report};
use self::seals::{check_registered_keys, check_seals};
use super::keys;
use super::retention;
use super::schema;
use crate::connections::Connections;
use crate::error::{Error, Result};

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Public key file(s) of the sealers (KEYFILE.pub from keygen); repeat for rotated keys.
    #[arg(long = "pubkey", value_name = "PUBFILE")]
    pub pubkeys: Vec<PathBuf>,
    /// The checkpoint directory `seal` wrote: detects a log whose newest part was cut off.
    #[arg(long, value_name = "DIR")]
    pub checkpoints: Option<PathBuf>,
    /// How to report: one line (text), or every finding as JSON on stdout.
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    pub format: ReportFormat,
    /// A directory of `audit-trail archive` (repeatable): events retention dropped are
    /// read back from its Parquet files (checked against their manifests first) and held to
    /// the seals that listed them; a seal whose dropped events are all archived has its
    /// batch root recomputed in full.
    #[arg(long = "archive", value_name = "DIR")]
    pub archives: Vec<PathBuf>,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum ReportFormat {
    Text,
    Json,
}

const APPLICATION_NAME: &str = "audit-trail verify";

pub async fn run(db_arg: Option<&str>, record_db: Option<&str>, args: VerifyArgs) -> Result<()> {
    if args.pubkeys.is_empty() {
        return Err(Error::Usage(
            "give --pubkey PUBFILE: a key read from the database proves nothing against its superuser".into(),
        ));
    }
    let mut keys = HashMap::new();
    for path in &args.pubkeys {
        let key = keys::read_public(path)?;
        keys.insert(keys::key_id(&key), key);
    }
    let checkpoints = match &args.checkpoints {
        Some(dir) => Some(read_checkpoints(dir)?),
        None => None,
    };
    let archives = if args.archives.is_empty() {
        None
    } else {
        Some(check_archives(&args.archives)?)
    };
    // A failed verification is recorded: on a standby, that needs the primary.
    let mut connections = Connections::open(
        db_arg,
        record_db,
        APPLICATION_NAME,
        "a failed verification's record",
    )
    .await?;
    let archives = match archives {
        Some(archives) => {
            Some(archives.of(&crate::archive::database_identity(&connections.reader).await?))
        }
        None => None,
    };
    let report = verify(
        &mut connections.reader,
        &keys,
        checkpoints.as_ref(),
        archives.as_ref(),
    )
    .await?;
    if !report.findings.is_empty() {
        record_violation(connections.writer(), &report).await;
    }
    report.print(args.format)?;
    report.outcome()
}

type Tx<'a> = tokio_postgres::Transaction<'a>;

fn db_error(doing: &'static str) -> impl Fn(tokio_postgres::Error) -> Error {
    move |e| Error::database(doing, &e)
}

async fn verify(
    client: &mut Client,
    keys: &HashMap<String, VerifyingKey>,
    files: Option<&CheckpointFiles>,
    archives: Option<&Archives>,
) -> Result<Report> {
    // One snapshot for seals and events alike.
    let tx = crate::db::read_snapshot(client)
        .await
        .map_err(db_error("starting verification"))?;
    let mut findings = Vec::new();
    // First what readers read: a schema that could show them other rows than verify reads
    // is a violation whatever the events say.
    let schema = schema::check(&tx).await?;
    for f in &schema.findings {
        push(&mut findings, f.kind, None, None, f.message.clone());
    }
    check_registered_keys(&tx, keys, &mut findings).await?;
    let seals = check_seals(&tx, keys, &mut findings).await?;
    let bypasses_row_security: bool = tx
        .query_one(
            "SELECT r.rolsuper OR r.rolbypassrls FROM pg_catalog.pg_roles AS r
              WHERE r.rolname = current_user",
            &[],
        )
        .await
        .map_err(db_error("reading the role"))?
        .get(0);
    if schema.filtered && !bypasses_row_security {
        // Reads of a table with row-level security raise an error (row_security is off):
        // the events cannot be checked by this role until the policy is gone. (A superuser
        // is never filtered, and checks them.)
        tx.commit().await.map_err(db_error("ending verification"))?;
        return Ok(Report {
            intact: false,
            seals: seals.len() as i64,
            events: 0,
            sealed_through_id: seals.last().map(|s| s.last.id),
            dropped_events: 0,
            purges: Vec::new(),
            archives: None,
            seals_with_dropped_events: DroppedSeals::default(),
            findings,
        });
    }
    let has_gaps = retention::has_gap_table(&tx).await?;
    let purges = if has_gaps {
        retention::read_purge_events(&tx, seals.last().map(|s| s.last)).await?
    } else {
        Vec::new()
    };
    let mut gaps = Gaps {
        enabled: has_gaps,
        relied: purges
            .iter()
            .filter(|p| p.archived == Some(true))
            .filter_map(|p| p.partition.clone())
            .collect(),
        carried: purges
            .iter()
            .filter_map(|p| p.carried_hash.map(|h| (p.position, h)))
            .collect(),
        purges,
        dropped: 0,
        archived: archives.map(ArchiveState::new),
        seals: DroppedSeals::default(),
    };
    let events = check_events(&tx, &seals, &mut gaps, &mut findings).await?;
    if has_gaps {
        check_gap_notes(&tx, &seals, &mut gaps.purges, &mut findings).await?;
    }
    if let Some(files) = files {
        check_checkpoint_files(files, &seals, keys, &mut findings);
    }
    tx.commit().await.map_err(db_error("ending verification"))?;
    if let Some(archives) = archives {
        for violation in &archives.violations {
            push(
                &mut findings,
                FindingKind::ArchiveAltered,
                None,
                None,
                violation.clone(),
            );
        }
    }
    let archive_report = gaps.archived.as_ref().map(|a| a.report);
    // Only the drops that left sealed events behind them are retention's story here.
    let purges = gaps
        .purges
        .into_iter()
        .filter(|p| p.seals.is_some())
        .collect();
    Ok(Report {
        intact: findings.is_empty(),
        seals: seals.len() as i64,
        events,
        sealed_through_id: seals.last().map(|s| s.last.id),
        dropped_events: gaps.dropped,
        purges,
        archives: archive_report,
        seals_with_dropped_events: gaps.seals,
        findings,
    })
}

/// Records a failed verification in the log (on the primary when `--db` is a standby);
/// best effort: the finding itself is already on its way to the operator.
async fn record_violation(writer: &Client, report: &Report) {
    let details = serde_json::json!({
        "findings": report.findings.iter().take(20).collect::<Vec<_>>(),
        "seals": report.seals,
    });
    let _ = crate::own_events::record(
        writer,
        audit_trail_contract::sidecar_actions::VERIFY_FAILED,
        "cli",
        &details,
    )
    .await;
}
