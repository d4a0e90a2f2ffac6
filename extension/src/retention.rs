//! Keeping `audit.events` append-only, and the one sanctioned way out: `audit.purge`.
//!
//! A statement trigger on the table refuses UPDATE, DELETE and TRUNCATE from everyone, its
//! owner and superusers included, and is enabled ALWAYS so `session_replication_role` cannot
//! silence it. The only DELETE it lets through is the one `audit.purge` runs, recognised by a
//! flag that no SQL can set.

use std::cell::Cell;

use pgrx::datum::DatumWithOid;
use pgrx::pg_sys;
use pgrx::prelude::*;

use crate::app_events;
use crate::args;
use crate::error::{AuditError, Result};
use crate::ffi::sql_callable;
use crate::privilege;

thread_local! {
    // Set only for the duration of audit.purge's own DELETE (one backend is one thread).
    static PURGING: Cell<bool> = const { Cell::new(false) };
}

sql_callable!(audit_refuse_change, pg_finfo_audit_refuse_change => refuse_change_entry);
sql_callable!(audit_purge, pg_finfo_audit_purge => purge_entry);

unsafe fn refuse_change_entry(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: the trigger manager passes TriggerData as the context.
    let is_delete = unsafe {
        let context = (*fcinfo).context;
        !context.is_null()
            && (*context).type_ == pg_sys::NodeTag::T_TriggerData
            && (*(context as *const pg_sys::TriggerData)).tg_event & pg_sys::TRIGGER_EVENT_OPMASK
                == pg_sys::TRIGGER_EVENT_DELETE
    };
    if is_delete && PURGING.get() {
        return pg_sys::Datum::from(0);
    }
    AuditError::AppendOnly.raise()
}

unsafe fn purge_entry(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: the SQL signature is (timestamptz).
    let before = unsafe { args::datum(fcinfo, 0) };
    let result = before
        .ok_or(AuditError::EmptyArgument {
            parameter: "older_than",
        })
        .and_then(purge);
    match result {
        Ok(count) => pg_sys::Datum::from(count),
        Err(e) => e.raise(),
    }
}

/// Deletes the events that occurred before `before` and records that it did.
fn purge(before: pg_sys::Datum) -> Result<i64> {
    // SAFETY: reads the current user's superuser flag.
    if !unsafe { pg_sys::superuser() } {
        return Err(AuditError::NotSuperuser);
    }
    // SAFETY: a timestamptz datum is an i64 by value.
    let before_ts = unsafe { pgrx::datum::TimestampWithTimeZone::from_datum(before, false) };
    let deleted = privilege::as_extension_owner(|| {
        PgTryBuilder::new(|| {
            PURGING.set(true);
            Spi::connect_mut(|client| {
                // SAFETY: the value is a timestamptz, as the oid says.
                let args = [unsafe { DatumWithOid::new(before_ts, pg_sys::TIMESTAMPTZOID) }];
                client
                    .update(
                        "DELETE FROM audit.events WHERE occurred_at < $1",
                        None,
                        &args,
                    )
                    .map(|t| t.len() as i64)
            })
        })
        .finally(|| PURGING.set(false))
        .execute()
    })??;
    let details = serde_json::json!({
        "before": before_ts.map(|t| t.to_iso_string()),
        "rows": deleted,
    });
    let details = pgrx::JsonB(details);
    use pgrx::IntoDatum;
    app_events::record(
        audit_trail_contract::AUDIT_LOG_ENTITY,
        "purge",
        None,
        None,
        details.into_datum(),
    )?;
    Ok(deleted)
}
