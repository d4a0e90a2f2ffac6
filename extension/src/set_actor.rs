//! `audit.set_actor(actor, source, context, tenant)`: the application names who is acting,
//! and for which organization, for the rest of its transaction. The values are kept here, where only this function writes them,
//! and capture reads them before the `audit.*` settings: a table owner's trigger (or any code
//! the writer did not run) that changes the settings with `set_config` changes nothing an
//! event says. The function also sets the settings (SET LOCAL), so `current_setting` shows
//! them.
//!
//! Like SET LOCAL, what it sets lasts until the transaction ends, and a savepoint rolled back
//! undoes what was set inside it. It cannot be called from inside a trigger.

use std::cell::RefCell;
use std::ffi::{CStr, CString};

use pgrx::pg_sys;

use crate::error::{AuditError, Result};
use crate::pg::args;
use crate::pg::ffi::sql_callable;

sql_callable!(audit_set_actor, pg_finfo_audit_set_actor => set_actor_entry);

/// What one call set, and the subtransaction it was made in.
struct Given {
    subtransaction: pg_sys::SubTransactionId,
    actor: CString,
    source: CString,
    context: CString,
    tenant: CString,
}

/// What the transaction set: each value empty when it set none.
#[derive(Clone)]
pub struct GivenAttribution {
    pub actor: CString,
    pub source: CString,
    pub context: CString,
    pub tenant: CString,
}

thread_local! {
    // One backend is one thread. The calls of the current transaction, oldest first; the last
    // one counts. Emptied when the transaction ends (xact.rs).
    static GIVEN: RefCell<Vec<Given>> = const { RefCell::new(Vec::new()) };
}

/// What the transaction set with `audit.set_actor`, if it did.
pub fn current() -> Option<GivenAttribution> {
    GIVEN.with_borrow(|given| {
        given.last().map(|g| GivenAttribution {
            actor: g.actor.clone(),
            source: g.source.clone(),
            context: g.context.clone(),
            tenant: g.tenant.clone(),
        })
    })
}

/// The transaction ended: nothing it set lasts.
pub fn transaction_ended() {
    GIVEN.with_borrow_mut(Vec::clear);
}

/// A subtransaction rolled back: what it (or one it contained) set is undone.
pub fn subtransaction_aborted(id: pg_sys::SubTransactionId) {
    GIVEN.with_borrow_mut(|given| given.retain(|g| g.subtransaction < id));
}

/// A subtransaction committed into its parent: what it set now belongs to the parent.
pub fn subtransaction_committed(id: pg_sys::SubTransactionId, parent: pg_sys::SubTransactionId) {
    GIVEN.with_borrow_mut(|given| {
        for g in given.iter_mut().filter(|g| g.subtransaction >= id) {
            g.subtransaction = parent;
        }
    });
}

unsafe fn set_actor_entry(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: the SQL signature is (text, text, jsonb, text); a schema before 0.3.0 declares
    // it without the tenant, which then reads as NULL.
    let (actor, source, context, tenant) = unsafe {
        (
            args::text(fcinfo, 0),
            args::text(fcinfo, 1),
            args::datum(fcinfo, 2),
            args::text(fcinfo, 3),
        )
    };
    match set_actor(actor, source, context, tenant) {
        Ok(()) => pg_sys::Datum::from(0),
        Err(e) => e.raise(),
    }
}

fn set_actor(
    actor: Option<String>,
    source: Option<String>,
    context: Option<pg_sys::Datum>,
    tenant: Option<String>,
) -> Result<()> {
    // SAFETY: pg_trigger_depth takes no argument and only reads the backend's depth.
    let depth =
        unsafe { pgrx::direct_function_call::<i32>(pg_sys::pg_trigger_depth, &[]).unwrap_or(0) };
    if depth > 0 {
        return Err(AuditError::AttributionInTrigger);
    }
    let context = match context {
        None => String::new(),
        Some(datum) => {
            // SAFETY: a jsonb datum; jsonb_out returns its text.
            let text =
                unsafe { pgrx::direct_function_call::<&CStr>(pg_sys::jsonb_out, &[Some(datum)]) }
                    .map(|t| t.to_string_lossy().into_owned())
                    .unwrap_or_default();
            audit_trail_contract::check_context(&text).map_err(|e| AuditError::InvalidContext {
                reason: e.to_string(),
            })?;
            text
        }
    };
    if source.as_deref() == Some(audit_trail_contract::REVERT_SOURCE) {
        return Err(AuditError::ReservedSource);
    }
    let c = |text: Option<String>| {
        CString::new(text.unwrap_or_default()).map_err(|_| AuditError::InvalidContext {
            reason: "a value holds a NUL character".into(),
        })
    };
    let given = Given {
        // SAFETY: reading the current subtransaction's id has no preconditions.
        subtransaction: unsafe { pg_sys::GetCurrentSubTransactionId() },
        actor: c(actor)?,
        source: c(source)?,
        context: c(Some(context))?,
        tenant: c(tenant)?,
    };
    // The settings too, as SET LOCAL would (so current_setting shows them); their check
    // hooks run as for any SET LOCAL.
    for (name, value) in [
        (c"audit.actor", &given.actor),
        (c"audit.source", &given.source),
        (c"audit.context", &given.context),
        (c"audit.tenant", &given.tenant),
    ] {
        // SAFETY: NUL-terminated name and value; a failed check raises an ERROR.
        unsafe {
            pg_sys::set_config_option(
                name.as_ptr(),
                value.as_ptr(),
                pg_sys::GucContext::PGC_USERSET,
                pg_sys::GucSource::PGC_S_SESSION,
                pg_sys::GucAction::GUC_ACTION_LOCAL,
                true,
                0,
                false,
            );
        }
    }
    GIVEN.with_borrow_mut(|all| all.push(given));
    Ok(())
}
