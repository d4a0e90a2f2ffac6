//! `audit-trail serve`: the Audit Log dashboard.

use clap::Args;

use crate::error::{Error, Result};

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (loopback by default).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: std::net::SocketAddr,
}

pub async fn run(_db: Option<&str>, _args: ServeArgs) -> Result<()> {
    Err(Error::Other("serve is not built yet".into()))
}
