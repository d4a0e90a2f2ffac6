//! The hash chain (docs/integrity.md): how an event is encoded and hashed, how a
//! batch's hashes become a seal's head, and the signed checkpoint note. Pure functions: the
//! sidecar's `seal` and `verify` and the extension's check of every seal it stores call the
//! same ones.

use sha2::{Digest, Sha256};

pub type Hash = [u8; 32];

/// Reads every event's columns in the canonical text form, in table order
/// ([`crate::EVENT_COLUMNS`]), after its position: `txid` as text and `id`. Only built-in
/// functions, called by name and qualified: no cast. PostgreSQL turns `jsonb`, `xid8`,
/// `bigint` and arrays into text by their output functions when no cast is defined, and a
/// superuser may define one (`CREATE CAST (jsonb AS text) ...`) that lies to whichever
/// session it likes; output functions, like the built-in casts, are pinned and cannot be
/// replaced. `pg_catalog.text(inet)` is the built-in cast's function, which writes the mask
/// (`10.0.0.7/32`); `EXTRACT` is SQL syntax for `pg_catalog.extract`.
pub const SELECT_CANONICAL: &str = "SELECT pg_catalog.textin(pg_catalog.xid8out(e.txid)), e.id, \
     pg_catalog.textin(pg_catalog.int8out(e.id)), \
     pg_catalog.textin(pg_catalog.int8out(pg_catalog.int8(\
         EXTRACT(EPOCH FROM e.occurred_at) OPERATOR(pg_catalog.*) 1000000))), \
     pg_catalog.textin(pg_catalog.xid8out(e.txid)), e.actor, e.db_user, e.source, \
     pg_catalog.text(e.client_addr), e.application_name, \
     e.entity, e.action, e.table_name, e.subject_id, \
     pg_catalog.textin(pg_catalog.array_out(e.changed_fields)), \
     pg_catalog.textin(pg_catalog.jsonb_out(e.old_data)), \
     pg_catalog.textin(pg_catalog.jsonb_out(e.new_data)), \
     pg_catalog.textin(pg_catalog.jsonb_out(e.context)), \
     pg_catalog.textin(pg_catalog.jsonb_out(e.details)), e.tenant \
     FROM audit.events AS e";

/// SQL for an `xid8` column or expression as text, by its output function (see
/// [`SELECT_CANONICAL`] for why never a cast).
pub fn sql_xid8_text(expression: &str) -> String {
    format!("pg_catalog.textin(pg_catalog.xid8out({expression}))")
}

/// SQL for a text parameter (`$1`) read as `xid8`, by the type's input function.
pub fn sql_param_xid8(parameter: &str) -> String {
    format!("pg_catalog.xid8in(pg_catalog.textout({parameter}::text))")
}

/// Columns of [`SELECT_CANONICAL`] before the canonical ones.
pub const POSITION_COLUMNS: usize = 2;

/// Canonical values [`SELECT_CANONICAL`] reads: every column of `audit.events`.
pub const CANONICAL_COLUMNS: usize = crate::EVENT_COLUMNS.len();

/// Canonical values of an event encoded by version 1: the columns before `tenant`.
pub const V1_COLUMNS: usize = 17;

/// An event's place in the stream: (txid, id).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    pub txid: u64,
    pub id: i64,
}

impl Position {
    /// The start of the stream, before every event.
    pub const START: Position = Position { txid: 0, id: 0 };
}

/// A transaction id as PostgreSQL writes an `xid8`: a decimal 64-bit number. The one reading
/// of a txid's text: the sidecar's `db::parse_txid` only turns its None into an error that
/// names the database, and checkpoints read their `last` line with it.
pub fn parse_txid(text: &str) -> Option<u64> {
    text.parse().ok()
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "txid {}, id {}", self.txid, self.id)
    }
}

/// SHA-256 of the canonical encoding of one event: its values in table order, the 17 of
/// version 1 or all 18 (with `tenant`). An event without an organization is encoded by
/// version 1, exactly as before organizations existed, so that every event sealed then
/// still verifies; one with an organization by version 2, whose different first line keeps
/// the two encodings apart (docs/integrity.md).
pub fn event_hash<'a>(columns: impl IntoIterator<Item = Option<&'a str>>) -> Hash {
    let mut values: Vec<Option<&str>> = columns.into_iter().collect();
    let version: &[u8] =
        if values.len() > V1_COLUMNS && values[V1_COLUMNS..].iter().any(Option::is_some) {
            b"audit_trail event v2\n"
        } else {
            values.truncate(V1_COLUMNS);
            b"audit_trail event v1\n"
        };
    let mut h = Sha256::new();
    h.update(version);
    for value in values {
        match value {
            None => h.update([0u8]),
            Some(v) => {
                h.update([1u8]);
                h.update((v.len() as u64).to_be_bytes());
                h.update(v.as_bytes());
            }
        }
    }
    h.finalize().into()
}

