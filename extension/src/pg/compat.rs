//! The PostgreSQL C API calls whose shape differs between the majors the extension builds for
//! (15, 16, 17, 18): one function per changed API, each split by the crate's `pgNN` feature at
//! the major where the change happened. Everything else in the extension calls these, never
//! the version-specific functions, so the splits are all here.

use std::ffi::CStr;

use pgrx::pg_sys;

/// Whether `roleid` owns the relation `relid`.
///
/// # Safety
/// Inside a transaction (reads pg_class).
pub unsafe fn relation_owned_by(relid: pg_sys::Oid, roleid: pg_sys::Oid) -> bool {
    // SAFETY: a catalog look-up of two oids; an unknown relation raises an ERROR.
    #[cfg(any(feature = "pg13", feature = "pg14", feature = "pg15"))]
    unsafe {
        pg_sys::pg_class_ownercheck(relid, roleid)
    }
    // why: PostgreSQL 16 replaced the per-catalog pg_*_ownercheck functions with one
    // object_ownercheck(classid, objectid, roleid).
    // SAFETY: as above.
    #[cfg(not(any(feature = "pg13", feature = "pg14", feature = "pg15")))]
    unsafe {
        pg_sys::object_ownercheck(pg_sys::RelationRelationId, relid, roleid)
    }
}

/// storage/lmgr.h ConditionalLockDatabaseObject: takes a lock on an object of the current
/// database if no one holds a conflicting one, without waiting; true when taken.
///
/// # Safety
/// Inside a transaction.
pub unsafe fn conditional_lock_database_object(
    classid: pg_sys::Oid,
    objid: pg_sys::Oid,
    objsubid: u16,
    lockmode: pg_sys::LOCKMODE,
) -> bool {
    // SAFETY: the lock manager takes any object address and mode; the lock is released at
    // the end of the transaction.
    #[cfg(not(feature = "pg16"))]
    unsafe {
        pg_sys::ConditionalLockDatabaseObject(classid, objid, objsubid, lockmode)
    }
    // why: ConditionalLockDatabaseObject came to the older branches in a minor release (the
    // 15 and 17 builds here have it); PostgreSQL 16.2, the 16 this project builds against,
    // neither declares nor exports it, so a library calling it would not load there. This is
    // its body, from lmgr.c: try the lock without waiting, and once it is held take in the
    // invalidation messages of whoever held it before (as LockDatabaseObject does).
    // SAFETY: as above; `tag` is a complete object lock tag, `locallock` is set by the lock
    // manager whenever the lock is taken.
    #[cfg(feature = "pg16")]
    unsafe {
        let tag = pg_sys::LOCKTAG {
            locktag_field1: pg_sys::MyDatabaseId.to_u32(),
            locktag_field2: classid.to_u32(),
            locktag_field3: objid.to_u32(),
            locktag_field4: objsubid,
            locktag_type: pg_sys::LockTagType::LOCKTAG_OBJECT as u8,
            locktag_lockmethodid: pg_sys::DEFAULT_LOCKMETHOD as u8,
        };
        let mut locallock: *mut pg_sys::LOCALLOCK = std::ptr::null_mut();
        let result = pg_sys::LockAcquireExtended(&tag, lockmode, false, true, true, &mut locallock);
        if result == pg_sys::LockAcquireResult::LOCKACQUIRE_NOT_AVAIL {
            return false;
        }
        if result != pg_sys::LockAcquireResult::LOCKACQUIRE_ALREADY_CLEAR {
            pg_sys::AcceptInvalidationMessages();
            pg_sys::MarkLockClear(locallock);
        }
        true
    }
}

/// Sets up the range table of an executor state that writes one relation, `rte`, as range
/// table index 1 (what logical replication's apply worker does, create_edata_for_relation).
///
/// # Safety
/// `estate` must be new (CreateExecutorState) and `rte` a relation entry allocated in the
/// current memory context.
pub unsafe fn exec_init_range_table(estate: *mut pg_sys::EState, rte: *mut pg_sys::RangeTblEntry) {
    // SAFETY: guaranteed by the caller; the list is allocated in the current context.
    #[cfg(any(feature = "pg13", feature = "pg14", feature = "pg15"))]
    unsafe {
        pg_sys::ExecInitRangeTable(estate, pg_sys::lappend(std::ptr::null_mut(), rte.cast()));
    }
    // why: PostgreSQL 16 moved the permission fields out of RangeTblEntry into a separate list
    // of RTEPermissionInfo, which ExecInitRangeTable takes beside the range table; an entry
    // points to its own with perminfoindex. PostgreSQL 18 adds the set of range table indexes
    // left after initial partition pruning (es_unpruned_relids): here the one entry.
    // SAFETY: as above; addRTEPermissionInfo appends to `permissions` and sets the entry's
    // perminfoindex, with no permission to check (requiredPerms 0), as before.
    #[cfg(not(any(feature = "pg13", feature = "pg14", feature = "pg15")))]
    unsafe {
        let mut permissions: *mut pg_sys::List = std::ptr::null_mut();
        pg_sys::addRTEPermissionInfo(&mut permissions, rte);
        let range_table = pg_sys::lappend(std::ptr::null_mut(), rte.cast());
        #[cfg(any(feature = "pg16", feature = "pg17"))]
        pg_sys::ExecInitRangeTable(estate, range_table, permissions);
        #[cfg(not(any(feature = "pg16", feature = "pg17")))]
        pg_sys::ExecInitRangeTable(
            estate,
            range_table,
            permissions,
            pg_sys::bms_make_singleton(1),
        );
    }
}

