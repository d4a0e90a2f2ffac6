//! `audit-trail serve`: the Audit Log dashboard.
//!
//! Server-rendered HTML (askama templates under `sidecar/templates/`, escaped by default), a
//! small stylesheet and script embedded in the binary, and no request to anywhere but the
//! database. People sign in with a database role and its password: the server opens a
//! PostgreSQL connection with them (so `pg_hba.conf` and SCRAM decide who gets in), admits
//! only members of `audit_admin`, and keeps that connection for the session, so every page and
//! every export reads the log with the signed-in role's own rights.
//!
//! Layout: [`app`] is the one routing table and the security headers; [`state`] what handlers
//! share; [`session`], [`csrf`], [`limiter`] and [`proxy`] sign-in security, over [`token`]
//! (random secrets and cookie headers) and [`clock`] (the time sessions and the throttle go
//! by); [`auth`], [`log_page`], [`event_page`], [`revert_page`], [`overview_page`] and [`export`] the handlers;
//! [`params`] the filters as they travel in URLs and forms; [`queries`] the SQL (a pure page
//! planner and one module per page); [`actions`] the Action filter's choices; [`view`] what a
//! page shows, built from query results; [`templates`] one struct per page; [`error`] what a
//! person sees when something fails (never an internal message).
//!
//! Imports run one way: handlers use sessions, sessions use errors, errors use templates,
//! templates use views; [`token`] and [`view`] use nothing of the dashboard's own state.
//!
//! Token viewers (the admins of one organization, whom the application vouches for with a
//! JWT): [`viewer`] verifies their tokens and holds the `--viewer-db` connections, [`embed`]
//! opens their sessions inside the application's frame, [`api`] is the JSON API under
//! `/api/v1`. Every page and query they reach is restricted to their organization.

mod actions;
mod api;
mod app;
mod assets;
mod auth;
mod clock;
mod csrf;
mod embed;
mod error;
mod event_page;
mod export;
mod fresh;
mod limiter;
mod log_page;
mod overview_page;
mod params;
mod proxy;
mod queries;
mod revert_page;
mod session;
mod state;
mod templates;
mod token;
mod view;
pub mod viewer;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono_tz::Tz;
use clap::Args;

use crate::db::{self, DefaultUser};
use crate::error::{Error, Result};
use crate::timespec;

pub use app::create_app;
pub use state::{AppState, Settings, Viewers};

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (loopback by default). Port 0 picks a free port; the address
    /// actually used is printed on stdout.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Sign people out after this long without a request: 30m, 1h, 90s.
    #[arg(long, value_name = "DURATION", default_value = "30m", value_parser = parse_duration)]
    pub idle_timeout: Duration,
    /// Stop a query that reads a page's events (the Audit Log's list, the Overview's counts;
    /// not exports) when it runs longer than this, and say so on the page: 30s, 2m, 500ms.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_query_timeout)]
    pub query_timeout: Duration,
    /// Show times in this zone (IANA name such as Europe/Paris, or "local"); custom date
    /// ranges are read in it too.
    #[arg(long, value_name = "ZONE", default_value = "UTC")]
    pub tz: String,
    /// A host name (and port) the dashboard is reached by besides its listen address, e.g.
    /// behind a proxy: audit.example.com (repeatable). Requests for other names are refused.
    #[arg(long = "public-host", value_name = "HOST[:PORT]")]
    pub public_hosts: Vec<String>,
    /// A reverse proxy (an address, or a network such as 10.0.0.0/8) whose X-Forwarded-For
    /// header names the real client, for throttling failed sign-ins and for the log
    /// (repeatable). From any other peer the header is ignored.
    #[arg(long = "trusted-proxy", value_name = "ADDRESS|NETWORK")]
    pub trusted_proxies: Vec<proxy::TrustedProxy>,
    /// Events per page.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(i64).range(5..=500))]
    pub page_size: i64,
    /// Accept viewer tokens signed with HS256 by this secret: the file's bytes (one trailing
    /// newline aside), at least 32 of them.
    #[arg(long, value_name = "FILE")]
    pub viewer_secret_file: Option<PathBuf>,
    /// Accept viewer tokens signed with EdDSA by the Ed25519 key whose public half this PEM
    /// file holds.
    #[arg(long, value_name = "FILE")]
    pub viewer_key: Option<PathBuf>,
    /// The connection token viewers' pages and API requests read through: a role in
    /// audit_admin (required with a viewer key).
    #[arg(long, value_name = "CONNINFO")]
    pub viewer_db: Option<String>,
    /// An origin whose pages may frame embed sessions, e.g. https://app.example.com
    /// (repeatable). Without one, no page may be framed.
    #[arg(long = "embed-origin", value_name = "URL", value_parser = parse_origin)]
    pub embed_origins: Vec<String>,
}

