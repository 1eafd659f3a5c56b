//! What the dump's files say, field by field: `manifest.json`
//! ([`Manifest`]), each `table.json` ([`TableDescription`], with its
//! [`ChunkRecord`]s), and the lines of the logs (`export.log`, `process.log`,
//! `outputs.jsonl`). Serde turns them into JSON; renaming a field changes the
//! format.

use serde::{Deserialize, Serialize};

use crate::dialect::Encoding;

/// The dump format this build reads and writes.
pub const FORMAT_VERSION: u32 = 1;
const FORMAT_NAME: &str = "myspool-dump";

/// `manifest.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub format: String,
    pub format_version: u32,
    pub tool_version: String,
    pub source: SourceInfo,
    /// The options that decide what the dump contains; a rerun must match.
    pub export: ExportSettings,
    /// How the reading connections' snapshots relate (see the README).
    pub consistency: Option<String>,
    /// The source's binary log coordinates of the rows in the dump, or why
    /// there are none (absent in dumps of earlier versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coordinates: Option<Coordinates>,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub complete: bool,
    pub csv: CsvConvention,
    pub tables: Vec<TableEntry>,
    /// Set when `myspool process` made this dump from another one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processed: Option<ProcessedFrom>,
}

/// The binary log position that corresponds exactly to the rows exported:
/// replaying the source's binlog from there onto a copy of the dump brings
/// it to the source's state. Either `binlog_file`/`binlog_position` are set,
/// or `none_because` says why there are none.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Coordinates {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binlog_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binlog_position: Option<u64>,
    /// The GTID position at that point: `gtid_binlog_pos` on MariaDB,
    /// `gtid_executed` on MySQL; absent when the server has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gtid: Option<String>,
    /// Where `gtid` comes from: `gtid_binlog_pos` or `gtid_executed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gtid_variable: Option<String>,
    /// How they were read: `binlog_snapshot` (the snapshot's own status
    /// variables) or `under_lock` (SHOW MASTER STATUS while the tables were
    /// locked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub none_because: Option<String>,
}

impl Coordinates {
    pub fn none(because: impl Into<String>) -> Coordinates {
        Coordinates {
            none_because: Some(because.into()),
            ..Coordinates::default()
        }
    }

    /// One line for people: `mariadb-bin.000003:1234 (gtid 0-1-42)`, or
    /// `none: <why>`.
    pub fn describe(&self) -> String {
        match (&self.binlog_file, self.binlog_position) {
            (Some(file), Some(pos)) => format!(
                "{file}:{pos}{}",
                self.gtid
                    .as_deref()
                    .filter(|g| !g.is_empty())
                    .map(|g| format!(" ({} {g})", self.gtid_variable.as_deref().unwrap_or("gtid")))
                    .unwrap_or_default()
            ),
            _ => format!(
                "none: {}",
                self.none_because.as_deref().unwrap_or("not recorded")
            ),
        }
    }
}

/// Where a processed dump came from.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ProcessedFrom {
    /// The input dump directory (absolute).
    pub from: String,
    /// The command (or, for the Rust API, the transform's name).
    pub exec: String,
    pub format: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SourceInfo {
    /// `host:port`, never a password.
    pub endpoint: String,
    pub user: String,
    pub server_version: String,
    /// The source server's own clock (UTC) when the export started.
    pub server_time_utc: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ExportSettings {
    /// `--table` arguments as given (`db.t`, `db.*`).
    pub table_patterns: Vec<String>,
    #[serde(rename = "where")]
    pub where_clause: Option<String>,
    /// `--where 'DB.TABLE: condition'`: per table, with `where` (AND).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub table_where: Vec<TableWhere>,
    pub chunk_rows: Option<u64>,
    pub compress: Compress,
    pub level: u32,
}

/// One table's own `--where` condition, SQL as given.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TableWhere {
    pub db: String,
    pub table: String,
    #[serde(rename = "where")]
    pub condition: String,
}

/// The CSV convention, spelled out in the manifest for readers of the dump.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CsvConvention {
    pub standard: String,
    pub encoding: String,
    pub delimiter: String,
    pub line_terminator: String,
    pub header: bool,
    pub null: String,
    pub quoting: String,
    pub binary: String,
    pub time_zone: String,
}

