//! The capture trigger: `audit.capture()`, installed by `audit.track` as AFTER ... FOR EACH
//! STATEMENT triggers with transition tables on INSERT, UPDATE and DELETE, and a plain
//! statement trigger on TRUNCATE.
//!
//! One call handles every row the statement changed, so a bulk UPDATE pays the per-statement
//! costs (settings look-up, attribution, opening `audit.events`) once, and single-row
//! statements pay no per-row trigger queueing. Rows whose tracked columns did not change are
//! dropped before any jsonb is built.

use pgrx::pg_sys;

use crate::attribution::Attribution;
use crate::error::{AuditError, Result};
use crate::event_store::{Column, Event, EventWriter};
use crate::pg::datums;
use crate::pg::ffi::{self, sql_callable};
use crate::pg::memory::Scratch;
use crate::row_json;
use crate::table_config::{self, TableConfig};

sql_callable!(audit_capture, pg_finfo_audit_capture => capture_entry);

unsafe fn capture_entry(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: PostgreSQL calls this with a valid fcinfo.
    if let Err(e) = unsafe { capture(fcinfo) } {
        e.raise();
    }
    // A statement trigger's result is ignored; by convention it returns NULL.
    pg_sys::Datum::from(0)
}

enum Operation {
    Insert,
    Update,
    Delete,
    Truncate,
}

/// The trigger call's data, checked to be an AFTER ... FOR EACH STATEMENT trigger.
///
/// # Safety
/// `fcinfo` must be a valid function call.
unsafe fn trigger_data(fcinfo: pg_sys::FunctionCallInfo) -> Result<&'static pg_sys::TriggerData> {
    let not_a_trigger = AuditError::NotATrigger {
        function: "audit.capture()",
    };
    // SAFETY: context is either NULL or a Node; a TriggerData when its tag says so.
    unsafe {
        let context = (*fcinfo).context;
        if context.is_null() || (*context).type_ != pg_sys::NodeTag::T_TriggerData {
            return Err(not_a_trigger);
        }
        let data = &*(context as *const pg_sys::TriggerData);
        let event = data.tg_event;
        if event & pg_sys::TRIGGER_EVENT_TIMINGMASK != pg_sys::TRIGGER_EVENT_AFTER
            || event & pg_sys::TRIGGER_EVENT_ROW != 0
        {
            return Err(not_a_trigger);
        }
        Ok(data)
    }
}

