//! Connecting as the operator's own role, and the audit_admin check made before reading.
//!
//! Where the connection comes from, as libpq does it: `--db` (a URL or `key=value` string),
//! else `DATABASE_URL`, else nothing; then `PGHOST`, `PGPORT`, `PGUSER`, `PGPASSWORD` and
//! `PGDATABASE` fill whatever is still missing, and with no user anywhere, the operating
//! system user connects (libpq's default).

use std::str::FromStr;
use std::time::Duration;

use tokio_postgres::config::SslMode;
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::{Client, Config, IsolationLevel, Socket, Transaction};

use crate::error::{chain, describe, Error, Result};
use crate::tls::{self, Tls, Verification};

pub struct Target {
    pub config: Config,
    /// `user@host:port/dbname`, for messages: never the password.
    pub description: String,
    /// How TCP connections are encrypted (see [`crate::tls`]).
    pub tls: Tls,
}

/// The stream of a connection to a [`Target`].
pub type Stream = <Tls as MakeTlsConnect<Socket>>::Stream;

/// libpq's `sslmode=verify-ca|verify-full`, which tokio-postgres' parser does not know: read
/// here, and passed on as `require` plus certificate verification.
fn take_verify_mode(text: &str) -> (String, bool) {
    let mut verify = false;
    let mut out = text.to_owned();
    for mode in ["sslmode=verify-full", "sslmode=verify-ca"] {
        if out.contains(mode) {
            verify = true;
            out = out.replace(mode, "sslmode=require");
        }
    }
    (out, verify)
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Who connects when neither the connection string nor `PGUSER` names a role.
#[derive(Clone, Copy)]
pub enum DefaultUser<'a> {
    /// The operating system user, as libpq does: the commands run as the operator's own role.
    OsUser,
    /// A stand-in: the dashboard, whose people sign in with their own roles.
    Role(&'a str),
}

/// Where the commands connect: `--db`, else `DATABASE_URL`, then the `PG*` variables, then
/// the operating system user.
pub fn resolve(db: Option<&str>, application_name: &str) -> Result<Target> {
    resolve_as(db, application_name, DefaultUser::OsUser)
}

/// libpq's two ways to write a connection string.
fn is_url(text: &str) -> bool {
    text.starts_with("postgresql://") || text.starts_with("postgres://")
}

/// A connection string that cannot be read. tokio-postgres says "invalid connection string:
/// CAUSE"; the cause names the bad option and never echoes the text, which may hold a
/// password, so only the cause is kept, under the form the user wrote.
fn malformed(origin: &str, text: &str, e: &tokio_postgres::Error) -> Error {
    let form = if is_url(text) {
        "connection URL"
    } else {
        "connection string"
    };
    let cause = std::error::Error::source(e).map_or_else(|| chain(e), chain);
    Error::Usage(format!("{origin}: malformed {form}: {cause}"))
}

/// The name of the operating system user the process runs as (its effective user ID), looked
/// up as libpq does (`getpwuid_r`, not `$USER`, which anyone can set). None when the ID has
/// no name, e.g. an arbitrary ID in a container.
#[cfg(unix)]
fn os_user_name() -> Option<String> {
    // SAFETY: geteuid takes nothing, cannot fail and touches no memory of ours.
    let uid = unsafe { libc::geteuid() };
    let mut buf: Vec<libc::c_char> = vec![0; 1024];
    loop {
        // SAFETY: an all-zero passwd (null pointers, zero IDs) is a valid value of the type;
        // getpwuid_r only writes it.
        let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
        let mut found: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: every pointer is to live memory of ours, `buf.len()` is its size, and the
        // strings getpwuid_r stores in `entry` point into `buf`, read before `buf` changes.
        let rc =
            unsafe { libc::getpwuid_r(uid, &mut entry, buf.as_mut_ptr(), buf.len(), &mut found) };
        if rc == libc::ERANGE && buf.len() < 1 << 20 {
            buf.resize(buf.len() * 2, 0);
            continue;
        }
        if rc != 0 || found.is_null() || entry.pw_name.is_null() {
            return None;
        }
        // SAFETY: on success pw_name is a NUL-terminated string inside `buf`, alive here.
        let name = unsafe { std::ffi::CStr::from_ptr(entry.pw_name) };
        return name
            .to_str()
            .ok()
            .filter(|n| !n.is_empty())
            .map(str::to_owned);
    }
}

#[cfg(not(unix))]
fn os_user_name() -> Option<String> {
    env("USERNAME")
}

/// As [`resolve`], with `default_user` when no role is named.
pub fn resolve_as(
    db: Option<&str>,
    application_name: &str,
    default_user: DefaultUser,
) -> Result<Target> {
    let (text, origin) = match db {
        Some(text) => (Some(text.to_owned()), "--db"),
        None => (env("DATABASE_URL"), "DATABASE_URL"),
    };
    let (text, mut verify) = match text {
        Some(text) => {
            let (text, verify) = take_verify_mode(&text);
            (Some(text), verify)
        }
        None => (None, false),
    };
    let mut config = match &text {
        Some(text) => Config::from_str(text).map_err(|e| malformed(origin, text, &e))?,
        None => Config::new(),
    };
    if !text.as_deref().is_some_and(|t| t.contains("sslmode")) {
        if let Some(mode) = env("PGSSLMODE") {
            let (ssl_mode, verifies) = match mode.as_str() {
                "disable" => (SslMode::Disable, false),
                "prefer" | "allow" => (SslMode::Prefer, false),
                "require" => (SslMode::Require, false),
                "verify-ca" | "verify-full" => (SslMode::Require, true),
                other => {
                    return Err(Error::Usage(format!("PGSSLMODE: unknown mode \"{other}\"")));
                }
            };
            config.ssl_mode(ssl_mode);
            verify |= verifies;
        }
    }
    if config.get_hosts().is_empty() {
        match env("PGHOST") {
            Some(hosts) => {
                for host in hosts.split(',') {
                    config.host(host);
                }
            }
            None if std::path::Path::new("/var/run/postgresql").is_dir() => {
                config.host("/var/run/postgresql");
            }
            None => {
                config.host("localhost");
            }
        }
    }
    if config.get_ports().is_empty() {
        if let Some(port) = env("PGPORT") {
            let port = port
                .parse()
                .map_err(|_| Error::Usage(format!("PGPORT: \"{port}\" is not a port number")))?;
            config.port(port);
        }
    }
    if config.get_user().is_none() {
        let user = match (env("PGUSER"), default_user) {
            (Some(user), _) => user,
            (None, DefaultUser::Role(role)) => role.to_owned(),
            (None, DefaultUser::OsUser) => os_user_name().ok_or_else(|| {
                Error::Usage(
                    "no database user: give one in --db or set PGUSER \
                     (the operating system user has no name)"
                        .into(),
                )
            })?,
        };
        config.user(&user);
    }
    if config.get_password().is_none() {
        if let Some(password) = env("PGPASSWORD") {
            config.password(password);
        }
    }
    if config.get_dbname().is_none() {
        let dbname = env("PGDATABASE").or_else(|| config.get_user().map(str::to_owned));
        if let Some(dbname) = dbname {
            config.dbname(&dbname);
        }
    }
    if config.get_password().is_none() {
        password_from_file(&mut config)?;
    }
    if config.get_application_name().is_none() {
        config.application_name(application_name);
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(10));
    }
    pin_search_path(&mut config);
    // A unix socket is never encrypted (libpq ignores sslmode there); tokio-postgres would
    // ask the server for TLS on it and fail under `require`.
    let unix_only = !config.get_hosts().is_empty()
        && config
            .get_hosts()
            .iter()
            .all(|h| !matches!(h, tokio_postgres::config::Host::Tcp(_)));
    if unix_only && config.get_ssl_mode() == SslMode::Require {
        config.ssl_mode(SslMode::Prefer);
    }
    let root_file = match config.get_ssl_mode() {
        SslMode::Disable => None,
        _ => env("PGSSLROOTCERT").map(std::path::PathBuf::from),
    };
    let verification = if verify || root_file.is_some() {
        Verification::Roots(root_file)
    } else {
        Verification::None
    };
    let tls = tls::connector(&verification)?;
    let description = describe_target(&config);
    Ok(Target {
        config,
        description,
        tls,
    })
}

