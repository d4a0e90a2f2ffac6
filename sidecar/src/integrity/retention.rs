//! What `verify` needs of retention (docs/integrity.md, "Retention"): the notes in
//! `audit.retention_gaps` that say which sealed events retention or `audit.purge` dropped,
//! and the `audit_log`/`purge` events that vouch for those notes.
//!
//! A seal's note has one bit per event of the seal, in the order of its digests ('1' =
//! dropped), or NULL when all of them went. The notes of one drop share `(source,
//! noted_at)`, and the purge event recorded for that drop carries in `details` the SHA-256 of
//! `string_agg(seq || ':' || coalesce(dropped::text, '*'), ',' ORDER BY seq)` over them
//! (extension/sql/retention.sql, `audit.note_retention_gaps`). The purge event is sealed like
//! any other, so notes added or changed afterwards match no purge event.

use std::collections::HashMap;

use futures_util::{pin_mut, TryStreamExt};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::db::parse_txid;
use crate::error::{Error, Result};
use audit_trail_contract::chain::{self, Hash, Position};

type Tx<'a> = tokio_postgres::Transaction<'a>;

fn db_error(doing: &'static str) -> impl Fn(tokio_postgres::Error) -> Error {
    move |e| Error::database(doing, &e)
}

/// Which events of one seal retention dropped, from all the notes for that seal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mask {
    All,
    Bits(Vec<bool>),
}

impl Mask {
    /// Whether the event at index `k` of the seal's digests is noted as dropped.
    pub fn marks(&self, k: usize) -> bool {
        match self {
            Mask::All => true,
            Mask::Bits(bits) => bits.get(k).copied().unwrap_or(false),
        }
    }

    /// Adds another note for the same seal (a partition and audit.purge's remainder can
    /// each have dropped some of its events).
    pub fn merge(self, other: Mask) -> Mask {
        match (self, other) {
            (Mask::All, _) | (_, Mask::All) => Mask::All,
            (Mask::Bits(mut a), Mask::Bits(b)) => {
                for (x, y) in a.iter_mut().zip(b) {
                    *x |= y;
                }
                Mask::Bits(a)
            }
        }
    }

    /// Events of a seal of `events` events that the mask marks.
    pub fn count(&self, events: i64) -> i64 {
        match self {
            Mask::All => events,
            Mask::Bits(bits) => bits.iter().filter(|b| **b).count() as i64,
        }
    }
}

/// A note's mask (`dropped::text`, or None for NULL) for a seal of `events` events; None
/// when it is not one bit per event.
pub fn parse_mask(text: Option<&str>, events: i64) -> Option<Mask> {
    let Some(text) = text else {
        return Some(Mask::All);
    };
    if i64::try_from(text.len()).ok() != Some(events) {
        return None;
    }
    text.chars()
        .map(|c| match c {
            '0' => Some(false),
            '1' => Some(true),
            _ => None,
        })
        .collect::<Option<Vec<bool>>>()
        .map(Mask::Bits)
}

/// The SHA-256 (hex) a purge event records for the notes of its drop, fed one note at a
/// time in `seq` order, as `audit.note_retention_gaps` computes it.
#[derive(Default)]
pub struct GroupDigest {
    hasher: Sha256,
    notes: usize,
}

impl GroupDigest {
    pub fn push(&mut self, seq: i64, dropped: Option<&str>) {
        if self.notes > 0 {
            self.hasher.update(b",");
        }
        self.hasher.update(seq.to_string().as_bytes());
        self.hasher.update(b":");
        self.hasher.update(dropped.unwrap_or("*").as_bytes());
        self.notes += 1;
    }

    pub fn finish(self) -> String {
        hex::encode(self.hasher.finalize())
    }
}

