//! Where `audit.events` is and how it is laid out, cached per backend: its oid, owner and id
//! sequence, the attribute of each column in every table written (a partition attached from
//! an older table may number them differently), and the partition that takes an event of a
//! given time. Everything here is a look-up in PostgreSQL's caches, forgotten with their
//! invalidations; `event_store` writes through it and `privilege` finds the owner in it.

use std::cell::{Cell, RefCell};

use pgrx::pg_sys;

use crate::error::{AuditError, Result};
use crate::pg::compat;

pub const COLUMN_COUNT: usize = audit_trail_contract::EVENT_COLUMNS.len();
/// The attribute of a column the table does not have: `tenant` on a schema before 0.3.0
/// (this library before ALTER EXTENSION UPDATE), whose events then name no organization.
pub const ABSENT: usize = usize::MAX;
/// Columns added after 0.2.0, which a table may lack.
const ADDED_AFTER_0_2_0: [&str; 1] = ["tenant"];
/// Column names by `event_store::Column`, in table order (the contract's list).
const COLUMN_NAMES: [&str; COLUMN_COUNT] = audit_trail_contract::EVENT_COLUMNS;

/// Where `audit.events` and its id sequence are.
#[derive(Clone, Copy)]
pub struct EventsTable {
    pub relid: pg_sys::Oid,
    pub owner: pg_sys::Oid,
    pub sequence: pg_sys::Oid,
    /// Partitioned by time (0.2.0 on), or a plain table (0.1.0, until ALTER EXTENSION UPDATE).
    pub partitioned: bool,
}

thread_local! {
    // One backend is one thread. Dropped by the relcache callback when audit.events changes or
    // disappears (DROP EXTENSION), so a later CREATE EXTENSION is found again.
    static EVENTS_TABLE: Cell<Option<EventsTable>> = const { Cell::new(None) };
    // Which attribute holds each column, per table written (audit.events or a partition):
    // worked out once, not at every statement. Entries go with their relation's relcache
    // invalidation.
    static ATTRIBUTES: RefCell<Vec<(pg_sys::Oid, [usize; COLUMN_COUNT])>> =
        const { RefCell::new(Vec::new()) };
    // The log is known live (audit.log_state, committed): nothing to mark. Forgotten with
    // the table (a new extension starts a new log).
    static LIVE: Cell<bool> = const { Cell::new(false) };
}

/// Whether the log is known live in this backend (see `event_store`).
pub fn known_live() -> bool {
    LIVE.get()
}

/// The log was seen live, committed.
pub fn set_known_live() {
    LIVE.set(true);
}

/// Relcache invalidation: forget the cached layout if it concerns `audit.events`.
pub fn invalidate(relid: pg_sys::Oid) {
    EVENTS_TABLE.with(|cached| {
        if let Some(table) = cached.get() {
            if relid == pg_sys::InvalidOid || relid == table.relid || relid == table.sequence {
                cached.set(None);
                // A new extension (DROP, then CREATE EXTENSION) starts a new log.
                LIVE.set(false);
            }
        }
    });
    ATTRIBUTES.with_borrow_mut(|known| {
        if relid == pg_sys::InvalidOid {
            known.clear();
        } else {
            known.retain(|(oid, _)| *oid != relid);
        }
    });
}

pub fn events_table() -> Result<EventsTable> {
    if let Some(table) = EVENTS_TABLE.with(Cell::get) {
        return Ok(table);
    }
    // SAFETY: catalog look-ups by name; the relation is opened and closed through the relcache.
    let table = unsafe {
        let namespace = pg_sys::get_namespace_oid(c"audit".as_ptr(), true);
        if namespace == pg_sys::InvalidOid {
            return Err(AuditError::NotInstalled);
        }
        let relid = pg_sys::get_relname_relid(c"events".as_ptr(), namespace);
        let sequence = pg_sys::get_relname_relid(c"events_id_seq".as_ptr(), namespace);
        if relid == pg_sys::InvalidOid || sequence == pg_sys::InvalidOid {
            return Err(AuditError::NotInstalled);
        }
        let rel = pg_sys::RelationIdGetRelation(relid);
        if rel.is_null() {
            return Err(AuditError::NotInstalled);
        }
        let owner = (*(*rel).rd_rel).relowner;
        let partitioned = (*(*rel).rd_rel).relkind as u8 == pg_sys::RELKIND_PARTITIONED_TABLE;
        pg_sys::RelationClose(rel);
        EventsTable {
            relid,
            owner,
            sequence,
            partitioned,
        }
    };
    EVENTS_TABLE.with(|cached| cached.set(Some(table)));
    Ok(table)
}

