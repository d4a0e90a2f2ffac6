//! The seals and the registered keys as the database holds them, against the keys given.

use std::collections::HashMap;

use ed25519_dalek::{Signature, VerifyingKey};

use super::finding::{push, Finding, FindingKind};
use super::{db_error, Tx};
use crate::db::parse_txid;
use crate::error::Result;
use audit_trail_contract::chain::{self, Checkpoint, Position};

/// A row of audit.seals, without its digests: they are the bulk of a seal, and check_events
/// reads them one run of seals at a time.
pub(super) struct SealRow {
    pub(super) seq: i64,
    pub(super) last: Position,
    pub(super) events: i64,
    pub(super) total: i64,
    pub(super) prev: Vec<u8>,
    pub(super) root: Vec<u8>,
    pub(super) head: Vec<u8>,
    pub(super) key_id: String,
    pub(super) checkpoint: String,
    pub(super) signature: Vec<u8>,
    /// The signed checkpoint, when the signature and the row agree with it.
    pub(super) signed: Option<Checkpoint>,
}

/// The events of seal `seq`, from the seals read (numbered from 1 when intact).
pub(super) fn seal_events(seals: &[SealRow], seq: i64) -> Option<i64> {
    let guess = usize::try_from(seq - 1).ok().and_then(|i| seals.get(i));
    match guess {
        Some(s) if s.seq == seq => Some(s.events),
        _ => seals.iter().find(|s| s.seq == seq).map(|s| s.events),
    }
}

/// A key the database registered under a given key's id must be that key.
pub(super) async fn check_registered_keys(
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
                FindingKind::KeyReplaced,
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
pub(super) async fn check_seals(
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
                FindingKind::SealMissing,
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
                FindingKind::UnknownKey,
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
                FindingKind::BadSignature,
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
                FindingKind::SealRewritten,
                Some(s.seq),
                None,
                format!("seal {}'s row differs from its signed checkpoint", s.seq),
            );
            continue;
        };
        if s.prev != previous_head || total + s.events != s.total {
            push(
                findings,
                FindingKind::SealOutOfChain,
                Some(s.seq),
                None,
                format!("seal {} does not follow seal {}", s.seq, s.seq - 1),
            );
        }
        if chain::next_head(&checkpoint.prev, &checkpoint.batch_root) != checkpoint.head {
            push(
                findings,
                FindingKind::SealOutOfChain,
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