/// An `audit_log`/`purge` event that names notes (`retention_gaps_sha256`).
#[derive(Debug, Clone, Serialize)]
pub struct PurgeEvent {
    pub event_id: i64,
    #[serde(skip)]
    pub position: Position,
    /// The partition dropped; None for what `audit.purge` deleted row by row.
    pub partition: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub before: Option<String>,
    /// Rows the event says were dropped.
    pub rows: Option<i64>,
    pub reason: Option<String>,
    pub archived: Option<bool>,
    #[serde(skip)]
    pub sha256: String,
    /// Whether a seal covers the event yet (an unsealed one cannot be checked; the sealer
    /// will cover it).
    pub sealed: bool,
    /// Whether its sealed hash matched.
    #[serde(skip)]
    pub verified: bool,
    /// Sealed events its notes mark as dropped.
    pub noted_events: i64,
    /// The first and last seal its notes name.
    pub seals: Option<(i64, i64)>,
    /// For a purge event a later drop removed: the id of the purge event that carried it
    /// (its `details.carried_events`; 0 if none names it), and the hash of its copy in
    /// `audit.carried_events`, which its seal's digest entry must match.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub carried_by: Option<i64>,
    #[serde(skip)]
    pub carried_hash: Option<Hash>,
}

impl PurgeEvent {
    /// `purge event 312 (audit.events_20261001, 2026-10-01..2026-11-01, 120 rows)`.
    pub fn describe(&self) -> String {
        let mut what = Vec::new();
        match &self.partition {
            Some(p) => what.push(p.clone()),
            None => what.push("rows".into()),
        }
        match (&self.from, &self.to, &self.before) {
            (Some(f), Some(t), _) => what.push(format!("{f}..{t}")),
            (_, _, Some(b)) => what.push(format!("before {b}")),
            _ => {}
        }
        if let Some(rows) = self.rows {
            what.push(format!("{rows} rows"));
        }
        if !self.sealed {
            what.push("not sealed yet".into());
        }
        format!("purge event {} ({})", self.event_id, what.join(", "))
    }
}

/// Whether this database has retention notes at all (0.1.0 has none).
pub async fn has_gap_table(tx: &Tx<'_>) -> Result<bool> {
    let row = tx
        .query_one(
            "SELECT pg_catalog.to_regclass('audit.retention_gaps') IS NOT NULL",
            &[],
        )
        .await
        .map_err(db_error("looking for audit.retention_gaps"))?;
    Ok(row.get(0))
}

/// The purge events that name notes, in chain order, with those that later drops removed
/// (carried into `audit.carried_events`: each one's canonical values, docs/integrity.md);
/// `sealed_through` is the last sealed position.
pub async fn read_purge_events(
    tx: &Tx<'_>,
    sealed_through: Option<Position>,
) -> Result<Vec<PurgeEvent>> {
    let rows = tx
        .query(
            "SELECT pg_catalog.textin(pg_catalog.xid8out(e.txid)), e.id,
                    pg_catalog.textin(pg_catalog.jsonb_out(e.details)) FROM audit.events AS e
              WHERE e.entity = $1 AND e.action = 'purge'
                AND (e.details ->> 'retention_gaps_sha256') IS NOT NULL
              ORDER BY e.txid, e.id",
            &[&audit_trail_contract::AUDIT_LOG_ENTITY],
        )
        .await
        .map_err(db_error("reading the purge events"))?;
    let sealed = |p: Position| sealed_through.is_some_and(|last| p <= last);
    let mut out: Vec<PurgeEvent> = Vec::with_capacity(rows.len());
    // Which purge event carried each removed one.
    let mut carriers: HashMap<i64, i64> = HashMap::new();
    for row in &rows {
        let position = Position {
            txid: parse_txid(row.get(0))?,
            id: row.get(1),
        };
        let details: serde_json::Value = row
            .get::<_, Option<&str>>(2)
            .and_then(|t| serde_json::from_str(t).ok())
            .unwrap_or(serde_json::Value::Null);
        for carried in details
            .get("carried_events")
            .and_then(|c| c.as_array())
            .into_iter()
            .flatten()
            .filter_map(serde_json::Value::as_i64)
        {
            carriers.insert(carried, position.id);
        }
        if let Some(event) = purge_event(position, &details) {
            out.push(PurgeEvent {
                sealed: sealed(position),
                ..event
            });
        }
    }
    let has_carried: bool = tx
        .query_one(
            "SELECT pg_catalog.to_regclass('audit.carried_events') IS NOT NULL",
            &[],
        )
        .await
        .map_err(db_error("looking for audit.carried_events"))?
        .get(0);
    if has_carried {
        let stream = tx
            .query_raw(
                "SELECT c.id, pg_catalog.textin(pg_catalog.json_out(pg_catalog.array_to_json(c.canonical)))
                   FROM ONLY audit.carried_events AS c ORDER BY c.id",
                std::iter::empty::<&(dyn tokio_postgres::types::ToSql + Sync)>(),
            )
            .await
            .map_err(db_error("reading the carried purge events"))?;
        pin_mut!(stream);
        while let Some(row) = stream
            .try_next()
            .await
            .map_err(db_error("reading the carried purge events"))?
        {
            let id: i64 = row.get(0);
            let values: Option<serde_json::Value> = row
                .get::<_, Option<&str>>(1)
                .and_then(|t| serde_json::from_str(t).ok());
            if let Some(event) = values.and_then(|v| carried_purge(&v, carriers.get(&id).copied()))
            {
                let sealed = sealed(event.position);
                out.push(PurgeEvent { sealed, ..event });
            }
        }
    }
    // Chain order, each once (an event still present is read as itself).
    out.sort_by_key(|p| (p.position, p.carried_by.is_some()));
    out.dedup_by_key(|p| p.position);
    Ok(out)
}

