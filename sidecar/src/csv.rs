//! CSV output that is safe to open in a spreadsheet.
//!
//! RFC 4180: fields separated by commas, records by CRLF, a field holding a quote, comma or
//! line break enclosed in double quotes with its quotes doubled. Written here rather than by
//! the `csv` crate because its quoting rescans the rest of a field for every buffer it
//! fills, so the time to write one cell grew with the square of its size (a 100 MB value
//! took minutes, and anyone may log one).
//!
//! Spreadsheet safety (OWASP CSV injection):
//! - a text cell that starts with `=`, `+`, `-`, `@`, a tab or a carriage return gets a
//!   leading `'`, so a spreadsheet shows it instead of evaluating it as a formula;
//! - a cell that holds a `;` or a tab is quoted too, not only one with a comma: spreadsheets
//!   in many locales split on those;
//! - a spreadsheet that splits on `;` or tab ignores the quotes around a cell it splits
//!   inside, so each piece starts a cell of its own: inside a text cell, a formula
//!   character right after a `,`, `;`, tab or line break (quotes in between count as
//!   nothing) gets a `'` before it as well.

use crate::event_row::{OutputEvent, TimeFormat};

/// The header docs/contract.md fixes, then the columns that follow it.
pub const HEADER: [&str; audit_trail_contract::CSV_HEADER.len()] = audit_trail_contract::CSV_HEADER;

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Where a spreadsheet may start a new cell: the separators it may split a line on, and
/// line breaks.
fn is_separator(b: u8) -> bool {
    matches!(b, b',' | b';' | b'\t' | b'\r' | b'\n')
}

/// What makes a spreadsheet read a cell as a formula when the cell starts with it.
fn starts_formula(b: u8) -> bool {
    matches!(b, b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r')
}

/// Whether a field must be enclosed in quotes: RFC 4180's reasons (quote, comma, line
/// break) and the other separators spreadsheets split on.
fn needs_quotes(field: &[u8]) -> bool {
    field.iter().any(|&b| b == b'"' || is_separator(b))
}

/// How a field is written.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Cell {
    /// Text from the log, which anyone who writes to a tracked table may have chosen.
    Text,
    /// A value this program formats (an id, a time): never a formula.
    Generated,
}

/// Appends one field, in time linear in its length: each byte is looked at a fixed number
/// of times, and runs without anything to change are copied whole.
fn push_field(out: &mut Vec<u8>, field: &str, cell: Cell) {
    let bytes = field.as_bytes();
    let quoted = needs_quotes(bytes);
    out.reserve(bytes.len() + 2);
    if quoted {
        out.push(b'"');
    }
    let neutralise = cell == Cell::Text;
    if neutralise && bytes.first().copied().is_some_and(starts_formula) {
        out.push(b'\'');
    }
    // Copied up to here.
    let mut copied = 0;
    // A separator came last, with nothing but quotes since.
    let mut after_separator = false;
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'"' {
            // RFC 4180: a quote inside a quoted field is doubled.
            out.extend_from_slice(&bytes[copied..=i]);
            out.push(b'"');
            copied = i + 1;
            continue;
        }
        if neutralise && after_separator && matches!(b, b'=' | b'+' | b'-' | b'@') {
            out.extend_from_slice(&bytes[copied..i]);
            out.push(b'\'');
            copied = i;
        }
        after_separator = is_separator(b);
    }
    out.extend_from_slice(&bytes[copied..]);
    if quoted {
        out.push(b'"');
    }
}

/// The fields of one record, then CRLF.
fn push_record<'a>(out: &mut Vec<u8>, fields: impl IntoIterator<Item = (&'a str, Cell)>) {
    for (i, (field, cell)) in fields.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        push_field(out, field, cell);
    }
    out.extend_from_slice(b"\r\n");
}

/// Encodes events as CSV into a buffer that the exporter drains chunk by chunk.
pub struct CsvWriter {
    buffer: Vec<u8>,
    times: TimeFormat,
}

impl CsvWriter {
    /// Starts with the optional byte-order mark (for Excel) and the header row.
    pub fn new(bom: bool, times: TimeFormat) -> CsvWriter {
        let mut buffer = Vec::with_capacity(64 * 1024);
        if bom {
            buffer.extend_from_slice(UTF8_BOM);
        }
        push_record(&mut buffer, HEADER.iter().map(|h| (*h, Cell::Generated)));
        CsvWriter { buffer, times }
    }

