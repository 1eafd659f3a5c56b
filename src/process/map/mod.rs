//! Row mode (`process --map CMD`, and `process_rows_with` from Rust): rows,
//! not chunks, are the unit of work, for per-row jobs that run for days.
//!
//! - `feeder.rs` reads the pending chunks into small batches of rows (as
//!   many rows as take about 100 ms to answer), from each chunk's first
//!   unanswered row; `queue.rs` hands them to the workers under a memory
//!   budget, rows to send again first.
//! - `worker.rs` is one worker slot: a long-lived `sh -c CMD` (restarted
//!   when it ends) speaking `protocol.rs`, or a Rust `RowTransform`.
//! - `chunk.rs` puts the answers of a chunk back in input order
//!   (`sequencer.rs`), checks and writes them to its partial file, and
//!   `checkpoint.rs` makes them durable at least once a second; a complete
//!   chunk becomes its output chunk, recorded in `process.log` as in
//!   `--exec` mode. Rejected rows go to the table's `rejects.rs` file.
//! - `run.rs` runs the threads: the feeder, the slots, a ticker for
//!   checkpoints and progress.

mod checkpoint;
mod chunk;
mod feeder;
mod malloc;
pub(crate) mod protocol;
mod queue;
mod rejects;
mod run;
mod sequencer;
mod worker;

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

pub use protocol::REJECT_KEY;
pub(super) use run::{MapRun, MapWorker};

/// How row mode runs.
#[derive(Debug, Clone)]
pub struct MapOptions {
    /// The job fails once more rows than this are rejected (by the command,
    /// or for killing workers), counting earlier runs.
    pub max_rejects: u64,
    /// Answered rows are made durable at least this often.
    pub checkpoint_interval: Duration,
    /// A row on which this many workers died is rejected.
    pub attempts: u32,
    /// Rows given out and not yet written hold at most about this many
    /// bytes (one row always goes, whatever its size).
    pub budget_bytes: usize,
}

/// The default of `--max-rejects`.
pub const DEFAULT_MAX_REJECTS: u64 = 1000;

impl Default for MapOptions {
    fn default() -> MapOptions {
        MapOptions {
            max_rejects: DEFAULT_MAX_REJECTS,
            checkpoint_interval: Duration::from_secs(1),
            attempts: 3,
            budget_bytes: 8 * 1024 * 1024,
        }
    }
}

/// What row mode did in this run (in the `--json` summary as `map`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct MapSummary {
    /// Input rows answered (and committed) in this run.
    pub rows_answered: u64,
    /// Output rows written.
    pub rows_emitted: u64,
    /// Rows answered `null` (or `[]`).
    pub rows_dropped: u64,
    /// Rows rejected in this run.
    pub rows_rejected: u64,
    /// Rows rejected in all, earlier runs included.
    pub rejects_total: u64,
    /// Rows sent again because their worker died.
    pub rows_redone: u64,
    /// Rows answered by earlier runs (finished chunks and checkpoints).
    pub rows_from_earlier_runs: u64,
    /// Checkpoints written, and the time they held their chunk (the rows
    /// of a chunk wait while it is checkpointed): the cost of checkpoints.
    pub checkpoints: u64,
    pub checkpoint_seconds: f64,
    pub workers: usize,
    /// Worker processes started (restarts included).
    pub worker_starts: u64,
    /// The rejects file of every table that has one.
    pub rejects_files: Vec<PathBuf>,
    /// The stderr file of every worker that wrote any.
    pub worker_stderr: Vec<PathBuf>,
}
