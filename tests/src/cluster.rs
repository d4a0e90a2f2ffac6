//! A throwaway PostgreSQL cluster in a temporary directory.
//!
//! PostgreSQL refuses to run as root, so when the tests run as root the server runs as the
//! `postgres` user through `runuser`. The server is started by a small shell wrapper that
//! stops it when its stdin closes: the tests hold the other end of that pipe, so the server
//! goes away when the test process ends, even if it is killed.

use std::fs;
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

pub struct Cluster {
    pub port: u16,
    /// Directory holding the data directory, the unix socket and the server log.
    pub dir: PathBuf,
    bindir: PathBuf,
    server: Mutex<Option<Child>>,
}

static SHARED: OnceLock<Cluster> = OnceLock::new();

fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// The PostgreSQL binaries: `$PG_CONFIG --bindir`, by default PostgreSQL 15's.
pub fn pg_bindir() -> PathBuf {
    let pg_config = std::env::var("PG_CONFIG")
        .unwrap_or_else(|_| "/usr/lib/postgresql/15/bin/pg_config".into());
    let out = Command::new(&pg_config)
        .arg("--bindir")
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {pg_config}: {e}; install postgresql-15 (make setup)")
        });
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// Runs a PostgreSQL program as the user that may run the server.
fn pg_command(program: &Path) -> Command {
    if running_as_root() {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(program);
        cmd
    } else {
        Command::new(program)
    }
}

/// A new temporary directory for a server, owned by the user that runs it.
fn server_dir() -> PathBuf {
    let dir = tempfile::Builder::new()
        .prefix("audit-trail-test-")
        .tempdir()
        .expect("cannot create a temporary directory")
        .keep();
    if running_as_root() {
        let status = Command::new("chown")
            .args(["-R", "postgres:"])
            .arg(&dir)
            .status();
        assert!(
            status.is_ok_and(|s| s.success()),
            "cannot chown {dir:?} to postgres"
        );
    }
    dir
}

/// Runs a PostgreSQL program to completion, failing the test with its stderr if it fails.
fn run_pg(mut cmd: Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Appends settings to a data directory's postgresql.conf (later lines win).
fn append_conf(data: &Path, settings: &str) {
    let mut conf = fs::OpenOptions::new()
        .append(true)
        .open(data.join("postgresql.conf"))
        .expect("postgresql.conf");
    writeln!(conf, "{settings}").expect("write postgresql.conf");
}

/// A TCP port on 127.0.0.1 that nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free TCP port on 127.0.0.1")
}

