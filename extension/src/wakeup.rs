//! Waking change-stream followers: `NOTIFY audit_trail_events` when a transaction that wrote
//! events commits.
//!
//! A notifying commit takes a cluster-wide lock (PreCommit_Notify), which serialises busy
//! writers, so each backend notifies at most once per [`INTERVAL`]: the first transaction to
//! write events after a quiet interval notifies, the ones committing right after it do not.
//! A follower woken by a notification looks again one interval later, so it still sees them
//! within about an interval; a transaction whose notification was rolled back does not count.

use std::cell::Cell;

use pgrx::pg_sys;

use crate::{ffi, settings};

/// Microseconds between two notifications of one backend. Followers re-check this long after
/// a wake-up (audit-trail follow uses 200 ms).
pub const INTERVAL_MICROS: i64 = 100_000;

thread_local! {
    // One backend is one thread.
    /// When this backend's last notifying transaction committed.
    static LAST_COMMIT: Cell<i64> = const { Cell::new(i64::MIN) };
    /// The (sub)transaction nesting level that queued a notification, 0 when none is pending.
    static PENDING_LEVEL: Cell<i32> = const { Cell::new(0) };
}

/// Called when a statement has written events.
pub fn events_written() {
    if !settings::notify() || PENDING_LEVEL.get() != 0 {
        return;
    }
    // SAFETY: reading the statement's start time has no preconditions.
    let now = unsafe { pg_sys::GetCurrentStatementStartTimestamp() };
    if now.saturating_sub(LAST_COMMIT.get()) < INTERVAL_MICROS {
        return;
    }
    // SAFETY: constant NUL-terminated strings; inside a transaction.
    unsafe {
        ffi::async_notify(c"audit_trail_events", c"");
        PENDING_LEVEL.set(pg_sys::GetCurrentTransactionNestLevel());
    }
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn on_xact(event: pg_sys::XactEvent::Type, _arg: *mut core::ffi::c_void) {
    match event {
        pg_sys::XactEvent::XACT_EVENT_COMMIT => {
            if PENDING_LEVEL.get() != 0 {
                // SAFETY: reading the clock has no preconditions.
                LAST_COMMIT.set(unsafe { pg_sys::GetCurrentTimestamp() });
            }
            PENDING_LEVEL.set(0);
        }
        pg_sys::XactEvent::XACT_EVENT_ABORT | pg_sys::XactEvent::XACT_EVENT_PREPARE => {
            PENDING_LEVEL.set(0)
        }
        _ => {}
    }
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn on_subxact(
    event: pg_sys::SubXactEvent::Type,
    _my: pg_sys::SubTransactionId,
    _parent: pg_sys::SubTransactionId,
    _arg: *mut core::ffi::c_void,
) {
    // A rolled-back subtransaction takes its queued notification with it.
    if event == pg_sys::SubXactEvent::SUBXACT_EVENT_ABORT_SUB {
        // SAFETY: reading the nesting level has no preconditions.
        let level = unsafe { pg_sys::GetCurrentTransactionNestLevel() };
        if PENDING_LEVEL.get() >= level {
            PENDING_LEVEL.set(0);
        }
    }
}

pub fn register_callbacks() {
    // SAFETY: called once from _PG_init; the callbacks live as long as the library.
    unsafe {
        pg_sys::RegisterXactCallback(Some(on_xact), std::ptr::null_mut());
        pg_sys::RegisterSubXactCallback(Some(on_subxact), std::ptr::null_mut());
    }
}
