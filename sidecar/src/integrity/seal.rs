//! `audit-trail seal`: extends the hash chain over committed events, batch by batch, signing
//! each seal with the operator's key and writing it as a checkpoint file too.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use ed25519_dalek::{Signer, SigningKey};
use sha2::{Digest, Sha256};
use tokio_postgres::{Client, IsolationLevel};

use super::{checkpoint_files, keys};
use crate::db::{self, parse_txid};
use crate::error::{Error, Result};
use audit_trail_contract::chain::{
    self, Checkpoint, Hash, Position, POSITION_COLUMNS, SELECT_CANONICAL,
};

#[derive(Debug, Args)]
pub struct SealArgs {
    /// The secret key file written by `audit-trail keygen` (never stored in the database).
    #[arg(long, value_name = "KEYFILE", required_unless_present = "status")]
    pub key: Option<PathBuf>,
    /// Directory to append each seal's signed checkpoint to (ship it to write-once storage).
    #[arg(long, value_name = "DIR", required_unless_present = "status")]
    pub checkpoints: Option<PathBuf>,
    /// Seal what is ready, then exit (default: keep sealing every --interval).
    #[arg(long)]
    pub once: bool,
    /// Seconds between sealing rounds when running as a service.
    #[arg(long, value_name = "SECONDS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub interval: u64,
    /// Events per seal at most.
    #[arg(long, value_name = "N", default_value_t = 10_000,
          value_parser = clap::value_parser!(i64).range(1..=100_000))]
    pub batch: i64,
    /// Show how far the log is sealed (audit.integrity), then exit.
    #[arg(long)]
    pub status: bool,
}

const APPLICATION_NAME: &str = "audit-trail seal";
/// The stream's watermark (as `follow`): every transaction older than it has ended.
const WATERMARK: &str = "pg_catalog.pg_snapshot_xmin(pg_catalog.pg_current_snapshot())";

pub async fn run(db_arg: Option<&str>, args: SealArgs) -> Result<()> {
    let target = db::resolve(db_arg, APPLICATION_NAME)?;
    if args.status {
        let client = db::connect(&target).await?;
        db::require_audit_admin(&client).await?;
        return status(&client).await;
    }
    let (Some(keyfile), Some(dir)) = (&args.key, &args.checkpoints) else {
        return Err(Error::Usage(
            "seal needs --key KEYFILE and --checkpoints DIR".into(),
        ));
    };
    let key = keys::read_secret(keyfile)?;
    check_directory(dir)?;
    let mut client = db::connect(&target).await?;
    db::require_audit_admin(&client).await?;
    db::require_audit_service(&client).await?;
    if db::in_recovery(&client).await? {
        return Err(Error::Usage(
            "--db is a read-only hot standby: seal writes seals, point it at the primary".into(),
        ));
    }
    let key_id = register(&client, &key).await?;
    let database: String = client
        .query_one("SELECT pg_catalog.current_database()::text", &[])
        .await
        .map_err(|e| Error::database("reading the database name", &e))?
        .get(0);
    let sealer = Sealer {
        key,
        key_id,
        database,
        dir: dir.clone(),
        batch: args.batch,
    };
    loop {
        sealer.backfill_checkpoints(&client).await?;
        let mut sealed = 0;
        while let Some(checkpoint) = sealer.seal_batch(&mut client).await? {
            sealed += checkpoint.events;
            if checkpoint.events < args.batch {
                break;
            }
        }
        if sealed > 0 {
            tracing::info!(events = sealed, "sealed");
        }
        if args.once {
            return Ok(());
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(args.interval)) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}

/// The directory must exist and take files: refused up front rather than after sealing.
fn check_directory(dir: &Path) -> Result<()> {
    let meta = std::fs::metadata(dir).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => Error::Usage(format!(
            "--checkpoints: {} does not exist (create it, on storage the database cannot reach)",
            dir.display()
        )),
        _ => Error::File {
            path: dir.to_owned(),
            source,
        },
    })?;
    if !meta.is_dir() {
        return Err(Error::Usage(format!(
            "--checkpoints: {} is not a directory",
            dir.display()
        )));
    }
    let probe = dir.join(".audit-trail-write-test");
    std::fs::write(&probe, b"")
        .and_then(|()| std::fs::remove_file(&probe))
        .map_err(|source| Error::File {
            path: dir.to_owned(),
            source,
        })
}

