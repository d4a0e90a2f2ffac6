//! The capture settings of each tracked table, as capture needs them: loaded from
//! `audit.tracked_tables` the first time a backend captures a change to the table, then kept.
//!
//! An entry is dropped whenever PostgreSQL invalidates the table's relcache entry: any ALTER
//! TABLE, a rename, and audit.track/untrack (which invalidate it on purpose). A schema rename
//! drops every entry, since the cached table name includes the schema.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;
use pgrx::{pg_sys, spi};

use crate::error::{AuditError, Result};
use crate::events_catalog;
use crate::pg::compat;
use crate::privilege;
use crate::row_json::ColumnCodec;

pub struct TableConfig {
    pub entity: String,
    pub table_name: String,
    /// One codec per live column, in attribute order.
    pub columns: Vec<ColumnCodec>,
    /// Indexes into `columns`, in key order.
    pub subject: Vec<usize>,
    /// Index into `columns` of the column naming a row's organization, if the table has one.
    pub tenant: Option<usize>,
    /// Indexes into `columns` in the order jsonb stores object keys (shorter first, then
    /// bytewise): built in that order, jsonb's key sort finds them already sorted.
    pub json_order: Vec<usize>,
    context: pg_sys::MemoryContext,
}

impl TableConfig {
    /// The columns in jsonb key order.
    pub fn in_json_order(&self) -> impl Iterator<Item = &ColumnCodec> + '_ {
        self.json_order.iter().map(|&i| &self.columns[i])
    }
}

impl Drop for TableConfig {
    fn drop(&mut self) {
        // SAFETY: the context holds only this entry's function lookup data.
        unsafe { pg_sys::MemoryContextDelete(self.context) }
    }
}

/// The settings row as stored.
struct Settings {
    entity: String,
    subject_columns: Vec<String>,
    ignore_columns: Vec<String>,
    redact_columns: Vec<String>,
    tenant_column: Option<String>,
}

thread_local! {
    // One backend is one thread. Borrows never span a call into PostgreSQL, so the
    // invalidation callbacks (which can run inside any catalog access) always find it free.
    static CACHE: RefCell<HashMap<pg_sys::Oid, Rc<TableConfig>>> = RefCell::new(HashMap::new());
    // Bumped by every invalidation: an entry built while one arrived may be stale, and is
    // used once but not kept.
    static EPOCH: Cell<u64> = const { Cell::new(0) };
}

/// The settings of the table a trigger fired on.
///
/// # Safety
/// `rel` must be an open relation.
pub unsafe fn get(rel: pg_sys::Relation) -> Result<Rc<TableConfig>> {
    // SAFETY: guaranteed by the caller.
    let relid = unsafe { (*rel).rd_id };
    if let Some(config) = CACHE.with_borrow(|cache| cache.get(&relid).cloned()) {
        return Ok(config);
    }
    let epoch = EPOCH.get();
    // SAFETY: guaranteed by the caller.
    let config = Rc::new(unsafe { build(rel) }?);
    if EPOCH.get() == epoch {
        CACHE.with_borrow_mut(|cache| cache.insert(relid, Rc::clone(&config)));
    }
    Ok(config)
}

/// The schema-qualified, quoted name of a relation, for messages and `table_name`.
pub fn qualified_name(relid: pg_sys::Oid) -> String {
    // SAFETY: catalog look-ups of an existing relation.
    unsafe {
        let namespace = pg_sys::get_namespace_name(pg_sys::get_rel_namespace(relid));
        let name = pg_sys::get_rel_name(relid);
        if namespace.is_null() || name.is_null() {
            return format!("relation {}", relid.to_u32());
        }
        spi::quote_qualified_identifier(
            std::ffi::CStr::from_ptr(namespace).to_string_lossy(),
            std::ffi::CStr::from_ptr(name).to_string_lossy(),
        )
    }
}

fn load_settings(relid: pg_sys::Oid) -> Result<Option<Settings>> {
    let settings = privilege::as_extension_owner(|| {
        Spi::connect(|client| -> spi::Result<Option<Settings>> {
            // SAFETY: an oid is a valid regclass datum.
            let args = [unsafe { DatumWithOid::new(relid, pg_sys::REGCLASSOID) }];
            // The tenant column through to_jsonb: a schema before 0.3.0 has none.
            let rows = client.select(
                "SELECT t.entity, t.subject_columns, t.ignore_columns, t.redact_columns, \
                        pg_catalog.to_jsonb(t) OPERATOR(pg_catalog.->>) 'tenant_column' \
                 FROM audit.tracked_tables AS t WHERE t.relid = $1",
                Some(1),
                &args,
            )?;
            if rows.is_empty() {
                return Ok(None);
            }
            let row = rows.first();
            Ok(Some(Settings {
                entity: row.get::<String>(1)?.unwrap_or_default(),
                subject_columns: row.get::<Vec<String>>(2)?.unwrap_or_default(),
                ignore_columns: row.get::<Vec<String>>(3)?.unwrap_or_default(),
                redact_columns: row.get::<Vec<String>>(4)?.unwrap_or_default(),
                tenant_column: row.get::<String>(5)?,
            }))
        })
    })??;
    Ok(settings)
}

