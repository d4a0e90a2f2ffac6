//! Running the real `audit-trail` binary.

use std::path::PathBuf;
use std::process::{Command, Output};

/// The binary under test: `$AUDIT_TRAIL_BIN`, else the workspace's debug build
/// (`make e2e` builds it first).
pub fn binary() -> PathBuf {
    if let Ok(path) = std::env::var("AUDIT_TRAIL_BIN") {
        return PathBuf::from(path);
    }
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/debug/audit-trail");
    assert!(
        path.exists(),
        "{} is missing: run `cargo build -p audit-trail` (make e2e does)",
        path.display()
    );
    path
}

/// A command with a clean environment: no PG* or DATABASE_URL leaking in from the caller.
pub fn command() -> Command {
    let mut cmd = Command::new(binary());
    for var in [
        "DATABASE_URL",
        "PGHOST",
        "PGPORT",
        "PGUSER",
        "PGPASSWORD",
        "PGPASSFILE",
        "PGDATABASE",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Run {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

pub fn run(cmd: &mut Command) -> Run {
    cmd.output().expect("run audit-trail").into()
}
