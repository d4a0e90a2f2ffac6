//! What the commands say while they run, on stderr: the long-running ones (`serve`,
//! `follow`, `alert`, `seal`) for months, so as levelled, filterable records, as text or as
//! JSON lines for a log collector (`--log-format`). The level is `info` unless
//! `AUDIT_TRAIL_LOG` says otherwise (`warn`, `debug`, or per module, as `RUST_LOG` is
//! written). A command's final error is not a log record: it stays the one line
//! `audit-trail: ...` that the exit codes go with.

use clap::ValueEnum;
use tracing_subscriber::EnvFilter;

/// The environment variable that sets what is logged.
pub const FILTER_VARIABLE: &str = "AUDIT_TRAIL_LOG";

#[derive(Debug, Clone, Copy, Default, ValueEnum, PartialEq, Eq)]
pub enum LogFormat {
    /// One line per record: time, level, message and fields.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Installs the subscriber for the process. A filter that does not parse falls back to
/// `info`, with a warning, rather than stopping a service at start-up.
pub fn init(format: LogFormat) {
    let (filter, bad) = match std::env::var(FILTER_VARIABLE) {
        Ok(text) if !text.trim().is_empty() => match EnvFilter::try_new(&text) {
            Ok(filter) => (filter, None),
            Err(e) => (EnvFilter::new("info"), Some((text, e))),
        },
        _ => (EnvFilter::new("info"), None),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    // A second init (tests running several commands in one process) keeps the first.
    let _ = match format {
        LogFormat::Text => builder.with_ansi(false).try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    if let Some((text, e)) = bad {
        tracing::warn!("{FILTER_VARIABLE}={text:?} is not a log filter ({e}); logging at info");
    }
}
