//! The `audit_trail` PostgreSQL extension: capture of row changes into `audit.events`, in the
//! writing transaction.
//!
//! This file only wires things up. The SQL surface (tables, views, roles, grants and the
//! `CREATE FUNCTION`s of the C entry points below) lives in `extension/sql/`.

mod app_events;
mod append_only;
mod attribution;
mod capture;
mod ddl_command;
mod drop_guard;
mod error;
mod event_store;
mod events_catalog;
mod maintenance_worker;
mod pg;
mod privilege;
mod revert;
mod row_json;
mod seals;
mod search;
mod service_lock;
mod set_actor;
mod settings;
mod table_config;
mod track;
mod wakeup;
mod xact;

::pgrx::pg_module_magic!(name, version);

pgrx::extension_sql_file!("../sql/schema.sql", name = "schema", bootstrap);
pgrx::extension_sql_file!("../sql/api.sql", name = "api", requires = ["schema"]);
pgrx::extension_sql_file!(
    "../sql/integrity.sql",
    name = "integrity",
    requires = ["api"]
);
pgrx::extension_sql_file!(
    "../sql/stream.sql",
    name = "stream",
    requires = ["integrity"]
);
// The log's lifetime, one concern a file, in the order their objects need each other.
pgrx::extension_sql_file!(
    "../sql/retention.sql",
    name = "retention",
    requires = ["stream"]
);
pgrx::extension_sql_file!(
    "../sql/summary.sql",
    name = "summary",
    requires = ["retention"]
);
pgrx::extension_sql_file!(
    "../sql/partitions.sql",
    name = "partitions",
    requires = ["summary"]
);
pgrx::extension_sql_file!(
    "../sql/archive.sql",
    name = "archive",
    requires = ["partitions"]
);
pgrx::extension_sql_file!(
    "../sql/maintenance.sql",
    name = "maintenance",
    requires = ["archive"]
);
pgrx::extension_sql_file!(
    "../sql/report.sql",
    name = "report",
    requires = ["maintenance"]
);
pgrx::extension_sql_file!("../sql/search.sql", name = "search", requires = ["report"]);
pgrx::extension_sql_file!(
    "../sql/history.sql",
    name = "history",
    requires = ["search"]
);
pgrx::extension_sql_file!("../sql/undo.sql", name = "undo", requires = ["history"]);
pgrx::extension_sql_file!("../sql/wal.sql", name = "wal", requires = ["undo"]);
pgrx::extension_sql_file!("../sql/privileges.sql", name = "privileges", finalize);

#[allow(non_snake_case)]
#[pgrx::pg_guard]
pub extern "C-unwind" fn _PG_init() {
    // Errors must never carry a Rust backtrace (pgrx adds one to an ERROR's DETAIL when
    // RUST_BACKTRACE is set in the server's environment): it leaks code layout to clients
    // and buries the message. RUST_LIB_BACKTRACE=0 turns capture off whatever
    // RUST_BACKTRACE says; a backend is single-threaded, so nothing reads the environment
    // concurrently.
    std::env::set_var("RUST_LIB_BACKTRACE", "0");
    // Before settings::define, which reserves the audit. prefix: a setting of the worker's
    // read from postgresql.conf must not be dropped as unknown first.
    maintenance_worker::define();
    settings::define();
    maintenance_worker::register();
    table_config::register_invalidation_callbacks();
    xact::register_callbacks();
}
