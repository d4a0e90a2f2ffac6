//! `audit.revert(event_id)` and `audit.revert_transaction(txid)`: a change put back on its
//! live table, as the caller and in the caller's transaction (docs/undo.md). What each event
//! needs written is worked out in SQL (`audit.undo_event`, sql/history.sql, SECURITY
//! INVOKER, so PostgreSQL's privileges decide); this module marks the writes it makes, so that
//! capture records them with `source = 'revert'` and `context.reverts` naming the event put
//! back. Only these functions set the mark, and it is gone when they return (or fail): an
//! application cannot make an ordinary change read as a revert, and `undo_event` called
//! directly records an ordinary change.

use std::cell::Cell;

use pgrx::datum::DatumWithOid;
use pgrx::pg_sys;
use pgrx::spi::Spi;

use crate::error::{AuditError, Result};
use crate::pg::args;
use crate::pg::ffi::sql_callable;

sql_callable!(audit_revert, pg_finfo_audit_revert => revert_entry);
sql_callable!(audit_revert_transaction, pg_finfo_audit_revert_transaction => revert_transaction_entry);

thread_local! {
    // One backend is one thread: the event being put back while audit.revert runs.
    static REVERTING: Cell<Option<i64>> = const { Cell::new(None) };
}

/// The event whose revert is being written now, if one is.
pub fn reverting() -> Option<i64> {
    REVERTING.get()
}

/// The transaction ended: no revert is under way (the mark's guard clears it on every path
/// out of the functions below; this is the backstop).
pub fn transaction_ended() {
    REVERTING.set(None);
}

/// Sets the mark for as long as it lives; an error out of the SQL it runs unwinds through
/// the drop, which puts the previous mark (none, or an enclosing revert's) back.
struct Mark(Option<i64>);

impl Mark {
    fn set(event_id: i64) -> Self {
        Mark(REVERTING.replace(Some(event_id)))
    }
}

impl Drop for Mark {
    fn drop(&mut self) {
        REVERTING.set(self.0);
    }
}

/// Puts event `event_id` back, marked as its revert; `txid`, its transaction when known,
/// finds it through the (txid, id) index instead of the id's block ranges.
fn undo(event_id: i64, skip_redacted: bool, txid: Option<pg_sys::Datum>) -> Result<()> {
    let _mark = Mark::set(event_id);
    // SAFETY: a given txid is an xid8 datum (by value); NULL otherwise.
    let txid = unsafe {
        match txid {
            Some(datum) => DatumWithOid::new(datum, pg_sys::XID8OID),
            None => DatumWithOid::null_oid(pg_sys::XID8OID),
        }
    };
    Spi::run_with_args(
        "SELECT audit.undo_event($1, $2, $3)",
        &[event_id.into(), skip_redacted.into(), txid],
    )?;
    Ok(())
}

unsafe fn revert_entry(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: the SQL signature is (bigint, boolean).
    let (event_id, skip_redacted) = unsafe {
        (
            args::datum(fcinfo, 0).map(|d| d.value() as i64),
            args::datum(fcinfo, 1).is_some_and(|d| d.value() != 0),
        )
    };
    let result = event_id
        .ok_or(AuditError::NullArgument {
            parameter: "event_id",
        })
        .and_then(|id| undo(id, skip_redacted, None));
    match result {
        Ok(()) => pg_sys::Datum::from(0),
        Err(e) => e.raise(),
    }
}

unsafe fn revert_transaction_entry(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: the SQL signature is (xid8, boolean).
    let (txid, skip_redacted) = unsafe {
        (
            args::datum(fcinfo, 0),
            args::datum(fcinfo, 1).is_some_and(|d| d.value() != 0),
        )
    };
    let result = txid
        .ok_or(AuditError::NullArgument { parameter: "txid" })
        .and_then(|txid| revert_transaction(txid, skip_redacted));
    match result {
        Ok(n) => pg_sys::Datum::from(n),
        Err(e) => e.raise(),
    }
}

/// Every change of the transaction put back, newest first, all or nothing: the first event
/// that cannot be reverted fails the call and with it every revert made before it.
fn revert_transaction(txid: pg_sys::Datum, skip_redacted: bool) -> Result<i64> {
    // SAFETY: the argument is an xid8 datum (by value).
    let arg = [unsafe { DatumWithOid::new(txid, pg_sys::XID8OID) }];
    let events: Vec<i64> = Spi::connect(|client| -> Result<Vec<i64>> {
        let rows = client.select(
            "SELECT t FROM audit.transaction_changes($1) AS t",
            None,
            &arg,
        )?;
        let mut ids = Vec::new();
        for row in rows {
            if let Some(id) = row.get::<i64>(1)? {
                ids.push(id);
            }
        }
        Ok(ids)
    })?;
    for &id in &events {
        undo(id, skip_redacted, Some(txid))?;
    }
    Ok(i64::try_from(events.len()).unwrap_or(i64::MAX))
}
