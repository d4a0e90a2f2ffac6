//! `audit-trail verify`: recomputes the chain from the events and checks every seal against
//! the public keys it is given, and the checkpoints against the database. Trusts nothing the
//! database says about keys.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use ed25519_dalek::{Signature, VerifyingKey};
use futures_util::{pin_mut, TryStreamExt};
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio_postgres::{Client, IsolationLevel};

use super::archived;
use super::keys;
use super::retention::{self, Mask, PurgeEvent};
use super::schema;
use crate::archive::manifest::{self, DatabaseIdentity};
use crate::db;
use crate::db::parse_txid;
use crate::error::{Error, Result};
use audit_trail_contract::chain::{
    self, Checkpoint, Hash, Position, POSITION_COLUMNS, SELECT_CANONICAL,
};

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
/// Findings collected at most.
const MAX_FINDINGS: usize = 1000;

fn push(
    findings: &mut Vec<Finding>,
    kind: &'static str,
    seal: Option<i64>,
    event_id: Option<i64>,
    message: String,
) {
    findings.push(Finding {
        kind,
        seal,
        event_id,
        message,
    });
}

/// One finding; the first is the one reported.
#[derive(Debug, Clone, Serialize)]
struct Finding {
    kind: &'static str,
    seal: Option<i64>,
    event_id: Option<i64>,
    message: String,
}

#[derive(Debug, Serialize)]
struct Report {
    intact: bool,
    seals: i64,
    /// Sealed events read from audit.events.
    events: i64,
    sealed_through_id: Option<i64>,
    /// Sealed events absent from audit.events that retention notes say were dropped.
    dropped_events: i64,
    /// The purge events that dropped sealed events, in chain order.
    purges: Vec<PurgeEvent>,
    /// With --archive: what the archives vouched for.
    archives: Option<ArchiveReport>,
    /// Seals some of whose events retention dropped, by the strength of their check.
    seals_with_dropped_events: DroppedSeals,
    findings: Vec<Finding>,
}

/// How the seals with dropped events were checked: in full when every dropped event was
/// found in an archive (the batch root recomputed from the full hashes of the remaining
/// and the archived events, a 256-bit check), else only each remaining (and archived)
/// event against its 8-byte digest prefix (a 64-bit check each).
#[derive(Debug, Default, Clone, Copy, Serialize)]
struct DroppedSeals {
    checked_in_full: i64,
    checked_by_prefix: i64,
}

#[derive(Debug, Default, Clone, Copy, Serialize)]
struct ArchiveReport {
    /// Parquet files read (each checked against its manifest first).
    files: usize,
    rows_read: u64,
    /// Dropped events found in an archive whose hash matched their seal.
    dropped_verified: i64,
    /// Dropped events found in no archive given.
    dropped_without_archive: i64,
}

/// Archived files that matched their manifests, and the violations of those that did not.
#[derive(Default)]
struct Archives {
    files: Vec<PathBuf>,
    violations: Vec<String>,
    /// The database each file's manifest names (None before manifests named one).
    databases: Vec<Option<DatabaseIdentity>>,
}

impl Archives {
    /// Only the files of `identity`'s archives (and of archives that name no database):
    /// another database archived into the same directory holds partitions of the same names
    /// and other events.
    fn of(self, identity: &DatabaseIdentity) -> Archives {
        let (files, databases) = self
            .files
            .into_iter()
            .zip(self.databases)
            .filter(|(_, d)| d.as_ref().is_none_or(|d| d == identity))
            .unzip();
        Archives {
            files,
            violations: self.violations,
            databases,
        }
    }
}

/// Checks the archives under each directory against their manifests (as `archive --check`
/// does), before the database is read. A directory that is missing or holds no manifest is
/// bad usage; a file that does not match its manifest is a violation, and its files are not
/// read.
fn check_archives(dirs: &[PathBuf]) -> Result<Archives> {
    let mut out = Archives::default();
    for dir in dirs {
        for path in manifest::manifests_under("--archive", dir)? {
            match manifest::check_manifest(dir, &path, &mut |_| {}) {
                Ok(checked) => {
                    let database = checked.manifest.database;
                    out.databases
                        .extend(checked.files.iter().map(|_| database.clone()));
                    out.files.extend(checked.files);
                }
                Err(Error::Integrity(what)) => {
                    out.violations.push(format!("{}: {what}", dir.display()))
                }
                Err(e) => return Err(e),
            }
        }
    }
    Ok(out)
}

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
    let target = db::resolve(db_arg, APPLICATION_NAME)?;
    let mut client = db::connect(&target).await?;
    db::require_audit_admin(&client).await?;
    // A failed verification is recorded: on a standby, that needs the primary.
    let record = db::record_connection(
        &client,
        record_db,
        APPLICATION_NAME,
        "a failed verification's record",
    )
    .await?;
    let archives = match archives {
        Some(archives) => Some(archives.of(&crate::archive::database_identity(&client).await?)),
        None => None,
    };
    let report = verify(&mut client, &keys, checkpoints.as_ref(), archives.as_ref()).await?;
    if !report.findings.is_empty() {
        record_violation(record.as_ref().unwrap_or(&client), &report).await;
    }
    match args.format {
        ReportFormat::Json => {
            let json = serde_json::to_string_pretty(&report)
                .map_err(|e| Error::Other(format!("writing the report: {e}")))?;
            println!("{json}");
        }
        ReportFormat::Text if report.intact => println!(
            "audit-trail: intact: {} seals over {} events{}{}",
            report.seals,
            report.events,
            report
                .sealed_through_id
                .map_or(String::new(), |id| format!(", sealed through event {id}")),
            retention_summary(&report)
        ),
        ReportFormat::Text => {}
    }
    match report.findings.first() {
        None => Ok(()),
        Some(first) => {
            let more = report.findings.len() - 1;
            Err(Error::Integrity(if more > 0 {
                format!(
                    "{} ({more} more findings: --format json lists them)",
                    first.message
                )
            } else {
                first.message.clone()
            }))
        }
    }
}