    pub fn write(&mut self, e: &OutputEvent) {
        let id = e.id.to_string();
        let occurred_at = self.times.format(e.occurred_at);
        push_record(
            &mut self.buffer,
            [
                (id.as_str(), Cell::Generated),
                (occurred_at.as_str(), Cell::Generated),
                (e.actor.as_str(), Cell::Text),
                (e.db_user.as_str(), Cell::Text),
                (e.source.as_str(), Cell::Text),
                (e.entity.as_str(), Cell::Text),
                (e.action.as_str(), Cell::Text),
                text(&e.subject_id),
                text(&e.table_name),
                text(&e.changed_fields),
                text(&e.old_data),
                text(&e.new_data),
                text(&e.client_addr),
                text(&e.application_name),
                text(&e.context),
                text(&e.details),
                (e.txid.as_str(), Cell::Generated),
                text(&e.tenant),
            ],
        );
    }

    /// The bytes written so far, removed from the buffer.
    pub fn take(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buffer)
    }

    pub fn buffered(&self) -> usize {
        self.buffer.len()
    }
}

/// A nullable text column: NULL is written as an empty cell.
fn text(v: &Option<String>) -> (&str, Cell) {
    (v.as_deref().unwrap_or(""), Cell::Text)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One text field as written, without the record's CRLF.
    fn text_field(value: &str) -> String {
        let mut out = Vec::new();
        push_field(&mut out, value, Cell::Text);
        String::from_utf8(out).expect("UTF-8 in, UTF-8 out")
    }

    /// The fields an RFC 4180 reader reads back.
    fn read_back(bytes: &[u8]) -> Vec<Vec<String>> {
        ::csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(bytes)
            .records()
            .map(|r| {
                r.expect("valid CSV")
                    .iter()
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    #[test]
    fn formula_leaders_get_a_quote_and_others_do_not() {
        for (input, want) in [
            (
                "=HYPERLINK(\"http://x\",\"y\")",
                "\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\"",
            ),
            ("+1", "'+1"),
            ("-1+2", "'-1+2"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\tx", "\"'\tx\""),
            ("\rx", "\"'\rx\""),
            ("plain", "plain"),
            ("a=b", "a=b"),
            ("", ""),
            ("'already", "'already"),
        ] {
            assert_eq!(text_field(input), want, "{input:?}");
        }
    }

    #[test]
    fn cells_with_any_separator_are_quoted() {
        for (input, want) in [
            ("a,b", "\"a,b\""),
            ("a;b", "\"a;b\""),
            ("a\tb", "\"a\tb\""),
            ("a\nb", "\"a\nb\""),
            ("say \"hi\"", "\"say \"\"hi\"\"\""),
            ("a b", "a b"),
        ] {
            assert_eq!(text_field(input), want, "{input:?}");
        }
    }

    #[test]
    fn formulas_after_a_separator_are_neutralised_too() {
        for (input, want) in [
            (";=cmd|' /C calc'!A0", "\";'=cmd|' /C calc'!A0\""),
            ("x;=1+2", "\"x;'=1+2\""),
            ("x,+1", "\"x,'+1\""),
            ("x\t@SUM(A1)", "\"x\t'@SUM(A1)\""),
            ("x\n-1", "\"x\n'-1\""),
            ("x;\"=1\"", "\"x;\"\"'=1\"\"\""),
            // Not after a separator, or not a formula: unchanged.
            ("x; =1", "\"x; =1\""),
            ("a-b=c", "a-b=c"),
            (
                "{\"a\": -1, \"b\": \"=x\"}",
                "\"{\"\"a\"\": -1, \"\"b\"\": \"\"=x\"\"}\"",
            ),
        ] {
            assert_eq!(text_field(input), want, "{input:?}");
        }
    }

    #[test]
    fn generated_fields_are_never_prefixed() {
        let mut out = Vec::new();
        push_field(&mut out, "-5", Cell::Generated);
        assert_eq!(out, b"-5");
    }

    #[test]
    fn anything_round_trips_through_an_rfc_4180_reader() {
        let values = [
            "plain",
            "has \"quotes\", commas, and\nnew\r\nlines",
            "naïve ünïcode ✓ ; tab\there",
            "",
            "\"\"\"",
            "trailing quote\"",
        ];
        let mut out = Vec::new();
        push_record(&mut out, values.iter().map(|v| (*v, Cell::Text)));
        push_record(&mut out, values.iter().map(|v| (*v, Cell::Text)));
        let rows = read_back(&out);
        assert_eq!(rows.len(), 2);
        for row in rows {
            assert_eq!(row, values);
        }
    }

    #[test]
    fn a_large_field_is_written_in_one_pass() {
        // 8 MiB of quotes and separators: the worst case for quoting. Correctness only
        // here; the time is measured by hand (README, issue 9).
        let value = "\";=x".repeat(2 * 1024 * 1024);
        let mut out = Vec::new();
        push_field(&mut out, &value, Cell::Text);
        let rows = read_back(&out);
        assert_eq!(rows[0][0], "\";'=x".repeat(2 * 1024 * 1024));
    }
}
