//! `audit-trail`: the sidecar that reads the audit_trail log outside PostgreSQL.

pub mod alert;
pub mod archive;
pub mod capture;
pub mod cli;
pub mod connections;
pub mod csv;
pub mod db;
pub mod duration;
pub mod error;
pub mod event_row;
pub mod export;
pub mod filters;
pub mod follow;
pub mod integrity;
pub mod logging;
pub mod maintain;
pub mod own_events;
pub mod passfile;
pub mod revert;
pub mod search;
pub mod timespec;
pub mod tls;
pub mod web;

use cli::{Cli, Command};
use connections::Connections;
use error::Result;

/// Runs one command to completion.
pub async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Export(args) => {
            let request = args.to_request()?;
            let mut connections = Connections::open(
                cli.db.as_deref(),
                cli.record_db.as_deref(),
                "audit-trail export",
                "the export record",
            )
            .await?;
            let output = args.output_path();
            let rows =
                export::run(&mut connections, &request, output, args.show_progress()).await?;
            if let Some(path) = output {
                eprintln!("audit-trail: exported {rows} events to {}", path.display());
            }
            Ok(())
        }
        Command::Follow(args) => {
            follow::run(cli.db.as_deref(), cli.record_db.as_deref(), args).await
        }
        Command::Alert(args) => alert::run(cli.db.as_deref(), cli.record_db.as_deref(), args).await,
        Command::Serve(args) => web::run(cli.db.as_deref(), cli.record_db.as_deref(), args).await,
        Command::Archive(args) => {
            archive::run(cli.db.as_deref(), cli.record_db.as_deref(), args).await
        }
        Command::Maintain(_) => maintain::run(cli.db.as_deref(), cli.record_db.as_deref()).await,
        Command::Revert(args) => {
            revert::run(cli.db.as_deref(), cli.record_db.as_deref(), args).await
        }
        Command::Install(args) => capture::install::run(cli.db.as_deref(), args).await,
        Command::Capture(args) => capture::service::run(cli.db.as_deref(), args).await,
        Command::Keygen(args) => integrity::keygen(&args),
        Command::Seal(args) => integrity::seal::run(cli.db.as_deref(), args).await,
        Command::Verify(args) => {
            integrity::verify::run(cli.db.as_deref(), cli.record_db.as_deref(), args).await
        }
    }
}
