//! The sealed events, streamed from the database in runs of seals and hashed, each seal's
//! share handed to the comparison.

use std::collections::HashMap;

use futures_util::{pin_mut, TryStreamExt};

use super::compare::{check_seal_events, Gaps, Notes};
use super::finding::{push, Finding, FindingKind};
use super::seals::{seal_events, SealRow};
use super::{db_error, Tx};
use crate::db::parse_txid;
use crate::error::Result;
use crate::integrity::retention::{self, Mask};
use audit_trail_contract::chain::{self, Hash, Position, POSITION_COLUMNS, SELECT_CANONICAL};

/// How many findings stop the reading of events: check_events ends with the seal that takes
/// the count past it. Not a cap on the report: that seal's findings are all kept, and the
/// checks after the events (gap notes, checkpoint files, archives) still add theirs; the
/// report's `events` then counts only the events read.
const MAX_FINDINGS: usize = 1000;

/// Events one query streams at most: seals are checked in runs of consecutive seals.
const CHUNK_EVENTS: i64 = 200_000;

/// The events against the seals (memory bounded by a run of seals, whatever the log's
/// size): each position in a seal's digests must hold an event whose hash matches, in
/// order, and nothing else may sit in between; the batch's hashes must give its root.
/// Returns how many events were read.
pub(super) async fn check_events(
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
                        FindingKind::GapNotesMalformed,
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
        (POSITION_COLUMNS..POSITION_COLUMNS + chain::CANONICAL_COLUMNS)
            .map(|i| row.get::<_, Option<&str>>(i)),
    );
    Ok((position, hash))
}
