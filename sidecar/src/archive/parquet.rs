//! The Parquet side of `audit-trail archive`: a writer that turns a stream of events (their
//! columns are in `columns`) into one or more finished files of a partition, each written
//! under a temporary name, synced, and renamed into place only when all of them are complete.
//!
//! Memory is bounded by one row group (the writer encodes a row group's columns before it
//! writes them out) plus one Arrow batch, whatever the size of the partition.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use arrow_schema::SchemaRef;
use chrono::{DateTime, Datelike, TimeZone, Utc};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use sha2::{Digest, Sha256};

use super::columns::{schema, ArchiveRow, BatchBuilder};

/// Rows per row group: large enough for scans (engines read a row group's column chunk in one
/// go, and its min/max statistics skip whole groups), small enough that the writer's buffer
/// stays in the tens of megabytes.
pub const ROW_GROUP_ROWS: usize = 128 * 1024;

/// Rows per Arrow batch handed to the writer: the unit of the size check that splits files.
const BATCH_ROWS: usize = 8 * 1024;

/// A partition's archive is split into `_part-NNNN` files past this size, so no single file
/// is unwieldy to copy or to read with one task (an engine's split is a file or a row group).
pub const DEFAULT_MAX_FILE_BYTES: u64 = 1 << 30;

/// The writer settings: zstd (a good ratio at a fast level, read by every engine), row groups
/// of [`ROW_GROUP_ROWS`], and page statistics on (the default) so that `occurred_at` and `id`
/// ranges prune row groups.
pub fn writer_properties() -> WriterProperties {
    let level = ZstdLevel::try_new(3).unwrap_or_default();
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(level))
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_created_by(format!("audit-trail {}", env!("CARGO_PKG_VERSION")))
        .build()
}

/// A `Write` that hashes and counts what reaches the file, so a file's SHA-256 and size are
/// known when it is closed, without reading it back.
struct HashingWriter {
    file: File,
    hasher: Sha256,
    bytes: u64,
}

impl Write for HashingWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {message}", path.display())]
    Parquet { path: PathBuf, message: String },
    #[error("{message}")]
    Order { message: String },
}

/// A file of a partition's archive, finished and synced under its temporary name.
struct Finished {
    temp: tempfile::TempPath,
    rows: u64,
    bytes: u64,
    sha256: String,
}

/// A file in place under its final name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacedFile {
    /// The file's name, in its (month's) directory.
    pub name: String,
    pub rows: u64,
    pub bytes: u64,
    /// Lower-case hex.
    pub sha256: String,
}

struct OpenFile {
    temp: tempfile::TempPath,
    writer: ArrowWriter<HashingWriter>,
    rows: u64,
}

/// Writes one partition's events into `dir` as `STEM.parquet`, or as `STEM_part-0001.parquet`,
/// `STEM_part-0002.parquet`, ... when they exceed `max_file_bytes`. Nothing appears under a
/// final name before [`PartitionWriter::place`]; dropped before then (an error, an
/// interrupted run), it removes its temporary files.
pub struct PartitionWriter {
    dir: PathBuf,
    stem: String,
    max_file_bytes: u64,
    schema: SchemaRef,
    props: WriterProperties,
    batch: BatchBuilder,
    current: Option<OpenFile>,
    finished: Vec<Finished>,
}

impl PartitionWriter {
    pub fn new(dir: &Path, stem: &str, max_file_bytes: u64) -> PartitionWriter {
        let schema = schema();
        PartitionWriter {
            dir: dir.to_path_buf(),
            stem: stem.to_owned(),
            max_file_bytes: max_file_bytes.max(1),
            batch: BatchBuilder::new(schema.clone()),
            schema,
            props: writer_properties(),
            current: None,
            finished: Vec::new(),
        }
    }

    fn io(&self, path: &Path) -> impl Fn(std::io::Error) -> WriteError {
        let path = path.to_path_buf();
        move |source| WriteError::Io {
            path: path.clone(),
            source,
        }
    }

