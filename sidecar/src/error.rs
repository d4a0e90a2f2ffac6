//! Every way a command fails, with the exit code it maps to. Messages are one line and never
//! contain a password.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad flags or values: exit 2.
    #[error("{0}")]
    Usage(String),

    /// The role may not read the audit log: exit 3.
    #[error("permission denied: {0}")]
    PermissionDenied(String),

    #[error("cannot connect to {target}: {reason}")]
    Connect { target: String, reason: String },

    #[error("{doing}: {reason}")]
    Database {
        doing: &'static str,
        reason: String,
        /// The server's SQLSTATE, when the server answered (kept for callers that decide by
        /// it; the message is for people).
        code: Option<tokio_postgres::error::SqlState>,
        /// The connection was lost (closed, the server shutting down, an I/O error): a
        /// long-running command reconnects rather than stops.
        lost: bool,
    },

    #[error("{}: {source}", path.display())]
    File {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("writing output: {0}")]
    Output(#[source] std::io::Error),

    /// `verify` found the log or its seals changed: exit 4.
    #[error("integrity violation: {0}")]
    Integrity(String),

    /// Another run holds what this one needs (a service's lock, a consumer's cursor).
    #[error("{0}")]
    Busy(String),

    /// The database has no audit_trail, or one too old for this command.
    #[error("{0}")]
    NotInstalled(String),

    /// Something this tool reads (from the database, an archive, a sink's files) is not what
    /// it wrote or expects.
    #[error("{0}")]
    Unexpected(String),

    /// A value could not be encoded as JSON.
    #[error("encoding {what}: {source}")]
    Encoding {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },

    /// The dashboard could not listen or serve.
    #[error("{0}")]
    Serve(String),

    /// Writing an archive's Parquet files.
    #[error("{0}")]
    Archive(String),

    /// The operating system's random source, TLS set-up, a webhook client: the machine's
    /// facilities rather than the database or the input.
    #[error("{0}")]
    System(String),
}

impl Error {
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) => 2,
            Error::PermissionDenied(_) => 3,
            Error::Integrity(_) => 4,
            _ => 1,
        }
    }

    /// A database error while doing something, described by its server message when there
    /// is one (tokio-postgres' own Display says only "db error").
    pub fn database(doing: &'static str, e: &tokio_postgres::Error) -> Error {
        if let Some(db) = e.as_db_error() {
            if db.code() == &tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE {
                return Error::PermissionDenied(db.message().to_owned());
            }
        }
        Error::Database {
            doing,
            reason: describe(e),
            code: e.code().cloned(),
            lost: connection_lost(e),
        }
    }

    /// A JSON encoding error, naming what was being encoded.
    pub fn encoding(what: &'static str) -> impl Fn(serde_json::Error) -> Error {
        move |source| Error::Encoding { what, source }
    }

    /// Whether this is a database error because the connection was lost.
    pub fn is_connection_lost(&self) -> bool {
        matches!(self, Error::Database { lost: true, .. })
    }
}

/// Whether a driver error means the connection is gone (closed, the server shutting down or
/// restarting, an I/O error) rather than a statement refused.
pub fn connection_lost(e: &tokio_postgres::Error) -> bool {
    let server_going_away = e.as_db_error().is_some_and(|db| {
        db.code().code().starts_with("57P") // admin_shutdown, crash_shutdown, ...
    });
    let io_error = std::error::Error::source(e).is_some_and(|c| c.is::<std::io::Error>());
    e.is_closed() || server_going_away || io_error
}

/// One line for a tokio-postgres error: the server's message, or the error and its causes.
pub fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => db.message().to_owned(),
        None => chain(e),
    }
}

/// An error and its causes on one line.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