/// A purge event as its details describe it; None when it names no notes.
fn purge_event(position: Position, details: &serde_json::Value) -> Option<PurgeEvent> {
    let text = |key: &str| details.get(key).and_then(|v| v.as_str()).map(str::to_owned);
    let sha256 = text("retention_gaps_sha256")?;
    Some(PurgeEvent {
        event_id: position.id,
        position,
        partition: text("partition"),
        from: text("from"),
        to: text("to"),
        before: text("before"),
        rows: details.get("rows").and_then(serde_json::Value::as_i64),
        reason: text("reason"),
        archived: details.get("archived").and_then(serde_json::Value::as_bool),
        sha256,
        sealed: false,
        verified: false,
        noted_events: 0,
        seals: None,
        carried_by: None,
        carried_hash: None,
    })
}

/// A carried purge event from its canonical values (id, occurred_at, txid, ..., details, and
/// tenant when it has one): hashed as sealed, described by its details. None when the values
/// are not 17 or 18 strings or nulls, or it names no notes (it then vouches for nothing, and
/// its seal finds it missing).
fn carried_purge(values: &serde_json::Value, carrier: Option<i64>) -> Option<PurgeEvent> {
    let values: Vec<Option<String>> = serde_json::from_value(values.clone()).ok()?;
    if !(chain::V1_COLUMNS..=chain::CANONICAL_COLUMNS).contains(&values.len()) {
        return None;
    }
    let id: i64 = values[0].as_deref()?.parse().ok()?;
    let txid = chain::parse_txid(values[2].as_deref()?)?;
    let details: serde_json::Value = serde_json::from_str(values[16].as_deref()?).ok()?;
    let hash = chain::event_hash(values.iter().map(|v| v.as_deref()));
    purge_event(Position { txid, id }, &details).map(|p| PurgeEvent {
        carried_by: Some(carrier.unwrap_or(0)),
        carried_hash: Some(hash),
        ..p
    })
}

/// The combined masks of the seals in `first..=last` that have notes: of all notes, and of
/// the notes of drops that relied on an archive (their `source` is in `relied`); `events`
/// gives a seal's event count. A note that is not one bit per event of its seal is reported
/// through `malformed` (seq, source) and ignored.
pub async fn read_masks(
    tx: &Tx<'_>,
    first: i64,
    last: i64,
    relied: &std::collections::HashSet<String>,
    events: impl Fn(i64) -> Option<i64>,
    mut malformed: impl FnMut(i64, String),
) -> Result<(HashMap<i64, Mask>, HashMap<i64, Mask>)> {
    let mut masks: HashMap<i64, Mask> = HashMap::new();
    let mut relied_masks: HashMap<i64, Mask> = HashMap::new();
    for row in tx
        .query(
            "SELECT seq, source, pg_catalog.textin(pg_catalog.varbit_out(dropped))
               FROM ONLY audit.retention_gaps
              WHERE seq BETWEEN $1 AND $2",
            &[&first, &last],
        )
        .await
        .map_err(db_error("reading the retention notes"))?
    {
        let seq: i64 = row.get(0);
        let source: String = row.get(1);
        let mask = events(seq).and_then(|n| parse_mask(row.get(2), n));
        match mask {
            None => malformed(seq, source),
            Some(mask) => {
                let add = |masks: &mut HashMap<i64, Mask>, mask: Mask| {
                    let merged = match masks.remove(&seq) {
                        Some(before) => before.merge(mask),
                        None => mask,
                    };
                    masks.insert(seq, merged);
                };
                if relied.contains(&source) {
                    add(&mut relied_masks, mask.clone());
                }
                add(&mut masks, mask);
            }
        }
    }
    Ok((masks, relied_masks))
}