/// The key id of this key, which must be registered in the database: by a superuser, once
/// (`audit.register_seal_key`, which records it). A superuser running `seal` registers it
/// itself; any other role is told how (exit 2).
async fn register(client: &Client, key: &SigningKey) -> Result<String> {
    let public = key.verifying_key();
    let key_id = keys::key_id(&public);
    let row = client
        .query_one(
            "SELECT (SELECT k.public_key FROM ONLY audit.seal_keys AS k WHERE k.key_id = $1),
                    (SELECT r.rolsuper FROM pg_catalog.pg_roles AS r
                      WHERE r.rolname OPERATOR(pg_catalog.=) current_user)",
            &[&key_id],
        )
        .await
        .map_err(|e| Error::database("reading the registered keys", &e))?;
    let stored: Option<Vec<u8>> = row.get(0);
    let superuser: bool = row.get::<_, Option<bool>>(1).unwrap_or(false);
    match stored {
        Some(stored) if stored == public.as_bytes() => Ok(key_id),
        Some(_) => Err(Error::Integrity(format!(
            "the database holds another public key under key id {key_id}"
        ))),
        None if superuser => {
            client
                .execute(
                    "SELECT audit.register_seal_key($1)",
                    &[&public.as_bytes().as_slice()],
                )
                .await
                .map_err(|e| Error::database("registering the public key", &e))?;
            Ok(key_id)
        }
        None => Err(Error::Usage(format!(
            "key {key_id} is not registered in this database: a superuser registers it once, with \
             SELECT audit.register_seal_key('\\x{}')",
            hex::encode(public.as_bytes())
        ))),
    }
}

struct Sealer {
    key: SigningKey,
    key_id: String,
    database: String,
    dir: PathBuf,
    batch: i64,
}

fn hash_from(bytes: &[u8], what: &str) -> Result<Hash> {
    bytes
        .try_into()
        .map_err(|_| Error::Integrity(format!("{what} is not a 32-byte hash")))
}

impl Sealer {
    /// Seals the next batch of committed events, if any, in one transaction.
    async fn seal_batch(&self, client: &mut Client) -> Result<Option<Checkpoint>> {
        let db_error = |doing| move |e: tokio_postgres::Error| Error::database(doing, &e);
        let tx = client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .start()
            .await
            .map_err(db_error("starting a seal"))?;
        // One sealer at a time, through a lock only the product's services can take (a
        // sealer that just finished may still be ending its transaction: wait a little).
        let taken: bool = tx
            .query_one("SELECT audit.take_service_lock('seal')", &[])
            .await
            .map_err(db_error("taking the sealer's lock"))?
            .get(0);
        if !taken {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let taken: bool = tx
                .query_one("SELECT audit.take_service_lock('seal')", &[])
                .await
                .map_err(db_error("taking the sealer's lock"))?
                .get(0);
            if !taken {
                return Err(Error::Busy(
                    "another audit-trail seal is sealing this database".into(),
                ));
            }
        }
        let last = tx
            .query_opt(
                &format!(
                    "SELECT seq, {}, last_id, total, head FROM ONLY audit.seals
                      ORDER BY seq DESC LIMIT 1",
                    chain::sql_xid8_text("last_txid")
                ),
                &[],
            )
            .await
            .map_err(db_error("reading the last seal"))?;
        let (seq, from, total, prev) = match &last {
            None => (1, Position { txid: 0, id: 0 }, 0, [0u8; 32]),
            Some(row) => (
                row.get::<_, i64>(0).checked_add(1).ok_or_else(|| {
                    Error::Integrity("the last seal's number is the largest there is".into())
                })?,
                Position {
                    txid: parse_txid(row.get(1))?,
                    id: row.get(2),
                },
                row.get::<_, i64>(3),
                hash_from(row.get(4), "the last seal's head")?,
            ),
        };
        let rows = tx
            .query(
                &format!(
                    "{SELECT_CANONICAL}
                      WHERE (e.txid, e.id) > ({}, $2) AND e.txid < {WATERMARK}
                      ORDER BY e.txid, e.id
                      LIMIT $3",
                    chain::sql_param_xid8("$1")
                ),
                &[&from.txid.to_string(), &from.id, &self.batch],
            )
            .await
            .map_err(db_error("reading events to seal"))?;
        if rows.is_empty() {
            // Ended here, not by dropping it: the lock must be free when this process exits.
            tx.commit().await.map_err(db_error("ending a seal"))?;
            return Ok(None);
        }
        let mut hashes = Vec::with_capacity(rows.len());
        let mut digests = Vec::with_capacity(rows.len() * chain::DIGEST_LEN);
        let mut position = from;
        for row in &rows {
            position = Position {
                txid: parse_txid(row.get(0))?,
                id: row.get(1),
            };
            let hash = chain::event_hash(
                (POSITION_COLUMNS..POSITION_COLUMNS + chain::CANONICAL_COLUMNS)
                    .map(|i| row.get::<_, Option<&str>>(i)),
            );
            digests.extend_from_slice(&chain::digest_entry(position, &hash));
            hashes.push(hash);
        }
        let root = chain::batch_root(&hashes);
        let events = rows.len() as i64;
        let checkpoint = Checkpoint {
            database: self.database.clone(),
            seq,
            last: position,
            events,
            total: total + events,
            batch_root: root,
            digests_sha: Sha256::digest(&digests).into(),
            prev,
            head: chain::next_head(&prev, &root),
            time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        };
        let body = checkpoint.body();
        let signature = self.key.sign(body.as_bytes()).to_bytes();
        // The database checks the seal against the events and the chain before it stores it.
        tx.execute(
            "SELECT audit.add_seal($1, $2, $3, $4)",
            &[&body, &self.key_id, &signature.as_slice(), &digests],
        )
        .await
        .map_err(db_error("storing the seal"))?;
        tx.commit().await.map_err(db_error("committing the seal"))?;
        // After the commit: a checkpoint file always names a seal that exists. A crash in
        // between leaves the file to backfill_checkpoints on the next run.
        self.write_checkpoint(seq, &body, &signature)?;
        Ok(Some(checkpoint))
    }

