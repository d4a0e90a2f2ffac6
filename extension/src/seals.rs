//! The hash chain inside the database (docs/integrity.md). A seal enters `audit.seals` only
//! through `audit.add_seal`, which recomputes it from the events it covers first, so no role
//! can store one that is not the next link of the chain (a junk seal at the top of the
//! `xid8` range would otherwise stop sealing for good). `audit.events_digest` is the digest
//! of a partition's events that an archive record is bound to. `audit.canonical_events`
//! gives events in the canonical encoding, for records that must outlive the events they
//! copy (a purge event carried into the purge that drops it).
//!
//! The encoding, the hashes and the checkpoint note are the contract crate's, the very code
//! `audit-trail seal` and `verify` run.

use ed25519_dalek::{Signature, VerifyingKey};
use pgrx::datum::DatumWithOid;
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::spi::{SpiClient, SpiHeapTupleData};
use sha2::{Digest, Sha256};

use audit_trail_contract::chain::{
    self, ArchiveDigest, Checkpoint, Hash, Position, POSITION_COLUMNS, SELECT_CANONICAL,
};
use audit_trail_contract::EVENT_COLUMNS;

use crate::error::{AuditError, Result};
use crate::pg::args;
use crate::pg::ffi::sql_callable;

sql_callable!(audit_add_seal, pg_finfo_audit_add_seal => add_seal_entry);
sql_callable!(audit_events_digest, pg_finfo_audit_events_digest => events_digest_entry);
sql_callable!(
    audit_canonical_events,
    pg_finfo_audit_canonical_events => canonical_events_entry
);

/// Events read from a cursor at a time: memory holds one such chunk, never a whole batch or
/// partition.
const CHUNK: i64 = 1000;

unsafe fn add_seal_entry(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: the SQL signature is (text, text, bytea, bytea).
    let (checkpoint, key_id, signature, digests) = unsafe {
        (
            args::text(fcinfo, 0).unwrap_or_default(),
            args::text(fcinfo, 1).unwrap_or_default(),
            args::bytea(fcinfo, 2).unwrap_or_default(),
            args::bytea(fcinfo, 3).unwrap_or_default(),
        )
    };
    match add_seal(&checkpoint, &key_id, &signature, &digests) {
        Ok(seq) => pg_sys::Datum::from(seq),
        Err(e) => e.raise(),
    }
}

unsafe fn events_digest_entry(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    use pgrx::IntoDatum;
    // SAFETY: the SQL signature is (regclass), STRICT.
    let part = unsafe { args::datum(fcinfo, 0) }.map(|d| pg_sys::Oid::from(d.value() as u32));
    let Some(part) = part else {
        return pg_sys::Datum::from(0);
    };
    match events_digest(part) {
        Ok(digest) => digest.into_datum().unwrap_or(pg_sys::Datum::from(0)),
        Err(e) => e.raise(),
    }
}

unsafe fn canonical_events_entry(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    use pgrx::IntoDatum;
    // SAFETY: the SQL signature is (regclass, text, text, timestamptz), STRICT.
    let (part, entity, action, before) = unsafe {
        (
            args::datum(fcinfo, 0).map(|d| pg_sys::Oid::from(d.value() as u32)),
            args::text(fcinfo, 1).unwrap_or_default(),
            args::text(fcinfo, 2).unwrap_or_default(),
            args::datum(fcinfo, 3),
        )
    };
    let (Some(part), Some(before)) = (part, before) else {
        return pg_sys::Datum::from(0);
    };
    match canonical_events(part, &entity, &action, before) {
        Ok(rows) => pgrx::JsonB(rows)
            .into_datum()
            .unwrap_or(pg_sys::Datum::from(0)),
        Err(e) => e.raise(),
    }
}

fn refused(why: impl Into<String>) -> AuditError {
    AuditError::SealRefused(why.into())
}

fn text_arg(value: &str) -> DatumWithOid<'_> {
    value.into()
}

