//! `audit.track` and `audit.untrack`: recording a table's capture settings and installing or
//! removing its capture triggers, all or nothing.

use pgrx::prelude::*;
use pgrx::{pg_sys, spi};

use std::cell::Cell;

mod settings;

use crate::app_events;
use crate::error::{AuditError, Result};
use crate::pg::args;
use crate::pg::ffi::sql_callable;
use crate::privilege;
use crate::table_config::qualified_name;
use audit_trail_contract::{is_word, AUDIT_LOG_ENTITY, CAPTURE_TRIGGERS};
use settings::{first, previous_settings, privilege_narrowing, relid_arg, store_settings, Columns};

/// Trigger name (from the contract, which the DDL hooks in api.sql spell too), event, and
/// REFERENCING clause of each capture trigger.
const TRIGGERS: [(&str, &str, &str); 4] = [
    (
        CAPTURE_TRIGGERS[0],
        "INSERT",
        "REFERENCING NEW TABLE AS audit_trail_new",
    ),
    (
        CAPTURE_TRIGGERS[1],
        "UPDATE",
        "REFERENCING OLD TABLE AS audit_trail_old NEW TABLE AS audit_trail_new",
    ),
    (
        CAPTURE_TRIGGERS[2],
        "DELETE",
        "REFERENCING OLD TABLE AS audit_trail_old",
    ),
    (CAPTURE_TRIGGERS[3], "TRUNCATE", ""),
];

#[derive(Clone)]
pub struct TrackRequest {
    pub relid: pg_sys::Oid,
    pub entity: String,
    pub subject_column: Option<String>,
    pub ignore_columns: Vec<String>,
    pub redact_columns: Vec<String>,
    pub tenant_column: Option<String>,
}

thread_local! {
    // Set while track/untrack themselves create or drop capture triggers, so the DDL event
    // triggers can tell them from someone dropping or disabling capture by hand. Only this
    // code sets it; SQL can only read it, through a function PUBLIC may not call.
    static CHANGING_CAPTURE: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with CHANGING_CAPTURE set, clearing it however `f` ends.
fn changing_capture<R>(f: impl FnOnce() -> R) -> R {
    // Unwind safety: on an ERROR the flag is cleared and the transaction aborts, so nothing
    // `f` touched is observed half-changed.
    let f = std::panic::AssertUnwindSafe(f);
    PgTryBuilder::new(move || {
        CHANGING_CAPTURE.set(true);
        let f = f;
        (f.0)()
    })
    .finally(|| CHANGING_CAPTURE.set(false))
    .execute()
}

sql_callable!(audit_capture_change_in_progress, pg_finfo_audit_capture_change_in_progress => in_progress_entry);

unsafe fn in_progress_entry(_fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    pg_sys::Datum::from(CHANGING_CAPTURE.get())
}

sql_callable!(audit_track, pg_finfo_audit_track => track_entry);
sql_callable!(audit_untrack, pg_finfo_audit_untrack => untrack_entry);

unsafe fn track_entry(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: the SQL signature is (regclass, text, name, name[], name[], name); a schema
    // before 0.3.0 declares it without the tenant column, which then reads as NULL.
    let request = unsafe {
        (|| -> Result<TrackRequest> {
            Ok(TrackRequest {
                relid: args::datum(fcinfo, 0)
                    .map(|d| pg_sys::Oid::from(d.value() as u32))
                    .ok_or(AuditError::EmptyArgument {
                        parameter: "target",
                    })?,
                entity: args::text(fcinfo, 1).unwrap_or_default(),
                subject_column: args::name(fcinfo, 2),
                ignore_columns: args::name_array(fcinfo, 3, "ignore_columns")?,
                redact_columns: args::name_array(fcinfo, 4, "redact_columns")?,
                tenant_column: args::name(fcinfo, 5),
            })
        })()
    };
    if let Err(e) = request.and_then(track) {
        e.raise();
    }
    pgrx::fcinfo::pg_return_void()
}

unsafe fn untrack_entry(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: the SQL signature is (regclass).
    let relid = unsafe { args::datum(fcinfo, 0) }
        .map(|d| pg_sys::Oid::from(d.value() as u32))
        .ok_or(AuditError::EmptyArgument {
            parameter: "target",
        });
    if let Err(e) = relid.and_then(untrack) {
        e.raise();
    }
    pgrx::fcinfo::pg_return_void()
}

fn relkind_name(relkind: u8) -> &'static str {
    match relkind {
        pg_sys::RELKIND_VIEW => "a view",
        pg_sys::RELKIND_MATVIEW => "a materialized view",
        pg_sys::RELKIND_FOREIGN_TABLE => "a foreign table",
        pg_sys::RELKIND_SEQUENCE => "a sequence",
        pg_sys::RELKIND_INDEX | pg_sys::RELKIND_PARTITIONED_INDEX => "an index",
        pg_sys::RELKIND_COMPOSITE_TYPE => "a composite type",
        pg_sys::RELKIND_TOASTVALUE => "a TOAST table",
        _ => "not a table",
    }
}