/// # Safety
/// `rel` must be an open relation.
unsafe fn build(rel: pg_sys::Relation) -> Result<TableConfig> {
    // SAFETY: `rel` is open; its descriptor stays valid while we read it.
    unsafe {
        let relid = (*rel).rd_id;
        let table_name = qualified_name(relid);
        let settings = load_settings(relid)?.ok_or_else(|| AuditError::NotTracked {
            relation: table_name.clone(),
        })?;

        let context = pg_sys::AllocSetContextCreateInternal(
            pg_sys::CacheMemoryContext,
            c"audit_trail table settings".as_ptr(),
            pg_sys::ALLOCSET_SMALL_MINSIZE as usize,
            pg_sys::ALLOCSET_SMALL_INITSIZE as usize,
            pg_sys::ALLOCSET_SMALL_MAXSIZE as usize,
        );
        let mut config = TableConfig {
            entity: settings.entity,
            table_name,
            columns: Vec::new(),
            subject: Vec::new(),
            tenant: None,
            json_order: Vec::new(),
            context,
        };
        let desc = (*rel).rd_att;
        for (index, attr) in compat::tuple_desc_attrs(desc).iter().enumerate() {
            if !attr.attisdropped {
                config.columns.push(ColumnCodec::new(index, attr, context));
            }
        }
        let position = |name: &str| -> Result<usize> {
            config
                .columns
                .iter()
                .position(|c| c.name.as_bytes() == name.as_bytes())
                .ok_or_else(|| AuditError::StaleSettings {
                    relation: config.table_name.clone(),
                    column: name.to_owned(),
                })
        };
        let subject = settings
            .subject_columns
            .iter()
            .map(|name| position(name))
            .collect::<Result<Vec<_>>>()?;
        // An ignored or redacted name without its column is a redaction kept for a dropped
        // column (re-adding it redacts it again); it has nothing to mask yet.
        let ignored: Vec<usize> = settings
            .ignore_columns
            .iter()
            .filter_map(|name| position(name).ok())
            .collect();
        let redacted: Vec<usize> = settings
            .redact_columns
            .iter()
            .filter_map(|name| position(name).ok())
            .collect();
        let tenant = settings
            .tenant_column
            .as_deref()
            .map(position)
            .transpose()?;
        for i in ignored {
            config.columns[i].ignored = true;
        }
        for i in redacted {
            config.columns[i].redacted = true;
        }
        config.subject = subject;
        config.tenant = tenant;
        let mut json_order: Vec<usize> = (0..config.columns.len()).collect();
        json_order.sort_by(|&a, &b| {
            let (a, b) = (
                config.columns[a].name.as_bytes(),
                config.columns[b].name.as_bytes(),
            );
            a.len().cmp(&b.len()).then_with(|| a.cmp(b))
        });
        config.json_order = json_order;
        Ok(config)
    }
}

/// Relcache invalidation callback: `relid` is InvalidOid when everything is invalidated.
#[pg_guard]
pub unsafe extern "C-unwind" fn on_relcache_invalidation(_arg: pg_sys::Datum, relid: pg_sys::Oid) {
    EPOCH.set(EPOCH.get() + 1);
    let removed = CACHE.with(|cache| {
        let Ok(mut cache) = cache.try_borrow_mut() else {
            return Vec::new();
        };
        if relid == pg_sys::InvalidOid {
            cache.drain().map(|(_, v)| v).collect()
        } else {
            cache.remove(&relid).into_iter().collect()
        }
    });
    drop(removed);
    events_catalog::invalidate(relid);
}

/// Syscache callback for pg_namespace (a schema was renamed or dropped) and pg_cast: every
/// entry goes.
#[pg_guard]
pub unsafe extern "C-unwind" fn on_namespace_invalidation(
    _arg: pg_sys::Datum,
    _cache_id: core::ffi::c_int,
    _hash: u32,
) {
    // SAFETY: same contract as the relcache callback.
    unsafe { on_relcache_invalidation(pg_sys::Datum::from(0), pg_sys::InvalidOid) };
}

pub fn register_invalidation_callbacks() {
    // SAFETY: called once from _PG_init; the callbacks live as long as the library.
    unsafe {
        pg_sys::CacheRegisterRelcacheCallback(
            Some(on_relcache_invalidation),
            pg_sys::Datum::from(0),
        );
        pg_sys::CacheRegisterSyscacheCallback(
            pg_sys::SysCacheIdentifier::NAMESPACEOID as _,
            Some(on_namespace_invalidation),
            pg_sys::Datum::from(0),
        );
        // A new or dropped cast to json changes which columns row_json may hand to to_jsonb.
        pg_sys::CacheRegisterSyscacheCallback(
            pg_sys::SysCacheIdentifier::CASTSOURCETARGET as _,
            Some(on_namespace_invalidation),
            pg_sys::Datum::from(0),
        );
    }
}