impl Default for CsvConvention {
    fn default() -> Self {
        CsvConvention {
            standard: "RFC 4180".into(),
            encoding: "UTF-8".into(),
            delimiter: ",".into(),
            line_terminator: "\n".into(),
            header: true,
            null: "an empty field without quotes".into(),
            quoting: "every non-NULL value is quoted; \" inside is doubled".into(),
            binary: "columns with encoding \"hex\" hold uppercase hex of the bytes".into(),
            time_zone: "TIMESTAMP values are in UTC (+00:00)".into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TableEntry {
    pub db: String,
    pub table: String,
    /// Relative to the dump directory.
    pub dir: String,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Compress {
    Gzip,
    /// Zstandard frames (RFC 8878) with content checksums: smaller than gzip
    /// at a fraction of its CPU, read natively by DuckDB and Polars, by
    /// Python only with the `zstandard` package.
    Zstd,
    None,
}

impl Compress {
    pub fn extension(self) -> &'static str {
        match self {
            Compress::Gzip => "csv.gz",
            Compress::Zstd => "csv.zst",
            Compress::None => "csv",
        }
    }

    /// As `--compress` spells it.
    pub fn name(self) -> &'static str {
        match self {
            Compress::Gzip => "gzip",
            Compress::Zstd => "zstd",
            Compress::None => "none",
        }
    }

    /// The levels `ChunkWriter` takes: gzip's are libdeflate's 0 (store) to
    /// 12; zstd's stop at 19 because 20 to 22 ("ultra") need windows of up
    /// to 128 MiB per writer, beyond the memory an export keeps to.
    pub fn levels(self) -> std::ops::RangeInclusive<u32> {
        match self {
            Compress::Gzip => 0..=12,
            Compress::Zstd => 1..=19,
            Compress::None => 0..=u32::MAX,
        }
    }

    /// The level used when none is given. gzip: measured on a 22 MB chunk of
    /// the benchmark table, libdeflate's level 1 wrote 7.83 MB in 107 ms,
    /// level 2 7.68 MB in 156 ms, level 6 7.20 MB in 341 ms; mydumper's and
    /// `gzip -1`'s zlib level 1 write about the size of libdeflate's level 1,
    /// so more is rarely worth it. zstd: level 1 (see the README's
    /// "Measured" for how it compares with gzip and mydumper).
    pub fn default_level(self) -> u32 {
        match self {
            Compress::Gzip | Compress::Zstd => 1,
            Compress::None => 0,
        }
    }
}

/// `table.json`: what a reader needs to make sense of the chunks.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TableDescription {
    pub db: String,
    pub table: String,
    /// The columns in the CSV, in order (generated columns are not among them).
    pub columns: Vec<ColumnDescription>,
    /// Generated columns of the source: not exported, recomputed by the target.
    pub generated_columns: Vec<String>,
    /// Every column of the source the export left out of the CSV, and why, so
    /// that `verify` can tell a target column the source had from one added
    /// since. `None` in dumps written before it was recorded (their
    /// `generated_columns` is all they say); a processed dump keeps its
    /// input's. Optional, so the format version did not change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub left_out: Option<Vec<LeftOutColumn>>,
    pub key: KeyDescription,
    pub chunk_rows: u64,
    /// Rows counted while planning (the final count is the sum of the chunks').
    pub planned_rows: u64,
    pub compress: Compress,
    pub chunks: Vec<ChunkRecord>,
    pub complete: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ColumnDescription {
    pub name: String,
    /// `COLUMN_TYPE` as the source reports it, e.g. `bigint(20) unsigned`.
    pub column_type: String,
    /// `DATA_TYPE`, e.g. `bigint`.
    pub data_type: String,
    pub nullable: bool,
    pub charset: Option<String>,
    pub collation: Option<String>,
    pub encoding: Encoding,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub invisible: bool,
}

/// A source column the dump holds no values for.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LeftOutColumn {
    pub name: String,
    /// Why: [`LeftOutColumn::GENERATED`], or a reason a later myspool adds
    /// (a reader treats one it does not know as a column whose values were
    /// not copied).
    pub reason: String,
}

impl LeftOutColumn {
    /// A generated column: the target computes it from the other columns.
    pub const GENERATED: &'static str = "generated";