impl Cluster {
    /// The cluster shared by every test of this run, started on first use.
    pub fn shared() -> &'static Cluster {
        SHARED.get_or_init(|| {
            let cluster = Cluster::start();
            extern "C" fn stop_shared() {
                if let Some(cluster) = SHARED.get() {
                    cluster.stop();
                    let _ = fs::remove_dir_all(&cluster.dir);
                }
            }
            // SAFETY: registering a plain extern "C" function; it runs once at process exit.
            unsafe { libc::atexit(stop_shared) };
            cluster
        })
    }

    /// A cluster of its own, for tests that restart or break the server. Stopped on drop.
    pub fn start() -> Cluster {
        Self::start_with("")
    }

    /// A cluster of its own with extra postgresql.conf lines (e.g. shared_preload_libraries).
    pub fn start_with(settings: &str) -> Cluster {
        let bindir = pg_bindir();
        let dir = server_dir();
        let data = dir.join("data");
        let mut initdb = pg_command(&bindir.join("initdb"));
        initdb.arg("-D").arg(&data).args([
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        ]);
        run_pg(initdb, "initdb");

        let port = free_port();
        // Durability is not under test here: skip fsyncs so tests run in seconds.
        append_conf(
            &data,
            &format!(
                "port = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n\
             fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n\
             shared_buffers = 128MB\nmax_connections = 150\nmax_prepared_transactions = 10\n\
             log_min_messages = warning\nwal_level = logical\n\
             password_encryption = 'scram-sha-256'",
                dir.display()
            ),
        );
        if !settings.is_empty() {
            append_conf(&data, settings);
        }
        fs::write(
            data.join("pg_hba.conf"),
            // `replication` lets `standby_of` copy and stream this cluster.
            "local all all trust\nlocal replication all trust\n\
             host all all 127.0.0.1/32 scram-sha-256\n",
        )
        .expect("write pg_hba.conf");

        let cluster = Cluster {
            port,
            dir,
            bindir,
            server: Mutex::new(None),
        };
        cluster.launch();
        cluster.create_template();
        cluster
    }

    /// A hot standby of `primary`, streaming from it: a copy made with `pg_basebackup -R`
    /// (which writes `primary_conninfo` and `standby.signal`; a fast checkpoint, or it waits
    /// minutes for a spread one to start), on a port and socket directory
    /// of its own. Stopped on drop.
    pub fn standby_of(primary: &Cluster) -> Cluster {
        let bindir = primary.bindir.clone();
        let dir = server_dir();
        let data = dir.join("data");
        let mut basebackup = pg_command(&bindir.join("pg_basebackup"));
        basebackup
            .arg("-h")
            .arg(&primary.dir)
            .arg("-p")
            .arg(primary.port.to_string())
            .args([
                "-U",
                "postgres",
                "-R",
                "-X",
                "stream",
                "--checkpoint=fast",
                "--no-sync",
                "-D",
            ])
            .arg(&data);
        run_pg(basebackup, "pg_basebackup");
        let port = free_port();
        // The copied settings name the primary's port and socket; these come later and win.
        append_conf(
            &data,
            &format!(
                "port = {port}\nunix_socket_directories = '{}'\nhot_standby = on",
                dir.display()
            ),
        );
        let standby = Cluster {
            port,
            dir,
            bindir,
            server: Mutex::new(None),
        };
        standby.launch();
        standby
    }

    fn launch(&self) {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("server.log"))
            .expect("server log");
        let child = pg_command(Path::new("/bin/sh"))
            .arg("-c")
            .arg(
                // RUST_BACKTRACE: errors must never carry a Rust backtrace, whatever the
                // server's environment asks for; every test checks that under this one.
                r#"exec 3<&0; RUST_BACKTRACE=1 "$0" -D "$1" & pid=$!; read -r _ <&3; kill -INT "$pid"; wait "$pid""#,
            )
            .arg(self.bindir.join("postgres"))
            .arg(self.dir.join("data"))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("cannot start postgres");
        *self.server.lock().unwrap_or_else(|e| e.into_inner()) = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match postgres::Client::connect(&self.conninfo("postgres", "postgres"), postgres::NoTls)
            {
                Ok(_) => return,
                Err(e) if Instant::now() > deadline => {
                    panic!(
                        "PostgreSQL did not start: {e}; see {}/server.log",
                        self.dir.display()
                    )
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    /// Fast shutdown; waits until the server has exited.
    pub fn stop(&self) {
        let child = self.server.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(mut child) = child {
            drop(child.stdin.take());
            let _ = child.wait();
        }
    }

    pub fn restart(&self) {
        self.stop();
        self.launch();
    }

    /// A database with the extension installed, that new test databases copy.
    fn create_template(&self) {
        let mut admin = self.superuser("postgres");
        admin
            .batch_execute("CREATE DATABASE audit_template")
            .expect("create template database");
        let mut template = self.superuser("audit_template");
        template
            .batch_execute("CREATE EXTENSION audit_trail")
            .unwrap_or_else(|e| {
                panic!("CREATE EXTENSION audit_trail failed ({e}); install it first: make install")
            });
    }

    pub fn bindir(&self) -> &Path {
        &self.bindir
    }

    /// libpq key=value connection string over the unix socket (trust authentication).
    pub fn conninfo(&self, dbname: &str, user: &str) -> String {
        format!(
            "host={} port={} dbname={dbname} user={user} connect_timeout=10",
            self.dir.display(),
            self.port
        )
    }

    /// postgres:// URL over TCP to 127.0.0.1 (password authentication).
    pub fn tcp_url(&self, dbname: &str, user: &str, password: &str) -> String {
        format!(
            "postgresql://{user}:{password}@127.0.0.1:{}/{dbname}",
            self.port
        )
    }

    pub fn superuser(&self, dbname: &str) -> postgres::Client {
        postgres::Client::connect(&self.conninfo(dbname, "postgres"), postgres::NoTls)
            .unwrap_or_else(|e| panic!("connect to {dbname}: {e}"))
    }
}

/// Stops a cluster that had to be `'static` (leaked, for [`crate::db::TestDb::on`]) and removes
/// its directory when dropped, so that a test that fails does not leave it behind either.
pub struct Discard(pub &'static Cluster);

impl Drop for Discard {
    fn drop(&mut self) {
        self.0.stop();
        let _ = fs::remove_dir_all(&self.0.dir);
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
        let _ = fs::remove_dir_all(&self.dir);
    }
}