    fn parquet(path: &Path) -> impl Fn(parquet::errors::ParquetError) -> WriteError {
        let path = path.to_path_buf();
        move |e| WriteError::Parquet {
            path: path.clone(),
            message: e.to_string(),
        }
    }

    fn open(&mut self) -> Result<&mut OpenFile, WriteError> {
        if self.current.is_none() {
            // A dot name the engines' globs (`*.parquet`) and Hive discovery skip, in the
            // target directory so the final rename stays within one file system. 0600, as
            // tempfile creates it: the audit log is sensitive.
            let temp = tempfile::Builder::new()
                .prefix(&format!(".{}.", self.stem))
                .suffix(".parquet.tmp")
                .tempfile_in(&self.dir)
                .map_err(self.io(&self.dir))?;
            let (file, temp) = temp.into_parts();
            let sink = HashingWriter {
                file,
                hasher: Sha256::new(),
                bytes: 0,
            };
            let writer = ArrowWriter::try_new(sink, self.schema.clone(), Some(self.props.clone()))
                .map_err(Self::parquet(&temp))?;
            self.current = Some(OpenFile {
                temp,
                writer,
                rows: 0,
            });
        }
        match self.current.as_mut() {
            Some(open) => Ok(open),
            None => unreachable!("opened above"),
        }
    }

    pub fn push(&mut self, row: &ArchiveRow) -> Result<(), WriteError> {
        self.batch.push(row);
        if self.batch.rows >= BATCH_ROWS {
            self.write_batch()?;
        }
        Ok(())
    }

    fn write_batch(&mut self) -> Result<(), WriteError> {
        let rows = self.batch.rows as u64;
        let batch = self.batch.finish().map_err(|e| WriteError::Parquet {
            path: self.dir.clone(),
            message: e.to_string(),
        })?;
        let limit = self.max_file_bytes;
        let open = self.open()?;
        open.writer
            .write(&batch)
            .map_err(Self::parquet(&open.temp))?;
        open.rows += rows;
        // An estimate (the row group in progress is counted before compression), so files
        // end near the limit, never far past it.
        let size = (open.writer.bytes_written() + open.writer.in_progress_size()) as u64;
        if size >= limit {
            self.close_current()?;
        }
        Ok(())
    }

    fn close_current(&mut self) -> Result<(), WriteError> {
        let Some(open) = self.current.take() else {
            return Ok(());
        };
        let OpenFile { temp, writer, rows } = open;
        // into_inner writes the footer once and hands back the file.
        let mut sink = writer.into_inner().map_err(Self::parquet(&temp))?;
        sink.flush().map_err(self.io(&temp))?;
        sink.file.sync_all().map_err(self.io(&temp))?;
        self.finished.push(Finished {
            temp,
            rows,
            bytes: sink.bytes,
            sha256: hex::encode(sink.hasher.finalize()),
        });
        Ok(())
    }

    /// Writes what is buffered and closes the last file (an empty partition still gets one
    /// file, with the schema and no rows, so that readers find the columns).
    pub fn finish(&mut self) -> Result<(), WriteError> {
        if self.batch.rows > 0 {
            self.write_batch()?;
        }
        if self.current.is_none() && self.finished.is_empty() {
            self.open()?;
        }
        self.close_current()
    }

    /// The final names: one file is `STEM.parquet`, several are numbered from 1.
    pub fn final_names(stem: &str, count: usize) -> Vec<String> {
        if count == 1 {
            vec![format!("{stem}.parquet")]
        } else {
            (1..=count)
                .map(|i| format!("{stem}_part-{i:04}.parquet"))
                .collect()
        }
    }

    /// The finished files, to be placed (see [`FinishedFiles::place`]); any file still open
    /// (no [`PartitionWriter::finish`]) is dropped, which removes it. Only the temporary
    /// files' paths are kept, not the writer's buffers.
    pub fn into_finished(mut self) -> FinishedFiles {
        FinishedFiles {
            dir: std::mem::take(&mut self.dir),
            stem: std::mem::take(&mut self.stem),
            finished: std::mem::take(&mut self.finished),
        }
    }