/// The summary line's account of retention: how many sealed events were dropped, by which
/// purge events, and what the archives vouched for.
fn retention_summary(report: &Report) -> String {
    let mut out = String::new();
    if report.dropped_events > 0 || !report.purges.is_empty() {
        out.push_str(&format!("; {} dropped by retention", report.dropped_events));
        if !report.purges.is_empty() {
            let purges: Vec<String> = report.purges.iter().map(PurgeEvent::describe).collect();
            out.push_str(&format!(" ({})", purges.join("; ")));
        }
    }
    let seals = report.seals_with_dropped_events;
    if seals.checked_in_full + seals.checked_by_prefix > 0 {
        out.push_str(&format!(
            "; {} seals with dropped events: {} checked in full (batch root recomputed with the archives), {} by 8-byte digest prefixes only",
            seals.checked_in_full + seals.checked_by_prefix,
            seals.checked_in_full,
            seals.checked_by_prefix
        ));
    }
    if let Some(a) = &report.archives {
        out.push_str(&format!(
            "; {} dropped events verified from archives ({} files, {} rows read), {} dropped without an archive",
            a.dropped_verified, a.files, a.rows_read, a.dropped_without_archive
        ));
    }
    out
}

/// Each checkpoint file by seq: its body, key id and signature, or why it is unreadable.
type CheckpointFiles = BTreeMap<i64, std::result::Result<(String, String, [u8; 64]), String>>;

fn read_checkpoints(dir: &std::path::Path) -> Result<CheckpointFiles> {
    let entries = std::fs::read_dir(dir).map_err(|source| Error::File {
        path: dir.to_owned(),
        source,
    })?;
    let mut out = BTreeMap::new();
    for entry in entries {
        let entry = entry.map_err(|source| Error::File {
            path: dir.to_owned(),
            source,
        })?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(seq) = name
            .strip_suffix(".checkpoint")
            .and_then(|s| s.parse::<i64>().ok())
        else {
            continue;
        };
        let parsed = std::fs::read_to_string(entry.path())
            .map_err(|e| e.to_string())
            .and_then(|text| chain::parse_note(&text).ok_or_else(|| "not a checkpoint".into()));
        out.insert(seq, parsed);
    }
    Ok(out)
}

struct SealRow {
    seq: i64,
    last: Position,
    events: i64,
    total: i64,
    prev: Vec<u8>,
    root: Vec<u8>,
    head: Vec<u8>,
    key_id: String,
    checkpoint: String,
    signature: Vec<u8>,
    /// The signed checkpoint, when the signature and the row agree with it.
    signed: Option<Checkpoint>,
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
    let tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
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
                "archive_altered",
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

/// What check_events learns about retention as it goes.
struct Gaps {
    /// Whether the database has retention notes (0.1.0 has none).
    enabled: bool,
    /// Purge events that name notes; check_events marks those whose sealed hash matched.
    purges: Vec<PurgeEvent>,
    /// The partitions whose drop relied on an archive: with --archive, each of their
    /// dropped events must be found in one.
    relied: std::collections::HashSet<String>,
    /// The purge events later drops removed, by position, with their hash as carried.
    carried: HashMap<Position, Hash>,
    /// Sealed events absent from audit.events and noted as dropped.
    dropped: i64,
    /// With --archive: the archived files, and what they hold of the current run of seals'
    /// dropped events.
    archived: Option<ArchiveState>,
    /// Seals with dropped events, checked in full or by digest prefixes.
    seals: DroppedSeals,
}

/// What `verify --archive` holds: the files, which of them could not be read, the report,
/// and, for one run of seals at a time, the archived hashes of its dropped events. Memory:
/// one run's dropped events (as for the run's digests), never the whole archive.
struct ArchiveState {
    files: Vec<PathBuf>,
    unreadable: Vec<bool>,
    report: ArchiveReport,
    /// The current run's noted events found in the archives, by position.
    run: HashMap<Position, Archived>,
}

/// One dropped event as the archives hold it.
#[derive(Debug, Default, Clone)]
struct Archived {
    /// Its full hash, from an archive where its 8-byte prefix matched the seal's digest.
    hash: Option<Hash>,
    /// The archived files (indexes into `files`) where it differs from its digest entry.
    altered_in: Vec<usize>,
}

impl ArchiveState {
    fn new(archives: &Archives) -> ArchiveState {
        ArchiveState {
            files: archives.files.clone(),
            unreadable: vec![false; archives.files.len()],
            report: ArchiveReport {
                files: archives.files.len(),
                ..ArchiveReport::default()
            },
            run: HashMap::new(),
        }
    }

