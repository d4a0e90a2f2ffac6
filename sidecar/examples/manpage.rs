//! Writes the manual pages of `audit-trail` and of each of its commands (roff, from the same
//! clap definition that parses the arguments, so they cannot drift) into a directory:
//!
//!   cargo run -p audit-trail --example manpage -- DIR
//!
//! scripts/package.sh puts them in the package's /usr/share/man/man1.

use std::path::PathBuf;

use audit_trail_sidecar::cli::Cli;
use clap::CommandFactory;

fn main() -> std::io::Result<()> {
    let Some(dir) = std::env::args_os().nth(1).map(PathBuf::from) else {
        return Err(std::io::Error::other("usage: manpage DIR"));
    };
    std::fs::create_dir_all(&dir)?;
    clap_mangen::generate_to(Cli::command(), &dir)
}