/// Inserts the index entries of a row just written to `result_rel` (an INSERT, not an
/// update, no ON CONFLICT); returns the list of deferred unique indexes to recheck.
///
/// # Safety
/// The indexes of `result_rel` must be open (ExecOpenIndices) and `slot` hold the stored row.
pub unsafe fn exec_insert_index_tuples(
    result_rel: *mut pg_sys::ResultRelInfo,
    slot: *mut pg_sys::TupleTableSlot,
    estate: *mut pg_sys::EState,
) -> *mut pg_sys::List {
    // SAFETY: guaranteed by the caller.
    #[cfg(any(feature = "pg13", feature = "pg14", feature = "pg15"))]
    unsafe {
        pg_sys::ExecInsertIndexTuples(
            result_rel,
            slot,
            estate,
            false,
            false,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        )
    }
    // why: PostgreSQL 16 added `onlySummarizing`, for HOT updates that change only columns of
    // summarizing indexes (BRIN): true only for such an update, so false for an insert, which
    // updates every index as before.
    // SAFETY: as above.
    #[cfg(not(any(feature = "pg13", feature = "pg14", feature = "pg15")))]
    unsafe {
        pg_sys::ExecInsertIndexTuples(
            result_rel,
            slot,
            estate,
            false,
            false,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            false,
        )
    }
}

/// The attributes of a tuple descriptor, dropped ones included (TupleDescAttr for 0..natts).
///
/// # Safety
/// `desc` must be a valid tuple descriptor that outlives the returned slice.
pub unsafe fn tuple_desc_attrs<'a>(desc: pg_sys::TupleDesc) -> &'a [pg_sys::FormData_pg_attribute] {
    // SAFETY: guaranteed by the caller: natts attributes follow the descriptor's header.
    #[cfg(not(feature = "pg18"))]
    unsafe {
        (*desc).attrs.as_slice((*desc).natts as usize)
    }
    // why: PostgreSQL 18 put an array of CompactAttribute (compact_attrs) where the array of
    // attributes was; the full FormData_pg_attribute array now follows the natts compact ones,
    // which is where TupleDescAttr() finds it.
    // SAFETY: as above: the descriptor is allocated with natts CompactAttributes then natts
    // FormData_pg_attribute (TupleDescSize).
    #[cfg(feature = "pg18")]
    unsafe {
        let natts = (*desc).natts as usize;
        let full = (*desc)
            .compact_attrs
            .as_ptr()
            .add(natts)
            .cast::<pg_sys::FormData_pg_attribute>();
        std::slice::from_raw_parts(full, natts)
    }
}

/// The record guc.c keeps of a setting (GUC), by its exact name, or null when there is none.
///
/// # Safety
/// Inside a backend, after the settings are defined.
pub unsafe fn find_setting(name: &CStr) -> *mut pg_sys::config_generic {
    // SAFETY: guaranteed by the caller; PostgreSQL 15's table of settings is an array of
    // GetNumConfigOptions() pointers, each to a record with a NUL-terminated name.
    #[cfg(any(feature = "pg13", feature = "pg14", feature = "pg15"))]
    unsafe {
        let records = pg_sys::get_guc_variables();
        for i in 0..pg_sys::GetNumConfigOptions() as usize {
            let record = *records.add(i);
            if !record.is_null() && CStr::from_ptr((*record).name) == name {
                return record;
            }
        }
        std::ptr::null_mut()
    }
    // why: PostgreSQL 16 keeps the settings in a hash table: get_guc_variables() takes an
    // out count, GetNumConfigOptions() is gone, and find_option() (utils/guc_tables.h) is the
    // look-up. Its elevel is PGERROR, pgrx's name for ERROR (which it leaves out, as it is
    // defined twice on Windows); with skip_errors it is not used.
    // SAFETY: guaranteed by the caller; find_option returns NULL for an unknown name with
    // skip_errors.
    #[cfg(not(any(feature = "pg13", feature = "pg14", feature = "pg15")))]
    unsafe {
        pg_sys::find_option(name.as_ptr(), false, true, pg_sys::PGERROR as i32)
    }
}