    pub fn generated(name: &str) -> LeftOutColumn {
        LeftOutColumn {
            name: name.to_string(),
            reason: Self::GENERATED.to_string(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct KeyDescription {
    pub kind: KeyKind,
    /// The index the chunks follow (`PRIMARY`, or a unique index's name).
    pub index: Option<String>,
    pub columns: Vec<String>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum KeyKind {
    Primary,
    /// A unique index whose columns are all NOT NULL.
    Unique,
    /// Neither: the table is one chunk, in no particular order.
    None,
}

/// One chunk: its key range, and once written, what was written.
///
/// The range is `lower < key <= upper`; `None` means unbounded. Bounds are SQL
/// literals, one per key column, ready to put in a `WHERE`
/// (`42`, `'2024-01-01 00:00:00'`, `_utf8mb4 X'616263'`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ChunkRecord {
    pub number: u32,
    pub file: String,
    pub lower: Option<Vec<String>>,
    pub upper: Option<Vec<String>>,
    #[serde(flatten)]
    pub written: Option<ChunkStats>,
}

/// What a finished chunk holds: rows, bytes on disk, CSV bytes, SHA-256 of the
/// file as stored (so `sha256sum` checks it).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ChunkStats {
    pub rows: u64,
    pub bytes: u64,
    pub csv_bytes: u64,
    pub sha256: String,
}

/// A line of `export.log`: a chunk the export finished.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExportedChunk {
    pub number: u32,
    #[serde(flatten)]
    pub stats: ChunkStats,
}

/// A line of a table's `process.log` in a processing's output dump.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessedChunk {
    pub number: u32,
    pub columns: Vec<String>,
    pub rows_in: u64,
    #[serde(flatten)]
    pub stats: ChunkStats,
}

/// A line of a chunk's `NNNNNN.checkpoint` while `process --map` works on
/// it: its first `rows_answered` input rows are answered, and their output
/// is the first `partial_bytes` bytes of `NNNNNN.partial`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChunkCheckpoint {
    pub chunk: u32,
    pub rows_answered: u64,
    pub partial_bytes: u64,
    /// Output rows in those bytes.
    pub rows_out: u64,
    pub dropped: u64,
    pub rejected: u64,
    /// The output header, once the first output row set it.
    pub columns: Option<Vec<String>>,
}

/// A line of a dump's `outputs.jsonl`: a directory it was processed into.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OutputRecord {
    pub out: String,
    pub exec: String,
    pub format: String,
}

impl Manifest {
    pub fn new(source: SourceInfo, export: ExportSettings, started_at: String) -> Manifest {
        Manifest {
            format: FORMAT_NAME.into(),
            format_version: FORMAT_VERSION,
            tool_version: format!("myspool {}", env!("CARGO_PKG_VERSION")),
            source,
            export,
            consistency: None,
            coordinates: None,
            started_at,
            finished_at: None,
            complete: false,
            csv: CsvConvention::default(),
            tables: Vec::new(),
            processed: None,
        }
    }
}

/// The current time as RFC 3339 UTC (`2026-11-21T05:33:00Z`): the times a
/// dump records, and the stamp of plain progress lines.
pub fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    utc_timestamp(secs)
}

/// Seconds since the Unix epoch as ISO 8601 UTC. UTC rather than local
/// time: the same in every log whatever the machine's zone, no daylight
/// saving jumps, and the time zone the dump's TIMESTAMP values are in.
pub fn utc_timestamp(secs: u64) -> String {
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01, proleptic Gregorian (Howard
    // Hinnant's days_from_civil, inverted), for eras of 400 years.
    let z = days as i64 + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_iso_8601_utc() {
        assert_eq!(utc_timestamp(0), "1970-01-01T00:00:00Z");
        // Leap days, a century that is not a leap year, one that is.
        assert_eq!(utc_timestamp(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(utc_timestamp(1_709_251_199), "2024-02-29T23:59:59Z");
        assert_eq!(utc_timestamp(1_709_251_200), "2024-03-01T00:00:00Z");
        assert_eq!(utc_timestamp(4_107_542_399), "2100-02-28T23:59:59Z");
        assert_eq!(utc_timestamp(4_107_542_400), "2100-03-01T00:00:00Z");
        assert_eq!(utc_timestamp(1_767_225_599), "2025-12-31T23:59:59Z");
        assert_eq!(utc_timestamp(253_402_300_799), "9999-12-31T23:59:59Z");
    }

    #[test]
    fn utc_now_is_rfc3339() {
        let t = utc_now();
        assert_eq!(t.len(), 20, "{t}");
        assert!(t.ends_with('Z') && t.as_bytes()[10] == b'T');
    }
}
