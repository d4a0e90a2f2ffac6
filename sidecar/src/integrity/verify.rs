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

use super::chain::{self, Checkpoint, Hash, Position, POSITION_COLUMNS, SELECT_CANONICAL};
use super::keys;
use super::seal::parse_txid;
use crate::db;
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
    events: i64,
    sealed_through_id: Option<i64>,
    findings: Vec<Finding>,
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
    let report = verify(&mut client, &keys, checkpoints.as_ref()).await?;
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
            "audit-trail: intact: {} seals over {} events{}",
            report.seals,
            report.events,
            report
                .sealed_through_id
                .map_or(String::new(), |id| format!(", sealed through event {id}"))
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
    digests: Vec<u8>,
    key_id: String,
    checkpoint: String,
    signature: Vec<u8>,
}

async fn verify(
    client: &mut Client,
    keys: &HashMap<String, VerifyingKey>,
    files: Option<&CheckpointFiles>,
) -> Result<Report> {
    let db_error = |doing| move |e: tokio_postgres::Error| Error::database(doing, &e);
    // One snapshot for seals and events alike.
    let tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .map_err(db_error("starting verification"))?;
    let mut findings = Vec::new();

    // The registered keys: a replaced one is itself a finding.
    for row in tx
        .query("SELECT key_id, public_key FROM audit.seal_keys", &[])
        .await
        .map_err(db_error("reading the registered keys"))?
    {
        let key_id: String = row.get(0);
        let stored: &[u8] = row.get(1);
        if let Some(given) = keys.get(&key_id) {
            if given.as_bytes() != stored {
                push(
                    &mut findings,
                    "key_replaced",
                    None,
                    None,
                    format!("the database's key {key_id} differs from the given key"),
                );
            }
        }
    }

    let rows = tx
        .query(
            "SELECT seq, last_txid::text, last_id, events, total, prev_head, batch_root, head,
                    digests, key_id, checkpoint, signature
               FROM audit.seals ORDER BY seq",
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
            digests: row.get(8),
            key_id: row.get(9),
            checkpoint: row.get(10),
            signature: row.get(11),
        });
    }
    drop(rows);

    // 1. The seals themselves: numbering, chaining, signatures, rows equal to what is signed.
    let mut previous_head = [0u8; 32].to_vec();
    let mut total = 0;
    for (i, s) in seals.iter().enumerate() {
        let expected_seq = i as i64 + 1;
        if s.seq != expected_seq {
            push(
                &mut findings,
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
                &mut findings,
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
                &mut findings,
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
        let matches = Checkpoint::parse(&s.checkpoint).is_some_and(|c| {
            c.seq == s.seq
                && c.last == s.last
                && c.events == s.events
                && c.total == s.total
                && c.batch_root.as_slice() == s.root
                && c.prev.as_slice() == s.prev
                && c.head.as_slice() == s.head
                && c.digests_sha == <Hash>::from(Sha256::digest(&s.digests))
        });
        if !matches {
            push(
                &mut findings,
                "seal_rewritten",
                Some(s.seq),
                None,
                format!("seal {}'s row differs from its signed checkpoint", s.seq),
            );
            continue;
        }
        if s.prev != previous_head || total + s.events != s.total {
            push(
                &mut findings,
                "seal_out_of_chain",
                Some(s.seq),
                None,
                format!("seal {} does not follow seal {}", s.seq, s.seq - 1),
            );
        }
        let root: Option<Hash> = s.root.as_slice().try_into().ok();
        let prev: Option<Hash> = s.prev.as_slice().try_into().ok();
        if let (Some(root), Some(prev)) = (root, prev) {
            if chain::next_head(&prev, &root).as_slice() != s.head {
                push(
                    &mut findings,
                    "seal_out_of_chain",
                    Some(s.seq),
                    None,
                    format!("seal {}'s head does not follow from its batch", s.seq),
                );
            }
        }
        previous_head = s.head.clone();
        total = s.total;
    }

    // 2. The events against the seals' digests and batch roots.
    let mut events_read = 0i64;
    if let Some(last) = seals.last() {
        let stream = tx
            .query_raw(
                &format!(
                    "{SELECT_CANONICAL}
                      WHERE (e.txid, e.id) <= ($1::text::xid8, $2::bigint)
                      ORDER BY e.txid, e.id"
                ),
                [
                    &last.last.txid.to_string() as &(dyn tokio_postgres::types::ToSql + Sync),
                    &last.last.id,
                ],
            )
            .await
            .map_err(db_error("reading the sealed events"))?;
        pin_mut!(stream);
        let mut pending: Option<(Position, Hash)> = None;
        'seals: for s in &seals {
            let Some(expected) = chain::parse_digests(&s.digests) else {
                continue;
            };
            let mut hashes = Vec::with_capacity(expected.len());
            let mut divergent = false;
            let mut expected_iter = expected.iter().peekable();
            loop {
                let actual = match pending.take() {
                    Some(a) => Some(a),
                    None => match stream
                        .try_next()
                        .await
                        .map_err(db_error("reading the sealed events"))?
                    {
                        Some(row) => {
                            events_read += 1;
                            let position = Position {
                                txid: parse_txid(row.get(0))?,
                                id: row.get(1),
                            };
                            let hash = chain::event_hash(
                                (POSITION_COLUMNS..POSITION_COLUMNS + 17)
                                    .map(|i| row.get::<_, Option<&str>>(i)),
                            );
                            Some((position, hash))
                        }
                        None => None,
                    },
                };
                let actual = match actual {
                    Some(a) if a.0 <= s.last => Some(a),
                    Some(a) => {
                        pending = Some(a);
                        None
                    }
                    None => None,
                };
                match (expected_iter.peek(), actual) {
                    (None, None) => break,
                    (Some(&&(pos, _)), None) => {
                        push(
                            &mut findings,
                            "event_missing",
                            Some(s.seq),
                            Some(pos.id),
                            format!(
                                "event {} ({pos}) is missing: sealed in seal {}",
                                pos.id, s.seq
                            ),
                        );
                        divergent = true;
                        expected_iter.next();
                    }
                    (None, Some((pos, _))) => {
                        push(
                            &mut findings,
                            "event_inserted",
                            Some(s.seq),
                            Some(pos.id),
                            format!(
                                "event {} ({pos}) was inserted where seal {} has no event",
                                pos.id, s.seq
                            ),
                        );
                        divergent = true;
                    }
                    (Some(&&(epos, short)), Some((apos, hash))) => {
                        if epos == apos {
                            expected_iter.next();
                            hashes.push(hash);
                            if hash[..8] != short {
                                push(
                                    &mut findings,
                                    "event_altered",
                                    Some(s.seq),
                                    Some(apos.id),
                                    format!(
                                        "event {} ({apos}) was altered since seal {}",
                                        apos.id, s.seq
                                    ),
                                );
                                divergent = true;
                            }
                        } else if epos < apos {
                            push(
                                &mut findings,
                                "event_missing",
                                Some(s.seq),
                                Some(epos.id),
                                format!(
                                    "event {} ({epos}) is missing: sealed in seal {}",
                                    epos.id, s.seq
                                ),
                            );
                            divergent = true;
                            expected_iter.next();
                            pending = Some((apos, hash));
                        } else {
                            push(
                                &mut findings,
                                "event_inserted",
                                Some(s.seq),
                                Some(apos.id),
                                format!(
                                    "event {} ({apos}) was inserted where seal {} has no event",
                                    apos.id, s.seq
                                ),
                            );
                            divergent = true;
                        }
                    }
                }
                // Enough to say what happened; a wholesale rewrite need not list every row.
                if findings.len() > MAX_FINDINGS {
                    break 'seals;
                }
            }
            if !divergent && chain::batch_root(&hashes).as_slice() != s.root {
                push(
                    &mut findings,
                    "batch_altered",
                    Some(s.seq),
                    None,
                    format!("the events of seal {} differ from what it sealed", s.seq),
                );
            }
        }
    }

    // 3. The checkpoint files against the seals: a newer file means a cut-off tail.
    if let Some(files) = files {
        let by_seq: HashMap<i64, &SealRow> = seals.iter().map(|s| (s.seq, s)).collect();
        let newest_db = seals.last().map_or(0, |s| s.seq);
        for (seq, file) in files {
            match (file, by_seq.get(seq)) {
                (Err(why), _) => push(
                    &mut findings,
                    "checkpoint_unreadable",
                    Some(*seq),
                    None,
                    format!("checkpoint {seq} cannot be read: {why}"),
                ),
                (Ok((body, key_id, signature)), db_seal) => {
                    let signed = keys.get(key_id).is_some_and(|k| {
                        k.verify_strict(body.as_bytes(), &Signature::from_bytes(signature))
                            .is_ok()
                    });
                    if !signed {
                        push(
                            &mut findings,
                            "checkpoint_bad_signature",
                            Some(*seq),
                            None,
                            format!("checkpoint file {seq} is not signed by a given key"),
                        );
                    } else if *seq > newest_db {
                        push(
                    &mut findings,
                            "tail_cut",
                            Some(*seq),
                            None,
                            format!(
                                "seals after {newest_db} are missing from the database, but checkpoint {seq} exists: the newest events and their seals were cut off"
                            ),
                        );
                    } else if db_seal.is_some_and(|s| s.checkpoint != *body) {
                        push(
                            &mut findings,
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
    tx.commit().await.map_err(db_error("ending verification"))?;
    Ok(Report {
        intact: findings.is_empty(),
        seals: seals.len() as i64,
        events: events_read,
        sealed_through_id: seals.last().map(|s| s.last.id),
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
    let _ = writer
        .execute(
            "SELECT audit.log_event('audit_log', 'verify_failed', NULL, $1::text::jsonb)",
            &[&details.to_string()],
        )
        .await;
}
