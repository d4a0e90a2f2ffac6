//! Appending rows to `audit.events`.
//!
//! Capture does not run SQL: it forms the row itself and hands it to the executor's single-row
//! insert path (`ExecSimpleRelationInsert`, the one logical replication's apply worker uses),
//! which still checks constraints and maintains every index on the table. That skips parsing,
//! planning and ACL checks: the writing role needs no privilege on `audit.*`, and nothing it
//! puts in its `search_path` is consulted.

use std::cell::Cell;

use pgrx::pg_sys;

use crate::attribution::Attribution;
use crate::error::{AuditError, Result};
use crate::events_catalog::{
    self, attributes_of, events_table, partition_for, EventsTable, COLUMN_COUNT,
};
use crate::pg::{compat, ffi};
use crate::wakeup;

/// The columns of `audit.events` that the extension fills, in docs/contract.md order.
#[derive(Clone, Copy)]
#[repr(usize)]
pub enum Column {
    Id,
    OccurredAt,
    Txid,
    Actor,
    DbUser,
    Source,
    ClientAddr,
    ApplicationName,
    Entity,
    Action,
    TableName,
    SubjectId,
    ChangedFields,
    OldData,
    NewData,
    Context,
    Details,
    Tenant,
}

/// One event to append; a NULL column is `None`.
pub struct Event {
    values: [Option<pg_sys::Datum>; COLUMN_COUNT],
}

impl Event {
    pub fn new(who: &Attribution, entity: pg_sys::Datum, action: pg_sys::Datum) -> Self {
        let mut values = [None; COLUMN_COUNT];
        values[Column::OccurredAt as usize] = Some(who.occurred_at);
        values[Column::Txid as usize] = Some(who.txid);
        values[Column::Actor as usize] = Some(who.actor);
        values[Column::DbUser as usize] = Some(who.db_user);
        values[Column::Source as usize] = Some(who.source);
        values[Column::ClientAddr as usize] = who.client_addr;
        values[Column::ApplicationName as usize] = who.application_name;
        values[Column::Context as usize] = who.context;
        values[Column::Tenant as usize] = who.tenant.as_ref().map(|(datum, _)| *datum);
        values[Column::Entity as usize] = Some(entity);
        values[Column::Action as usize] = Some(action);
        Event { values }
    }

    pub fn set(&mut self, column: Column, value: Option<pg_sys::Datum>) {
        self.values[column as usize] = value;
    }

    /// The bytes of its variable-length values (every column but id, occurred_at and txid).
    fn varlena_bytes(&self) -> usize {
        self.values[Column::Actor as usize..]
            .iter()
            .flatten()
            // SAFETY: these columns are text, inet, text[] and jsonb: varlena datums.
            .map(|d| unsafe { pg_sys::toast_raw_datum_size(*d) })
            .sum()
    }
}

thread_local! {
    // One backend is one thread. This transaction marked the log live, not committed yet
    // (reset at its end, and when a subtransaction aborts, which may have undone the mark).
    static MARKED_IN_XACT: Cell<bool> = const { Cell::new(false) };
}

/// Marks the log live before its first event (SQL may then add no row to audit.events,
/// api.sql's audit.refuse_insert): once per backend, by a look at audit.log_state, and once
/// per database, by the one transaction that sets it. A schema before 0.3.0 has no such
/// table: nothing is marked (its upgrade makes the log live).
fn mark_live() -> Result<()> {
    if events_catalog::known_live() || MARKED_IN_XACT.get() {
        return Ok(());
    }
    crate::privilege::as_extension_owner(|| -> Result<()> {
        // A schema before 0.3.0 has no audit.log_state; ALTER EXTENSION UPDATE makes it live.
        let exists = pgrx::Spi::get_one::<bool>(
            "SELECT pg_catalog.to_regclass('audit.log_state') IS NOT NULL",
        )?;
        if exists != Some(true) {
            events_catalog::set_known_live();
            return Ok(());
        }
        let live = pgrx::Spi::get_one::<bool>("SELECT s.live FROM audit.log_state AS s")?;
        match live {
            // Seen by this transaction and not written by it: committed.
            Some(true) => events_catalog::set_known_live(),
            _ => {
                pgrx::Spi::run("SELECT audit.mark_log_live()")?;
                MARKED_IN_XACT.set(true);
            }
        }
        Ok(())
    })?
}

/// Transaction end: a mark of this transaction is committed (and seen as such by the next
/// look) or undone.
pub fn transaction_ended() {
    MARKED_IN_XACT.set(false);
}

