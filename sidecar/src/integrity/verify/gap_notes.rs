//! Retention's gap notes against the purge events that recorded them.

use std::collections::HashMap;

use sha2::{Digest, Sha256};

use super::finding::{push, Finding, FindingKind};
use super::seals::{seal_events, SealRow};
use super::Tx;
use crate::error::Result;
use crate::integrity::retention::{self, PurgeEvent};

/// Each drop's notes must be vouched for by a purge event: one whose details carry the
/// SHA-256 of exactly those notes, and whose own sealed hash matched (or which no seal
/// covers yet). Notes added or changed after the fact match none.
pub(super) async fn check_gap_notes(
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
                FindingKind::GapNotesUnrecorded,
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
                FindingKind::GapNotesMismatch,
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
                FindingKind::GapNotesRemoved,
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