/// The qualified name of a relation of the audit schema, for the queries below.
fn relation_name(client: &SpiClient<'_>, relid: pg_sys::Oid) -> Result<String> {
    // SAFETY: an oid is a valid regclass datum.
    let arg = unsafe { DatumWithOid::new(relid, pg_sys::REGCLASSOID) };
    client
        .select(
            "SELECT pg_catalog.format('%I.%I', n.nspname, c.relname)
               FROM pg_catalog.pg_class AS c
               JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
              WHERE c.oid = $1 AND n.nspname = 'audit'",
            None,
            &[arg],
        )?
        .first()
        .get_one::<String>()?
        .ok_or_else(|| refused(format!("relation {relid:?} is not part of the audit log")))
}

/// The canonical values (every column) of the current row of a cursor over [`SELECT_CANONICAL`].
fn canonical_values(row: &SpiHeapTupleData<'_>) -> Result<(Position, Vec<Option<String>>)> {
    let txid = row
        .get::<String>(1)?
        .and_then(|t| chain::parse_txid(&t))
        .ok_or_else(|| refused("an event without a txid"))?;
    let id = row
        .get::<i64>(2)?
        .ok_or_else(|| refused("an event without an id"))?;
    let mut values = Vec::with_capacity(EVENT_COLUMNS.len());
    for k in 0..EVENT_COLUMNS.len() {
        values.push(row.get::<String>(POSITION_COLUMNS + k + 1)?);
    }
    Ok((Position { txid, id }, values))
}

/// Frees the chunk a cursor fetched last, once its rows are read: SPI keeps every fetched
/// table until the function returns, and a partition can hold millions of events.
fn free_last_chunk() {
    // SAFETY: SPI_tuptable is the table of the last fetch, whose rows (iterated by value)
    // are gone; nothing refers to it any longer.
    unsafe {
        if !pg_sys::SPI_tuptable.is_null() {
            pg_sys::SPI_freetuptable(pg_sys::SPI_tuptable);
            pg_sys::SPI_tuptable = std::ptr::null_mut();
        }
    }
}

