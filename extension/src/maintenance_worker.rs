//! `audit.maintain()` on a schedule, from a background worker, for sites that put
//! `audit_trail` in `shared_preload_libraries` (optional: without it, cron or a timer runs
//! `audit-trail maintain`, and nothing needs a restart).
//!
//! One worker per database named in `audit.maintenance_databases` (read at server start),
//! connected as the bootstrap superuser, runs maintenance at start and then every
//! `audit.maintenance_interval` (reloadable). A database without the extension is skipped.
//! An error ends the worker with the error in the server log; the postmaster starts it again a
//! minute later.

use std::ffi::CString;
use std::time::Duration;

use pgrx::bgworkers::{BackgroundWorker, BackgroundWorkerBuilder, SignalWakeFlags};
use pgrx::prelude::*;
use pgrx::{GucContext, GucFlags, GucRegistry, GucSetting};

static DATABASES: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static INTERVAL_SECONDS: GucSetting<i32> = GucSetting::<i32>::new(3600);

/// Defines the settings; called from _PG_init whether or not the library is preloaded, so
/// that a setting in postgresql.conf is always known.
pub fn define() {
    // Read once, at server start, when the workers are registered. PostgreSQL refuses to
    // create a server-start setting after start-up, so a backend that loads the library
    // later (the usual case: no preloading) defines it as reloadable; without preloading
    // no worker reads it anyway.
    // SAFETY: reads a flag the postmaster sets while it loads preloaded libraries.
    let context = if unsafe { pg_sys::process_shared_preload_libraries_in_progress } {
        GucContext::Postmaster
    } else {
        GucContext::Sighup
    };
    GucRegistry::define_string_guc(
        c"audit.maintenance_databases",
        c"Databases in which a background worker runs audit.maintain() on a schedule.",
        c"Comma-separated. Needs audit_trail in shared_preload_libraries; read at server start.",
        &DATABASES,
        context,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"audit.maintenance_interval",
        c"Time between two runs of audit.maintain() by the background workers.",
        c"Maintenance is cheap when there is nothing to do; hourly suits monthly partitions.",
        &INTERVAL_SECONDS,
        1,
        7 * 24 * 3600,
        GucContext::Sighup,
        GucFlags::UNIT_S,
    );
}

/// Registers one worker per configured database, when the library is being preloaded.
pub fn register() {
    // SAFETY: reads a flag the postmaster sets while it loads preloaded libraries.
    if !unsafe { pg_sys::process_shared_preload_libraries_in_progress } {
        return;
    }
    let Some(list) = DATABASES.get() else {
        return;
    };
    for database in list
        .to_string_lossy()
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
    {
        BackgroundWorkerBuilder::new(&format!("audit_trail maintenance of {database}"))
            .set_type("audit_trail maintenance")
            .set_library("audit_trail")
            .set_function("audit_maintenance_worker_main")
            .set_extra(database)
            .enable_spi_access()
            .set_restart_time(Some(Duration::from_secs(60)))
            .load();
    }
}

#[pg_guard]
#[no_mangle]
pub extern "C-unwind" fn audit_maintenance_worker_main(_arg: pg_sys::Datum) {
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    let database = BackgroundWorker::get_extra().to_owned();
    BackgroundWorker::connect_worker_to_spi(Some(&database), None);
    // Retention counts a partition after locking it, which needs a snapshot taken after the
    // lock (audit.require_read_committed): READ COMMITTED, whatever default_transaction_isolation
    // the site or the database sets (applied above, when the worker connected).
    // SAFETY: this process's own default, set before its first transaction starts, as SET
    // default_transaction_isolation would.
    unsafe {
        pg_sys::DefaultXactIsoLevel = pg_sys::XACT_READ_COMMITTED as i32;
    }
    loop {
        let done = BackgroundWorker::transaction(|| -> Result<Option<String>, spi::Error> {
            // The worker runs as the bootstrap superuser with the database's settings, which
            // its owner controls (ALTER DATABASE ... SET search_path): before any query names
            // an operator or function, the path is pinned for the transaction, and the
            // queries qualify what they call anyway. Otherwise an operator the database owner
            // planted in `public` would run here as a superuser.
            Spi::run("SELECT pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true)")?;
            let installed = Spi::get_one::<bool>(
                "SELECT EXISTS (SELECT FROM pg_catalog.pg_extension
                                 WHERE extname OPERATOR(pg_catalog.=) 'audit_trail')",
            )?
            .unwrap_or(false);
            if !installed {
                return Ok(None);
            }
            let done = Spi::get_one::<pgrx::JsonB>("SELECT audit.maintain()")?;
            Ok(done.map(|d| summary(&d.0)))
        });
        match done {
            Ok(Some(line)) => pgrx::log!("audit_trail maintenance of {database}: {line}"),
            Ok(None) => {}
            Err(e) => pgrx::warning!("audit_trail maintenance of {database}: {e}"),
        }
        let interval = Duration::from_secs(INTERVAL_SECONDS.get().max(1) as u64);
        if !BackgroundWorker::wait_latch(Some(interval)) {
            break;
        }
        if BackgroundWorker::sighup_received() {
            // SAFETY: the documented way for a worker to reread its configuration.
            unsafe { pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP) };
        }
    }
}

/// What a run did, in one line for the server log.
fn summary(done: &serde_json::Value) -> String {
    let count = |key: &str| done[key].as_array().map_or(0, Vec::len);
    format!(
        "{} partitions created, {} dropped, {} kept past retention, {} events summarized",
        count("created"),
        count("dropped"),
        count("kept"),
        done["summarized_events"].as_i64().unwrap_or(0)
    )
}