/// The root of one batch: its event hashes, in order.
pub fn batch_root(hashes: &[Hash]) -> Hash {
    let mut h = Sha256::new();
    h.update(b"audit_trail batch v1\n");
    for hash in hashes {
        h.update(hash);
    }
    h.finalize().into()
}

/// The chain's head after a batch.
pub fn next_head(prev: &Hash, root: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update(b"audit_trail chain v1\n");
    h.update(prev);
    h.update(root);
    h.finalize().into()
}

/// The digest an archive of a partition is bound to: SHA-256 of a header and the hashes of
/// the partition's events in the order the archive writes them, `(occurred_at, id)`. The
/// archive command computes it from the rows it wrote, the database from the partition
/// (`audit.events_digest`), and `audit.record_archive` records an archive only when the
/// two agree. Fed one hash at a time: memory is constant whatever the partition's size.
#[derive(Clone)]
pub struct ArchiveDigest(Sha256);

impl ArchiveDigest {
    pub fn new() -> ArchiveDigest {
        let mut h = Sha256::new();
        h.update(b"audit_trail archive v1\n");
        ArchiveDigest(h)
    }

    pub fn push(&mut self, hash: &Hash) {
        self.0.update(hash);
    }

    pub fn finish_hex(self) -> String {
        hex::encode(self.0.finalize())
    }
}

impl Default for ArchiveDigest {
    fn default() -> Self {
        ArchiveDigest::new()
    }
}

/// Bytes of one event's entry in a seal's digests.
pub const DIGEST_LEN: usize = 24;

/// One event's entry in a seal's digests: txid, id, the first 8 bytes of its hash.
pub fn digest_entry(position: Position, hash: &Hash) -> [u8; DIGEST_LEN] {
    let mut out = [0u8; DIGEST_LEN];
    out[..8].copy_from_slice(&position.txid.to_be_bytes());
    out[8..16].copy_from_slice(&position.id.to_be_bytes());
    out[16..].copy_from_slice(&hash[..8]);
    out
}

/// The entries of a seal's digests; None if its length is not a whole number of entries.
pub fn parse_digests(digests: &[u8]) -> Option<Vec<(Position, [u8; 8])>> {
    if !digests.len().is_multiple_of(DIGEST_LEN) {
        return None;
    }
    Some(
        digests
            .chunks_exact(DIGEST_LEN)
            .map(|c| {
                let mut txid = [0u8; 8];
                let mut id = [0u8; 8];
                let mut short = [0u8; 8];
                txid.copy_from_slice(&c[..8]);
                id.copy_from_slice(&c[8..16]);
                short.copy_from_slice(&c[16..]);
                (
                    Position {
                        txid: u64::from_be_bytes(txid),
                        id: i64::from_be_bytes(id),
                    },
                    short,
                )
            })
            .collect(),
    )
}

/// The signed part of a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub database: String,
    pub seq: i64,
    pub last: Position,
    pub events: i64,
    pub total: i64,
    pub batch_root: Hash,
    pub digests_sha: Hash,
    pub prev: Hash,
    pub head: Hash,
    /// RFC 3339 UTC, seconds.
    pub time: String,
}

const NOTE_HEADER: &str = "audit_trail checkpoint v1";

impl Checkpoint {
    /// The body the signature covers, ending with a newline.
    pub fn body(&self) -> String {
        format!(
            "{NOTE_HEADER}\ndatabase {}\nseq {}\nlast {} {}\nevents {} {}\nbatch {}\ndigests {}\nprev {}\nhead {}\ntime {}\n",
            self.database,
            self.seq,
            self.last.txid,
            self.last.id,
            self.events,
            self.total,
            hex::encode(self.batch_root),
            hex::encode(self.digests_sha),
            hex::encode(self.prev),
            hex::encode(self.head),
            self.time
        )
    }

