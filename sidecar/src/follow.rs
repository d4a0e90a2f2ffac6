//! `audit-trail follow`: a commit-safe change-data-capture stream of audit events.

use clap::Args;

use crate::error::{Error, Result};

#[derive(Debug, Args)]
pub struct FollowArgs {
    /// Name of the consumer whose cursor to resume from.
    #[arg(long)]
    pub consumer: String,
}

pub async fn run(_db: Option<&str>, _args: FollowArgs) -> Result<()> {
    Err(Error::Other("follow is not built yet".into()))
}
