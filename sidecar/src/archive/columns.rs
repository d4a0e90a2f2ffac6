//! The columns of an archived event: the row as written (the event read, `record::ArrayEvent`,
//! with its txid as a number), its Arrow schema,
//! and the builders that turn rows into Arrow batches for the Parquet writer.

use std::sync::Arc;

use arrow_array::builder::{Int64Builder, ListBuilder, StringBuilder, TimestampMicrosecondBuilder};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use chrono::{DateTime, Utc};

use crate::event_row::ArrayEvent;

/// One event as archived. JSON columns are kept as the database's own text of the jsonb
/// value (what `jsonb::text` prints), so they are written byte for byte, never re-encoded.
///
/// The event as read is [`ArrayEvent`] (the sidecar's one row type and column list); this is
/// its Parquet form, which differs in one column: `txid` is an INT64, checked to fit when the
/// row is read ([`ArchiveRow::from_event`]) so that writing it cannot fail.
#[derive(Debug, Clone, PartialEq)]
pub struct ArchiveRow {
    pub id: i64,
    pub occurred_at: DateTime<Utc>,
    pub actor: String,
    pub db_user: String,
    pub source: String,
    pub entity: String,
    pub action: String,
    pub subject_id: Option<String>,
    pub table_name: Option<String>,
    pub changed_fields: Option<Vec<Option<String>>>,
    pub old_data: Option<String>,
    pub new_data: Option<String>,
    pub client_addr: Option<String>,
    pub application_name: Option<String>,
    pub context: Option<String>,
    pub details: Option<String>,
    /// xid8: a 64-bit (epoch << 32 | xid) counter. Its epoch grows by one every 2^32
    /// transactions, so it stays below 2^63 for far longer than any cluster lives: it fits a
    /// signed INT64, which every engine reads (unsigned 64-bit is poorly supported).
    pub txid: i64,
    pub tenant: Option<String>,
}

/// A txid that does not fit the archive's signed INT64 column.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("txid {0} does not fit a signed 64-bit integer")]
pub struct TxidOutOfRange(pub String);

impl ArchiveRow {
    /// The event in the archive's form: its `txid` as a signed 64-bit number.
    pub fn from_event(event: ArrayEvent) -> Result<ArchiveRow, TxidOutOfRange> {
        let txid = audit_trail_contract::chain::parse_txid(&event.txid)
            .and_then(|t| i64::try_from(t).ok())
            .ok_or_else(|| TxidOutOfRange(event.txid.clone()))?;
        Ok(ArchiveRow {
            id: event.id,
            occurred_at: event.occurred_at,
            actor: event.actor,
            db_user: event.db_user,
            source: event.source,
            entity: event.entity,
            action: event.action,
            subject_id: event.subject_id,
            table_name: event.table_name,
            changed_fields: event.changed_fields,
            old_data: event.old_data,
            new_data: event.new_data,
            client_addr: event.client_addr,
            application_name: event.application_name,
            context: event.context,
            details: event.details,
            txid,
            tenant: event.tenant,
        })
    }
}

/// The archive's columns, in the order of the CSV export's header (and of the columns read,
/// `crate::event_row::ARRAY_EVENT_COLUMNS_SQL`) (`contract`), with their
/// nullability as in `audit.events`.
pub fn schema() -> SchemaRef {
    let text = |name: &str, nullable: bool| Field::new(name, DataType::Utf8, nullable);
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new(
            "occurred_at",
            // Parquet TIMESTAMP(MICROS, isAdjustedToUTC = true): the same instant as
            // timestamptz, at the same precision.
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        text("actor", false),
        text("db_user", false),
        text("source", false),
        text("entity", false),
        text("action", false),
        text("subject_id", true),
        text("table_name", true),
        Field::new(
            "changed_fields",
            DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
            true,
        ),
        text("old_data", true),
        text("new_data", true),
        text("client_addr", true),
        text("application_name", true),
        text("context", true),
        text("details", true),
        Field::new("txid", DataType::Int64, false),
        text("tenant", true),
    ]))
}

