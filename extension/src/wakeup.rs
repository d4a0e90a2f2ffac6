//! Waking change-stream followers: `NOTIFY audit_trail_events` when a transaction that wrote
//! events commits.
//!
//! The notification is queued at pre-commit, not when events are written: a transaction that
//! is prepared for two-phase commit (which PostgreSQL refuses after a NOTIFY) sends none, and
//! the throttle below is decided when the transaction actually commits.
//!
//! A notifying commit takes a cluster-wide lock (PreCommit_Notify), which serialises busy
//! writers, so each backend notifies at most once per [`INTERVAL_MICROS`]: the first
//! transaction to commit events after a quiet interval notifies, the ones right after it do
//! not. A follower woken by a notification looks again shortly after (audit-trail follow waits
//! 200 ms), so it still sees them.

use std::cell::Cell;

use pgrx::pg_sys;

use crate::{event_store, ffi, settings};

/// Microseconds between two notifications of one backend.
pub const INTERVAL_MICROS: i64 = 100_000;

thread_local! {
    // One backend is one thread.
    /// When this backend last queued a notification for a committing transaction.
    static LAST_NOTIFY: Cell<i64> = const { Cell::new(i64::MIN) };
    /// The current transaction wrote events.
    static WROTE_EVENTS: Cell<bool> = const { Cell::new(false) };
}

/// Called when a statement has written events.
pub fn events_written() {
    WROTE_EVENTS.set(true);
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn on_xact(event: pg_sys::XactEvent::Type, _arg: *mut core::ffi::c_void) {
    match event {
        pg_sys::XactEvent::XACT_EVENT_PRE_COMMIT => {
            if !WROTE_EVENTS.replace(false) || !settings::notify() {
                return;
            }
            // SAFETY: reading the clock has no preconditions.
            let now = unsafe { pg_sys::GetCurrentTimestamp() };
            if now.saturating_sub(LAST_NOTIFY.get()) < INTERVAL_MICROS {
                return;
            }
            // SAFETY: constant NUL-terminated strings; the transaction is still open.
            unsafe { ffi::async_notify(audit_trail_contract::NOTIFY_CHANNEL, c"") };
            LAST_NOTIFY.set(now);
        }
        pg_sys::XactEvent::XACT_EVENT_ABORT
        | pg_sys::XactEvent::XACT_EVENT_PRE_PREPARE
        | pg_sys::XactEvent::XACT_EVENT_PARALLEL_ABORT => WROTE_EVENTS.set(false),
        _ => {}
    }
    if matches!(
        event,
        pg_sys::XactEvent::XACT_EVENT_COMMIT
            | pg_sys::XactEvent::XACT_EVENT_ABORT
            | pg_sys::XactEvent::XACT_EVENT_PREPARE
            | pg_sys::XactEvent::XACT_EVENT_PARALLEL_COMMIT
            | pg_sys::XactEvent::XACT_EVENT_PARALLEL_ABORT
    ) {
        event_store::transaction_ended();
        crate::attribution::transaction_ended();
        crate::set_actor::transaction_ended();
    }
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn on_subxact(
    event: pg_sys::SubXactEvent::Type,
    my: pg_sys::SubTransactionId,
    parent: pg_sys::SubTransactionId,
    _arg: *mut core::ffi::c_void,
) {
    match event {
        pg_sys::SubXactEvent::SUBXACT_EVENT_ABORT_SUB => {
            event_store::transaction_ended();
            crate::set_actor::subtransaction_aborted(my);
        }
        pg_sys::SubXactEvent::SUBXACT_EVENT_COMMIT_SUB => {
            crate::set_actor::subtransaction_committed(my, parent);
        }
        _ => {}
    }
}

pub fn register_callbacks() {
    // SAFETY: called once from _PG_init; the callbacks live as long as the library.
    unsafe {
        pg_sys::RegisterXactCallback(Some(on_xact), std::ptr::null_mut());
        pg_sys::RegisterSubXactCallback(Some(on_subxact), std::ptr::null_mut());
    }
}