    /// See [`FinishedFiles::place`].
    pub fn place(self) -> Result<Vec<PlacedFile>, WriteError> {
        self.into_finished().place()
    }
}

/// One directory's finished files of a partition, under their temporary names until
/// [`FinishedFiles::place`]; dropped before then, they are removed.
pub struct FinishedFiles {
    dir: PathBuf,
    stem: String,
    finished: Vec<Finished>,
}

impl FinishedFiles {
    /// Renames the finished files into place (replacing files of the same names, which only
    /// an earlier run that failed to record its archive can have left) and syncs the
    /// directory so the names are durable. If a rename fails, the files already renamed are
    /// removed again (and the others, dropped, with them).
    pub fn place(self) -> Result<Vec<PlacedFile>, WriteError> {
        let names = PartitionWriter::final_names(&self.stem, self.finished.len());
        let mut placed: Vec<PlacedFile> = Vec::with_capacity(self.finished.len());
        for (file, name) in self.finished.into_iter().zip(names) {
            let target = self.dir.join(&name);
            if let Err(e) = file.temp.persist(&target) {
                for p in &placed {
                    let _ = std::fs::remove_file(self.dir.join(&p.name));
                }
                return Err(WriteError::Io {
                    path: target.clone(),
                    source: e.error,
                });
            }
            placed.push(PlacedFile {
                name,
                rows: file.rows,
                bytes: file.bytes,
                sha256: file.sha256,
            });
        }
        sync_dir(&self.dir).map_err(|source| WriteError::Io {
            path: self.dir.clone(),
            source,
        })?;
        Ok(placed)
    }
}

/// A UTC calendar month: the unit of the archive's `year=YYYY/month=MM` directories.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Month {
    pub year: i32,
    /// 1 to 12.
    pub month: u32,
}

impl Month {
    /// The UTC month a time falls in.
    pub fn of(t: DateTime<Utc>) -> Month {
        Month {
            year: t.year(),
            month: t.month(),
        }
    }

    /// `year=2026/month=01`, relative to the archive's root: Hive-style, so engines read
    /// `year` and `month` as columns and skip directories on them.
    pub fn dir(&self) -> PathBuf {
        PathBuf::from(format!("year={:04}", self.year)).join(format!("month={:02}", self.month))
    }

    /// Midnight UTC of the month's first day.
    pub fn start(&self) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(self.year, self.month, 1, 0, 0, 0)
            .single()
            .unwrap_or(DateTime::<Utc>::MIN_UTC)
    }
}

/// A placed file of a partition's archive, with the month whose directory holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonthFile {
    pub month: Month,
    pub file: PlacedFile,
}

impl MonthFile {
    /// The file's path relative to the archive's root: `year=2026/month=02/events_20260101.parquet`.
    pub fn relative_path(&self) -> PathBuf {
        self.month.dir().join(&self.file.name)
    }
}

/// Writes one partition's events, which arrive ordered by `occurred_at`, into one
/// [`PartitionWriter`] per UTC month they fall in, each in that month's `year=/month=`
/// directory under `root` (created as needed) and named after the partition (`STEM.parquet`,
/// or numbered parts), so that every row sits in the directory of its own month. A month is
/// finished (its last row group written, its file closed) when the first row of the next one
/// arrives: memory stays one row group, whatever the number of months. A partition without
/// rows gets one empty file, in the directory of `first`.
pub struct MonthlyWriter {
    root: PathBuf,
    stem: String,
    max_file_bytes: u64,
    first: Month,
    current: Option<(Month, PartitionWriter)>,
    done: Vec<(Month, FinishedFiles)>,
}

impl MonthlyWriter {
    pub fn new(root: &Path, stem: &str, first: Month, max_file_bytes: u64) -> MonthlyWriter {
        MonthlyWriter {
            root: root.to_path_buf(),
            stem: stem.to_owned(),
            max_file_bytes,
            first,
            current: None,
            done: Vec::new(),
        }
    }

