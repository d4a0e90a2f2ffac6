//! Events read back from `audit-trail archive`'s Parquet files (docs/archive.md), turned
//! into the canonical encoding (docs/integrity.md) so that `verify --archive` can hold an
//! event that retention dropped to the seal that listed it.
//!
//! The canonical encoding hashes each column's text as PostgreSQL prints it in
//! `chain::SELECT_CANONICAL`. The archive keeps most columns in exactly that text (JSON as
//! `jsonb::text`, plain text as is); the others are rebuilt here:
//!
//! - `id`, `txid`: INT64, printed in decimal (as `bigint` and `xid8` print).
//! - `occurred_at`: TIMESTAMP(MICROS, UTC), whose value is already the canonical
//!   microseconds since 1970 in decimal.
//! - `changed_fields`: LIST<STRING>, rebuilt as PostgreSQL's `text[]` literal (`array_out`).
//!   The list keeps neither a lower bound other than 1 nor more than one dimension; capture
//!   never writes either.
//! - `client_addr`: the archive holds `host(client_addr)`; the canonical text is
//!   `client_addr::text`, which always carries the netmask (`10.0.0.7/32`). Capture's value
//!   (`inet_client_addr()`) is a host address, with the full mask (/32, or /128 for IPv6),
//!   so the mask is rebuilt as that; an address with a shorter mask (only SQL can write one,
//!   into an empty log) is not recoverable from the archive and reads as altered.

use std::fs::File;
use std::path::Path;

use arrow_array::cast::AsArray;
use arrow_array::types::{Int64Type, TimestampMicrosecondType};
use arrow_array::{Array, RecordBatch};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::file::statistics::Statistics;

use audit_trail_contract::chain::{self, Hash, Position};

/// Rows per batch read: memory stays at one batch (plus the reader's page buffers).
const READ_BATCH_ROWS: usize = 8 * 1024;

/// Why an archived file could not be read as events: its columns are not the archive's.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("not a readable Parquet file: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("not readable: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
    #[error("column {0} is missing or not of the archive's type")]
    Column(&'static str),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// PostgreSQL's text of a one-dimensional `text[]` with lower bound 1 (`array_out`):
/// elements in braces, separated by commas, NULL for a null element, and quoted (with `"`
/// and `\` escaped) when empty, spelled NULL, or holding a brace, comma, quote, backslash or
/// white space.
pub fn text_array_literal<'a>(items: impl IntoIterator<Item = Option<&'a str>>) -> String {
    let mut out = String::from("{");
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let Some(value) = item else {
            out.push_str("NULL");
            continue;
        };
        // array_isspace: the ASCII white space of the array parser.
        let needs_quotes = value.is_empty()
            || value.eq_ignore_ascii_case("NULL")
            || value.chars().any(|c| {
                matches!(
                    c,
                    '{' | '}' | ',' | '"' | '\\' | ' ' | '\t' | '\n' | '\r' | '\u{b}' | '\u{c}'
                )
            });
        if needs_quotes {
            out.push('"');
            for c in value.chars() {
                if c == '"' || c == '\\' {
                    out.push('\\');
                }
                out.push(c);
            }
            out.push('"');
        } else {
            out.push_str(value);
        }
    }
    out.push('}');
    out
}

/// `client_addr::text` from the archive's `host(client_addr)`: the host address with the
/// full netmask, as capture's `inet_client_addr()` has it.
pub fn inet_text(host: &str) -> String {
    if host.contains(':') {
        format!("{host}/128")
    } else {
        format!("{host}/32")
    }
}

/// One archived event's canonical values, in table order (contract::EVENT_COLUMNS). A file
/// written before organizations has no `tenant` column: its events have none.
fn canonical(batch: &Columns<'_>, i: usize) -> [Option<String>; chain::CANONICAL_COLUMNS] {
    let text = |a: &arrow_array::StringArray| (!a.is_null(i)).then(|| a.value(i).to_owned());
    let changed_fields = (!batch.changed_fields.is_null(i)).then(|| {
        let list = batch.changed_fields.value(i);
        let items = list.as_string_opt::<i32>();
        match items {
            Some(items) => text_array_literal(
                (0..items.len()).map(|k| (!items.is_null(k)).then(|| items.value(k))),
            ),
            // An item type other than text: no literal to rebuild; the hash will not match.
            None => String::new(),
        }
    });
    [
        Some(batch.id.value(i).to_string()),
        Some(batch.occurred_at.value(i).to_string()),
        Some(batch.txid.value(i).to_string()),
        text(batch.actor),
        text(batch.db_user),
        text(batch.source),
        text(batch.client_addr).map(|h| inet_text(&h)),
        text(batch.application_name),
        text(batch.entity),
        text(batch.action),
        text(batch.table_name),
        text(batch.subject_id),
        changed_fields,
        text(batch.old_data),
        text(batch.new_data),
        text(batch.context),
        text(batch.details),
        batch.tenant.and_then(text),
    ]
}

