//! What an export reports: the [`ExportSummary`], built from the dump's
//! table descriptions and this run's totals, and its warnings.

use std::path::PathBuf;
use std::time::Instant;

use serde::Serialize;

use crate::dump::{ChunkStats, Coordinates, Manifest, TableDescription};
use crate::progress::peak_rss_bytes;

/// What an export did.
#[derive(Debug, Clone, Serialize)]
pub struct ExportSummary {
    pub dir: PathBuf,
    pub complete: bool,
    /// `single-snapshot`, `synchronized-snapshots` or `per-connection-snapshots`.
    pub consistency: Option<String>,
    /// The source's binlog coordinates of the rows in the dump, or why none.
    pub coordinates: Option<Coordinates>,
    pub tables: Vec<TableSummary>,
    /// Rows in the dump (all chunks, including those kept from an earlier run).
    pub rows: u64,
    /// Rows read from the server by this run.
    pub rows_this_run: u64,
    pub bytes: u64,
    pub csv_bytes: u64,
    pub chunks_written: u64,
    pub chunks_kept: u64,
    /// Chunks whose data passed through a spill file because the disk side
    /// was slower than the network.
    pub chunks_spilled: u64,
    pub seconds: f64,
    pub peak_rss_bytes: Option<u64>,
    pub warnings: Vec<String>,
    /// `--pause-when`: how often the export paused, and for how long.
    pub pauses: u64,
    pub pause_seconds: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct TableSummary {
    pub db: String,
    pub table: String,
    pub key: Vec<String>,
    pub chunks: usize,
    pub rows: u64,
    pub bytes: u64,
    pub csv_bytes: u64,
}

/// What the chunks written by this run add up to.
#[derive(Debug, Default)]
pub(super) struct RunTotals {
    pub rows: u64,
    pub chunks: u64,
    pub spilled: u64,
    /// `--pause-when`'s pauses.
    pub pauses: super::Pauses,
}

/// Warnings are shown at once and repeated in the summary.
#[derive(Debug, Default)]
pub(super) struct Warnings(Vec<String>);

impl Warnings {
    pub fn warn(&mut self, message: String) {
        crate::progress::notice(&format!("myspool export: warning: {message}"));
        self.0.push(message);
    }
}

/// Everything [`summarize`] reads besides the tables.
pub(super) struct RunReport {
    pub dir: PathBuf,
    pub run: RunTotals,
    pub chunks_kept: u64,
    pub warnings: Warnings,
    pub started: Instant,
}

pub(super) fn summarize(
    manifest: &Manifest,
    tables: &[TableDescription],
    report: RunReport,
) -> ExportSummary {
    let mut summary = ExportSummary {
        dir: report.dir,
        complete: manifest.complete,
        consistency: manifest.consistency.clone(),
        coordinates: manifest.coordinates.clone(),
        tables: Vec::new(),
        rows: 0,
        rows_this_run: report.run.rows,
        bytes: 0,
        csv_bytes: 0,
        chunks_written: report.run.chunks,
        chunks_kept: report.chunks_kept,
        chunks_spilled: report.run.spilled,
        seconds: report.started.elapsed().as_secs_f64(),
        peak_rss_bytes: peak_rss_bytes(),
        warnings: report.warnings.0,
        pauses: report.run.pauses.count,
        pause_seconds: report.run.pauses.seconds,
    };
    for desc in tables {
        let ts = table_summary(desc);
        summary.rows += ts.rows;
        summary.bytes += ts.bytes;
        summary.csv_bytes += ts.csv_bytes;
        summary.tables.push(ts);
    }
    summary
}

/// One table's line of the summary: its written chunks added up.
fn table_summary(desc: &TableDescription) -> TableSummary {
    let stats: Vec<&ChunkStats> = desc
        .chunks
        .iter()
        .filter_map(|c| c.written.as_ref())
        .collect();
    TableSummary {
        db: desc.db.clone(),
        table: desc.table.clone(),
        key: desc.key.columns.clone(),
        chunks: desc.chunks.len(),
        rows: stats.iter().map(|s| s.rows).sum(),
        bytes: stats.iter().map(|s| s.bytes).sum(),
        csv_bytes: stats.iter().map(|s| s.csv_bytes).sum(),
    }
}
