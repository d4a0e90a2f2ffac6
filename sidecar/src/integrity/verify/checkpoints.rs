//! `verify --checkpoints`: the signed checkpoint files `seal` wrote outside the database,
//! against the seals the database holds.

use std::collections::{BTreeMap, HashMap};

use ed25519_dalek::{Signature, VerifyingKey};

use super::finding::{push, Finding, FindingKind};
use super::seals::SealRow;
use crate::error::{Error, Result};
use crate::integrity::checkpoint_files;
use audit_trail_contract::chain;

/// Each checkpoint file by seq: its body, key id and signature, or why it is unreadable.
pub(super) type CheckpointFiles =
    BTreeMap<i64, std::result::Result<(String, String, [u8; 64]), String>>;

pub(super) fn read_checkpoints(dir: &std::path::Path) -> Result<CheckpointFiles> {
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
        let Some(seq) = checkpoint_files::seq_of(&name) else {
            continue;
        };
        let parsed = std::fs::read_to_string(entry.path())
            .map_err(|e| e.to_string())
            .and_then(|text| chain::parse_note(&text).ok_or_else(|| "not a checkpoint".into()));
        out.insert(seq, parsed);
    }
    Ok(out)
}

/// The checkpoint files against the seals: a signed file newer than the database's last
/// seal means the newest events and their seals were cut off.
pub(super) fn check_checkpoint_files(
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
                FindingKind::CheckpointUnreadable,
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
                        FindingKind::CheckpointBadSignature,
                        Some(*seq),
                        None,
                        format!("checkpoint file {seq} is not signed by a given key"),
                    );
                } else if *seq > newest_db {
                    push(
                        findings,
                        FindingKind::TailCut,
                        Some(*seq),
                        None,
                        format!(
                            "seals after {newest_db} are missing from the database, but checkpoint {seq} exists: the newest events and their seals were cut off"
                        ),
                    );
                } else if by_seq.get(seq).is_some_and(|s| s.checkpoint != *body) {
                    push(
                        findings,
                        FindingKind::SealRewritten,
                        Some(*seq),
                        None,
                        format!("seal {seq} differs from its checkpoint file"),
                    );
                }
            }
        }
    }
}