/// The canonical hash of an event as the archive writes it: the same values [`canonical`]
/// rebuilds when the file is read back, so the digest `archive` computes from the rows it
/// writes ([`chain::ArchiveDigest`]) is the one the files give back.
pub fn row_hash(row: &crate::archive::columns::ArchiveRow) -> Hash {
    let changed_fields = row
        .changed_fields
        .as_ref()
        .map(|items| text_array_literal(items.iter().map(|i| i.as_deref())));
    let values = [
        Some(row.id.to_string()),
        Some(row.occurred_at.timestamp_micros().to_string()),
        Some(row.txid.to_string()),
        Some(row.actor.clone()),
        Some(row.db_user.clone()),
        Some(row.source.clone()),
        row.client_addr.as_deref().map(inet_text),
        row.application_name.clone(),
        Some(row.entity.clone()),
        Some(row.action.clone()),
        row.table_name.clone(),
        row.subject_id.clone(),
        changed_fields,
        row.old_data.clone(),
        row.new_data.clone(),
        row.context.clone(),
        row.details.clone(),
        row.tenant.clone(),
    ];
    chain::event_hash(values.iter().map(|v| v.as_deref()))
}

/// The archive's columns of one batch, typed.
struct Columns<'a> {
    id: &'a arrow_array::Int64Array,
    occurred_at: &'a arrow_array::TimestampMicrosecondArray,
    txid: &'a arrow_array::Int64Array,
    actor: &'a arrow_array::StringArray,
    db_user: &'a arrow_array::StringArray,
    source: &'a arrow_array::StringArray,
    client_addr: &'a arrow_array::StringArray,
    application_name: &'a arrow_array::StringArray,
    entity: &'a arrow_array::StringArray,
    action: &'a arrow_array::StringArray,
    table_name: &'a arrow_array::StringArray,
    subject_id: &'a arrow_array::StringArray,
    changed_fields: &'a arrow_array::ListArray,
    old_data: &'a arrow_array::StringArray,
    new_data: &'a arrow_array::StringArray,
    context: &'a arrow_array::StringArray,
    details: &'a arrow_array::StringArray,
    tenant: Option<&'a arrow_array::StringArray>,
}

impl<'a> Columns<'a> {
    fn of(batch: &'a RecordBatch) -> Result<Columns<'a>, ReadError> {
        let text = |name: &'static str| {
            batch
                .column_by_name(name)
                .and_then(|c| c.as_string_opt::<i32>())
                .ok_or(ReadError::Column(name))
        };
        let int = |name: &'static str| {
            batch
                .column_by_name(name)
                .and_then(|c| c.as_primitive_opt::<Int64Type>())
                .ok_or(ReadError::Column(name))
        };
        Ok(Columns {
            id: int("id")?,
            occurred_at: batch
                .column_by_name("occurred_at")
                .and_then(|c| c.as_primitive_opt::<TimestampMicrosecondType>())
                .ok_or(ReadError::Column("occurred_at"))?,
            txid: int("txid")?,
            actor: text("actor")?,
            db_user: text("db_user")?,
            source: text("source")?,
            client_addr: text("client_addr")?,
            application_name: text("application_name")?,
            entity: text("entity")?,
            action: text("action")?,
            table_name: text("table_name")?,
            subject_id: text("subject_id")?,
            changed_fields: batch
                .column_by_name("changed_fields")
                .and_then(|c| c.as_list_opt::<i32>())
                .ok_or(ReadError::Column("changed_fields"))?,
            old_data: text("old_data")?,
            new_data: text("new_data")?,
            context: text("context")?,
            details: text("details")?,
            tenant: batch
                .column_by_name("tenant")
                .map(|c| c.as_string_opt::<i32>().ok_or(ReadError::Column("tenant")))
                .transpose()?,
        })
    }
}

/// Reads every event of one archived file: `wanted` is asked for each event's position, and
/// `found` gets the canonical hash of each wanted one (the others are not hashed). Returns
/// the rows read. Ids and txids that are null or negative are no position a seal can list,
/// and are passed over.
pub fn for_each_event(
    path: &Path,
    wanted: impl FnMut(Position) -> bool,
    found: impl FnMut(Position, Hash),
) -> Result<u64, ReadError> {
    for_each_event_between(path, (i64::MIN, i64::MAX), wanted, found)
}