    /// Reads from the archived files the events a run's notes mark as dropped (`wanted`:
    /// position to digest prefix), hashing each in the canonical encoding; only the row
    /// groups whose ids may hold them are read.
    fn read_run(&mut self, wanted: &HashMap<Position, [u8; 8]>, findings: &mut Vec<Finding>) {
        self.run.clear();
        let (Some(min), Some(max)) = (
            wanted.keys().map(|p| p.id).min(),
            wanted.keys().map(|p| p.id).max(),
        ) else {
            return;
        };
        for (k, path) in self.files.iter().enumerate() {
            if self.unreadable[k] {
                continue;
            }
            let run = &mut self.run;
            let read = archived::for_each_event_between(
                path,
                (min, max),
                |p| wanted.contains_key(&p),
                |p, hash| {
                    let entry = run.entry(p).or_default();
                    if wanted.get(&p).is_some_and(|short| hash[..8] == *short) {
                        entry.hash = Some(hash);
                    } else {
                        entry.altered_in.push(k);
                    }
                },
            );
            match read {
                Ok(rows) => self.report.rows_read += rows,
                Err(e) => {
                    self.unreadable[k] = true;
                    push(
                        findings,
                        "archive_unreadable",
                        None,
                        None,
                        format!("{}: {e}", path.display()),
                    );
                }
            }
        }
    }
}

/// Each drop's notes must be vouched for by a purge event: one whose details carry the
/// SHA-256 of exactly those notes, and whose own sealed hash matched (or which no seal
/// covers yet). Notes added or changed after the fact match none.
async fn check_gap_notes(
    tx: &Tx<'_>,
    seals: &[SealRow],
    purges: &mut [PurgeEvent],
    findings: &mut Vec<Finding>,
) -> Result<()> {
    let events = |seq: i64| seal_events(seals, seq);
    let mut by_digest: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, p) in purges.iter().enumerate() {
        by_digest.entry(p.sha256.clone()).or_default().push(i);
    }
    let mut matched = vec![false; purges.len()];
    let mut groups = Vec::new();
    retention::read_groups(tx, events, |g| groups.push(g)).await?;
    for group in groups {
        let seals_named = if group.first_seq == group.last_seq {
            format!("seal {}", group.first_seq)
        } else {
            format!("seals {}..{}", group.first_seq, group.last_seq)
        };
        let candidates = by_digest.get(&group.sha256).map_or(&[][..], Vec::as_slice);
        let good = candidates
            .iter()
            .copied()
            .find(|&i| !purges[i].sealed || purges[i].verified);
        let Some(i) = good else {
            let why = match candidates.first() {
                Some(&i) => format!(
                    " (purge event {} names them, but it was altered since it was sealed)",
                    purges[i].event_id
                ),
                None => String::new(),
            };
            push(
                findings,
                "gap_notes_unrecorded",
                Some(group.first_seq),
                None,
                format!(
                    "retention gap notes for {seals_named} are not recorded by any purge event{why} (source {}, noted at {})",
                    group.source, group.noted_at
                ),
            );
            continue;
        };
        matched[i] = true;
        let p = &mut purges[i];
        p.noted_events += group.noted_events;
        p.seals = Some(match p.seals {
            None => (group.first_seq, group.last_seq),
            Some((a, b)) => (a.min(group.first_seq), b.max(group.last_seq)),
        });
        // A partition is dropped only when all its events are sealed, and each is in exactly
        // one seal: its notes mark as many events as the purge event says it dropped.
        if p.partition.is_some() && p.rows.is_some_and(|rows| rows != p.noted_events) {
            push(
                findings,
                "gap_notes_mismatch",
                Some(group.first_seq),
                Some(p.event_id),
                format!(
                    "purge event {} says {} rows were dropped, but its retention gap notes mark {} sealed events",
                    p.event_id,
                    p.rows.unwrap_or(0),
                    p.noted_events
                ),
            );
        }
    }
    // The SQL returns the digest of no rows (SHA-256 of the empty text) when a drop touched
    // no sealed event, and then notes nothing.
    let empty = hex::encode(Sha256::digest(b""));
    for (p, matched) in purges.iter().zip(matched) {
        if !matched && p.sha256 != empty {
            push(
                findings,
                "gap_notes_removed",
                None,
                Some(p.event_id),
                format!(
                    "purge event {} records retention gap notes that audit.retention_gaps no longer holds",
                    p.event_id
                ),
            );
        }
    }
    Ok(())
}

/// The events of seal `seq`, from the seals read (numbered from 1 when intact).
fn seal_events(seals: &[SealRow], seq: i64) -> Option<i64> {
    let guess = usize::try_from(seq - 1).ok().and_then(|i| seals.get(i));
    match guess {
        Some(s) if s.seq == seq => Some(s.events),
        _ => seals.iter().find(|s| s.seq == seq).map(|s| s.events),
    }
}

