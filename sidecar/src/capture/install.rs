//! `audit-trail install --wal-capture`: the portable install (docs/wal-capture.md) into a
//! database where the extension cannot be installed, by a role that need not be a superuser,
//! and the slot `audit-trail capture` reads, made right after it so that nothing tracked from
//! then on is missed.

use clap::Args;

use crate::db;
use crate::error::{Error, Result};

/// The portable install script of this version, generated from the extension's own
/// (scripts/portable_script.py).
const SCRIPT: &str = include_str!(concat!(
    "../../../extension/portable/audit_trail--",
    env!("CARGO_PKG_VERSION"),
    ".portable.sql"
));

#[derive(Debug, Args)]
pub struct InstallArgs {
    /// Install for capture from the write-ahead log: the only install this command makes
    /// (where extensions can be installed, CREATE EXTENSION audit_trail is the install).
    #[arg(long)]
    pub wal_capture: bool,
    /// The logical replication slot to make for `audit-trail capture` (slots are the
    /// server's, not a database's: a second database needs another name).
    #[arg(long, default_value = "audit_trail", value_parser = crate::capture::service::slot_name)]
    pub slot: String,
}

fn db_error(doing: &'static str) -> impl Fn(tokio_postgres::Error) -> Error {
    move |e| Error::database(doing, &e)
}

/// `audit-trail install --wal-capture`.
pub async fn run(db_arg: Option<&str>, args: InstallArgs) -> Result<()> {
    if !args.wal_capture {
        return Err(Error::Usage(
            "audit-trail install makes the WAL capture install only: give --wal-capture (where \
             extensions can be installed, CREATE EXTENSION audit_trail is the install)"
                .into(),
        ));
    }
    let target = db::resolve(db_arg, "audit-trail install")?;
    let client = db::connect(&target).await?;
    let row = client
        .query_one(
            "SELECT pg_catalog.current_setting('wal_level'),
                    EXISTS (SELECT FROM pg_catalog.pg_namespace WHERE nspname = 'audit'),
                    EXISTS (SELECT FROM pg_catalog.pg_extension WHERE extname = 'audit_trail'),
                    -- The REPLICATION attribute, or on Amazon RDS membership of rds_replication.
                    (SELECT r.rolreplication OR r.rolsuper FROM pg_catalog.pg_roles AS r
                      WHERE r.rolname = current_user)
                    OR EXISTS (SELECT FROM pg_catalog.pg_roles AS r
                                WHERE r.rolname = 'rds_replication'
                                  AND pg_catalog.pg_has_role(r.oid, 'MEMBER')),
                    EXISTS (SELECT FROM pg_catalog.pg_replication_slots WHERE slot_name = $1)",
            &[&args.slot],
        )
        .await
        .map_err(db_error("checking the database"))?;
    let (wal_level, schema, extension, replication, slot_exists): (
        String,
        bool,
        bool,
        Option<bool>,
        bool,
    ) = (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4));
    if extension {
        return Err(Error::Usage(
            "the audit_trail extension is installed in this database: it captures with \
             triggers, and needs no WAL capture install"
                .into(),
        ));
    }
    if schema {
        return Err(Error::Usage(
            "this database already has an audit schema: audit_trail is installed (or another \
             schema has the name)"
                .into(),
        ));
    }
    if wal_level != "logical" {
        return Err(Error::Usage(format!(
            "wal_level is {wal_level}: WAL capture needs wal_level = logical (on Amazon RDS \
             and Aurora: rds.logical_replication = 1; on Cloud SQL: \
             cloudsql.logical_decoding = on; on Azure: wal_level = logical), then a restart"
        )));
    }
    if replication != Some(true) {
        return Err(Error::PermissionDenied(format!(
            "role {} cannot make a replication slot: it needs the REPLICATION attribute (on \
             Amazon RDS: GRANT rds_replication)",
            target.config.get_user().unwrap_or("?")
        )));
    }
    if slot_exists {
        // Slots are the cluster's: one of another database (or plugin) is not this one's.
        // Refused before anything is installed, so that the install can be run again.
        crate::capture::service::check_slot(&client, &args.slot).await?;
    }
    client
        .batch_execute(&format!("BEGIN;\n{SCRIPT}\nCOMMIT;"))
        .await
        .map_err(db_error("installing"))?;
    let made = client
        .query_opt(
            "SELECT pg_catalog.pg_create_logical_replication_slot($1, 'pgoutput')
              WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_replication_slots WHERE slot_name = $1)",
            &[&args.slot],
        )
        .await
        .map_err(|e| {
            // The schema is in; what is missing is the slot, which capture makes at its start.
            Error::Database {
                doing: "installed, but making the slot failed (audit-trail capture makes it when \
                        it starts; changes tracked before then are not captured)",
                reason: crate::error::describe(&e),
                code: e.code().cloned(),
                lost: crate::error::connection_lost(&e),
            }
        })?
        .is_some();
    eprintln!(
        "audit-trail: installed audit_trail {} for WAL capture into {}{}; track tables with \
         audit.track(), then run audit-trail capture",
        env!("CARGO_PKG_VERSION"),
        target.description,
        if made {
            format!(", with slot {}", args.slot)
        } else {
            format!(" (slot {} was there already)", args.slot)
        }
    );
    Ok(())
}
