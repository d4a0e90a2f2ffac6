//! `audit.log_event`: events the database cannot see (a contact export, a login), recorded by
//! the application with the same attribution as captured changes.

use pgrx::pg_sys;

use crate::attribution::Attribution;
use crate::error::{AuditError, Result};
use crate::event_store::{Column, Event, EventWriter};
use crate::pg::args;
use crate::pg::datums;
use crate::pg::ffi::sql_callable;
use crate::settings;
use audit_trail_contract::{is_reserved_event, is_word, AUDIT_LOG_ENTITY};

/// Longest subject id an application event may name.
const SUBJECT_MAX_BYTES: usize = 2048;

sql_callable!(audit_log_event, pg_finfo_audit_log_event => log_event_entry);
sql_callable!(audit_record_ddl_event, pg_finfo_audit_record_ddl_event => ddl_event_entry);
sql_callable!(audit_record_table_dropped, pg_finfo_audit_record_table_dropped => table_dropped_entry);

/// `audit.record_table_dropped(table_name)` of 0.1.0, kept so that a 0.1.0 schema runs with
/// this library until `ALTER EXTENSION audit_trail UPDATE` (which replaces it).
unsafe fn table_dropped_entry(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: the SQL signature is (text).
    let table = unsafe { args::text(fcinfo, 0) };
    use pgrx::IntoDatum;
    let details = pgrx::JsonB(serde_json::json!({ "table": table })).into_datum();
    match record(
        AUDIT_LOG_ENTITY,
        "table_dropped",
        None,
        table.as_deref(),
        details,
    ) {
        Ok(id) => pg_sys::Datum::from(id),
        Err(e) => e.raise(),
    }
}

/// `audit.record_ddl_event(entity, action, table_name, details)`, for the DDL event triggers
/// only (PUBLIC may not call it): the actions they record are reserved in audit.log_event.
unsafe fn ddl_event_entry(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: the SQL signature is (text, text, text, jsonb).
    let (entity, action, table, details) = unsafe {
        (
            args::text(fcinfo, 0).unwrap_or_default(),
            args::text(fcinfo, 1).unwrap_or_default(),
            args::text(fcinfo, 2),
            args::datum(fcinfo, 3),
        )
    };
    match record(&entity, &action, None, table.as_deref(), details) {
        Ok(id) => pg_sys::Datum::from(id),
        Err(e) => e.raise(),
    }
}

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

/// Appends an application event and returns its id, after checking what the caller may claim.
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
    if !is_word(entity) {
        return Err(AuditError::InvalidEntity);
    }
    if !is_word(action) {
        return Err(AuditError::InvalidAction {
            action: action.to_owned(),
        });
    }
    if is_reserved_event(entity, action) {
        return Err(AuditError::ReservedAction {
            action: action.to_owned(),
        });
    }
    // The (entity, subject_id) index cannot hold more, and no key is that long.
    if let Some(size) = subject_id.map(str::len).filter(|&n| n > SUBJECT_MAX_BYTES) {
        return Err(AuditError::SubjectTooLong {
            size,
            limit: SUBJECT_MAX_BYTES,
        });
    }
    if is_audit_admin() {
        return record(entity, action, subject_id, None, details);
    }
    if entity == AUDIT_LOG_ENTITY {
        return Err(AuditError::AuditLogEntity);
    }
    let limit = settings::max_event_bytes();
    // SAFETY: details is a jsonb datum; its raw size is read from the varlena header.
    let size = subject_id.map_or(0, str::len)
        + details.map_or(0, |d| unsafe { pg_sys::toast_raw_datum_size(d) });
    if size > limit {
        return Err(AuditError::EventTooLarge { size, limit });
    }
    record(entity, action, subject_id, None, details)
}

/// A superuser, or a member of audit_admin.
fn is_audit_admin() -> bool {
    // SAFETY: role look-ups by name and oid.
    unsafe {
        if pg_sys::superuser() {
            return true;
        }
        let admin = pg_sys::get_role_oid(c"audit_admin".as_ptr(), true);
        admin != pg_sys::InvalidOid && pg_sys::has_privs_of_role(pg_sys::GetUserId(), admin)
    }
}

/// Appends an event without the checks applied to callers: for the extension's own events.
pub fn record(
    entity: &str,
    action: &str,
    subject_id: Option<&str>,
    table_name: Option<&str>,
    details: Option<pg_sys::Datum>,
) -> Result<i64> {
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
    event.set(
        Column::TableName,
        table_name.map(|t| datums::text(t.as_bytes())),
    );
    event.set(Column::Details, details);
    let mut writer = EventWriter::open()?;
    let id = writer.append(&mut event)?;
    writer.close();
    Ok(id)
}