/// Events written at once by the multi-insert path, at most.
const BATCH: usize = 1000;
/// Bytes of row images a batch holds at most before it is written: a statement over rows of
/// megabytes each must not hold a thousand of them in memory (1,000 rows of 1 MB took a
/// backend to 2 GB, and of 10 MB would have brought the OOM killer).
const BATCH_BYTES: usize = 8 * 1024 * 1024;

/// Rows of a statement's events waiting for a multi-insert (COPY's path: one WAL record and
/// one buffer lock per page instead of per row, and a bulk-insert state that extends the
/// table several pages at a time).
struct Batch {
    slots: Vec<*mut pg_sys::TupleTableSlot>,
    used: usize,
    /// Bytes of the varlena values of the rows waiting.
    bytes: usize,
    bulk: pg_sys::BulkInsertState,
}

/// An open `audit.events` with the executor state to insert into it; one per statement.
pub struct EventWriter {
    table: EventsTable,
    /// The partitioned parent, held open (and locked) while its partitions are written.
    parent: Option<pg_sys::Relation>,
    rows: i64,
    /// The memory context current at open_for(): targets are opened in it, since appends
    /// run in a per-row context that is reset after each row.
    context: pg_sys::MemoryContext,
    /// Where rows go now: opened at the first event, and again when an event falls outside
    /// its time range.
    target: Option<Target>,
}

/// One table rows are inserted into: `audit.events` itself, or one of its partitions.
struct Target {
    from: i64,
    to: i64,
    rel: pg_sys::Relation,
    attribute_of: [usize; COLUMN_COUNT],
    estate: *mut pg_sys::EState,
    result_rel: *mut pg_sys::ResultRelInfo,
    slot: *mut pg_sys::TupleTableSlot,
    /// Set for statements that write many events, when nothing on the table needs rows
    /// one at a time (row triggers a DBA added, generated columns).
    batch: Option<Batch>,
}

impl EventWriter {
    /// For one event, or a few.
    pub fn open() -> Result<Self> {
        Self::open_for(1)
    }

    /// For a statement expected to write about `rows` events.
    pub fn open_for(rows: i64) -> Result<Self> {
        let table = events_table()?;
        mark_live()?;
        // SAFETY: locks the parent as an INSERT naming it would, before its partitions.
        let parent = table
            .partitioned
            .then(|| unsafe { pg_sys::table_open(table.relid, pg_sys::RowExclusiveLock as _) });
        Ok(EventWriter {
            table,
            parent,
            rows,
            // SAFETY: reads the current context pointer.
            context: unsafe { pg_sys::CurrentMemoryContext },
            target: None,
        })
    }

    /// The target for an event at time `at`, opened if need be.
    fn target_for(&mut self, at: i64) -> Result<&mut Target> {
        let current = self
            .target
            .as_ref()
            .is_some_and(|t| t.from <= at && at < t.to);
        if !current {
            if let Some(old) = self.target.take() {
                old.close();
            }
            let (relid, from, to, is_default) = match self.parent {
                // SAFETY: the parent is open and locked (open_for).
                Some(parent) => unsafe { partition_for(parent, at)? },
                None => (self.table.relid, i64::MIN, i64::MAX, false),
            };
            // SAFETY: relid is audit.events or one of its partitions; the writer's context
            // lives as long as the writer.
            let opened = unsafe {
                let previous = pg_sys::CurrentMemoryContext;
                pg_sys::CurrentMemoryContext = self.context;
                let opened = Target::open(relid, from, to, is_default, self.rows);
                pg_sys::CurrentMemoryContext = previous;
                opened
            };
            self.target = Some(opened?);
        }
        self.target.as_mut().ok_or(AuditError::NotInstalled)
    }

    /// Appends one event, giving it the next id, which it returns. In a batch the row is
    /// written at the latest by close().
    pub fn append(&mut self, event: &mut Event) -> Result<i64> {
        let at = event.values[Column::OccurredAt as usize]
            .map(|d| d.value() as i64)
            .unwrap_or_default();
        let sequence = self.table.sequence;
        let target = self.target_for(at)?;
        // SAFETY: the sequence is audit.events' own.
        let id = unsafe { ffi::nextval_internal(sequence, false) };
        event.set(Column::Id, Some(pg_sys::Datum::from(id)));
        // SAFETY: the target is open; every value is a datum of its column's type, built by
        // the caller.
        unsafe { target.insert(event) };
        Ok(id)
    }