/// The password of the first host from the password file (`PGPASSFILE`, else `~/.pgpass`),
/// if a line matches.
fn password_from_file(config: &mut Config) -> Result<()> {
    let Some((path, named)) = crate::passfile::location() else {
        return Ok(());
    };
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(host)) => host.as_str(),
        // libpq looks a unix socket up as `localhost`.
        _ => "localhost",
    };
    let lookup = crate::passfile::Lookup {
        host,
        port: config.get_ports().first().copied().unwrap_or(5432),
        database: config.get_dbname().unwrap_or_default(),
        user: config.get_user().unwrap_or_default(),
    };
    if let Some(password) = crate::passfile::password(&path, named, &lookup)? {
        config.password(password);
    }
    Ok(())
}

/// The `search_path` of every sidecar session, whatever the database or role settings say.
/// Anyone who may create objects in a schema on the default path (the database owner owns
/// `public`) could otherwise plant a function or operator that PostgreSQL prefers over the
/// built-in one (an exact `public.to_json(text[])` beats `pg_catalog.to_json(anyelement)`),
/// and it would run with the rights of the admin reading the log. `pg_temp` last: temporary
/// objects are never found before the catalog's.
pub const SEARCH_PATH: &str = "pg_catalog, pg_temp";

/// Adds `-c search_path=...` to the startup options, after any the connection string gives,
/// so it wins (the last setting of a parameter applies). Startup options also outrank
/// `ALTER ROLE/DATABASE ... SET search_path`, and apply before the first query runs.
///
/// `row_security=off` too: the audit schema has no row-level security, and a policy someone
/// added to it must not filter what the sidecar reads quietly. With it off, PostgreSQL raises
/// an error instead of filtering (`verify` names the policy: docs/integrity.md).
fn pin_search_path(config: &mut Config) {
    let pin = format!(
        "-c search_path={} -c row_security=off",
        SEARCH_PATH.replace(' ', "")
    );
    let options = match config.get_options() {
        Some(existing) if !existing.trim().is_empty() => format!("{existing} {pin}"),
        _ => pin,
    };
    config.options(&options);
}