/// As [`for_each_event`], but only the row groups whose `id` statistics may hold an id in
/// `ids` (inclusive) are read: verify looks for one run of seals' dropped events at a time,
/// and the archive's row groups are small ranges of ids (rows are in `occurred_at, id`
/// order). A row group without statistics is read.
pub fn for_each_event_between(
    path: &Path,
    ids: (i64, i64),
    mut wanted: impl FnMut(Position) -> bool,
    mut found: impl FnMut(Position, Hash),
) -> Result<u64, ReadError> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(File::open(path)?)?
        .with_batch_size(READ_BATCH_ROWS);
    let id_column = builder
        .parquet_schema()
        .columns()
        .iter()
        .position(|c| c.path().parts() == ["id"]);
    let groups: Vec<usize> = builder
        .metadata()
        .row_groups()
        .iter()
        .enumerate()
        .filter(|(_, g)| {
            let range = id_column
                .and_then(|c| g.column(c).statistics())
                .and_then(|s| match s {
                    Statistics::Int64(v) => Some((*v.min_opt()?, *v.max_opt()?)),
                    _ => None,
                });
            range.is_none_or(|(min, max)| min <= ids.1 && max >= ids.0)
        })
        .map(|(i, _)| i)
        .collect();
    if groups.is_empty() {
        return Ok(0);
    }
    let reader = builder.with_row_groups(groups).build()?;
    let mut rows = 0u64;
    for batch in reader {
        let batch = batch?;
        let columns = Columns::of(&batch)?;
        for i in 0..batch.num_rows() {
            rows += 1;
            if columns.id.is_null(i) || columns.txid.is_null(i) || columns.occurred_at.is_null(i) {
                continue;
            }
            let Ok(txid) = u64::try_from(columns.txid.value(i)) else {
                continue;
            };
            let position = Position {
                txid,
                id: columns.id.value(i),
            };
            if !wanted(position) {
                continue;
            }
            let values = canonical(&columns, i);
            found(
                position,
                chain::event_hash(values.iter().map(|v| v.as_deref())),
            );
        }
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::columns::ArchiveRow;
    use crate::archive::parquet::PartitionWriter;
    use chrono::TimeZone;

    #[test]
    fn text_arrays_print_as_postgresql_prints_them() {
        assert_eq!(text_array_literal([]), "{}");
        assert_eq!(
            text_array_literal([Some("name"), Some("email")]),
            "{name,email}"
        );
        assert_eq!(
            text_array_literal([
                Some("a b"),
                Some(""),
                Some("null"),
                Some("q\"x"),
                Some("b\\s"),
                None,
                Some("{,}"),
                Some("é"),
            ]),
            r#"{"a b","","null","q\"x","b\\s",NULL,"{,}",é}"#
        );
    }

    #[test]
    fn host_addresses_get_their_full_mask() {
        assert_eq!(inet_text("10.0.0.7"), "10.0.0.7/32");
        assert_eq!(inet_text("2001:db8::1"), "2001:db8::1/128");
        assert_eq!(inet_text("::ffff:10.0.0.7"), "::ffff:10.0.0.7/128");
    }

    /// An event written by the archive's own writer reads back into the canonical values the
    /// sealer's query gives for it.
    #[test]
    fn an_archived_event_hashes_as_the_database_would() {
        let dir = tempfile::tempdir().unwrap();
        let row = ArchiveRow {
            id: 42,
            occurred_at: chrono::Utc
                .timestamp_micros(1_767_225_600_123_456)
                .single()
                .unwrap(),
            actor: "alice".into(),
            db_user: "app".into(),
            source: "capture".into(),
            entity: "contact".into(),
            action: "update".into(),
            subject_id: Some("7".into()),
            table_name: Some("public.contacts".into()),
            changed_fields: Some(vec![Some("email".into()), Some("full name".into())]),
            old_data: Some(r#"{"email": "a@x"}"#.into()),
            new_data: Some(r#"{"email": "b@x"}"#.into()),
            client_addr: Some("10.0.0.7".into()),
            application_name: None,
            context: None,
            details: Some("{}".into()),
            txid: 812,
            tenant: Some("acme".into()),
        };
        let mut writer = PartitionWriter::new(dir.path(), "events_20260101", 1 << 30);
        writer.push(&row).unwrap();
        writer.finish().unwrap();
        let placed = writer.place().unwrap();
        let expected = chain::event_hash([
            Some("42"),
            Some("1767225600123456"),
            Some("812"),
            Some("alice"),
            Some("app"),
            Some("capture"),
            Some("10.0.0.7/32"),
            None,
            Some("contact"),
            Some("update"),
            Some("public.contacts"),
            Some("7"),
            Some(r#"{email,"full name"}"#),
            Some(r#"{"email": "a@x"}"#),
            Some(r#"{"email": "b@x"}"#),
            None,
            Some("{}"),
            Some("acme"),
        ]);
        let mut seen = Vec::new();
        let rows = for_each_event(
            &dir.path().join(&placed[0].name),
            |p| p.id == 42,
            |p, h| seen.push((p, h)),
        )
        .unwrap();
        assert_eq!(rows, 1);
        assert_eq!(seen, vec![(Position { txid: 812, id: 42 }, expected)]);
    }
}