/// A key the database registered under a given key's id must be that key.
async fn check_registered_keys(
    tx: &Tx<'_>,
    keys: &HashMap<String, VerifyingKey>,
    findings: &mut Vec<Finding>,
) -> Result<()> {
    for row in tx
        .query("SELECT key_id, public_key FROM ONLY audit.seal_keys", &[])
        .await
        .map_err(db_error("reading the registered keys"))?
    {
        let key_id: String = row.get(0);
        let stored: &[u8] = row.get(1);
        if keys
            .get(&key_id)
            .is_some_and(|given| given.as_bytes() != stored)
        {
            push(
                findings,
                "key_replaced",
                None,
                None,
                format!("the database's key {key_id} differs from the given key"),
            );
        }
    }
    Ok(())
}

/// The seals themselves: numbering, chaining, signatures, rows equal to what is signed. The
/// digests are not read here (they are the bulk of a seal): check_events reads them one
/// seal at a time.
async fn check_seals(
    tx: &Tx<'_>,
    keys: &HashMap<String, VerifyingKey>,
    findings: &mut Vec<Finding>,
) -> Result<Vec<SealRow>> {
    let rows = tx
        .query(
            &format!(
                "SELECT seq, {}, last_id, events, total, prev_head, batch_root, head,
                        key_id, checkpoint, signature
                   FROM ONLY audit.seals ORDER BY seq",
                chain::sql_xid8_text("last_txid")
            ),
            &[],
        )
        .await
        .map_err(db_error("reading the seals"))?;
    let mut seals = Vec::with_capacity(rows.len());
    for row in &rows {
        seals.push(SealRow {
            seq: row.get(0),
            last: Position {
                txid: parse_txid(row.get(1))?,
                id: row.get(2),
            },
            events: i64::from(row.get::<_, i32>(3)),
            total: row.get(4),
            prev: row.get(5),
            root: row.get(6),
            head: row.get(7),
            key_id: row.get(8),
            checkpoint: row.get(9),
            signature: row.get(10),
            signed: None,
        });
    }
    drop(rows);
    let mut previous_head = [0u8; 32].to_vec();
    let mut total = 0;
    for (i, s) in seals.iter_mut().enumerate() {
        let expected_seq = i as i64 + 1;
        if s.seq != expected_seq {
            push(
                findings,
                "seal_missing",
                Some(s.seq),
                None,
                format!(
                    "seal {expected_seq} is missing (the next is seal {})",
                    s.seq
                ),
            );
            break;
        }
        let Some(key) = keys.get(&s.key_id) else {
            push(
                findings,
                "unknown_key",
                Some(s.seq),
                None,
                format!(
                    "seal {} is signed by key {}, which was not given",
                    s.seq, s.key_id
                ),
            );
            continue;
        };
        let signature = <[u8; 64]>::try_from(s.signature.as_slice()).ok();
        let signed = signature.is_some_and(|sig| {
            key.verify_strict(s.checkpoint.as_bytes(), &Signature::from_bytes(&sig))
                .is_ok()
        });
        if !signed {
            push(
                findings,
                "bad_signature",
                Some(s.seq),
                None,
                format!(
                    "seal {} has a bad signature: it was not made with the given key",
                    s.seq
                ),
            );
            continue;
        }
        let checkpoint = Checkpoint::parse(&s.checkpoint).filter(|c| {
            c.seq == s.seq
                && c.last == s.last
                && c.events == s.events
                && c.total == s.total
                && c.batch_root.as_slice() == s.root
                && c.prev.as_slice() == s.prev
                && c.head.as_slice() == s.head
        });
        let Some(checkpoint) = checkpoint else {
            push(
                findings,
                "seal_rewritten",
                Some(s.seq),
                None,
                format!("seal {}'s row differs from its signed checkpoint", s.seq),
            );
            continue;
        };
        if s.prev != previous_head || total + s.events != s.total {
            push(
                findings,
                "seal_out_of_chain",
                Some(s.seq),
                None,
                format!("seal {} does not follow seal {}", s.seq, s.seq - 1),
            );
        }
        if chain::next_head(&checkpoint.prev, &checkpoint.batch_root) != checkpoint.head {
            push(
                findings,
                "seal_out_of_chain",
                Some(s.seq),
                None,
                format!("seal {}'s head does not follow from its batch", s.seq),
            );
        }
        previous_head = s.head.clone();
        total = s.total;
        s.signed = Some(checkpoint);
    }
    Ok(seals)
}

/// Events one query streams at most: seals are checked in runs of consecutive seals.
const CHUNK_EVENTS: i64 = 200_000;