fn describe_target(config: &Config) -> String {
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        #[cfg(unix)]
        Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "?".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!(
        "{}@{host}:{port}/{}",
        config.get_user().unwrap_or("?"),
        config.get_dbname().unwrap_or("?")
    )
}

/// The client and the connection object, for callers that drive the connection themselves.
pub async fn open(target: &Target) -> Result<(Client, tokio_postgres::Connection<Socket, Stream>)> {
    target
        .config
        .connect(target.tls.clone())
        .await
        .map_err(|e| Error::Connect {
            target: target.description.clone(),
            reason: describe(&e),
        })
}

/// Connects; the connection's background task runs on the current runtime.
pub async fn connect(target: &Target) -> Result<Client> {
    let (client, connection) = open(target).await?;
    tokio::spawn(async move {
        // An error here surfaces as an error of the next query on the client.
        let _ = connection.await;
    });
    Ok(client)
}

/// Refuses (exit 3) unless the connected role may read the audit log: a member of
/// audit_admin, or a superuser. The database enforces the same rule on every read.
pub async fn require_audit_admin(client: &Client) -> Result<String> {
    let row = client
        .query_one(
            "SELECT current_user::text, r.rolsuper,
                    pg_catalog.to_regclass('audit.events') IS NOT NULL,
                    CASE WHEN EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'audit_admin')
                         THEN pg_catalog.pg_has_role('audit_admin', 'MEMBER') END
               FROM pg_catalog.pg_roles r WHERE r.rolname = current_user",
            &[],
        )
        .await
        .map_err(|e| Error::database("checking the role", &e))?;
    let role: String = row.get(0);
    let superuser: bool = row.get(1);
    let installed: bool = row.get(2);
    let member: Option<bool> = row.get(3);
    if !superuser && member != Some(true) {
        return Err(Error::PermissionDenied(format!(
            "role \"{role}\" is not a member of audit_admin (a DBA can run: GRANT audit_admin TO \"{role}\")"
        )));
    }
    if !installed {
        return Err(Error::NotInstalled(
            "the audit_trail extension is not installed in this database (CREATE EXTENSION audit_trail)".into(),
        ));
    }
    Ok(role)
}