/// Checks that `relid` is a table the current user may track, returning its quoted name.
/// `check_owner` is false for the partitions of a table the caller was checked to own: their
/// rows are reached through it anyway.
fn check_trackable(relid: pg_sys::Oid, check_owner: bool) -> Result<String> {
    let relation = qualified_name(relid);
    // SAFETY: catalog look-ups of a relation that regclass input resolved.
    let (relkind, persistence, namespace) = unsafe {
        (
            pg_sys::get_rel_relkind(relid) as u8,
            pg_sys::get_rel_persistence(relid) as u8,
            pg_sys::get_rel_namespace(relid),
        )
    };
    if relkind != pg_sys::RELKIND_RELATION && relkind != pg_sys::RELKIND_PARTITIONED_TABLE {
        return Err(AuditError::NotATable {
            relation,
            kind: relkind_name(relkind),
        });
    }
    if persistence == pg_sys::RELPERSISTENCE_TEMP {
        return Err(AuditError::TemporaryTable { relation });
    }
    // SAFETY: plain catalog look-up.
    if namespace == unsafe { pg_sys::get_namespace_oid(c"audit".as_ptr(), true) } {
        return Err(AuditError::AuditSchemaTable { relation });
    }
    if check_owner && !privilege::current_user_is_owner_of(relid) {
        return Err(AuditError::NotOwner { relation });
    }
    Ok(relation)
}

/// Drops whichever capture triggers the table has (quietly: no NOTICE for missing ones).
fn drop_capture_triggers(
    client: &mut spi::SpiClient<'_>,
    relid: pg_sys::Oid,
    relation: &str,
) -> Result<()> {
    let names: Vec<String> = TRIGGERS
        .iter()
        .map(|(name, _, _)| (*name).to_owned())
        .collect();
    let mut existing = Vec::new();
    for row in client.select(
        "SELECT tgname::text FROM pg_trigger WHERE tgrelid = $1 AND tgname = ANY ($2)",
        None,
        &[relid_arg(relid), names.into()],
    )? {
        if let Some(name) = row.get::<String>(1)? {
            existing.push(name);
        }
    }
    for name in existing {
        let name = spi::quote_identifier(name);
        client.update(&format!("DROP TRIGGER {name} ON {relation}"), None, &[])?;
    }
    Ok(())
}

pub fn track(request: TrackRequest) -> Result<()> {
    track_table(request, true)?;
    // The first events go to partitions of their own, not the default partition, even
    // where audit.maintain() is not scheduled yet. (Not on a 0.1.0 schema, unpartitioned.)
    if crate::events_catalog::events_table()?.partitioned {
        crate::append_only::run_maintenance(true)?;
    }
    Ok(())
}

fn track_table(request: TrackRequest, check_owner: bool) -> Result<()> {
    let relid = request.relid;
    let relation = check_trackable(relid, check_owner)?;
    let entity = checked_entity(&request.entity)?;
    let tracked_by = session_user_name();

    let settings = changing_capture(|| {
        privilege::as_extension_owner(|| {
            Spi::connect_mut(|client| -> Result<serde_json::Value> {
                refuse_ways_around(client, relid, &relation)?;
                let previous = previous_settings(client, relid)?;
                let columns = Columns::resolve(client, relid, &relation, &request)?;
                store_settings(client, relid, &relation, &entity, &columns, &tracked_by)?;
                drop_capture_triggers(client, relid, &relation)?;
                create_capture_triggers(client, &relation)?;
                let (ignored, redacted) = privilege_narrowing(previous.as_ref(), &entity, &columns);
                Ok(serde_json::json!({
                    "table": relation,
                    "entity": entity,
                    "subject_columns": columns.subject,
                    "ignore_columns": columns.ignore,
                    "redact_columns": columns.redact,
                    "tenant_column": columns.tenant,
                    "previous": previous,
                    "privilege_fields_ignored": ignored,
                    "privilege_fields_redacted": redacted,
                }))
            })
        })
    })??;
    // SAFETY: queues a relcache invalidation so every backend reloads the settings.
    unsafe { pg_sys::CacheInvalidateRelcacheByRelid(relid) };
    // Statement triggers on a partitioned table see only statements that name it: each
    // partition gets its own, so a write straight to a partition is captured too (a write
    // through the parent fires only the parent's). New partitions are tracked by the DDL
    // event trigger (api.sql).
    let partitions = partitions(relid)?;
    if check_owner {
        // Tracking, and every change of its settings, is itself audited: otherwise an owner
        // could ignore or un-redact every column, change data, and track back unseen.
        let mut settings = settings;
        settings["partitions"] = partitions.len().into();
        use pgrx::IntoDatum;
        let details = pgrx::JsonB(settings).into_datum();
        app_events::record(AUDIT_LOG_ENTITY, "track", None, Some(&relation), details)?;
    }
    for partition in partitions {
        track_table(
            TrackRequest {
                relid: partition,
                ..request.clone()
            },
            false,
        )?;
    }
    Ok(())
}

