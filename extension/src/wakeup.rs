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

use crate::pg::ffi;
use crate::settings;

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

/// Pre-commit: queues the notification if this transaction wrote events and the backend
/// has not notified within the interval.
pub fn pre_commit() {
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

/// The transaction aborted or is being prepared (a prepared transaction may not notify):
/// no notification.
pub fn forget() {
    WROTE_EVENTS.set(false);
}