/// The events against the seals (memory bounded by a run of seals, whatever the log's
/// size): each position in a seal's digests must hold an event whose hash matches, in
/// order, and nothing else may sit in between; the batch's hashes must give its root.
/// Returns how many events were read.
async fn check_events(
    tx: &Tx<'_>,
    seals: &[SealRow],
    gaps: &mut Gaps,
    findings: &mut Vec<Finding>,
) -> Result<i64> {
    let mut read = 0i64;
    let mut after = Position { txid: 0, id: 0 };
    let mut start = 0;
    while start < seals.len() {
        let mut end = start + 1;
        let mut events = seals[start].events;
        while end < seals.len() && events + seals[end].events <= CHUNK_EVENTS {
            events += seals[end].events;
            end += 1;
        }
        let run = &seals[start..end];
        start = end;
        let (first_seq, last) = (run[0].seq, &run[run.len() - 1]);
        let mut digests: HashMap<i64, Vec<u8>> = HashMap::with_capacity(run.len());
        for row in tx
            .query(
                "SELECT seq, digests FROM ONLY audit.seals WHERE seq BETWEEN $1 AND $2",
                &[&first_seq, &last.seq],
            )
            .await
            .map_err(db_error("reading the seals' digests"))?
        {
            digests.insert(row.get(0), row.get(1));
        }
        // The run's retention notes, at most one bit per event of the run.
        let (masks, relied) = if gaps.enabled {
            retention::read_masks(
                tx,
                first_seq,
                last.seq,
                &gaps.relied,
                |seq| seal_events(run, seq),
                |seq, source| {
                    push(
                        findings,
                        "gap_notes_malformed",
                        Some(seq),
                        None,
                        format!(
                            "the retention gap note of {source} for seal {seq} does not have one bit per event of the seal"
                        ),
                    )
                },
            )
            .await?
        } else {
            (HashMap::new(), HashMap::new())
        };
        if let Some(archive) = gaps.archived.as_mut() {
            archive.read_run(&noted_positions(&digests, &masks), findings);
        }
        let from_txid = after.txid.to_string();
        let to_txid = last.last.txid.to_string();
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 4] =
            [&from_txid, &after.id, &to_txid, &last.last.id];
        let stream = tx
            .query_raw(
                &format!(
                    "{SELECT_CANONICAL}
                      WHERE (e.txid, e.id) > ({}, $2::bigint)
                        AND (e.txid, e.id) <= ({}, $4::bigint)
                      ORDER BY e.txid, e.id",
                    chain::sql_param_xid8("$1"),
                    chain::sql_param_xid8("$3")
                ),
                params,
            )
            .await
            .map_err(db_error("reading the sealed events"))?;
        pin_mut!(stream);
        let mut pending: Option<(Position, Hash)> = None;
        // A stream polled again after its end fails ("connection closed"); with whole seals
        // dropped by retention, the last seals of a run can have no event left to read.
        let mut ended = false;
        for s in run {
            after = s.last;
            let mut actual = Vec::with_capacity(s.events as usize);
            loop {
                let next = match pending.take() {
                    Some(event) => Some(event),
                    None if ended => None,
                    None => match stream
                        .try_next()
                        .await
                        .map_err(db_error("reading the sealed events"))?
                    {
                        Some(row) => Some(hashed(&row)?),
                        None => {
                            ended = true;
                            None
                        }
                    },
                };
                match next {
                    Some(event) if event.0 <= s.last => actual.push(event),
                    Some(event) => {
                        pending = Some(event);
                        break;
                    }
                    None => break,
                }
            }
            read += actual.len() as i64;
            check_seal_events(
                s,
                digests.get(&s.seq),
                Notes {
                    dropped: masks.get(&s.seq),
                    relied: relied.get(&s.seq),
                },
                &actual,
                gaps,
                findings,
            );
            // Enough to say what happened; a wholesale rewrite need not list every row.
            if findings.len() > MAX_FINDINGS {
                return Ok(read);
            }
        }
    }
    Ok(read)
}

/// The positions (with their digest prefixes) that a run's notes mark as dropped.
fn noted_positions(
    digests: &HashMap<i64, Vec<u8>>,
    masks: &HashMap<i64, Mask>,
) -> HashMap<Position, [u8; 8]> {
    let mut out = HashMap::new();
    for (seq, mask) in masks {
        let entries = digests.get(seq).and_then(|d| chain::parse_digests(d));
        for (k, (position, short)) in entries.into_iter().flatten().enumerate() {
            if mask.marks(k) {
                out.insert(position, short);
            }
        }
    }
    out
}

/// An event row of SELECT_CANONICAL: its position and hash.
fn hashed(row: &tokio_postgres::Row) -> Result<(Position, Hash)> {
    let position = Position {
        txid: parse_txid(row.get(0))?,
        id: row.get(1),
    };
    let hash = chain::event_hash(
        (POSITION_COLUMNS..POSITION_COLUMNS + 17).map(|i| row.get::<_, Option<&str>>(i)),
    );
    Ok((position, hash))
}

/// What a seal's retention notes say: which of its events were dropped, and which of those
/// by a drop that relied on an archive.
#[derive(Clone, Copy, Default)]
struct Notes<'a> {
    dropped: Option<&'a Mask>,
    relied: Option<&'a Mask>,
}