    /// Finishes the statement's writes; followers are woken at commit.
    pub fn close(mut self) {
        if let Some(target) = self.target.take() {
            target.close();
        }
        if let Some(parent) = self.parent.take() {
            // SAFETY: opened in open_for(); the lock is kept to the end of the transaction.
            unsafe { pg_sys::table_close(parent, pg_sys::NoLock as _) };
        }
        wakeup::events_written();
    }
}

impl Target {
    /// # Safety
    /// `relid` must be audit.events or a partition of it, its parent locked by the caller.
    unsafe fn open(
        relid: pg_sys::Oid,
        from: i64,
        to: i64,
        is_default: bool,
        rows: i64,
    ) -> Result<Target> {
        // SAFETY: this is the set-up logical replication's apply worker does for one relation
        // (create_edata_for_relation); every pointer comes from the PostgreSQL call before it.
        unsafe {
            let rel = pg_sys::table_open(relid, pg_sys::RowExclusiveLock as _);
            let attribute_of = match attributes_of(rel) {
                Ok(attributes) => attributes,
                Err(e) => {
                    pg_sys::table_close(rel, pg_sys::NoLock as _);
                    return Err(e);
                }
            };
            let estate = pg_sys::CreateExecutorState();

            let rte = pg_sys::palloc0(std::mem::size_of::<pg_sys::RangeTblEntry>())
                as *mut pg_sys::RangeTblEntry;
            (*rte).type_ = pg_sys::NodeTag::T_RangeTblEntry;
            (*rte).rtekind = pg_sys::RTEKind::RTE_RELATION;
            (*rte).relid = relid;
            (*rte).relkind = pg_sys::RELKIND_RELATION as _;
            (*rte).rellockmode = pg_sys::RowExclusiveLock as _;
            compat::exec_init_range_table(estate, rte);

            let result_rel = pg_sys::palloc0(std::mem::size_of::<pg_sys::ResultRelInfo>())
                as *mut pg_sys::ResultRelInfo;
            (*result_rel).type_ = pg_sys::NodeTag::T_ResultRelInfo;
            pg_sys::InitResultRelInfo(result_rel, rel, 1, std::ptr::null_mut(), 0);
            // The executor checks a partition's bounds on every insert, building the check
            // from the catalog for each new ResultRelInfo, i.e. once per statement here: a
            // cost of the order of the whole insert for one-row statements. The rows were
            // routed by those very bounds (partition_for), so a monthly partition's check is
            // a constant true; the default partition, whose bounds are the negation of all
            // the others, keeps the real one.
            if (*(*rel).rd_rel).relispartition && !is_default {
                let always = pg_sys::lappend(
                    std::ptr::null_mut(),
                    pg_sys::makeBoolConst(true, false).cast(),
                );
                (*result_rel).ri_PartitionCheckExpr = pg_sys::ExecPrepareCheck(always, estate);
            }
            (*estate).es_output_cid = pg_sys::GetCurrentCommandId(true);
            pg_sys::ExecOpenIndices(result_rel, false);
            // Row triggers a DBA may have added to audit.events need a query level to queue in.
            pg_sys::AfterTriggerBeginQuery();
            let slot =
                pg_sys::ExecInitExtraTupleSlot(estate, (*rel).rd_att, &pg_sys::TTSOpsVirtual);
            let triggers = (*result_rel).ri_TrigDesc;
            let row_triggers = !triggers.is_null()
                && ((*triggers).trig_insert_before_row
                    || (*triggers).trig_insert_after_row
                    || (*triggers).trig_insert_instead_row);
            let constraints = (*(*rel).rd_att).constr;
            let generated = !constraints.is_null() && (*constraints).has_generated_stored;
            let batch = (rows > 1 && !row_triggers && !generated).then(|| Batch {
                slots: Vec::new(),
                used: 0,
                bytes: 0,
                bulk: pg_sys::GetBulkInsertState(),
            });
            Ok(Target {
                from,
                to,
                rel,
                attribute_of,
                estate,
                result_rel,
                slot,
                batch,
            })
        }
    }

