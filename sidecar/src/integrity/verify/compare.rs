//! One seal's events against its digests and batch root, with what retention dropped
//! accounted for from its notes, the purge events' carried copies and the archives.

use std::collections::{HashMap, HashSet};

use sha2::{Digest, Sha256};

use super::archives::{archived_copy, ArchiveState};
use super::finding::{push, Finding, FindingKind};
use super::report::DroppedSeals;
use super::seals::SealRow;
use crate::integrity::retention::{Mask, PurgeEvent};
use audit_trail_contract::chain::{self, Hash, Position};

/// What check_events learns about retention as it goes.
pub(super) struct Gaps {
    /// Whether the database has retention notes (0.1.0 has none).
    pub(super) enabled: bool,
    /// Purge events that name notes; check_events marks those whose sealed hash matched.
    pub(super) purges: Vec<PurgeEvent>,
    /// The partitions whose drop relied on an archive: with --archive, each of their
    /// dropped events must be found in one.
    pub(super) relied: HashSet<String>,
    /// The purge events later drops removed, by position, with their hash as carried.
    pub(super) carried: HashMap<Position, Hash>,
    /// Sealed events absent from audit.events and noted as dropped.
    pub(super) dropped: i64,
    /// With --archive: the archived files, and what they hold of the current run of seals'
    /// dropped events.
    pub(super) archived: Option<ArchiveState>,
    /// Seals with dropped events, checked in full or by digest prefixes.
    pub(super) seals: DroppedSeals,
}

/// What a seal's retention notes say: which of its events were dropped, and which of those
/// by a drop that relied on an archive.
#[derive(Clone, Copy, Default)]
pub(super) struct Notes<'a> {
    pub(super) dropped: Option<&'a Mask>,
    pub(super) relied: Option<&'a Mask>,
}

/// One seal's events against its digests and root; only what a valid signature vouches for
/// can be compared with.
pub(super) fn check_seal_events(
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
            FindingKind::SealRewritten,
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
            FindingKind::BatchAltered,
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
                        FindingKind::EventAltered,
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
                event(findings, FindingKind::EventInserted, apos, inserted(seq));
                a += 1;
            }
            (None, Some(&(apos, _))) => {
                event(findings, FindingKind::EventInserted, apos, inserted(seq));
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
                                        FindingKind::ArchiveMissing,
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
                        FindingKind::EventMissing,
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
            FindingKind::CarriedEventAltered,
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

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::super::archives::{Archived, Archives};
    use super::*;
    use audit_trail_contract::chain::Checkpoint;

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
        assert_eq!(findings[0].kind, FindingKind::BatchAltered);
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
        assert_eq!(findings[0].kind, FindingKind::BatchAltered);
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
}
