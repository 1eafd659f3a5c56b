//! What a processing is asked to do, and what it reports.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use super::claims::{LostClaim, Shard, DEFAULT_LEASE};
use super::map::{MapOptions, MapSummary};
use crate::dump::Growing;
use crate::progress::ProgressMode;

/// How rows reach the command and come back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// The dump's own CSV.
    #[default]
    Csv,
    /// One JSON object per line.
    Jsonl,
}

impl Format {
    /// As the output manifest and `MYSPOOL_FORMAT` spell it.
    pub fn name(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Jsonl => "jsonl",
        }
    }
}

#[derive(Debug, Clone)]
pub struct ProcessOptions {
    pub dir: PathBuf,
    pub out: PathBuf,
    /// Run through `sh -c` once per chunk (with `map`: once per worker).
    pub exec: String,
    /// Row mode (`--map`): `exec` is a worker that answers rows one by one.
    pub map: Option<MapOptions>,
    pub jobs: usize,
    pub format: Format,
    pub progress: ProgressMode,
    /// The input is still being written by another thread of this process
    /// (`copy`): each chunk is processed once it is finished.
    pub follow: Option<Arc<Growing>>,
    /// Told of every processed chunk, for a reader of the output in this
    /// process; if that reader abandons it, no more chunks are started. The
    /// caller calls its `finish` when this returns.
    pub announce: Option<Arc<Growing>>,
    /// Cooperating runners (chunk mode, not following): how long a claim
    /// lives without a heartbeat before another runner takes it over.
    pub lease: Duration,
    /// Cooperating runners: the chunks this runner starts with.
    pub shard: Option<Shard>,
}

impl ProcessOptions {
    pub fn new(dir: impl Into<PathBuf>, out: impl Into<PathBuf>, exec: impl Into<String>) -> Self {
        ProcessOptions {
            dir: dir.into(),
            out: out.into(),
            exec: exec.into(),
            map: None,
            jobs: 2,
            format: Format::Csv,
            progress: ProgressMode::Auto,
            follow: None,
            announce: None,
            lease: DEFAULT_LEASE,
            shard: None,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ProcessSummary {
    pub dir: PathBuf,
    pub out: PathBuf,
    pub tables: Vec<TableProcessSummary>,
    pub rows_in: u64,
    pub rows_out: u64,
    pub chunks_processed: u64,
    /// Finished by an earlier run.
    pub chunks_kept: u64,
    pub failed: Vec<FailedChunk>,
    pub complete: bool,
    pub seconds: f64,
    pub peak_rss_bytes: Option<u64>,
    /// This runner (`host pid`), when runners cooperate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runner: Option<String>,
    /// Chunks this runner took over from a runner that stopped.
    pub taken_over: u64,
    /// Chunks whose claim this runner lost (it stalled past its lease and
    /// another runner took them over): their work was dropped.
    pub lost: Vec<LostClaim>,
    /// Row mode's counts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub map: Option<MapSummary>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TableProcessSummary {
    pub db: String,
    pub table: String,
    pub chunks: usize,
    pub done: usize,
    pub columns: Option<Vec<String>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FailedChunk {
    pub table: String,
    pub chunk: u32,
    pub reason: String,
    /// Where the command's stderr is kept.
    pub stderr: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_format_is_named_as_the_manifest_and_the_command_see_it() {
        assert_eq!(Format::Csv.name(), "csv");
        assert_eq!(Format::Jsonl.name(), "jsonl");
    }
}