/// Which attribute of `rel` holds each column (a partition attached from an older table may
/// number them differently from the parent).
///
/// # Safety
/// `rel` must be an open relation.
pub unsafe fn attributes_of(rel: pg_sys::Relation) -> Result<[usize; COLUMN_COUNT]> {
    // SAFETY: guaranteed by the caller.
    let relid = unsafe { (*rel).rd_id };
    if let Some(known) = ATTRIBUTES.with_borrow(|known| {
        known
            .iter()
            .find(|(oid, _)| *oid == relid)
            .map(|(_, attributes)| *attributes)
    }) {
        return Ok(known);
    }
    // SAFETY: guaranteed by the caller.
    let attributes = unsafe {
        let desc = (*rel).rd_att;
        let attrs = compat::tuple_desc_attrs(desc);
        let mut attribute_of = [ABSENT; COLUMN_COUNT];
        for (index, attr) in attrs.iter().enumerate() {
            if attr.attisdropped {
                continue;
            }
            let name = pgrx::name_data_to_str(&attr.attname);
            if let Some(column) = COLUMN_NAMES.iter().position(|c| *c == name) {
                attribute_of[column] = index;
            }
        }
        if attribute_of
            .iter()
            .zip(COLUMN_NAMES)
            .any(|(a, name)| *a == ABSENT && !ADDED_AFTER_0_2_0.contains(&name))
        {
            return Err(AuditError::NotInstalled);
        }
        attribute_of
    };
    ATTRIBUTES.with_borrow_mut(|known| known.push((relid, attributes)));
    Ok(attributes)
}

/// The partition of `audit.events` that takes an event of time `at`, and the time range
/// [from, to) over which it is that partition (for the default partition, the gap between
/// its neighbours).
///
/// Capture routes rows itself, as logical replication's apply worker does, rather than
/// through the executor's tuple routing: one look-up in the parent's cached partition
/// bounds per statement, instead of routing state built for every statement.
///
/// # Safety
/// `parent` must be the open, locked, partitioned `audit.events`.
pub unsafe fn partition_for(
    parent: pg_sys::Relation,
    at: i64,
) -> Result<(pg_sys::Oid, i64, i64, bool)> {
    // SAFETY: the partition descriptor and its bounds belong to the parent's relcache entry,
    // which the lock the caller holds keeps stable; a range-partitioned table's bound info has
    // ndatums single-column bounds and ndatums + 1 indexes.
    unsafe {
        let desc = pg_sys::RelationGetPartitionDesc(parent, true);
        // Only formatted when it is raised (this runs for every statement).
        let none = || AuditError::NoPartition {
            at: <pgrx::datum::TimestampWithTimeZone as pgrx::FromDatum>::from_datum(
                pg_sys::Datum::from(at),
                false,
            )
            .map(pgrx::datum::datetime_support::ToIsoString::to_iso_string)
            .unwrap_or_default(),
        };
        if desc.is_null() || (*desc).nparts == 0 || (*desc).boundinfo.is_null() {
            return Err(none());
        }
        let bounds = &*(*desc).boundinfo;
        let ndatums = bounds.ndatums as usize;
        // Bound i as a time: MINVALUE and MAXVALUE as the ends of i64.
        let bound = |i: usize| -> i64 {
            let kind = *(*bounds.kind.add(i));
            if kind == pg_sys::PartitionRangeDatumKind::PARTITION_RANGE_DATUM_MINVALUE {
                i64::MIN
            } else if kind == pg_sys::PartitionRangeDatumKind::PARTITION_RANGE_DATUM_MAXVALUE {
                i64::MAX
            } else {
                (*(*bounds.datums.add(i))).value() as i64
            }
        };
        // The number of bounds at or below `at`: the partition is indexes[that].
        let below = (0..ndatums).take_while(|&i| bound(i) <= at).count();
        let from = if below == 0 {
            i64::MIN
        } else {
            bound(below - 1)
        };
        let to = if below == ndatums {
            i64::MAX
        } else {
            bound(below)
        };
        let mut index = *bounds.indexes.add(below);
        let is_default = index < 0;
        if is_default {
            index = bounds.default_index;
        }
        if index < 0 || !*(*desc).is_leaf.add(index as usize) {
            return Err(none());
        }
        Ok((*(*desc).oids.add(index as usize), from, to, is_default))
    }
}