    /// # Safety
    /// Every value of `event` must be a datum of its column's type.
    unsafe fn insert(&mut self, event: &Event) {
        // SAFETY: slots belong to this target's estate and have the relation's descriptor.
        unsafe {
            let slot = match self.batch.as_mut() {
                None => self.slot,
                Some(batch) => {
                    if batch.used == batch.slots.len() {
                        // In the statement's executor memory, not the caller's per-row
                        // context: a slot keeps its struct and its materialized row in the
                        // context current when it is made.
                        let previous = pg_sys::CurrentMemoryContext;
                        pg_sys::CurrentMemoryContext = (*self.estate).es_query_cxt;
                        batch.slots.push(pg_sys::ExecInitExtraTupleSlot(
                            self.estate,
                            (*self.rel).rd_att,
                            &pg_sys::TTSOpsVirtual,
                        ));
                        pg_sys::CurrentMemoryContext = previous;
                    }
                    batch.slots[batch.used]
                }
            };
            self.fill(slot, event);
            match self.batch.as_mut() {
                // Checks the partition's bounds too (a partition's constraint).
                None => pg_sys::ExecSimpleRelationInsert(self.result_rel, self.estate, slot),
                Some(batch) => {
                    // The values live in the caller's per-row memory: copy them into the slot.
                    pg_sys::ExecMaterializeSlot(slot);
                    batch.used += 1;
                    batch.bytes += event.varlena_bytes();
                    if batch.used == BATCH || batch.bytes >= BATCH_BYTES {
                        self.flush();
                    }
                }
            }
        }
    }

    /// # Safety
    /// `slot` must be an empty virtual slot of audit.events.
    unsafe fn fill(&self, slot: *mut pg_sys::TupleTableSlot, event: &Event) {
        // SAFETY: guaranteed by append().
        unsafe {
            pg_sys::ExecClearTuple(slot);
            let natts = (*(*slot).tts_tupleDescriptor).natts as usize;
            let values = std::slice::from_raw_parts_mut((*slot).tts_values, natts);
            let nulls = std::slice::from_raw_parts_mut((*slot).tts_isnull, natts);
            nulls.fill(true);
            for (column, value) in event.values.iter().enumerate() {
                if let Some(datum) = value {
                    let attribute = self.attribute_of[column];
                    if attribute == events_catalog::ABSENT {
                        continue;
                    }
                    values[attribute] = *datum;
                    nulls[attribute] = false;
                }
            }
            pg_sys::ExecStoreVirtualTuple(slot);
        }
    }

    /// Writes the batched rows: constraints, one multi-insert, then their index entries.
    fn flush(&mut self) {
        let Some(batch) = self.batch.as_mut() else {
            return;
        };
        if batch.used == 0 {
            return;
        }
        // SAFETY: the slots hold materialized rows of audit.events; this is COPY's sequence
        // (CopyMultiInsertBufferFlush) for a table without row triggers.
        unsafe {
            let slots = &mut batch.slots[..batch.used];
            if !(*(*self.rel).rd_att).constr.is_null() {
                for &slot in slots.iter() {
                    pg_sys::ExecConstraints(self.result_rel, slot, self.estate);
                }
            }
            if (*(*self.rel).rd_rel).relispartition {
                for &slot in slots.iter() {
                    pg_sys::ExecPartitionCheck(self.result_rel, slot, self.estate, true);
                }
            }
            pg_sys::table_multi_insert(
                self.rel,
                slots.as_mut_ptr(),
                slots.len() as core::ffi::c_int,
                (*self.estate).es_output_cid,
                0,
                batch.bulk,
            );
            if (*self.result_rel).ri_NumIndices > 0 {
                for &slot in slots.iter() {
                    let recheck =
                        compat::exec_insert_index_tuples(self.result_rel, slot, self.estate);
                    pg_sys::list_free(recheck);
                }
            }
            batch.used = 0;
            batch.bytes = 0;
            // The slots' materialized rows are not needed any more: freed now rather than
            // when each slot is reused, so that a batch of wide rows does not stay in memory.
            for &slot in batch.slots.iter() {
                pg_sys::ExecClearTuple(slot);
            }
        }
    }

    /// Writes what is batched and tears the executor state down.
    fn close(mut self) {
        self.flush();
        if let Some(batch) = self.batch.take() {
            // SAFETY: made by GetBulkInsertState in open(); no longer used.
            unsafe { pg_sys::FreeBulkInsertState(batch.bulk) };
        }
        // SAFETY: tears down exactly what open() set up, in reverse order.
        unsafe {
            pg_sys::AfterTriggerEndQuery(self.estate);
            pg_sys::ExecCloseIndices(self.result_rel);
            pg_sys::ExecResetTupleTable((*self.estate).es_tupleTable, false);
            pg_sys::FreeExecutorState(self.estate);
            pg_sys::table_close(self.rel, pg_sys::NoLock as _);
        }
    }
}
