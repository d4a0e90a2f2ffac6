//! CSV output that is safe to open in a spreadsheet: RFC 4180 quoting by the `csv` crate, and
//! OWASP CSV-injection neutralisation of every text cell that starts with `=`, `+`, `-`, `@`,
//! a tab or a carriage return (a leading `'` makes a spreadsheet show it as text instead of
//! evaluating it as a formula).

use std::borrow::Cow;
use std::io::Write;

use crate::record::{EventRecord, TimeFormat};

/// The DESIGN.md header, then the columns that follow it.
pub const HEADER: [&str; 17] = [
    "id",
    "occurred_at",
    "actor",
    "db_user",
    "source",
    "entity",
    "action",
    "subject_id",
    "table_name",
    "changed_fields",
    "old_data",
    "new_data",
    "client_addr",
    "application_name",
    "context",
    "details",
    "txid",
];

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

pub fn neutralize(cell: &str) -> Cow<'_, str> {
    match cell.as_bytes().first() {
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r') => Cow::Owned(format!("'{cell}")),
        _ => Cow::Borrowed(cell),
    }
}

pub struct CsvWriter<W: Write> {
    inner: ::csv::Writer<W>,
    times: TimeFormat,
}

impl<W: Write> CsvWriter<W> {
    /// Writes the optional byte-order mark (for Excel) and the header row.
    pub fn new(mut out: W, bom: bool, times: TimeFormat) -> std::io::Result<Self> {
        if bom {
            out.write_all(UTF8_BOM)?;
        }
        let mut inner = ::csv::WriterBuilder::new()
            .terminator(::csv::Terminator::CRLF)
            .from_writer(out);
        inner.write_record(HEADER).map_err(std::io::Error::other)?;
        Ok(CsvWriter { inner, times })
    }

    pub fn write(&mut self, e: &EventRecord) -> std::io::Result<()> {
        let text = |v: &Option<String>| neutralize(v.as_deref().unwrap_or("")).into_owned();
        let id = e.id.to_string();
        let record: [Cow<'_, str>; 17] = [
            Cow::Borrowed(&id),
            Cow::Owned(self.times.format(e.occurred_at)),
            neutralize(&e.actor),
            neutralize(&e.db_user),
            neutralize(&e.source),
            neutralize(&e.entity),
            neutralize(&e.action),
            Cow::Owned(text(&e.subject_id)),
            Cow::Owned(text(&e.table_name)),
            Cow::Owned(text(&e.changed_fields)),
            Cow::Owned(text(&e.old_data)),
            Cow::Owned(text(&e.new_data)),
            Cow::Owned(text(&e.client_addr)),
            Cow::Owned(text(&e.application_name)),
            Cow::Owned(text(&e.context)),
            Cow::Owned(text(&e.details)),
            Cow::Borrowed(&e.txid),
        ];
        self.inner
            .write_record(record.iter().map(|c| c.as_bytes()))
            .map_err(std::io::Error::other)
    }
}

/// A growable byte buffer the CSV writer writes into and the exporter drains chunk by chunk
/// (the csv crate's writer owns its output and only lends it out immutably).
#[derive(Clone, Default)]
pub struct SharedBuffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl SharedBuffer {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<u8>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Write for SharedBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.lock().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl CsvWriter<SharedBuffer> {
    /// The bytes written so far, removed from the buffer.
    pub fn take(&mut self) -> std::io::Result<Vec<u8>> {
        self.inner.flush()?;
        Ok(std::mem::take(&mut *self.inner.get_ref().lock()))
    }

    /// About how many bytes are waiting (the writer's own buffer holds at most 8 KiB more).
    pub fn buffered(&self) -> usize {
        self.inner.get_ref().lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_leaders_get_a_quote_and_others_do_not() {
        for (input, want) in [
            (
                "=HYPERLINK(\"http://x\",\"y\")",
                "'=HYPERLINK(\"http://x\",\"y\")",
            ),
            ("+1", "'+1"),
            ("-1+2", "'-1+2"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\tx", "'\tx"),
            ("\rx", "'\rx"),
            ("plain", "plain"),
            ("a=b", "a=b"),
            ("", ""),
            ("'already", "'already"),
        ] {
            assert_eq!(neutralize(input), want, "{input:?}");
        }
    }
}