/// One seal's events against its digests and root; only what a valid signature vouches for
/// can be compared with.
fn check_seal_events(
    s: &SealRow,
    digests: Option<&Vec<u8>>,
    notes: Notes<'_>,
    actual: &[(Position, Hash)],
    gaps: &mut Gaps,
    findings: &mut Vec<Finding>,
) {
    let Some(checkpoint) = &s.signed else {
        return;
    };
    let expected = digests.and_then(|d| {
        chain::parse_digests(d)
            .filter(|_| checkpoint.digests_sha == <Hash>::from(Sha256::digest(d)))
    });
    let Some(expected) = expected else {
        push(
            findings,
            "seal_rewritten",
            Some(s.seq),
            None,
            format!("seal {}'s digests differ from its signed checkpoint", s.seq),
        );
        return;
    };
    let before = findings.len();
    let (dropped, hashes) = compare(s.seq, &expected, actual, notes, gaps, findings);
    if findings.len() != before {
        return;
    }
    // With events dropped and not all of them archived, the root cannot be recomputed: each
    // remaining event was held to its digest entry (its 8-byte prefix), and the digests
    // themselves to the signed checkpoint.
    let Some(hashes) = hashes else {
        gaps.seals.checked_by_prefix += 1;
        return;
    };
    if dropped > 0 {
        gaps.seals.checked_in_full += 1;
    }
    if chain::batch_root(&hashes) != checkpoint.batch_root {
        let how = if dropped > 0 {
            format!(
                " (its batch root, recomputed with the {dropped} dropped events read from the archives, differs)"
            )
        } else {
            String::new()
        };
        push(
            findings,
            "batch_altered",
            Some(s.seq),
            None,
            format!(
                "the events of seal {} differ from what it sealed{how}",
                s.seq
            ),
        );
    }
}

fn inserted(seq: i64) -> String {
    format!("was inserted where seal {seq} has no event")
}

/// Merges a seal's expected (position, short hash) list with the events found in its range.
/// An expected event that is absent is dropped when the seal's retention notes mark it, else
/// missing; with --archive, a dropped event is looked up in what the archives hold of the
/// run. Returns how many were dropped, and the full hashes of the seal's events in order
/// (those found, and the archived ones of those dropped) unless a dropped event has no
/// matching archived copy.
fn compare(
    seq: i64,
    expected: &[(Position, [u8; 8])],
    actual: &[(Position, Hash)],
    notes: Notes<'_>,
    gaps: &mut Gaps,
    findings: &mut Vec<Finding>,
) -> (i64, Option<Vec<Hash>>) {
    let mut dropped = 0;
    let mut hashes = Some(Vec::with_capacity(expected.len()));
    let event = |findings: &mut Vec<Finding>, kind, position: Position, what: String| {
        push(
            findings,
            kind,
            Some(seq),
            Some(position.id),
            format!("event {} ({position}) {what}", position.id),
        )
    };
    let (mut e, mut a) = (0, 0);
    loop {
        match (expected.get(e), actual.get(a)) {
            (None, None) => break,
            (Some(&(epos, short)), Some(&(apos, hash))) if epos == apos => {
                if hash[..8] != short {
                    event(
                        findings,
                        "event_altered",
                        apos,
                        format!("was altered since seal {seq}"),
                    );
                } else if let Ok(i) = gaps.purges.binary_search_by_key(&apos, |p| p.position) {
                    // Read in chain order, so a search finds whether this is a purge event.
                    gaps.purges[i].verified = true;
                }
                if let Some(h) = hashes.as_mut() {
                    h.push(hash);
                }
                e += 1;
                a += 1;
            }
            (Some(&(epos, _)), Some(&(apos, _))) if apos < epos => {
                event(findings, "event_inserted", apos, inserted(seq));
                a += 1;
            }
            (None, Some(&(apos, _))) => {
                event(findings, "event_inserted", apos, inserted(seq));
                a += 1;
            }
            (Some(&(epos, short)), _) => {
                if notes.dropped.is_some_and(|m| m.marks(e)) {
                    dropped += 1;
                    let found = if let Some(&hash) = gaps.carried.get(&epos) {
                        // A purge event a later drop removed: its carried copy is what the
                        // seal sealed, or the records of its own drop cannot be trusted.
                        carried_copy(gaps, seq, epos, short, hash, findings)
                    } else {
                        match gaps.archived.as_mut() {
                            Some(archive) => {
                                let found = archived_copy(archive, seq, epos, findings);
                                if found.is_none() && notes.relied.is_some_and(|m| m.marks(e)) {
                                    event(
                                        findings,
                                        "archive_missing",
                                        epos,
                                        format!(
                                            "is in no given archive, but retention dropped it relying on one (seal {seq})"
                                        ),
                                    );
                                }
                                found
                            }
                            None => None,
                        }
                    };
                    match (found, hashes.as_mut()) {
                        (Some(hash), Some(h)) => h.push(hash),
                        (Some(_), None) => {}
                        (None, _) => hashes = None,
                    }
                } else {
                    event(
                        findings,
                        "event_missing",
                        epos,
                        format!("is missing: sealed in seal {seq}"),
                    );
                }
                e += 1;
            }
        }
    }
    gaps.dropped += dropped;
    (dropped, hashes)
}

