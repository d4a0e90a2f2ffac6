//! The transaction callbacks: what each module keeps for the length of a transaction (or a
//! subtransaction) is reset here, in one place, at its end.

use pgrx::pg_sys;

use crate::{attribution, event_store, revert, set_actor, wakeup};

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn on_xact(event: pg_sys::XactEvent::Type, _arg: *mut core::ffi::c_void) {
    match event {
        pg_sys::XactEvent::XACT_EVENT_PRE_COMMIT => wakeup::pre_commit(),
        pg_sys::XactEvent::XACT_EVENT_ABORT
        | pg_sys::XactEvent::XACT_EVENT_PRE_PREPARE
        | pg_sys::XactEvent::XACT_EVENT_PARALLEL_ABORT => wakeup::forget(),
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
        attribution::transaction_ended();
        set_actor::transaction_ended();
        revert::transaction_ended();
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
            set_actor::subtransaction_aborted(my);
        }
        pg_sys::SubXactEvent::SUBXACT_EVENT_COMMIT_SUB => {
            set_actor::subtransaction_committed(my, parent);
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
