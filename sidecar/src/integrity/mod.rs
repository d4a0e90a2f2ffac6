//! Tamper evidence (docs/integrity.md): `keygen` makes the sealing key, `seal` extends a
//! signed hash chain over committed events and writes checkpoints outside the database,
//! `verify` recomputes everything against the public key it is given.

pub mod archived;
pub mod checkpoint_files;
pub mod keys;
pub mod retention;
pub mod schema;
pub mod seal;
pub mod verify;

use std::path::PathBuf;

use clap::Args;

use crate::error::Result;

#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Where to write the secret key (mode 0600); the public key goes to FILE.pub.
    #[arg(long, value_name = "KEYFILE")]
    pub output: PathBuf,
}

pub fn keygen(args: &KeygenArgs) -> Result<()> {
    let key = keys::generate()?;
    keys::write(&args.output, &key)?;
    eprintln!(
        "audit-trail: wrote {} (keep it secret, outside the database) and {} (key id {}); \
         a superuser registers it in each database it seals: \
         SELECT audit.register_seal_key('\\x{}');",
        args.output.display(),
        keys::public_path(&args.output).display(),
        keys::key_id(&key.verifying_key()),
        hex::encode(key.verifying_key().as_bytes())
    );
    Ok(())
}
