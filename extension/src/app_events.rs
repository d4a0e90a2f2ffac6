//! `audit.log_event`: events the database cannot see (a contact export, a login), recorded by
//! the application with the same attribution as captured changes.

use pgrx::pg_sys;

use crate::args;
use crate::attribution::Attribution;
use crate::datums;
use crate::error::{AuditError, Result};
use crate::event_store::{Column, Event, EventWriter};
use crate::ffi::sql_callable;

/// Actions only capture may record: an application cannot claim a row changed.
const CAPTURED_ACTIONS: [&str; 4] = ["create", "update", "delete", "truncate"];

sql_callable!(audit_log_event, pg_finfo_audit_log_event => log_event_entry);

unsafe fn log_event_entry(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: the SQL signature is (text, text, text, jsonb).
    let (entity, action, subject, details) = unsafe {
        (
            args::text(fcinfo, 0).unwrap_or_default(),
            args::text(fcinfo, 1).unwrap_or_default(),
            args::text(fcinfo, 2),
            args::datum(fcinfo, 3),
        )
    };
    match log_event(&entity, &action, subject.as_deref(), details) {
        Ok(id) => pg_sys::Datum::from(id),
        Err(e) => e.raise(),
    }
}

/// Appends an application event and returns its id.
pub fn log_event(
    entity: &str,
    action: &str,
    subject_id: Option<&str>,
    details: Option<pg_sys::Datum>,
) -> Result<i64> {
    let (entity, action) = (entity.trim(), action.trim());
    if entity.is_empty() {
        return Err(AuditError::EmptyArgument {
            parameter: "entity",
        });
    }
    if action.is_empty() {
        return Err(AuditError::EmptyArgument {
            parameter: "action",
        });
    }
    if CAPTURED_ACTIONS
        .iter()
        .any(|a| a.eq_ignore_ascii_case(action))
    {
        return Err(AuditError::ReservedAction {
            action: action.to_owned(),
        });
    }
    let who = Attribution::current()?;
    let mut event = Event::new(
        &who,
        datums::text(entity.as_bytes()),
        datums::text(action.as_bytes()),
    );
    event.set(
        Column::SubjectId,
        subject_id.map(|s| datums::text(s.as_bytes())),
    );
    event.set(Column::Details, details);
    let mut writer = EventWriter::open()?;
    let id = writer.append(&mut event);
    writer.close();
    Ok(id)
}