    fn write_checkpoint(&self, seq: i64, body: &str, signature: &[u8; 64]) -> Result<()> {
        let path = checkpoint_files::path(&self.dir, seq);
        let file_error = |source| Error::File {
            path: path.clone(),
            source,
        };
        let mut temp = tempfile::NamedTempFile::new_in(&self.dir).map_err(file_error)?;
        temp.write_all(chain::note(body, &self.key_id, signature).as_bytes())
            .and_then(|()| temp.as_file().sync_all())
            .map_err(file_error)?;
        // Never replace a checkpoint: one that exists is evidence.
        temp.persist_noclobber(&path)
            .map_err(|e| file_error(e.error))?;
        std::fs::File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(file_error)
    }

    /// Writes the files of this key's seals that the directory lacks (a run stopped between
    /// committing a seal and writing its file).
    async fn backfill_checkpoints(&self, client: &Client) -> Result<()> {
        let rows = client
            .query(
                "SELECT seq, checkpoint, signature FROM audit.seals
                  WHERE key_id = $1 ORDER BY seq DESC LIMIT 100",
                &[&self.key_id],
            )
            .await
            .map_err(|e| Error::database("reading recent seals", &e))?;
        for row in rows {
            let seq: i64 = row.get(0);
            if checkpoint_files::path(&self.dir, seq).exists() {
                break;
            }
            let body: String = row.get(1);
            // A file is named by the seal it holds: the body's own number, not the row's.
            if chain::Checkpoint::parse(&body).map(|c| c.seq) != Some(seq) {
                continue;
            }
            let signature: [u8; 64] = row
                .get::<_, &[u8]>(2)
                .try_into()
                .map_err(|_| Error::Integrity(format!("seal {seq} has a malformed signature")))?;
            // Only what this key really signed goes to the directory.
            let verifying = self.key.verifying_key();
            let valid = verifying
                .verify_strict(
                    body.as_bytes(),
                    &ed25519_dalek::Signature::from_bytes(&signature),
                )
                .is_ok();
            if valid {
                self.write_checkpoint(seq, &body, &signature)?;
            }
        }
        Ok(())
    }
}

async fn status(client: &Client) -> Result<()> {
    let row = client
        .query_one(
            "SELECT last_seal, last_sealed_at, sealed_through_id, sealed_through_time,
                    sealed_events, unsealed_events,
                    pg_catalog.date_part('epoch', oldest_unsealed_age), active_key
               FROM audit.integrity",
            &[],
        )
        .await
        .map_err(|e| Error::database("reading audit.integrity", &e))?;
    let time = |t: Option<chrono::DateTime<chrono::Utc>>| {
        t.map_or("-".to_owned(), |t| {
            t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        })
    };
    match row.get::<_, Option<i64>>(0) {
        None => println!("sealed:    nothing yet"),
        Some(seq) => println!(
            "sealed:    {} events, through id {} ({}), last seal {} at {} with key {}",
            row.get::<_, i64>(4),
            row.get::<_, Option<i64>>(2)
                .map_or("-".into(), |i| i.to_string()),
            time(row.get(3)),
            seq,
            time(row.get(1)),
            row.get::<_, Option<&str>>(7).unwrap_or("-"),
        ),
    }
    let waiting: i64 = row.get(5);
    match row.get::<_, Option<f64>>(6) {
        Some(age) if waiting > 0 => {
            println!("unsealed:  {waiting} events, the oldest {age:.0}s old")
        }
        _ => println!("unsealed:  0 events"),
    }
    Ok(())
}