/// One drop's notes: the seals they name and the digest a purge event must carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub source: String,
    pub noted_at: String,
    pub first_seq: i64,
    pub last_seq: i64,
    /// Events the notes mark (NULL counts a seal's events, when the seal is known).
    pub noted_events: i64,
    pub sha256: String,
}

/// Every drop's notes, streamed in (source, noted_at, seq) order: memory is one group's
/// running digest, whatever the number of notes.
pub async fn read_groups(
    tx: &Tx<'_>,
    events: impl Fn(i64) -> Option<i64>,
    mut each: impl FnMut(Group),
) -> Result<()> {
    let stream = tx
        .query_raw(
            "SELECT source, pg_catalog.textin(pg_catalog.timestamptz_out(noted_at)), seq,
                    pg_catalog.textin(pg_catalog.varbit_out(dropped)) FROM ONLY audit.retention_gaps
              ORDER BY source, noted_at, seq",
            std::iter::empty::<&(dyn tokio_postgres::types::ToSql + Sync)>(),
        )
        .await
        .map_err(db_error("reading the retention notes"))?;
    pin_mut!(stream);
    let mut current: Option<(Group, GroupDigest)> = None;
    while let Some(row) = stream
        .try_next()
        .await
        .map_err(db_error("reading the retention notes"))?
    {
        let source: String = row.get(0);
        let noted_at: String = row.get(1);
        let seq: i64 = row.get(2);
        let dropped: Option<&str> = row.get(3);
        let same = current
            .as_ref()
            .is_some_and(|(g, _)| g.source == source && g.noted_at == noted_at);
        if !same {
            if let Some((group, digest)) = current.take() {
                each(Group {
                    sha256: digest.finish(),
                    ..group
                });
            }
            current = Some((
                Group {
                    source,
                    noted_at,
                    first_seq: seq,
                    last_seq: seq,
                    noted_events: 0,
                    sha256: String::new(),
                },
                GroupDigest::default(),
            ));
        }
        if let Some((group, digest)) = current.as_mut() {
            digest.push(seq, dropped);
            group.last_seq = seq;
            group.noted_events += match dropped {
                None => events(seq).unwrap_or(0),
                Some(bits) => bits.bytes().filter(|b| *b == b'1').count() as i64,
            };
        }
    }
    if let Some((group, digest)) = current {
        each(Group {
            sha256: digest.finish(),
            ..group
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_are_one_bit_per_event_or_all() {
        assert_eq!(parse_mask(None, 3), Some(Mask::All));
        assert_eq!(
            parse_mask(Some("010"), 3),
            Some(Mask::Bits(vec![false, true, false]))
        );
        assert_eq!(parse_mask(Some("01"), 3), None);
        assert_eq!(parse_mask(Some("012"), 3), None);
        let merged =
            Mask::Bits(vec![true, false, false]).merge(Mask::Bits(vec![false, false, true]));
        assert!(merged.marks(0) && !merged.marks(1) && merged.marks(2) && !merged.marks(3));
        assert_eq!(merged.count(3), 2);
        assert_eq!(Mask::All.merge(merged).count(3), 3);
    }

    #[test]
    fn the_group_digest_is_the_sql_string_agg_hashed() {
        let mut d = GroupDigest::default();
        d.push(3, None);
        d.push(4, Some("0110"));
        d.push(12, Some("1"));
        assert_eq!(d.finish(), hex::encode(Sha256::digest(b"3:*,4:0110,12:1")));
    }
}