/// The entity, trimmed: a lowercase word, and never the log's own `audit_log` (captured
/// events of an ordinary table must not read as the log's own).
fn checked_entity(entity: &str) -> Result<String> {
    let entity = entity.trim();
    if entity.is_empty() {
        return Err(AuditError::EmptyArgument {
            parameter: "entity",
        });
    }
    if !is_word(entity) {
        return Err(AuditError::InvalidEntity);
    }
    if entity == AUDIT_LOG_ENTITY {
        return Err(AuditError::ReservedEntity);
    }
    Ok(entity.to_owned())
}

fn session_user_name() -> String {
    // SAFETY: the session user exists; its name is a palloc'd NUL-terminated string.
    unsafe {
        let name = pg_sys::GetUserNameFromId(pg_sys::GetSessionUserId(), false);
        std::ffi::CStr::from_ptr(name)
            .to_string_lossy()
            .into_owned()
    }
}

/// Refuses a table that other tables could write through without firing its statement
/// triggers: one in table inheritance, or a partition of a table that is not tracked.
fn refuse_ways_around(
    client: &spi::SpiClient<'_>,
    relid: pg_sys::Oid,
    relation: &str,
) -> Result<()> {
    let inherits = first::<bool>(client.select(
        "SELECT EXISTS (SELECT FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
          WHERE (i.inhparent = $1 OR i.inhrelid = $1) AND NOT c.relispartition)",
        None,
        &[relid_arg(relid)],
    )?)?;
    if inherits == Some(true) {
        return Err(AuditError::Inheritance {
            relation: relation.to_owned(),
        });
    }
    let untracked_parent = first::<String>(client.select(
        "SELECT i.inhparent::regclass::text FROM pg_inherits i \
          WHERE i.inhrelid = $1 \
            AND NOT EXISTS (SELECT FROM audit.tracked_tables t WHERE t.relid = i.inhparent)",
        None,
        &[relid_arg(relid)],
    )?)?;
    match untracked_parent {
        Some(parent) => Err(AuditError::PartitionOfUntracked {
            relation: relation.to_owned(),
            parent,
        }),
        None => Ok(()),
    }
}

fn create_capture_triggers(client: &mut spi::SpiClient<'_>, relation: &str) -> Result<()> {
    for (name, event, referencing) in TRIGGERS {
        client.update(
            &format!(
                "CREATE TRIGGER {name} AFTER {event} ON {relation} {referencing} \
                 FOR EACH STATEMENT EXECUTE FUNCTION audit.capture()"
            ),
            None,
            &[],
        )?;
    }
    Ok(())
}

fn partitions(relid: pg_sys::Oid) -> Result<Vec<pg_sys::Oid>> {
    privilege::as_extension_owner(|| {
        Spi::connect(|client| -> Result<Vec<pg_sys::Oid>> {
            let mut out = Vec::new();
            for row in client.select(
                "SELECT i.inhrelid, c.relkind = 'f', format('%I.%I', n.nspname, c.relname) \
                   FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
                   JOIN pg_namespace n ON n.oid = c.relnamespace \
                  WHERE i.inhparent = $1",
                None,
                &[relid_arg(relid)],
            )? {
                let foreign = row.get::<bool>(2)?.unwrap_or(false);
                if foreign {
                    // Foreign tables cannot carry capture triggers: writes that reach them
                    // through the parent are captured; direct ones are not.
                    let name = row.get::<String>(3)?.unwrap_or_default();
                    pgrx::warning!(
                        "writes made straight to foreign partition {name} are not captured"
                    );
                    continue;
                }
                if let Some(oid) = row.get::<pg_sys::Oid>(1)? {
                    out.push(oid);
                }
            }
            Ok(out)
        })
    })?
}

pub fn untrack(relid: pg_sys::Oid) -> Result<()> {
    untrack_table(relid, true)
}

fn untrack_table(relid: pg_sys::Oid, check_owner: bool) -> Result<()> {
    let relation = check_trackable(relid, check_owner)?;
    for partition in partitions(relid)? {
        untrack_table(partition, false)?;
    }
    let removed = changing_capture(|| {
        privilege::as_extension_owner(|| {
            Spi::connect_mut(|client| -> Result<bool> {
                let deleted = client.update(
                    "DELETE FROM audit.tracked_tables WHERE relid = $1",
                    None,
                    &[relid_arg(relid)],
                )?;
                drop_capture_triggers(client, relid, &relation)?;
                Ok(!deleted.is_empty())
            })
        })
    })??;
    // SAFETY: as in track().
    unsafe { pg_sys::CacheInvalidateRelcacheByRelid(relid) };
    if !removed {
        pgrx::notice!("{relation} was not tracked");
        return Ok(());
    }
    // Stopping capture is itself audited.
    use pgrx::IntoDatum;
    let details = pgrx::JsonB(serde_json::json!({ "table": relation })).into_datum();
    app_events::record(AUDIT_LOG_ENTITY, "untrack", None, Some(&relation), details)?;
    Ok(())
}