/// Checks a seal the sealer signed against the chain and the events, then stores it.
/// Returns its sequence number.
fn add_seal(body: &str, key_id: &str, signature: &[u8], digests: &[u8]) -> Result<i64> {
    let checkpoint = Checkpoint::parse(body)
        .ok_or_else(|| refused("the checkpoint is not a version 1 checkpoint body"))?;
    let signature: [u8; 64] = signature
        .try_into()
        .map_err(|_| refused("the signature is not 64 bytes"))?;
    let entries = chain::parse_digests(digests)
        .filter(|e| !e.is_empty())
        .ok_or_else(|| refused("the digests are not whole 24-byte entries"))?;
    if entries.windows(2).any(|w| w[0].0 >= w[1].0) {
        return Err(refused(
            "the digests do not list positions in strictly increasing order",
        ));
    }
    Spi::connect_mut(|client| -> Result<i64> {
        let database = client
            .select("SELECT pg_catalog.current_database()::text", None, &[])?
            .first()
            .get_one::<String>()?
            .unwrap_or_default();
        if checkpoint.database != database {
            return Err(refused(format!(
                "the checkpoint names database {:?}, this is {database:?}",
                checkpoint.database
            )));
        }
        let public = client
            .select(
                "SELECT public_key FROM ONLY audit.seal_keys WHERE key_id = $1",
                None,
                &[text_arg(key_id)],
            )?
            .first()
            .get_one::<Vec<u8>>()?
            .ok_or_else(|| {
                refused(format!(
                    "key {key_id} is not registered (audit.register_seal_key)"
                ))
            })?;
        let public: [u8; 32] = public
            .try_into()
            .map_err(|_| refused(format!("the registered key {key_id} is not 32 bytes")))?;
        let key = VerifyingKey::from_bytes(&public)
            .map_err(|_| refused(format!("the registered key {key_id} is not an Ed25519 key")))?;
        key.verify_strict(body.as_bytes(), &Signature::from_bytes(&signature))
            .map_err(|_| refused(format!("the signature is not key {key_id}'s")))?;

        // The link before it.
        let last = client.select(
            "SELECT seq, pg_catalog.textin(pg_catalog.xid8out(last_txid)), last_id, total, head
               FROM ONLY audit.seals ORDER BY seq DESC LIMIT 1",
            None,
            &[],
        )?;
        let (seq, from, total, prev): (i64, Position, i64, Hash) = if last.is_empty() {
            (1, Position::START, 0, [0; 32])
        } else {
            let row = last.first();
            let head: Vec<u8> = row.get(5)?.unwrap_or_default();
            (
                row.get::<i64>(1)?.unwrap_or(0) + 1,
                Position {
                    txid: row
                        .get::<String>(2)?
                        .and_then(|t| chain::parse_txid(&t))
                        .unwrap_or(0),
                    id: row.get::<i64>(3)?.unwrap_or(0),
                },
                row.get::<i64>(4)?.unwrap_or(0),
                head.try_into()
                    .map_err(|_| refused("the last seal's head is not 32 bytes"))?,
            )
        };
        if seq == i64::MAX || checkpoint.seq != seq {
            return Err(refused(format!(
                "seal {} is not the next one: the next is {seq}",
                checkpoint.seq
            )));
        }
        if checkpoint.prev != prev {
            return Err(refused(format!(
                "seal {seq} does not chain to seal {}'s head",
                seq - 1
            )));
        }
        let events = entries.len() as i64;
        if checkpoint.events != events || checkpoint.total != total + events {
            return Err(refused(format!(
                "seal {seq} counts {} events ({} in all), its digests {events} ({} in all)",
                checkpoint.events,
                checkpoint.total,
                total + events
            )));
        }
        let digests_sha: Hash = Sha256::digest(digests).into();
        if checkpoint.digests_sha != digests_sha {
            return Err(refused(format!(
                "seal {seq}'s digests are not the ones its checkpoint signs"
            )));
        }
        let (first, _) = entries[0];
        let (last_position, _) = entries[entries.len() - 1];
        if last_position != checkpoint.last || first <= from {
            return Err(refused(format!(
                "seal {seq} must cover the events after {from} through {}",
                checkpoint.last
            )));
        }
        // Only what no transaction can still add to: the stream's watermark.
        let watermark = client
            .select(
                "SELECT pg_catalog.textin(pg_catalog.xid8out(
                     pg_catalog.pg_snapshot_xmin(pg_catalog.pg_current_snapshot())))",
                None,
                &[],
            )?
            .first()
            .get_one::<String>()?
            .and_then(|t| chain::parse_txid(&t))
            .unwrap_or(0);
        if checkpoint.last.txid >= watermark {
            return Err(refused(format!(
                "seal {seq} reaches txid {}, where transactions may still commit (below {watermark} only)",
                checkpoint.last.txid
            )));
        }

        // The events themselves, in chain order, each against its digest entry.
        let query = format!(
            "{SELECT_CANONICAL}
              WHERE (e.txid, e.id) > ({}, $2) AND (e.txid, e.id) <= ({}, $4)
              ORDER BY e.txid, e.id",
            chain::sql_param_xid8("$1"),
            chain::sql_param_xid8("$3")
        );
        let (from_txid, last_txid) = (from.txid.to_string(), checkpoint.last.txid.to_string());
        let params = [
            text_arg(&from_txid),
            from.id.into(),
            text_arg(&last_txid),
            checkpoint.last.id.into(),
        ];
        let mut cursor = client.try_open_cursor(query.as_str(), &params)?;
        let mut hashes: Vec<Hash> = Vec::with_capacity(entries.len());
        loop {
            let chunk = cursor.fetch(CHUNK)?;
            if chunk.is_empty() {
                break;
            }
            for row in chunk {
                let (position, values) = canonical_values(&row)?;
                let hash = chain::event_hash(values.iter().map(|v| v.as_deref()));
                let k = hashes.len();
                match entries.get(k) {
                    Some((p, short)) if *p == position && hash[..8] == short[..] => {}
                    Some((p, _)) if *p == position => {
                        return Err(refused(format!(
                            "seal {seq} lists event {} with another hash than it has",
                            position.id
                        )))
                    }
                    _ => {
                        return Err(refused(format!(
                        "seal {seq} does not list event {} ({position}), which lies in its range",
                        position.id
                    )))
                    }
                }
                hashes.push(hash);
            }
            free_last_chunk();
        }
        drop(cursor);
        if hashes.len() != entries.len() {
            let (missing, _) = entries[hashes.len()];
            return Err(refused(format!(
                "seal {seq} lists event {} ({missing}), which audit.events does not hold",
                missing.id
            )));
        }
        let root = chain::batch_root(&hashes);
        if checkpoint.batch_root != root || checkpoint.head != chain::next_head(&prev, &root) {
            return Err(refused(format!(
                "seal {seq}'s batch root or head is not what its events hash to"
            )));
        }

        let (first_txid, last_txid) = (first.txid.to_string(), checkpoint.last.txid.to_string());
        client.update(
            "INSERT INTO audit.seals (seq, first_txid, first_id, last_txid, last_id, events,
                                      total, prev_head, batch_root, head, digests, key_id,
                                      checkpoint, signature)
             VALUES ($1, pg_catalog.xid8in(pg_catalog.textout($2::text)), $3,
                     pg_catalog.xid8in(pg_catalog.textout($4::text)), $5, $6, $7, $8, $9, $10, $11,
                     $12, $13, $14)",
            None,
            &[
                seq.into(),
                text_arg(&first_txid),
                first.id.into(),
                text_arg(&last_txid),
                checkpoint.last.id.into(),
                (events as i32).into(),
                checkpoint.total.into(),
                prev.as_slice().into(),
                root.as_slice().into(),
                checkpoint.head.as_slice().into(),
                digests.into(),
                text_arg(key_id),
                text_arg(body),
                signature.as_slice().into(),
            ],
        )?;
        Ok(seq)
    })
}