/// # Safety
/// `fcinfo` must be a valid function call.
unsafe fn capture(fcinfo: pg_sys::FunctionCallInfo) -> Result<()> {
    // SAFETY: trigger_data checked the call; the relation and transition tables it points to
    // are valid for the duration of the call.
    unsafe {
        let data = trigger_data(fcinfo)?;
        let operation = match data.tg_event & pg_sys::TRIGGER_EVENT_OPMASK {
            pg_sys::TRIGGER_EVENT_INSERT => Operation::Insert,
            pg_sys::TRIGGER_EVENT_UPDATE => Operation::Update,
            pg_sys::TRIGGER_EVENT_DELETE => Operation::Delete,
            _ => Operation::Truncate,
        };
        let (old, new) = (data.tg_oldtable, data.tg_newtable);
        let rows = |store: *mut pg_sys::Tuplestorestate| {
            if store.is_null() {
                0
            } else {
                pg_sys::tuplestore_tuple_count(store)
            }
        };
        let changed_rows = match operation {
            Operation::Insert => rows(new),
            Operation::Update | Operation::Delete => rows(old),
            Operation::Truncate => 1,
        };
        if changed_rows == 0 {
            return Ok(());
        }
        if matches!(operation, Operation::Insert) && new.is_null()
            || matches!(operation, Operation::Delete) && old.is_null()
            || matches!(operation, Operation::Update) && (old.is_null() || new.is_null())
        {
            return Err(AuditError::NotATrigger {
                function: "audit.capture()",
            });
        }

        let rel = data.tg_relation;
        let config = table_config::get(rel)?;
        let who = Attribution::current()?;
        let cross_context = match (&who.tenant, config.tenant) {
            (Some((_, acting)), Some(_)) => {
                Some(crate::attribution::with_acting_tenant(who.context, acting)?)
            }
            _ => None,
        };
        let mut capture = StatementCapture {
            config: &config,
            who: &who,
            cross_context,
            entity: datums::text(config.entity.as_bytes()),
            table_name: datums::text(config.table_name.as_bytes()),
            writer: None,
            rows: changed_rows,
        };
        match operation {
            Operation::Truncate => {
                let mut event = capture.event(b"truncate");
                capture.append(&mut event)?;
            }
            Operation::Insert => capture.each_row(new, (*rel).rd_att, |c, values, nulls| {
                let mut event = c.event(b"create");
                c.set_tenant(&mut event, None, Some((values, nulls)))?;
                event.set(Column::SubjectId, c.subject(values, nulls));
                event.set(Column::NewData, Some(c.whole_row(values, nulls)));
                Ok(Some(event))
            })?,
            Operation::Delete => capture.each_row(old, (*rel).rd_att, |c, values, nulls| {
                let mut event = c.event(b"delete");
                c.set_tenant(&mut event, Some((values, nulls)), None)?;
                event.set(Column::SubjectId, c.subject(values, nulls));
                event.set(Column::OldData, Some(c.whole_row(values, nulls)));
                Ok(Some(event))
            })?,
            Operation::Update => {
                let (old_count, new_count) = (rows(old), rows(new));
                if old_count != new_count {
                    return Err(AuditError::UnpairedUpdate {
                        relation: config.table_name.clone(),
                        old: old_count,
                        new: new_count,
                    });
                }
                capture.each_update(old, new, (*rel).rd_att)?;
            }
        }
        capture.finish();
        Ok(())
    }
}

/// The events one statement writes.
struct StatementCapture<'a> {
    config: &'a TableConfig,
    who: &'a Attribution,
    /// The context of an event that changes another organization's row than the one the
    /// transaction acts for: its own, plus the acting organization (made once per
    /// statement, outside the per-row memory).
    cross_context: Option<pg_sys::Datum>,
    entity: pg_sys::Datum,
    table_name: pg_sys::Datum,
    /// Opened at the first event: an UPDATE that changes no tracked column writes nothing.
    writer: Option<EventWriter>,
    /// Rows the statement changed: many events are written in batches.
    rows: i64,
}

/// Reads a transition table row by row.
struct TransitionRows {
    store: *mut pg_sys::Tuplestorestate,
    slot: *mut pg_sys::TupleTableSlot,
}

impl TransitionRows {
    /// # Safety
    /// `store` and `desc` must be a transition table of the firing trigger and its relation's
    /// descriptor, valid for the reader's life.
    unsafe fn new(store: *mut pg_sys::Tuplestorestate, desc: pg_sys::TupleDesc) -> Self {
        // SAFETY: the store and descriptor come from the firing trigger. Another trigger may
        // have read the same transition table before us, hence the rescan.
        unsafe {
            pg_sys::tuplestore_rescan(store);
            TransitionRows {
                store,
                slot: pg_sys::MakeSingleTupleTableSlot(desc, &pg_sys::TTSOpsMinimalTuple),
            }
        }
    }

    /// Advances to the next row; its values stay valid until the next call.
    fn next(&mut self) -> Option<(&[pg_sys::Datum], &[bool])> {
        // SAFETY: the slot has the store's descriptor; without copying, the row points into
        // the store until the next fetch, and the returned slices borrow `self` that long.
        unsafe {
            if !pg_sys::tuplestore_gettupleslot(self.store, true, false, self.slot) {
                return None;
            }
            pg_sys::slot_getallattrs(self.slot);
            let natts = (*(*self.slot).tts_tupleDescriptor).natts as usize;
            Some((
                std::slice::from_raw_parts((*self.slot).tts_values, natts),
                std::slice::from_raw_parts((*self.slot).tts_isnull, natts),
            ))
        }
    }
}

