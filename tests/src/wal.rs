//! A database with the WAL capture install (docs/wal-capture.md), as on a managed service:
//! installed by a role that owns the database and may make roles and replication slots but is
//! no superuser, with a slot of its own (slots are the cluster's, and tests run side by side).

use crate::sidecar::{command, run, Run};
use crate::TestDb;

/// A database without the extension, installed for WAL capture by its owner; the slot is
/// dropped with it (a database with a slot cannot be dropped).
pub struct WalDb {
    pub db: TestDb,
    /// The install's owner: owns the database and the application's tables.
    pub owner: String,
    /// What `audit-trail capture` runs as: REPLICATION and audit_capture, nothing more.
    pub capturer: String,
    capturer_grant: String,
}

impl WalDb {
    /// Installed (the command's exit checked), with the roles made.
    pub fn new() -> WalDb {
        let wal = WalDb::uninstalled();
        let installed = wal.install(&wal.owner);
        assert_eq!(installed.code, 0, "install: {}", installed.stderr);
        wal.grant_capture();
        wal
    }

    /// Makes the capture role a member of audit_capture (which the install makes).
    pub fn grant_capture(&self) {
        self.db
            .client()
            .batch_execute(&self.capturer_grant)
            .unwrap();
    }

    /// The database and the roles, before the install.
    pub fn uninstalled() -> WalDb {
        let db = TestDb::without_extension();
        let owner = db.create_role("wal_owner", "LOGIN CREATEROLE REPLICATION");
        db.client()
            .batch_execute(&format!("ALTER DATABASE {} OWNER TO {owner}", db.name))
            .unwrap();
        let capturer = db.create_role("wal_capturer", "LOGIN REPLICATION");
        // audit_capture is the install's to make: granted once it exists.
        let capturer_grant = format!("GRANT audit_capture TO {capturer}");
        WalDb {
            db,
            owner,
            capturer,
            capturer_grant,
        }
    }

    /// The slot's name: the database's.
    pub fn slot(&self) -> &str {
        &self.db.name
    }

    /// `audit-trail install --wal-capture` as `role`.
    pub fn install(&self, role: &str) -> Run {
        run(command().args([
            "install",
            "--wal-capture",
            "--slot",
            self.slot(),
            "--db",
            &self.db.conninfo(role),
        ]))
    }

    /// `audit-trail capture --once` as `role`: everything committed before it started.
    pub fn capture_once_as(&self, role: &str) -> Run {
        run(command().args([
            "capture",
            "--once",
            "--slot",
            self.slot(),
            "--db",
            &self.db.conninfo(role),
        ]))
    }

    /// `audit-trail capture --once` as the capture role, which must succeed.
    pub fn capture(&self) -> Run {
        let r = self.capture_once_as(&self.capturer);
        assert_eq!(r.code, 0, "capture: {}", r.stderr);
        r
    }

    /// A connection as the install's owner.
    pub fn owner_client(&self) -> postgres::Client {
        self.db.client_as(&self.owner)
    }
}

impl Default for WalDb {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for WalDb {
    fn drop(&mut self) {
        let _ = self.db.client().execute(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
              WHERE database = current_database()",
            &[],
        );
    }
}