/// An origin for `frame-ancestors`: `http(s)://host[:port]`, lowercased, nothing else (no
/// path, no wildcard, nothing a policy could be extended with).
fn parse_origin(text: &str) -> std::result::Result<String, String> {
    let bad = || {
        format!(
            "\"{text}\" is not an origin: give the scheme and host, e.g. https://app.example.com"
        )
    };
    let lower = text.trim().to_ascii_lowercase();
    let (scheme, rest) = lower.split_once("://").ok_or_else(bad)?;
    if scheme != "https" && scheme != "http" {
        return Err(bad());
    }
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    let (host, port) = if authority.starts_with('[') {
        let close = authority.find(']').ok_or_else(bad)?;
        let (host, rest) = authority.split_at(close + 1);
        match rest {
            "" => (host, None),
            _ => (host, Some(rest.strip_prefix(':').ok_or_else(bad)?)),
        }
    } else {
        match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let host_ok = !host.is_empty()
        && (host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
            || (host.len() > 2
                && host.starts_with('[')
                && host.ends_with(']')
                && host[1..host.len() - 1]
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')));
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.parse::<u16>().is_ok());
    if !host_ok || !port_ok {
        return Err(bad());
    }
    Ok(format!("{scheme}://{authority}"))
}

/// A duration PostgreSQL's statement_timeout can hold (at most 2^31 - 1 ms, 596 hours).
fn parse_query_timeout(text: &str) -> std::result::Result<Duration, String> {
    let limit = Duration::from_millis(i32::MAX as u64);
    match parse_duration(text)? {
        d if d > limit => Err(format!(
            "\"{text}\" is longer than the longest query timeout PostgreSQL allows (596h)"
        )),
        d => Ok(d),
    }
}

/// A duration in the one grammar (`crate::duration`: `30m`, `1h`, `90s`, `500ms`, ...), or a
/// plain number of seconds, which these flags took before that grammar; more than zero.
fn parse_duration(text: &str) -> std::result::Result<Duration, String> {
    let parsed = match text.trim().parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => crate::duration::parse(text).map_err(|e| e.to_string())?,
    };
    if parsed.is_zero() {
        return Err(format!("\"{}\" must be more than 0", text.trim()));
    }
    Ok(parsed)
}

const APPLICATION_NAME: &str = "audit-trail dashboard";
/// Stands in for the role while resolving where to connect: the real one comes from the
/// sign-in form.
const PLACEHOLDER_ROLE: &str = "audit-trail-dashboard";

/// Where to connect, resolved as for the other commands (`--db`, `DATABASE_URL`, `PG*`),
/// except that no role is needed: people sign in with their own. Without one in `--db` or
/// `PGUSER`, the placeholder stands in (never the operating system user, which the CLI
/// defaults to: the dashboard does not act as whoever started it).
fn resolve_database(db: Option<&str>) -> Result<db::Target> {
    let target = db::resolve_as(db, APPLICATION_NAME, DefaultUser::Role(PLACEHOLDER_ROLE))?;
    require_dbname(target, "--db")
}

/// Where exports are recorded (`--record-db`), resolved as [`resolve_database`].
fn resolve_record_database(record_db: &str) -> Result<db::Target> {
    let target = db::resolve_record_as(
        record_db,
        APPLICATION_NAME,
        DefaultUser::Role(PLACEHOLDER_ROLE),
    )?;
    require_dbname(target, "--record-db")
}

/// libpq names the database after the role when nothing else does: after the placeholder,
/// that is no database anyone meant.
fn require_dbname(target: db::Target, flag: &str) -> Result<db::Target> {
    if target.config.get_dbname() == Some(PLACEHOLDER_ROLE) {
        return Err(Error::Usage(format!(
            "serve: name the database: {flag} \"dbname=...\" or PGDATABASE"
        )));
    }
    Ok(target)
}

/// Whether `--db` is a standby, when that can be known before anyone signs in: only when it
/// names a role of its own that gets in as it is (a trusted socket, a password in the
/// environment). Otherwise the first sign-in finds out (see `auth`); no attempt is made with
/// the placeholder role, which would only leave a failed login in the server's log.
async fn refuses_standby_now(target: &db::Target) -> bool {
    if target.config.get_user() == Some(PLACEHOLDER_ROLE) {
        return false;
    }
    let probe = async {
        let client = db::connect(target).await.ok()?;
        db::in_recovery(&client).await.ok()
    };
    matches!(
        tokio::time::timeout(std::time::Duration::from_secs(10), probe).await,
        Ok(Some(true))
    )
}

/// Serves the dashboard until SIGINT or SIGTERM.
pub async fn run(db: Option<&str>, record_db: Option<&str>, args: ServeArgs) -> Result<()> {
    let target = resolve_database(db)?;
    let record_database = record_db
        .map(resolve_record_database)
        .transpose()?
        .map(|t| (t.config, t.tls));
    let zone: Tz = timespec::parse_zone(&args.tz).map_err(Error::Usage)?;
    let viewers = viewers(&args).await?;
    if record_database.is_none() && refuses_standby_now(&target).await {
        return Err(db::standby_without_record_db(
            "the dashboard's exports are recorded",
        ));
    }
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| Error::Serve(format!("cannot listen on {}: {e}", args.listen)))?;
    let address = listener
        .local_addr()
        .map_err(|e| Error::Serve(format!("cannot listen on {}: {e}", args.listen)))?;
    let port = address.port();
    let mut allowed_hosts = vec![address.to_string()];
    if address.ip().is_loopback() {
        allowed_hosts.extend([
            format!("localhost:{port}"),
            format!("127.0.0.1:{port}"),
            format!("[::1]:{port}"),
        ]);
    }
    allowed_hosts.extend(
        args.public_hosts
            .iter()
            .map(|h| h.trim().to_ascii_lowercase()),
    );
    if address.ip().is_unspecified() && args.public_hosts.is_empty() {
        // Listening on every address with no name given: there is no one name to hold
        // requests to, so any is answered (and the warning below applies).
        allowed_hosts.clear();
    }
    let settings = Settings {
        database: target.config,
        tls: target.tls,
        record_database,
        zone,
        idle_timeout: args.idle_timeout,
        query_timeout: args.query_timeout,
        page_size: args.page_size,
        allowed_hosts,
        trusted_proxies: args.trusted_proxies,
        embed_origins: args.embed_origins,
    };
    let database = settings.database_description();
    let state = match viewers {
        Some(viewers) => {
            tracing::info!(
                viewer_db = %viewers.db.description(),
                "token viewers are served (embed, /api/v1)"
            );
            AppState::new(settings).with_viewers(viewers)
        }
        None => AppState::new(settings),
    };
    if !address.ip().is_loopback() {
        tracing::warn!(
            "the dashboard listens on {address}, reachable from other machines; serve it \
             through a TLS proxy"
        );
    }
    // The one line on stdout: tests and scripts read the address from it (port 0 included).
    println!("audit-trail: dashboard on http://{address}/ (database {database})");

    let reaper = state.sessions.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(15));
        loop {
            tick.tick().await;
            reaper.remove_idle();
        }
    });

    axum::serve(
        listener,
        create_app(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown_signal())
    .await
    .map_err(|e| Error::Serve(format!("serving the dashboard: {e}")))?;
    tracing::info!("dashboard stopped");
    Ok(())
}