    /// Finishes the month in progress and starts `month`'s file in its directory.
    fn start(&mut self, month: Month) -> Result<(), WriteError> {
        self.finish_current()?;
        let dir = self.root.join(month.dir());
        std::fs::create_dir_all(&dir).map_err(|source| WriteError::Io {
            path: dir.clone(),
            source,
        })?;
        self.current = Some((
            month,
            PartitionWriter::new(&dir, &self.stem, self.max_file_bytes),
        ));
        Ok(())
    }

    fn finish_current(&mut self) -> Result<(), WriteError> {
        if let Some((month, mut writer)) = self.current.take() {
            writer.finish()?;
            self.done.push((month, writer.into_finished()));
        }
        Ok(())
    }

    pub fn push(&mut self, row: &ArchiveRow) -> Result<(), WriteError> {
        let month = Month::of(row.occurred_at);
        let latest = self
            .current
            .as_ref()
            .map(|(m, _)| *m)
            .or_else(|| self.done.last().map(|(m, _)| *m));
        if latest != Some(month) {
            // Months only move forward: a month written already would get a second set of
            // files of the same names.
            if latest.is_some_and(|l| month < l) || month < self.first {
                return Err(WriteError::Order {
                    message: format!(
                        "event {} ({}) arrived after a later month; rows must come ordered by \
                         occurred_at",
                        row.id,
                        row.occurred_at.to_rfc3339()
                    ),
                });
            }
            self.start(month)?;
        }
        match self.current.as_mut() {
            Some((_, writer)) => writer.push(row),
            None => unreachable!("started above"),
        }
    }

    /// Writes what is buffered and closes the last month's file (an empty partition gets one
    /// empty file in the directory of its first month).
    pub fn finish(&mut self) -> Result<(), WriteError> {
        if self.current.is_none() && self.done.is_empty() {
            self.start(self.first)?;
        }
        self.finish_current()
    }

    /// Places every month's files (see [`FinishedFiles::place`]), oldest month first. If one
    /// month's files cannot be placed, those of the months before are removed again, and
    /// those of the months after (dropped unplaced) with them.
    pub fn place(mut self) -> Result<Vec<MonthFile>, WriteError> {
        // Anything still open was never finished: dropped, which removes it.
        self.current = None;
        let mut placed: Vec<MonthFile> = Vec::new();
        for (month, files) in std::mem::take(&mut self.done) {
            match files.place() {
                Ok(files) => placed.extend(files.into_iter().map(|file| MonthFile { month, file })),
                Err(e) => {
                    for p in &placed {
                        let _ = std::fs::remove_file(self.root.join(p.relative_path()));
                    }
                    return Err(e);
                }
            }
        }
        Ok(placed)
    }
}