/// Refuses (exit 3) unless the connected role may run the product's services (`seal`,
/// `archive`): a member of audit_service, or a superuser. The database enforces the same rule
/// on the functions they call; this says so before anything is read or written.
pub async fn require_audit_service(client: &Client) -> Result<()> {
    let row = client
        .query_one(
            "SELECT current_user::text, r.rolsuper,
                    CASE WHEN EXISTS (SELECT FROM pg_catalog.pg_roles
                                       WHERE rolname OPERATOR(pg_catalog.=) 'audit_service')
                         THEN pg_catalog.pg_has_role('audit_service', 'USAGE') END
               FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) current_user",
            &[],
        )
        .await
        .map_err(|e| Error::database("checking the role", &e))?;
    let role: String = row.get(0);
    if row.get::<_, bool>(1) || row.get::<_, Option<bool>>(2) == Some(true) {
        return Ok(());
    }
    Err(Error::PermissionDenied(format!(
        "role \"{role}\" is not a member of audit_service, the role of the product's services \
         (a DBA can run: GRANT audit_service TO \"{role}\")"
    )))
}

/// Whether the connected server is a hot standby (in recovery: read-only, so nothing can be
/// written there, not even an event or a cursor).
pub async fn in_recovery(client: &Client) -> Result<bool> {
    client
        .query_one("SELECT pg_catalog.pg_is_in_recovery()", &[])
        .await
        .map(|row| row.get(0))
        .map_err(|e| Error::database("asking whether the server is a standby", &e))
}

/// The refusal when `--db` is a standby and nothing names the primary to write `what` to.
pub fn standby_without_record_db(what: &str) -> Error {
    Error::Usage(format!(
        "--db is a read-only hot standby: give --record-db CONNINFO (or AUDIT_TRAIL_RECORD_DB) \
         naming the primary, where {what} is written"
    ))
}

/// Refuses a `--record-db` that is a standby too: nothing could be written there either.
pub async fn require_primary(record: &Client, description: &str) -> Result<()> {
    if in_recovery(record).await? {
        return Err(Error::Usage(format!(
            "--record-db: {description} is a standby too; name the primary"
        )));
    }
    Ok(())
}

/// Where `--record-db` points, resolved as `--db` is (`PG*` fill in what it leaves out);
/// errors name `--record-db`.
pub fn resolve_record(text: &str, application_name: &str) -> Result<Target> {
    resolve_record_as(text, application_name, DefaultUser::OsUser)
}

/// As [`resolve_record`], with `default_user` when no role is named.
pub fn resolve_record_as(
    text: &str,
    application_name: &str,
    default_user: DefaultUser,
) -> Result<Target> {
    resolve_as(Some(text), application_name, default_user).map_err(|e| match e {
        Error::Usage(m) => Error::Usage(
            m.strip_prefix("--db")
                .map_or_else(|| m.clone(), |rest| format!("--record-db{rest}")),
        ),
        other => other,
    })
}

/// A transaction id the database wrote as `xid8` text (every query casts it to text: the
/// client has no `xid8` type). The rule is the contract's ([`chain::parse_txid`]); this only
/// makes its refusal an error.
///
/// [`chain::parse_txid`]: audit_trail_contract::chain::parse_txid
pub fn parse_txid(text: &str) -> Result<u64> {
    audit_trail_contract::chain::parse_txid(text)
        .ok_or_else(|| Error::Unexpected(format!("unexpected txid \"{text}\" from the database")))
}

/// A read-only REPEATABLE READ transaction: one snapshot for everything a read sees (an
/// export's rows, a verification's seals and events, an archive's files, a dashboard page).
pub async fn read_snapshot(client: &mut Client) -> Result<Transaction<'_>, tokio_postgres::Error> {
    client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
}