/// Token viewers, when a viewer key was given: the keys read, `--viewer-db` connected and
/// admitted, before the dashboard listens. The flags that go together are checked first.
async fn viewers(args: &ServeArgs) -> Result<Option<Viewers>> {
    let verifier = viewer::Verifier::from_files(
        args.viewer_secret_file.as_deref(),
        args.viewer_key.as_deref(),
    )?;
    let Some(verifier) = verifier else {
        if args.viewer_db.is_some() || !args.embed_origins.is_empty() {
            return Err(Error::Usage(
                "serve: --viewer-db and --embed-origin serve token viewers: give \
                 --viewer-secret-file or --viewer-key too"
                    .into(),
            ));
        }
        return Ok(None);
    };
    let Some(viewer_db) = args.viewer_db.as_deref() else {
        return Err(Error::Usage(
            "serve: token viewers read through --viewer-db CONNINFO (a role in audit_admin): \
             give it with --viewer-secret-file or --viewer-key"
                .into(),
        ));
    };
    let db = viewer::pool::ViewerDb::open(viewer_db, "audit-trail viewers").await?;
    Ok(Some(Viewers {
        verifier,
        db: Arc::new(db),
    }))
}

async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("45"), Ok(Duration::from_secs(45)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(
            parse_query_timeout("596h"),
            Ok(Duration::from_secs(596 * 3600))
        );
        assert!(parse_query_timeout("597h").is_err());
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86_400)));
        for bad in ["", "0", "0s", "m", "5x", "-3s", "1.5h"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn embed_origins_are_scheme_host_and_port_only() {
        for (given, origin) in [
            ("https://app.example.com", "https://app.example.com"),
            ("https://App.Example.com/", "https://app.example.com"),
            ("http://localhost:3000", "http://localhost:3000"),
            ("http://127.0.0.1:8081", "http://127.0.0.1:8081"),
            ("https://[::1]:8443", "https://[::1]:8443"),
        ] {
            assert_eq!(parse_origin(given).as_deref(), Ok(origin), "{given}");
        }
        for bad in [
            "",
            "*",
            "'self'",
            "app.example.com",
            "ftp://app.example.com",
            "https://*.example.com",
            "https://app.example.com/path",
            "https://app.example.com; script-src *",
            "https://app.example.com 'unsafe-inline'",
            "https://app.example.com:99999",
            "https://app.example.com:",
            "https://",
        ] {
            assert!(parse_origin(bad).is_err(), "{bad:?}");
        }
    }
}