    /// Reads a body back; None when it is not exactly a version 1 body.
    pub fn parse(body: &str) -> Option<Checkpoint> {
        let mut lines = body.strip_suffix('\n')?.split('\n');
        if lines.next()? != NOTE_HEADER {
            return None;
        }
        let mut field = |name: &str| -> Option<String> {
            lines
                .next()?
                .strip_prefix(name)?
                .strip_prefix(' ')
                .map(str::to_owned)
        };
        let hash = |text: String| -> Option<Hash> { hex::decode(text).ok()?.try_into().ok() };
        let database = field("database")?;
        let seq = field("seq")?.parse().ok()?;
        let last = field("last")?;
        let (txid, id) = last.split_once(' ')?;
        let events = field("events")?;
        let (events, total) = events.split_once(' ')?;
        let checkpoint = Checkpoint {
            database,
            seq,
            last: Position {
                txid: parse_txid(txid)?,
                id: id.parse().ok()?,
            },
            events: events.parse().ok()?,
            total: total.parse().ok()?,
            batch_root: hash(field("batch")?)?,
            digests_sha: hash(field("digests")?)?,
            prev: hash(field("prev")?)?,
            head: hash(field("head")?)?,
            time: field("time")?,
        };
        // Exactly the body it was written as: nothing added, nothing reformatted.
        (lines.next().is_none() && checkpoint.body() == body).then_some(checkpoint)
    }
}

/// A checkpoint with its signature, as stored in a checkpoint file.
pub fn note(body: &str, key_id: &str, signature: &[u8; 64]) -> String {
    format!("{body}\n\u{2014} {key_id} {}\n", hex::encode(signature))
}

/// A checkpoint file's body, key id and signature.
pub fn parse_note(text: &str) -> Option<(String, String, [u8; 64])> {
    let (body, signature_line) = text.split_once("\n\n")?;
    let line = signature_line.strip_suffix('\n')?;
    let rest = line.strip_prefix("\u{2014} ")?;
    let (key_id, signature) = rest.split_once(' ')?;
    let signature: [u8; 64] = hex::decode(signature).ok()?.try_into().ok()?;
    Some((format!("{body}\n"), key_id.to_owned(), signature))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Checkpoint {
        Checkpoint {
            database: "crm".into(),
            seq: 3,
            last: Position { txid: 812, id: 40 },
            events: 10,
            total: 30,
            batch_root: [1; 32],
            digests_sha: [2; 32],
            prev: [3; 32],
            head: [4; 32],
            time: "2026-12-01T12:00:00Z".into(),
        }
    }

    #[test]
    fn checkpoints_round_trip_exactly() {
        let c = sample();
        let body = c.body();
        assert_eq!(Checkpoint::parse(&body), Some(c));
        assert_eq!(Checkpoint::parse(&body.replace("seq 3", "seq 03")), None);
        assert_eq!(Checkpoint::parse(&format!("{body}extra\n")), None);
        let note = note(&body, "0123456789abcdef", &[7; 64]);
        let (b, key, sig) = parse_note(&note).unwrap();
        assert_eq!(
            (b.as_str(), key.as_str(), sig),
            (body.as_str(), "0123456789abcdef", [7; 64])
        );
    }

    #[test]
    fn the_encoding_tells_null_from_empty_and_moves_between_columns() {
        let a = event_hash([Some("a"), None, Some("")]);
        assert_ne!(a, event_hash([Some("a"), Some(""), None]));
        assert_ne!(
            event_hash([Some("ab"), Some("c")]),
            event_hash([Some("a"), Some("bc")])
        );
        assert_eq!(a, event_hash([Some("a"), None, Some("")]));
    }

    #[test]
    fn an_event_without_an_organization_hashes_as_version_one_did() {
        let v1: Vec<Option<&str>> = (0..V1_COLUMNS).map(|_| Some("x")).collect();
        let mut without = v1.clone();
        without.push(None);
        assert_eq!(event_hash(v1.clone()), event_hash(without));
        let mut with = v1.clone();
        with.push(Some("acme"));
        let mut other = v1.clone();
        other.push(Some("globex"));
        assert_ne!(event_hash(v1.clone()), event_hash(with.clone()));
        assert_ne!(event_hash(with), event_hash(other));
        // Version 2's first line: an organization cannot pass as a version 1 value.
        let mut empty = v1;
        empty.push(Some(""));
        assert_ne!(
            event_hash(empty.clone()),
            event_hash(empty[..V1_COLUMNS].to_vec())
        );
    }

    #[test]
    fn digests_round_trip() {
        let p = Position {
            txid: u64::MAX - 1,
            id: -5,
        };
        let e = digest_entry(p, &[9; 32]);
        assert_eq!(parse_digests(&e), Some(vec![(p, [9; 8])]));
        assert_eq!(parse_digests(&e[..23]), None);
    }

    #[test]
    fn the_head_depends_on_order_and_on_the_previous_head() {
        let (x, y) = ([1u8; 32], [2u8; 32]);
        assert_ne!(batch_root(&[x, y]), batch_root(&[y, x]));
        let root = batch_root(&[x]);
        assert_ne!(next_head(&[0; 32], &root), next_head(&[5; 32], &root));
    }
}
