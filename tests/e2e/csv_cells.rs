//! CSV cells that are hostile by size or by content: a 100 MB value exports and reads back
//! exactly (the writer is linear in a cell's size), and text that a spreadsheet splitting
//! lines on `;` or tab would otherwise run as a formula is quoted and neutralised.

use audit_trail_tests::sidecar::{command, run};
use audit_trail_tests::TestDb;

fn export_csv(db: &TestDb, args: &[&str]) -> Vec<u8> {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("out.csv");
    let out = run(command()
        .args(["export", "--db", &db.conninfo("postgres")])
        .args(args)
        .args(["--output", file.to_str().expect("a UTF-8 path")]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    std::fs::read(&file).expect("the exported file")
}

fn records(bytes: &[u8]) -> Vec<csv::StringRecord> {
    csv::ReaderBuilder::new()
        .from_reader(bytes)
        .records()
        .map(|r| r.expect("valid RFC 4180 CSV"))
        .collect()
}

/// A 100 MiB text (with quotes and separators in it, which CSV and JSON both escape) in a
/// tracked row: its event's `new_data` cell is exported and reads back exactly. Before the
/// writer was made linear this took minutes; the time is measured by hand, never asserted.
#[test]
fn a_100_mb_cell_exports_and_reads_back_exactly() {
    const PIECE: &str = "lorem \"ipsum\", dolor; sit amet\\ ";
    let repeat = 100 * 1024 * 1024 / PIECE.len();
    let db = TestDb::new();
    db.client()
        .batch_execute(&format!(
            "CREATE TABLE notes (id int PRIMARY KEY, body text);
             SELECT audit.track('notes', 'note');
             INSERT INTO notes VALUES (1, repeat('{}', {repeat}));",
            PIECE.replace('\'', "''")
        ))
        .expect("a tracked row holding 100 MiB");
    let bytes = export_csv(&db, &["--entity", "note"]);
    assert!(bytes.len() > 100 * 1024 * 1024, "{} bytes", bytes.len());
    let rows = records(&bytes);
    assert_eq!(rows.len(), 1);
    let new_data: serde_json::Value = serde_json::from_str(&rows[0][11]).expect("new_data is JSON");
    let body = new_data["body"].as_str().expect("the body as text");
    assert_eq!(body.len(), PIECE.len() * repeat);
    assert!(
        body == PIECE.repeat(repeat),
        "the 100 MiB value did not read back exactly"
    );
}

/// Splits a line the way a spreadsheet set to `separator` does when it ignores quotes that
/// do not open a cell: every separator starts a new cell.
fn naive_cells(line: &str, separator: char) -> Vec<&str> {
    line.split(separator).collect()
}

#[test]
fn cells_a_spreadsheet_may_split_are_quoted_and_hold_no_formula() {
    let values = [
        ";=cmd|' /C calc'!A0",
        "x;=1+2",
        "x\t=1+2",
        "x,@SUM(A1)",
        "x;-1",
        "x;\"=1+2\"",
        "plain; text, with separators\tand no formula",
    ];
    let db = TestDb::new();
    let mut c = db.client();
    c.batch_execute(
        "CREATE TABLE contacts (name text PRIMARY KEY);
         SELECT audit.track('contacts', 'contact', subject_column => 'name');",
    )
    .expect("a tracked table");
    for value in values {
        // As the actor and as the subject id: cells of their own, not inside JSON.
        let mut tx = c.transaction().expect("begin");
        tx.execute(
            "SELECT pg_catalog.set_config('audit.actor', $1, true)",
            &[&value],
        )
        .expect("set the actor");
        tx.execute("INSERT INTO contacts VALUES ($1)", &[&value])
            .expect("insert");
        tx.commit().expect("commit");
    }
    let bytes = export_csv(&db, &["--entity", "contact"]);
    let text = String::from_utf8(bytes.clone()).expect("UTF-8");

    // Every such cell is quoted: a reader splitting on `;` or tab keeps it whole if it
    // honours quotes.
    for value in values {
        let unquoted = format!(",{value},");
        assert!(
            !text.contains(&unquoted),
            "{value:?} written unquoted:\n{text}"
        );
    }
    // A reader that does not honour them sees no cell that starts a formula.
    for line in text.split("\r\n").skip(1).filter(|l| !l.is_empty()) {
        for separator in [',', ';', '\t'] {
            for cell in naive_cells(line, separator) {
                let cell = cell.trim_start_matches('"');
                assert!(
                    !cell.starts_with(['=', '+', '-', '@']),
                    "a spreadsheet splitting on {separator:?} sees the formula {cell:?} in {line:?}"
                );
            }
        }
    }
    // An RFC 4180 reader gets every value back, with a `'` only before each formula.
    let rows = records(&bytes);
    assert_eq!(rows.len(), values.len());
    for (row, value) in rows.iter().zip(values) {
        let expected = match value {
            ";=cmd|' /C calc'!A0" => ";'=cmd|' /C calc'!A0",
            "x;=1+2" => "x;'=1+2",
            "x\t=1+2" => "x\t'=1+2",
            "x,@SUM(A1)" => "x,'@SUM(A1)",
            "x;-1" => "x;'-1",
            "x;\"=1+2\"" => "x;\"'=1+2\"",
            other => other,
        };
        assert_eq!(&row[2], expected, "actor");
        assert_eq!(&row[7], expected, "subject_id");
    }
}
