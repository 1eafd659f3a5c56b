//! The pipeline that exports the pending chunks.
//!
//! Each job has one reading connection and three threads joined by bounded
//! queues: the reader drains the server ([`super::read`]), the encoder
//! writes CSV ([`super::encode`]), the writer compresses, hashes and writes
//! the file ([`super::write`]). This thread hands out the chunks, commits
//! every finished one to its table's `export.log` and shows the progress.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use anyhow::{Context, Result};
use crossbeam_channel::{bounded, unbounded, Receiver, RecvTimeoutError, Sender};
use mysql::Conn;

use super::encode::{encode_chunks, CsvMsg};
use super::options::ExportOptions;
use super::pause::PauseGate;
use super::plan::chunk_query;
use super::rate::RateLimit;
use super::read::{Reader, RowMsg};
use super::summary::RunTotals;
use super::table::{mark_table_complete, ExportingTable};
use super::write::{write_chunks, ChunkFormat, Pace};
use crate::dialect::{self, Codec};
use crate::dump::{self, ChunkStats, DumpDir, ExportedChunk, Growing};
use crate::progress::Progress;
use crate::schema::SourceTable;

/// Batches or CSV blocks waiting in each queue (4 measured as fast as 8, with
/// 20% less peak memory).
const QUEUE_DEPTH: usize = 4;

/// One chunk to export.
pub(super) struct ChunkJob {
    pub table: usize,
    pub chunk: usize,
    pub label: String,
    pub query: String,
    pub layout: Arc<CsvLayout>,
    pub dir: PathBuf,
    pub file: String,
}

/// How a table's rows become CSV.
pub(super) struct CsvLayout {
    pub codecs: Vec<Codec>,
    pub header: Vec<u8>,
}

impl CsvLayout {
    fn of(source: &SourceTable) -> CsvLayout {
        let names: Vec<&str> = source
            .columns
            .iter()
            .map(|c| c.desc.name.as_str())
            .collect();
        let mut header = Vec::new();
        dialect::write_header(&mut header, &names);
        CsvLayout {
            codecs: source.columns.iter().map(|c| c.codec).collect(),
            header,
        }
    }
}

/// Counters the progress display reads.
#[derive(Default)]
pub(super) struct Counters {
    pub rows: AtomicU64,
    pub bytes: AtomicU64,
}

/// What the threads tell the pipeline.
pub(super) enum ChunkEvent {
    Done {
        table: usize,
        chunk: usize,
        stats: ChunkStats,
        spilled: bool,
    },
    Failed(anyhow::Error),
}

/// The downstream thread has stopped; it reports its own error.
#[derive(Debug)]
pub(super) struct PipelineClosed;

impl std::fmt::Display for PipelineClosed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("pipeline closed")
    }
}

impl std::error::Error for PipelineClosed {}