/// Makes the names of a directory's new or renamed files durable (fsync of the directory).
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Int64Type, TimestampMicrosecondType};
    use arrow_array::Array;
    use chrono::TimeZone;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use parquet::basic::{LogicalType, TimeUnit, Type as PhysicalType};
    use parquet::file::reader::{FileReader, SerializedFileReader};

    fn row(id: i64) -> ArchiveRow {
        ArchiveRow {
            id,
            occurred_at: Utc
                .with_ymd_and_hms(2026, 1, 2, 3, 4, 5)
                .single()
                .expect("a valid time")
                + chrono::Duration::microseconds(id),
            actor: format!("user{}@example.com", id % 3),
            db_user: "app".into(),
            source: "manual".into(),
            entity: "contact".into(),
            action: "update".into(),
            subject_id: (id % 2 == 0).then(|| id.to_string()),
            table_name: Some("crm.contacts".into()),
            changed_fields: match id % 3 {
                0 => None,
                1 => Some(vec![]),
                _ => Some(vec![Some("email".into()), Some("név".into())]),
            },
            old_data: Some(r#"{"email": "a@b.c"}"#.into()),
            new_data: (id % 5 != 0).then(|| r#"{"name": "Zoë 😀", "x": null}"#.into()),
            client_addr: Some("10.0.0.7".into()),
            application_name: None,
            context: None,
            details: Some("{}".into()),
            txid: (7 << 32) + id,
            tenant: (id % 2 == 1).then(|| format!("org-{}", id % 4)),
        }
    }

    #[test]
    fn schema_has_typed_columns_in_export_order() {
        let schema = schema();
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(
            names.join(","),
            audit_trail_contract::CSV_HEADER.join(","),
            "the archive's columns are the export's"
        );
        // The Parquet schema the writer derives: logical types engines rely on.
        let dir = tempfile::tempdir().expect("tempdir");
        let mut w = PartitionWriter::new(dir.path(), "events_20260101", DEFAULT_MAX_FILE_BYTES);
        w.push(&row(1)).expect("push");
        w.finish().expect("finish");
        let placed = w.place().expect("place");
        let file = File::open(dir.path().join(&placed[0].name)).expect("open");
        let reader = SerializedFileReader::new(file).expect("a parquet file");
        let descr = reader.metadata().file_metadata().schema_descr_ptr();
        let leaf = |path: &str| {
            (0..descr.num_columns())
                .map(|i| descr.column(i))
                .find(|c| c.path().string() == path)
                .unwrap_or_else(|| panic!("no column {path}"))
        };
        assert_eq!(leaf("id").physical_type(), PhysicalType::INT64);
        assert_eq!(leaf("txid").physical_type(), PhysicalType::INT64);
        let time = leaf("occurred_at");
        assert!(
            matches!(time.logical_type_ref(),
                     Some(LogicalType::Timestamp(t))
                         if t.is_adjusted_to_u_t_c && matches!(t.unit, TimeUnit::MICROS)),
            "{:?}",
            time.logical_type_ref()
        );
        for text in [
            "actor",
            "old_data",
            "client_addr",
            "changed_fields.list.item",
        ] {
            assert_eq!(leaf(text).physical_type(), PhysicalType::BYTE_ARRAY);
            assert_eq!(
                leaf(text).logical_type_ref(),
                Some(&LogicalType::String),
                "{text}"
            );
        }
        assert_eq!(leaf("changed_fields.list.item").max_rep_level(), 1);
        let codec = reader.metadata().row_group(0).column(0).compression();
        assert!(matches!(codec, Compression::ZSTD(_)), "{codec:?}");
    }

    #[test]
    fn rows_round_trip_and_the_hash_and_size_are_the_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut w = PartitionWriter::new(dir.path(), "events_20260101", DEFAULT_MAX_FILE_BYTES);
        let rows: Vec<ArchiveRow> = (1..=20_000).map(row).collect();
        for r in &rows {
            w.push(r).expect("push");
        }
        w.finish().expect("finish");
        let placed = w.place().expect("place");
        assert_eq!(placed.len(), 1);
        assert_eq!(placed[0].name, "events_20260101.parquet");
        assert_eq!(placed[0].rows, 20_000);
        let path = dir.path().join(&placed[0].name);
        let bytes = std::fs::read(&path).expect("read");
        assert_eq!(bytes.len() as u64, placed[0].bytes);
        assert_eq!(hex::encode(Sha256::digest(&bytes)), placed[0].sha256);
        // No temporary file is left behind.
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec!["events_20260101.parquet".to_owned()]);

        let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(&path).expect("open"))
            .expect("reader")
            .build()
            .expect("build");
        let mut n = 0usize;
        for batch in reader {
            let batch = batch.expect("batch");
            let ids = batch.column(0).as_primitive::<Int64Type>();
            let times = batch.column(1).as_primitive::<TimestampMicrosecondType>();
            let lists = batch.column(9).as_list::<i32>();
            let new_data = batch.column(11).as_string::<i32>();
            let txids = batch.column(16).as_primitive::<Int64Type>();
            for i in 0..batch.num_rows() {
                let expected = &rows[n];
                assert_eq!(ids.value(i), expected.id);
                assert_eq!(times.value(i), expected.occurred_at.timestamp_micros());
                assert_eq!(txids.value(i), expected.txid);
                let got_list = (!lists.is_null(i)).then(|| {
                    let items = lists.value(i);
                    let items = items.as_string::<i32>();
                    (0..items.len())
                        .map(|j| Some(items.value(j).to_owned()))
                        .collect::<Vec<_>>()
                });
                assert_eq!(got_list, expected.changed_fields);
                let got_new = (!new_data.is_null(i)).then(|| new_data.value(i).to_owned());
                assert_eq!(got_new, expected.new_data);
                n += 1;
            }
        }
        assert_eq!(n, rows.len());
    }

    #[test]
    fn large_partitions_split_into_numbered_parts_and_an_empty_one_is_one_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut w = PartitionWriter::new(dir.path(), "events_20260201", 64 * 1024);
        for id in 1..=60_000 {
            w.push(&row(id)).expect("push");
        }
        w.finish().expect("finish");
        let placed = w.place().expect("place");
        assert!(placed.len() > 1, "{placed:?}");
        assert_eq!(placed[0].name, "events_20260201_part-0001.parquet");
        assert_eq!(placed.iter().map(|p| p.rows).sum::<u64>(), 60_000);
        for p in &placed {
            let file = File::open(dir.path().join(&p.name)).expect("open");
            let reader = SerializedFileReader::new(file).expect("parquet");
            assert_eq!(reader.metadata().file_metadata().num_rows() as u64, p.rows);
        }

        let mut empty = PartitionWriter::new(dir.path(), "events_20260301", 1 << 30);
        empty.finish().expect("finish");
        let placed = empty.place().expect("place");
        assert_eq!(placed.len(), 1);
        assert_eq!(placed[0].rows, 0);
    }

    #[test]
    fn a_monthly_writer_puts_each_row_in_its_months_directory() {
        let root = tempfile::tempdir().expect("tempdir");
        let at = |m: u32, d: u32, id: i64| ArchiveRow {
            occurred_at: Utc
                .with_ymd_and_hms(2026, m, d, 23, 59, 59)
                .single()
                .expect("a valid time"),
            ..row(id)
        };
        let first = Month {
            year: 2026,
            month: 1,
        };
        let mut w = MonthlyWriter::new(root.path(), "events_20260101", first, 1 << 30);
        for (id, (m, d)) in [(1, 31), (3, 1), (3, 31)].into_iter().enumerate() {
            w.push(&at(m, d, id as i64)).expect("push");
        }
        w.finish().expect("finish");
        let placed = w.place().expect("place");
        let paths: Vec<String> = placed
            .iter()
            .map(|p| p.relative_path().display().to_string())
            .collect();
        assert_eq!(
            paths,
            [
                "year=2026/month=01/events_20260101.parquet",
                "year=2026/month=03/events_20260101.parquet"
            ]
        );
        assert_eq!(placed[1].file.rows, 2);
        assert!(!root.path().join("year=2026/month=02").exists());

        // Months only move forward.
        let mut w = MonthlyWriter::new(root.path(), "events_20260102", first, 1 << 30);
        w.push(&at(2, 1, 1)).expect("push");
        let err = w.push(&at(1, 1, 2)).expect_err("out of order");
        assert!(err.to_string().contains("ordered by occurred_at"), "{err}");
        drop(w);
        assert!(!root
            .path()
            .join("year=2026/month=02/events_20260102.parquet")
            .exists());

        // No rows: one empty file in the first month's directory.
        let mut w = MonthlyWriter::new(root.path(), "events_0_1_0", first, 1 << 30);
        w.finish().expect("finish");
        let placed = w.place().expect("place");
        assert_eq!(placed.len(), 1);
        assert_eq!(
            placed[0].relative_path(),
            PathBuf::from("year=2026/month=01/events_0_1_0.parquet")
        );
        assert_eq!(placed[0].file.rows, 0);
    }

    #[test]
    fn a_writer_dropped_before_place_leaves_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut w = PartitionWriter::new(dir.path(), "events_20260101", 16 * 1024);
        for id in 1..=30_000 {
            w.push(&row(id)).expect("push");
        }
        drop(w);
        assert_eq!(std::fs::read_dir(dir.path()).expect("list").count(), 0);
    }
}