/// A dropped purge event's carried copy: its full hash when it is what the seal sealed (the
/// purge event is then verified, and vouches for its notes); a finding otherwise.
fn carried_copy(
    gaps: &mut Gaps,
    seq: i64,
    position: Position,
    short: [u8; 8],
    hash: Hash,
    findings: &mut Vec<Finding>,
) -> Option<Hash> {
    let Ok(i) = gaps.purges.binary_search_by_key(&position, |p| p.position) else {
        return None;
    };
    if hash[..8] != short {
        push(
            findings,
            "carried_event_altered",
            Some(seq),
            Some(position.id),
            format!(
                "purge event {} ({position}) as purge event {} carries it differs from what seal {seq} sealed",
                position.id,
                gaps.purges[i].carried_by.unwrap_or_default()
            ),
        );
        return None;
    }
    gaps.purges[i].verified = true;
    Some(hash)
}

/// A dropped event's archived copy: its full hash when an archive holds it as sealed
/// (counted as verified); every archived file where it differs is a finding.
fn archived_copy(
    archive: &mut ArchiveState,
    seq: i64,
    position: Position,
    findings: &mut Vec<Finding>,
) -> Option<Hash> {
    let found = archive.run.get(&position).cloned().unwrap_or_default();
    for k in found.altered_in {
        push(
            findings,
            "archive_event_altered",
            Some(seq),
            Some(position.id),
            format!(
                "event {} ({position}) in archive {} differs from what seal {seq} sealed",
                position.id,
                archive.files[k].display(),
            ),
        );
    }
    match found.hash {
        Some(_) => archive.report.dropped_verified += 1,
        None => archive.report.dropped_without_archive += 1,
    }
    found.hash
}

/// The checkpoint files against the seals: a signed file newer than the database's last
/// seal means the newest events and their seals were cut off.
fn check_checkpoint_files(
    files: &CheckpointFiles,
    seals: &[SealRow],
    keys: &HashMap<String, VerifyingKey>,
    findings: &mut Vec<Finding>,
) {
    let by_seq: HashMap<i64, &SealRow> = seals.iter().map(|s| (s.seq, s)).collect();
    let newest_db = seals.last().map_or(0, |s| s.seq);
    for (seq, file) in files {
        match file {
            Err(why) => push(
                findings,
                "checkpoint_unreadable",
                Some(*seq),
                None,
                format!("checkpoint {seq} cannot be read: {why}"),
            ),
            Ok((body, key_id, signature)) => {
                let signed = keys.get(key_id).is_some_and(|k| {
                    k.verify_strict(body.as_bytes(), &Signature::from_bytes(signature))
                        .is_ok()
                });
                if !signed {
                    push(
                        findings,
                        "checkpoint_bad_signature",
                        Some(*seq),
                        None,
                        format!("checkpoint file {seq} is not signed by a given key"),
                    );
                } else if *seq > newest_db {
                    push(
                        findings,
                        "tail_cut",
                        Some(*seq),
                        None,
                        format!(
                            "seals after {newest_db} are missing from the database, but checkpoint {seq} exists: the newest events and their seals were cut off"
                        ),
                    );
                } else if by_seq.get(seq).is_some_and(|s| s.checkpoint != *body) {
                    push(
                        findings,
                        "seal_rewritten",
                        Some(*seq),
                        None,
                        format!("seal {seq} differs from its checkpoint file"),
                    );
                }
            }
        }
    }
}

