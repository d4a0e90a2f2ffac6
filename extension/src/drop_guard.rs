//! `DROP EXTENSION audit_trail` (or `DROP SCHEMA audit`) deletes the whole log with it. While
//! the log holds events, the drop is refused unless the session confirms it with `SET
//! audit.allow_drop_extension = on` (superusers only); a confirmed drop is written to the
//! server's log, which outlives the database's. The same confirmation lets the session drop
//! the capture triggers of tracked tables (audit.on_sql_drop records each), which
//! `pg_restore --clean` does before it drops the extension.
//!
//! This runs at `ddl_command_start`, from C, because only there is the statement itself at
//! hand: by `sql_drop` time the extension's own event triggers are gone with it. It guards
//! against a mistake, not against a superuser, who can disable event triggers first.

use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::PgList;

use crate::error::{AuditError, Result};
use crate::pg::ffi::sql_callable;
use crate::settings;

sql_callable!(audit_on_ddl_command_start, pg_finfo_audit_on_ddl_command_start => guard_entry);

unsafe fn guard_entry(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: called by the event trigger manager, which passes EventTriggerData.
    if let Some(what) = unsafe { drops_the_log(fcinfo) } {
        if let Err(e) = check(what) {
            e.raise();
        }
    }
    pg_sys::Datum::from(0)
}

/// What of ours the statement drops, if it drops the log: the extension or its schema.
///
/// # Safety
/// `fcinfo` must be the call of an event trigger function.
unsafe fn drops_the_log(fcinfo: pg_sys::FunctionCallInfo) -> Option<&'static str> {
    // SAFETY: the context is checked to be EventTriggerData; a DropStmt's objects, for
    // extensions and schemas, are String nodes.
    unsafe {
        let context = (*fcinfo).context;
        if context.is_null() || (*context).type_ != pg_sys::NodeTag::T_EventTriggerData {
            return None;
        }
        let parsetree = (*(context as *const pg_sys::EventTriggerData)).parsetree;
        if parsetree.is_null() || (*parsetree).type_ != pg_sys::NodeTag::T_DropStmt {
            return None;
        }
        let stmt = &*(parsetree as *const pg_sys::DropStmt);
        let (ours, what) = match stmt.removeType {
            pg_sys::ObjectType::OBJECT_EXTENSION => ("audit_trail", "extension audit_trail"),
            pg_sys::ObjectType::OBJECT_SCHEMA => ("audit", "schema audit"),
            _ => return None,
        };
        let names = PgList::<pg_sys::Node>::from_pg(stmt.objects);
        let named = names.iter_ptr().any(|node| {
            !node.is_null()
                && (*node).type_ == pg_sys::NodeTag::T_String
                && std::ffi::CStr::from_ptr((*(node as *const pg_sys::String)).sval).to_bytes()
                    == ours.as_bytes()
        });
        named.then_some(what)
    }
}

fn check(what: &'static str) -> Result<()> {
    // The guard is part of the extension: while it runs, audit.events exists.
    let holds_events =
        Spi::get_one::<bool>("SELECT EXISTS (SELECT FROM audit.events)")?.unwrap_or(false);
    if !holds_events {
        return Ok(());
    }
    if !settings::allow_drop_extension() {
        return Err(AuditError::DropDeletesLog { what });
    }
    // SAFETY: the session user exists.
    let who = unsafe {
        let name = pg_sys::GetUserNameFromId(pg_sys::GetSessionUserId(), false);
        std::ffi::CStr::from_ptr(name)
            .to_string_lossy()
            .into_owned()
    };
    pgrx::log!(
        "audit_trail: {who} is dropping {what} and the audit log it holds \
         (confirmed with audit.allow_drop_extension)"
    );
    pgrx::warning!("dropping {what} deletes the audit log it holds");
    Ok(())
}
