//! Keeping `audit.events` append-only, and the sanctioned ways out: retention
//! (`audit.maintain`) and `audit.purge`.
//!
//! A statement trigger on the table and on each partition refuses UPDATE, DELETE and TRUNCATE
//! from everyone, its owner and superusers included, and is enabled ALWAYS so
//! `session_replication_role` cannot silence it. The only DELETEs it lets through are those
//! `audit.purge` and maintenance (moving rows out of the default partition) run, recognised by
//! flags that no SQL can set; the DDL hooks likewise let only maintenance create, attach and
//! drop partitions. The maintenance itself is SQL (extension/sql/maintenance.sql), run as the
//! extension's owner.

use std::cell::Cell;

use pgrx::datum::DatumWithOid;
use pgrx::pg_sys;
use pgrx::prelude::*;

use crate::app_events;
use crate::error::{AuditError, Result};
use crate::pg::args;
use crate::pg::ffi::sql_callable;
use crate::privilege;

thread_local! {
    // Set only for the duration of audit.purge's own DELETE (one backend is one thread).
    static PURGING: Cell<bool> = const { Cell::new(false) };
    // Set only while audit.maintain or audit.purge run the maintenance functions.
    static MAINTAINING: Cell<bool> = const { Cell::new(false) };
}

sql_callable!(audit_refuse_change, pg_finfo_audit_refuse_change => refuse_change_entry);
sql_callable!(audit_purge, pg_finfo_audit_purge => purge_entry);
sql_callable!(audit_maintain, pg_finfo_audit_maintain => maintain_entry);
sql_callable!(
    audit_maintenance_in_progress,
    pg_finfo_audit_maintenance_in_progress => maintenance_in_progress_entry
);

unsafe fn maintenance_in_progress_entry(_fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    pg_sys::Datum::from(MAINTAINING.get())
}

unsafe fn maintain_entry(_fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    use pgrx::IntoDatum;
    match run_maintenance(false) {
        Ok(done) => done.into_datum().unwrap_or(pg_sys::Datum::from(0)),
        Err(e) => e.raise(),
    }
}

/// Runs the maintenance SQL as the extension's owner, with the flag that lets it change
/// partitions. `create_only` makes partitions and stops there (no retention).
pub fn run_maintenance(create_only: bool) -> Result<pgrx::JsonB> {
    privilege::as_extension_owner(|| {
        PgTryBuilder::new(|| {
            MAINTAINING.set(true);
            // SAFETY: the value is a boolean, as the oid says.
            let args = [unsafe { DatumWithOid::new(create_only, pg_sys::BOOLOID) }];
            Spi::get_one_with_args::<pgrx::JsonB>("SELECT audit.run_maintenance($1)", &args)
        })
        .finally(|| MAINTAINING.set(false))
        .execute()
    })??
    .ok_or(AuditError::NotInstalled)
}

unsafe fn refuse_change_entry(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: the trigger manager passes TriggerData as the context.
    let is_delete = unsafe {
        let context = (*fcinfo).context;
        !context.is_null()
            && (*context).type_ == pg_sys::NodeTag::T_TriggerData
            && (*(context as *const pg_sys::TriggerData)).tg_event & pg_sys::TRIGGER_EVENT_OPMASK
                == pg_sys::TRIGGER_EVENT_DELETE
    };
    if is_delete && (PURGING.get() || MAINTAINING.get()) {
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

/// Deletes the events that occurred before `before` and records that it did: whole
/// partitions are dropped, the rest deleted. Refused when a legal hold covers any of them.
fn purge(before: pg_sys::Datum) -> Result<i64> {
    // SAFETY: reads the current user's superuser flag.
    if !unsafe { pg_sys::superuser() } {
        return Err(AuditError::NotSuperuser);
    }
    // SAFETY: a timestamptz datum is an i64 by value.
    let before_ts = unsafe { pgrx::datum::TimestampWithTimeZone::from_datum(before, false) };
    // SAFETY: the value is a timestamptz, as the oid says.
    let args = [unsafe { DatumWithOid::new(before_ts, pg_sys::TIMESTAMPTZOID) }];
    let (deleted, gaps, carried) = privilege::as_extension_owner(|| {
        PgTryBuilder::new(|| {
            MAINTAINING.set(true);
            Spi::connect_mut(|client| -> Result<(i64, Option<String>, Option<Vec<i64>>)> {
                // As retention: no hold placed or released until the purge ends, and every
                // one committed before it seen (audit.apply_retention, extension/sql/retention.sql).
                client.update("LOCK TABLE audit.legal_holds IN SHARE MODE", None, &[])?;
                let holds = client
                    .select(
                        "SELECT string_agg(pg_catalog.format('\"%s\" (%s)', h.name, h.reason), ', '
                                           ORDER BY h.name)
                           FROM audit.legal_holds AS h
                          WHERE h.released_at IS NULL AND h.from_time < $1",
                        None,
                        &args,
                    )?
                    .first()
                    .get_one::<String>()?;
                if let Some(holds) = holds {
                    return Err(AuditError::Held(format!(
                        "audit.purge would delete events under legal hold {holds}"
                    )));
                }
                let dropped = client
                    .update("SELECT audit.drop_partitions_before($1)", None, &args)?
                    .first()
                    .get_one::<i64>()?
                    .unwrap_or(0);
                let gaps = client
                    .update(
                        "SELECT audit.note_retention_gaps('audit.events', $1, 'purge')",
                        None,
                        &args,
                    )?
                    .first()
                    .get_one::<String>()?;
                // The purge events the deletion takes are carried (0.3.0 on).
                let carries = client
                    .select(
                        "SELECT pg_catalog.to_regprocedure('audit.carry_purge_events(regclass, timestamptz)') IS NOT NULL",
                        None,
                        &[],
                    )?
                    .first()
                    .get_one::<bool>()?
                    .unwrap_or(false);
                let carried = if carries {
                    client
                        .update(
                            "SELECT audit.carry_purge_events('audit.events', $1)",
                            None,
                            &args,
                        )?
                        .first()
                        .get_one::<Vec<i64>>()?
                } else {
                    None
                };
                // Hours (days) wholly before the purge leave the summaries; the hour (day) it
                // cuts keeps its counts (filters then read that hour and find fewer events).
                for delete in [
                    "DELETE FROM audit.event_summary WHERE hour < pg_catalog.date_trunc('hour', $1, 'UTC')",
                    "DELETE FROM audit.kind_hours WHERE hour < pg_catalog.date_trunc('hour', $1, 'UTC')",
                    "DELETE FROM audit.actor_days WHERE day < pg_catalog.date_trunc('day', $1, 'UTC')",
                ] {
                    client.update(delete, None, &args)?;
                }
                PURGING.set(true);
                let deleted = client
                    .update(
                        "DELETE FROM audit.events WHERE occurred_at < $1",
                        None,
                        &args,
                    )?
                    .len() as i64;
                PURGING.set(false);
                Ok((dropped + deleted, gaps, carried))
            })
        })
        .finally(|| {
            PURGING.set(false);
            MAINTAINING.set(false);
        })
        .execute()
    })??;
    let mut details = serde_json::json!({
        "before": before_ts.map(|t| t.to_iso_string()),
        "rows": deleted,
        "retention_gaps_sha256": gaps,
    });
    if let Some(carried) = carried.filter(|c| !c.is_empty()) {
        details["carried_events"] = carried.into();
    }
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