impl Drop for TransitionRows {
    fn drop(&mut self) {
        // SAFETY: the slot was made by new() and is not used after this.
        unsafe { pg_sys::ExecDropSingleTupleTableSlot(self.slot) }
    }
}

type RowResult = Result<Option<Event>>;

/// A row's values and nulls, deformed.
type Row<'a> = (&'a [pg_sys::Datum], &'a [bool]);

impl StatementCapture<'_> {
    fn event(&self, action: &[u8]) -> Event {
        let mut event = Event::new(self.who, self.entity, datums::text(action));
        event.set(Column::TableName, Some(self.table_name));
        event
    }

    fn subject(&self, values: &[pg_sys::Datum], nulls: &[bool]) -> Option<pg_sys::Datum> {
        // SAFETY: values/nulls are a deformed row of the tracked table.
        unsafe { row_json::subject(&self.config.columns, &self.config.subject, values, nulls) }
    }

    /// The organization a row names in the table's tenant column, as text; None when the
    /// table has no such column or the row holds NULL.
    fn row_tenant(&self, (values, nulls): Row<'_>) -> Result<Option<pg_sys::Datum>> {
        let Some(i) = self.config.tenant else {
            return Ok(None);
        };
        let column = &self.config.columns[i];
        if nulls[column.index] {
            return Ok(None);
        }
        // SAFETY: a non-null value of the column's type.
        let text = unsafe { column.to_text(values[column.index]) };
        let size = text_bytes(text).len();
        if size > crate::attribution::NAME_MAX_BYTES {
            return Err(AuditError::NameTooLong {
                setting: "the tenant column",
                size,
                limit: crate::attribution::NAME_MAX_BYTES,
            });
        }
        Ok(Some(text))
    }

    /// The event's organization: the row's (the new row's for an update, else the old
    /// row's), else the transaction's, which `Event::new` set. When the transaction acts
    /// for an organization and a row it changes (before or after) names another, the event
    /// is a cross-organization write: its context names the acting one.
    fn set_tenant(
        &self,
        event: &mut Event,
        old: Option<Row<'_>>,
        new: Option<Row<'_>>,
    ) -> Result<()> {
        let old = old.map(|row| self.row_tenant(row)).transpose()?.flatten();
        let new = new.map(|row| self.row_tenant(row)).transpose()?.flatten();
        if let Some(tenant) = new.or(old) {
            event.set(Column::Tenant, Some(tenant));
        }
        if let (Some((_, acting)), Some(cross)) = (&self.who.tenant, self.cross_context) {
            if [old, new]
                .into_iter()
                .flatten()
                .any(|t| text_bytes(t) != acting.as_slice())
            {
                event.set(Column::Context, Some(cross));
            }
        }
        Ok(())
    }

    fn whole_row(&self, values: &[pg_sys::Datum], nulls: &[bool]) -> pg_sys::Datum {
        // SAFETY: as subject().
        unsafe { row_json::object(self.config.in_json_order(), values, nulls) }
    }

    fn append(&mut self, event: &mut Event) -> Result<()> {
        if self.writer.is_none() {
            self.writer = Some(EventWriter::open_for(self.rows)?);
        }
        if let Some(writer) = self.writer.as_mut() {
            writer.append(event)?;
        }
        Ok(())
    }

    /// Runs `f` on each row of a transition table, appending the event it returns.
    ///
    /// # Safety
    /// `store` and `desc` must be a transition table of the firing trigger and its descriptor.
    unsafe fn each_row(
        &mut self,
        store: *mut pg_sys::Tuplestorestate,
        desc: pg_sys::TupleDesc,
        f: impl Fn(&Self, &[pg_sys::Datum], &[bool]) -> RowResult,
    ) -> Result<()> {
        // SAFETY: store and desc come from the firing trigger.
        let mut rows = unsafe { TransitionRows::new(store, desc) };
        // The writer's executor state must outlive the per-row scratch context.
        if self.writer.is_none() {
            self.writer = Some(EventWriter::open_for(self.rows)?);
        }
        let scratch = Scratch::new();
        while let Some((values, nulls)) = rows.next() {
            scratch.run(|| -> Result<()> {
                if let Some(mut event) = f(self, values, nulls)? {
                    self.append(&mut event)?;
                }
                Ok(())
            })?;
            scratch.reset();
        }
        scratch.delete();
        Ok(())
    }

    /// Pairs the old and new rows of an UPDATE and appends an event for each that changed a
    /// tracked column.
    ///
    /// # Safety
    /// `old`, `new` and `desc` must be the firing trigger's transition tables and descriptor.
    unsafe fn each_update(
        &mut self,
        old: *mut pg_sys::Tuplestorestate,
        new: *mut pg_sys::Tuplestorestate,
        desc: pg_sys::TupleDesc,
    ) -> Result<()> {
        // SAFETY: stores and desc come from the firing trigger. PostgreSQL appends an updated
        // row's old and new versions to the two transition tables together, so the n-th rows
        // pair up (the counts were checked equal).
        let (mut old_rows, mut new_rows) = unsafe {
            (
                TransitionRows::new(old, desc),
                TransitionRows::new(new, desc),
            )
        };
        let columns = &self.config.columns;
        let mut changed = vec![false; columns.len()];
        let scratch = Scratch::new();
        while let (Some((old_values, old_nulls)), Some((new_values, new_nulls))) =
            (old_rows.next(), new_rows.next())
        {
            let mut reportable = false;
            for (column, changed) in columns.iter().zip(changed.iter_mut()) {
                let i = column.index;
                *changed = old_nulls[i] != new_nulls[i]
                    || !old_nulls[i]
                        // SAFETY: both are non-null datums of the column's type.
                        && !unsafe {
                            ffi::datum_image_eq(
                                old_values[i],
                                new_values[i],
                                column.by_val,
                                column.len.into(),
                            )
                        };
                reportable |= *changed && !column.ignored;
            }
            if !reportable {
                continue;
            }
            if self.writer.is_none() {
                self.writer = Some(EventWriter::open_for(self.rows)?);
            }
            scratch.run(|| -> Result<()> {
                let changed_fields = columns
                    .iter()
                    .zip(&changed)
                    .filter(|(c, changed)| **changed && !c.ignored)
                    .map(|(c, _)| c.name.as_bytes());
                let fields: Vec<&[u8]> = changed_fields.collect();
                let mut event = self.event(b"update");
                self.set_tenant(
                    &mut event,
                    Some((old_values, old_nulls)),
                    Some((new_values, new_nulls)),
                )?;
                event.set(Column::SubjectId, self.subject(new_values, new_nulls));
                event.set(
                    Column::ChangedFields,
                    Some(datums::text_array(fields.into_iter())),
                );
                // Every changed column's previous value, ignored ones included, so that
                // new_data || old_data is exactly the row before.
                let previous = self
                    .config
                    .json_order
                    .iter()
                    .filter(|&&i| changed[i])
                    .map(|&i| &columns[i]);
                // SAFETY: a deformed row of the tracked table.
                event.set(
                    Column::OldData,
                    Some(unsafe { row_json::object(previous, old_values, old_nulls) }),
                );
                event.set(Column::NewData, Some(self.whole_row(new_values, new_nulls)));
                self.append(&mut event)
            })?;
            scratch.reset();
        }
        scratch.delete();
        Ok(())
    }

    fn finish(self) {
        if let Some(writer) = self.writer {
            writer.close();
        }
    }
}

/// The bytes of a text datum made by `datums::text` (in memory, not toasted).
fn text_bytes<'a>(text: pg_sys::Datum) -> &'a [u8] {
    // SAFETY: a plain in-memory text value, valid while its memory context lives.
    unsafe { pgrx::varlena::varlena_to_byte_slice(text.cast_mut_ptr()) }
}