/// Column builders for one Arrow batch.
pub(super) struct BatchBuilder {
    id: Int64Builder,
    occurred_at: TimestampMicrosecondBuilder,
    actor: StringBuilder,
    db_user: StringBuilder,
    source: StringBuilder,
    entity: StringBuilder,
    action: StringBuilder,
    subject_id: StringBuilder,
    table_name: StringBuilder,
    changed_fields: ListBuilder<StringBuilder>,
    old_data: StringBuilder,
    new_data: StringBuilder,
    client_addr: StringBuilder,
    application_name: StringBuilder,
    context: StringBuilder,
    details: StringBuilder,
    txid: Int64Builder,
    tenant: StringBuilder,
    pub(super) rows: usize,
    schema: SchemaRef,
}

impl BatchBuilder {
    pub(super) fn new(schema: SchemaRef) -> BatchBuilder {
        // The list's item field must match the schema's exactly, nullability included.
        let item = Field::new("item", DataType::Utf8, true);
        BatchBuilder {
            id: Int64Builder::new(),
            occurred_at: TimestampMicrosecondBuilder::new().with_timezone("UTC"),
            actor: StringBuilder::new(),
            db_user: StringBuilder::new(),
            source: StringBuilder::new(),
            entity: StringBuilder::new(),
            action: StringBuilder::new(),
            subject_id: StringBuilder::new(),
            table_name: StringBuilder::new(),
            changed_fields: ListBuilder::new(StringBuilder::new()).with_field(item),
            old_data: StringBuilder::new(),
            new_data: StringBuilder::new(),
            client_addr: StringBuilder::new(),
            application_name: StringBuilder::new(),
            context: StringBuilder::new(),
            details: StringBuilder::new(),
            txid: Int64Builder::new(),
            tenant: StringBuilder::new(),
            rows: 0,
            schema,
        }
    }

    pub(super) fn push(&mut self, row: &ArchiveRow) {
        self.id.append_value(row.id);
        self.occurred_at
            .append_value(row.occurred_at.timestamp_micros());
        self.actor.append_value(&row.actor);
        self.db_user.append_value(&row.db_user);
        self.source.append_value(&row.source);
        self.entity.append_value(&row.entity);
        self.action.append_value(&row.action);
        self.subject_id.append_option(row.subject_id.as_deref());
        self.table_name.append_option(row.table_name.as_deref());
        match &row.changed_fields {
            Some(fields) => {
                for field in fields {
                    self.changed_fields.values().append_option(field.as_deref());
                }
                self.changed_fields.append(true);
            }
            None => self.changed_fields.append(false),
        }
        self.old_data.append_option(row.old_data.as_deref());
        self.new_data.append_option(row.new_data.as_deref());
        self.client_addr.append_option(row.client_addr.as_deref());
        self.application_name
            .append_option(row.application_name.as_deref());
        self.context.append_option(row.context.as_deref());
        self.details.append_option(row.details.as_deref());
        self.txid.append_value(row.txid);
        self.tenant.append_option(row.tenant.as_deref());
        self.rows += 1;
    }

    /// The rows so far as a batch; the builders start over.
    pub(super) fn finish(&mut self) -> Result<RecordBatch, arrow_schema::ArrowError> {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.id.finish()),
            Arc::new(self.occurred_at.finish()),
            Arc::new(self.actor.finish()),
            Arc::new(self.db_user.finish()),
            Arc::new(self.source.finish()),
            Arc::new(self.entity.finish()),
            Arc::new(self.action.finish()),
            Arc::new(self.subject_id.finish()),
            Arc::new(self.table_name.finish()),
            Arc::new(self.changed_fields.finish()),
            Arc::new(self.old_data.finish()),
            Arc::new(self.new_data.finish()),
            Arc::new(self.client_addr.finish()),
            Arc::new(self.application_name.finish()),
            Arc::new(self.context.finish()),
            Arc::new(self.details.finish()),
            Arc::new(self.txid.finish()),
            Arc::new(self.tenant.finish()),
        ];
        self.rows = 0;
        RecordBatch::try_new(self.schema.clone(), columns)
    }
}