/// The digest an archive of partition `part` is bound to ([`ArchiveDigest`]): its events'
/// hashes in the order the archive writes them, `(occurred_at, id)`.
fn events_digest(part: pg_sys::Oid) -> Result<String> {
    Spi::connect(|client| -> Result<String> {
        let relation = relation_name(client, part)?;
        // The canonical query reads audit.events; its partition is read the same way.
        let query = format!(
            "{} ORDER BY e.occurred_at, e.id",
            SELECT_CANONICAL.replace("FROM audit.events AS e", &format!("FROM {relation} AS e"))
        );
        let mut digest = ArchiveDigest::new();
        let mut cursor = client.try_open_cursor(query.as_str(), &[])?;
        loop {
            let chunk = cursor.fetch(CHUNK)?;
            if chunk.is_empty() {
                break;
            }
            for row in chunk {
                let (_, values) = canonical_values(&row)?;
                digest.push(&chain::event_hash(values.iter().map(|v| v.as_deref())));
            }
            free_last_chunk();
        }
        Ok(digest.finish_hex())
    })
}

/// The events of `part` with this entity and action that occurred before `before`, each as
/// its canonical values (a JSON array of strings and nulls, 17 without an organization),
/// in chain order.
fn canonical_events(
    part: pg_sys::Oid,
    entity: &str,
    action: &str,
    before: pg_sys::Datum,
) -> Result<serde_json::Value> {
    Spi::connect(|client| -> Result<serde_json::Value> {
        let relation = relation_name(client, part)?;
        let query = format!(
            "{} WHERE e.entity = $1 AND e.action = $2 AND e.occurred_at < $3 ORDER BY e.txid, e.id",
            SELECT_CANONICAL.replace("FROM audit.events AS e", &format!("FROM {relation} AS e"))
        );
        // SAFETY: the argument is a timestamptz, as the oid says.
        let before = unsafe { DatumWithOid::new(before, pg_sys::TIMESTAMPTZOID) };
        let mut out = Vec::new();
        for row in client.select(
            query.as_str(),
            None,
            &[text_arg(entity), text_arg(action), before],
        )? {
            let (_, mut values) = canonical_values(&row)?;
            // Without an organization, the 17 values of version 1 (chain::event_hash).
            if values[chain::V1_COLUMNS..].iter().all(Option::is_none) {
                values.truncate(chain::V1_COLUMNS);
            }
            out.push(serde_json::Value::from(values));
        }
        Ok(serde_json::Value::Array(out))
    })
}