/// Records a failed verification in the log (on the primary when `--db` is a standby);
/// best effort: the finding itself is already on its way to the operator.
async fn record_violation(writer: &Client, report: &Report) {
    let details = serde_json::json!({
        "findings": report.findings.iter().take(20).collect::<Vec<_>>(),
        "seals": report.seals,
    });
    let _ = writer
        .execute(
            "SELECT audit.log_event('audit_log', 'verify_failed', NULL, $1::text::jsonb)",
            &[&details.to_string()],
        )
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn position(id: i64) -> Position {
        Position { txid: 700, id }
    }

    /// A signed seal over events 1..=4, and its digests.
    fn seal(hashes: &[Hash]) -> (SealRow, Vec<u8>) {
        let digests: Vec<u8> = hashes
            .iter()
            .enumerate()
            .flat_map(|(k, h)| chain::digest_entry(position(k as i64 + 1), h))
            .collect();
        let root = chain::batch_root(hashes);
        let checkpoint = Checkpoint {
            database: "1/crm".into(),
            seq: 2,
            last: position(hashes.len() as i64),
            events: hashes.len() as i64,
            total: hashes.len() as i64,
            batch_root: root,
            digests_sha: Sha256::digest(&digests).into(),
            prev: [0; 32],
            head: chain::next_head(&[0; 32], &root),
            time: "2026-12-01T12:00:00Z".into(),
        };
        let row = SealRow {
            seq: 2,
            last: checkpoint.last,
            events: checkpoint.events,
            total: checkpoint.total,
            prev: checkpoint.prev.to_vec(),
            root: root.to_vec(),
            head: checkpoint.head.to_vec(),
            key_id: String::new(),
            checkpoint: checkpoint.body(),
            signature: Vec::new(),
            signed: Some(checkpoint),
        };
        (row, digests)
    }

    fn gaps(archived: &[(i64, Hash)]) -> Gaps {
        let files = vec![PathBuf::from("archive/events.parquet")];
        let mut state = ArchiveState::new(&Archives {
            files,
            ..Archives::default()
        });
        for (id, hash) in archived {
            state.run.insert(
                position(*id),
                Archived {
                    hash: Some(*hash),
                    altered_in: Vec::new(),
                },
            );
        }
        Gaps {
            enabled: true,
            purges: Vec::new(),
            relied: Default::default(),
            carried: HashMap::new(),
            dropped: 0,
            archived: Some(state),
            seals: DroppedSeals::default(),
        }
    }

    /// Two events dropped, two remaining: the check of the seal with the dropped events'
    /// archived hashes, or without them.
    fn check(archived: Option<&[(i64, Hash)]>, remaining: &[Hash]) -> (Gaps, Vec<Finding>) {
        let sealed: Vec<Hash> = (1..=4u8).map(|k| [k; 32]).collect();
        let (row, digests) = seal(&sealed);
        let mask = Mask::Bits(vec![true, true, false, false]);
        let actual: Vec<(Position, Hash)> = remaining
            .iter()
            .enumerate()
            .map(|(k, h)| (position(k as i64 + 3), *h))
            .collect();
        let mut gaps = match archived {
            Some(a) => gaps(a),
            None => Gaps {
                archived: None,
                ..gaps(&[])
            },
        };
        let mut findings = Vec::new();
        check_seal_events(
            &row,
            Some(&digests),
            Notes {
                dropped: Some(&mask),
                relied: None,
            },
            &actual,
            &mut gaps,
            &mut findings,
        );
        (gaps, findings)
    }

    /// The same first 8 bytes as `h`, but another hash.
    fn same_prefix(h: Hash) -> Hash {
        let mut other = h;
        other[31] ^= 0xff;
        other
    }

    #[test]
    fn a_seal_with_its_dropped_events_archived_is_checked_in_full() {
        let (gaps, findings) = check(Some(&[(1, [1; 32]), (2, [2; 32])]), &[[3; 32], [4; 32]]);
        assert!(findings.is_empty(), "{findings:?}");
        assert_eq!(gaps.seals.checked_in_full, 1);
        assert_eq!(gaps.seals.checked_by_prefix, 0);
        let report = gaps.archived.unwrap().report;
        assert_eq!(
            (report.dropped_verified, report.dropped_without_archive),
            (2, 0)
        );
    }

    /// A remaining event whose hash keeps its digest's 8-byte prefix passes the prefix check;
    /// the batch root recomputed with the archived events catches it.
    #[test]
    fn a_hash_that_keeps_its_prefix_is_caught_only_by_the_full_check() {
        let forged = [[3; 32], same_prefix([4; 32])];
        let (gaps, findings) = check(None, &forged);
        assert!(findings.is_empty(), "{findings:?}");
        assert_eq!(gaps.seals.checked_by_prefix, 1);

        let (gaps, findings) = check(Some(&[(1, [1; 32]), (2, [2; 32])]), &forged);
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert_eq!(findings[0].kind, "batch_altered");
        assert_eq!(findings[0].seal, Some(2));
        assert!(
            findings[0]
                .message
                .starts_with("the events of seal 2 differ from what it sealed"),
            "{}",
            findings[0].message
        );
        assert_eq!(gaps.seals.checked_in_full, 1);

        // So does an archived event that keeps its prefix.
        let archived = [(1, [1; 32]), (2, same_prefix([2; 32]))];
        let (_, findings) = check(Some(&archived), &[[3; 32], [4; 32]]);
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert_eq!(findings[0].kind, "batch_altered");
    }

    #[test]
    fn a_seal_with_a_dropped_event_in_no_archive_is_checked_by_prefixes() {
        let (gaps, findings) = check(Some(&[(1, [1; 32])]), &[[3; 32], [4; 32]]);
        assert!(findings.is_empty(), "{findings:?}");
        assert_eq!(gaps.seals.checked_in_full, 0);
        assert_eq!(gaps.seals.checked_by_prefix, 1);
        let report = gaps.archived.unwrap().report;
        assert_eq!(
            (report.dropped_verified, report.dropped_without_archive),
            (1, 1)
        );
    }

    #[test]
    fn an_archived_copy_that_differs_from_its_digest_is_named() {
        let mut gaps = gaps(&[(1, [1; 32])]);
        gaps.archived.as_mut().unwrap().run.insert(
            position(2),
            Archived {
                hash: None,
                altered_in: vec![0],
            },
        );
        let mut findings = Vec::new();
        let state = gaps.archived.as_mut().unwrap();
        assert_eq!(archived_copy(state, 2, position(2), &mut findings), None);
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].kind, "archive_event_altered");
        assert!(findings[0]
            .message
            .contains("in archive archive/events.parquet differs from what seal 2 sealed"));
    }
}