/// Exports the `pending` `(table, chunk)` pairs, in that order, one job
/// per reading connection.
pub(super) fn run_pipeline(
    opts: &ExportOptions,
    dir: &DumpDir,
    tables: &mut [ExportingTable],
    pending: Vec<(usize, usize)>,
    readers: Vec<Conn>,
    gate: Option<Arc<PauseGate>>,
) -> Result<RunTotals> {
    let mut progress = Progress::new(opts.progress, "export", rows_to_read(tables));
    let work = queue_jobs(dir, tables, pending);
    let abort = Arc::new(AtomicBool::new(false));
    let counters = Arc::new(Counters::default());
    let (event_tx, event_rx) = unbounded::<ChunkEvent>();
    let format = ChunkFormat {
        compress: opts.compress,
        level: opts.level,
        delay: opts.hooks.write_delay,
    };
    let pace: Pace = opts.max_rate.map(|r| Arc::new(RateLimit::new(r)));
    let mut handles = Vec::new();
    for conn in readers {
        let reader = |tx| Reader {
            conn,
            tx,
            spill_dir: dir.root().to_path_buf(),
            may_spill: opts.hooks.spill,
            abort: abort.clone(),
            counters: counters.clone(),
            gate: gate.clone(),
        };
        handles.extend(start_job(
            reader,
            &work,
            &event_tx,
            &abort,
            format,
            pace.clone(),
        )?);
    }
    drop(event_tx);
    let mut commit = Commit {
        dir,
        tables,
        announce: opts.announce.as_ref(),
        totals: RunTotals::default(),
    };
    let mut first_error: Option<anyhow::Error> = None;
    loop {
        match event_rx.recv_timeout(Duration::from_millis(200)) {
            Ok(ChunkEvent::Done {
                table,
                chunk,
                stats,
                spilled,
            }) => {
                if let Err(e) = commit.chunk_done(table, chunk, stats, spilled) {
                    abort.store(true, Ordering::SeqCst);
                    first_error.get_or_insert(e);
                }
            }
            Ok(ChunkEvent::Failed(e)) => {
                abort.store(true, Ordering::SeqCst);
                first_error.get_or_insert(e);
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        progress.set(
            counters.rows.load(Ordering::Relaxed),
            counters.bytes.load(Ordering::Relaxed),
        );
    }
    for h in handles {
        let _ = h.join();
    }
    progress.finish();
    match first_error {
        Some(e) => Err(e),
        None => Ok(commit.totals),
    }
}

/// The rows the progress display expects: what the plans of the unfinished
/// tables count, less what is already written (at least 1 per table).
fn rows_to_read(tables: &[ExportingTable]) -> u64 {
    tables
        .iter()
        .map(|t| {
            let done: u64 = t
                .desc
                .chunks
                .iter()
                .filter_map(|c| c.written.as_ref())
                .map(|s| s.rows)
                .sum();
            if t.pending.is_empty() {
                0
            } else {
                t.desc.planned_rows.saturating_sub(done).max(1)
            }
        })
        .sum()
}

/// The queue every job takes its next chunk from. Chunks go out in the
/// order of `pending` (table order and key order, or the first chunk of
/// every table first when a reader follows the dump).
fn queue_jobs(
    dir: &DumpDir,
    tables: &[ExportingTable],
    pending: Vec<(usize, usize)>,
) -> Receiver<Arc<ChunkJob>> {
    let (work_tx, work_rx) = unbounded::<Arc<ChunkJob>>();
    let mut layouts: Vec<Option<Arc<CsvLayout>>> = vec![None; tables.len()];
    for (t, c) in pending {
        let st = &tables[t];
        let Some(source) = &st.source else { continue };
        let layout = layouts[t]
            .get_or_insert_with(|| Arc::new(CsvLayout::of(source)))
            .clone();
        let chunk = &st.desc.chunks[c];
        let _ = work_tx.send(Arc::new(ChunkJob {
            table: t,
            chunk: c,
            label: format!("chunk {:06} of {}", chunk.number, source.table),
            query: chunk_query(source, chunk, st.where_clause.as_deref()),
            layout,
            dir: dir.path(&st.entry.dir),
            file: chunk.file.clone(),
        }));
    }
    work_rx
}

/// Starts one job's reader, encoder and writer threads.
fn start_job(
    reader: impl FnOnce(Sender<RowMsg>) -> Reader,
    work: &Receiver<Arc<ChunkJob>>,
    events: &Sender<ChunkEvent>,
    abort: &Arc<AtomicBool>,
    format: ChunkFormat,
    pace: Pace,
) -> Result<[thread::JoinHandle<()>; 3]> {
    let (row_tx, row_rx) = bounded::<RowMsg>(QUEUE_DEPTH);
    let (csv_tx, csv_rx) = bounded::<CsvMsg>(QUEUE_DEPTH);
    let reader = reader(row_tx);
    let work = work.clone();
    let read = spawn("myspool-read", events, abort, move || {
        reader.read_chunks(work)
    })?;
    let encode = spawn("myspool-encode", events, abort, move || {
        encode_chunks(row_rx, csv_tx)
    })?;
    let ev = events.clone();
    let write = spawn("myspool-write", events, abort, move || {
        write_chunks(csv_rx, ev, format, pace)
    })?;
    Ok([read, encode, write])
}

/// Runs `body` on a named thread; its error (unless it only saw the
/// pipeline close) stops the pipeline and is reported.
fn spawn<F>(
    name: &str,
    events: &Sender<ChunkEvent>,
    abort: &Arc<AtomicBool>,
    body: F,
) -> Result<thread::JoinHandle<()>>
where
    F: FnOnce() -> Result<()> + Send + 'static,
{
    let (events, abort) = (events.clone(), abort.clone());
    thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            if let Err(e) = body() {
                abort.store(true, Ordering::SeqCst);
                if e.downcast_ref::<PipelineClosed>().is_none() {
                    let _ = events.send(ChunkEvent::Failed(e));
                }
            }
        })
        .context("starting a thread")
}

/// Records finished chunks: in `export.log`, in the table's state and in
/// this run's totals.
struct Commit<'a> {
    dir: &'a DumpDir,
    tables: &'a mut [ExportingTable],
    announce: Option<&'a Arc<Growing>>,
    totals: RunTotals,
}

impl Commit<'_> {
    /// A chunk is recorded in `export.log` once its file is in place; the
    /// table is marked complete with its last chunk.
    fn chunk_done(
        &mut self,
        table: usize,
        chunk: usize,
        stats: ChunkStats,
        spilled: bool,
    ) -> Result<()> {
        let st = &mut self.tables[table];
        let record = &mut st.desc.chunks[chunk];
        let log = self.dir.path(&st.entry.dir).join(dump::EXPORT_LOG);
        let done = ExportedChunk {
            number: record.number,
            stats: stats.clone(),
        };
        dump::append_json_line(&log, &done)?;
        self.totals.chunks += 1;
        self.totals.rows += stats.rows;
        self.totals.spilled += u64::from(spilled);
        record.written = Some(stats);
        if let Some(g) = self.announce {
            g.changed();
        }
        st.pending.retain(|&c| c != chunk);
        if st.pending.is_empty() {
            mark_table_complete(self.dir, st)?;
        }
        Ok(())
    }
}
