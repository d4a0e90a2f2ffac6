//! A fresh database per test, copied from the cluster's template.

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::cluster::Cluster;

static COUNTER: AtomicUsize = AtomicUsize::new(0);

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

pub struct TestDb {
    pub name: String,
    pub cluster: &'static Cluster,
}

impl TestDb {
    /// A new database with `audit_trail` installed, on the shared cluster.
    pub fn new() -> TestDb {
        Self::create("audit_template")
    }

    /// A new database without the extension.
    pub fn without_extension() -> TestDb {
        Self::create("template1")
    }

    /// A new database with `audit_trail` installed, on a cluster of the test's own (made by
    /// [`Cluster::start`], so it has the template).
    pub fn on(cluster: &'static Cluster) -> TestDb {
        Self::create_on(cluster, "audit_template")
    }

    fn create(template: &str) -> TestDb {
        Self::create_on(Cluster::shared(), template)
    }

    fn create_on(cluster: &'static Cluster, template: &str) -> TestDb {
        let name = unique("t");
        cluster
            .superuser("postgres")
            .batch_execute(&format!("CREATE DATABASE {name} TEMPLATE {template}"))
            .unwrap_or_else(|e| panic!("create database {name}: {e}"));
        TestDb { name, cluster }
    }

    /// A superuser connection.
    pub fn client(&self) -> postgres::Client {
        self.cluster.superuser(&self.name)
    }

    /// A connection as `role` (unix socket, trust).
    pub fn client_as(&self, role: &str) -> postgres::Client {
        postgres::Client::connect(&self.conninfo(role), postgres::NoTls)
            .unwrap_or_else(|e| panic!("connect as {role}: {e}"))
    }

    pub fn conninfo(&self, role: &str) -> String {
        self.cluster.conninfo(&self.name, role)
    }

    /// Creates a role with a name unique to this run, e.g. `create_role("clerk", "LOGIN")`.
    /// Roles are cluster-wide, so tests running side by side must not share names.
    pub fn create_role(&self, prefix: &str, options: &str) -> String {
        let role = unique(prefix);
        self.client()
            .batch_execute(&format!("CREATE ROLE {role} {options}"))
            .unwrap_or_else(|e| panic!("create role {role}: {e}"));
        role
    }
}

impl Default for TestDb {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // Keep a failed test's database for inspection while the cluster lives.
            return;
        }
        let _ = self.cluster.superuser("postgres").batch_execute(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ));
    }
}
