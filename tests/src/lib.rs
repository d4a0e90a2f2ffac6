//! Support for the end-to-end tests: a throwaway PostgreSQL cluster started from the system's
//! binaries (one per test run, shared by all tests), and a fresh database per test.

pub mod browser;
pub mod cluster;
pub mod db;
pub mod events;
pub mod http;
pub mod sidecar;
pub mod viewers;
pub mod wal;

pub use cluster::Cluster;
pub use db::TestDb;
pub use events::{all_events, events, last_export, Event};

/// The SQLSTATE of a server error ("" for a client error), e.g. "42501".
pub fn sqlstate(e: &postgres::Error) -> String {
    e.code().map(|c| c.code().to_owned()).unwrap_or_default()
}

/// A server error as `SQLSTATE: message`, or the client error's text.
pub fn error_text(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => format!("{e:?}"),
    }
}
