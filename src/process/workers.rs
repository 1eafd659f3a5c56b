//! The worker threads: each takes the next pending chunk, processes it into
//! its output chunk, journals it, and counts it, until no chunk is left or
//! the run must stop. A chunk that fails is reported and left for the next
//! run; a failure that is not the chunk's own stops every worker.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::thread;

use anyhow::{anyhow, bail, Result};

use super::claims::{Claim, Claims};
use super::command::{run_command, stderr_path};
use super::options::{FailedChunk, Format, ProcessOptions};
use super::output_chunk::OutputChunk;
use super::tables::{record_done, written_input, TableWork};
use super::transform::{run_transform, RowTransform};
use crate::dump::{self, ChunkRecord, ChunkWriter, DumpDir, ProcessedChunk};
use crate::progress::Progress;

/// What turns an input chunk into an output chunk.
#[derive(Clone, Copy)]
pub(super) enum Worker<'a> {
    Command(&'a str),
    Transform(&'a dyn RowTransform),
}

/// What the workers are given.
pub(super) struct Workers<'a> {
    pub opts: &'a ProcessOptions,
    pub worker: Worker<'a>,
    pub input: &'a DumpDir,
    pub out: &'a DumpDir,
    pub tables: &'a [TableWork],
    /// `(table, chunk)` indexes, in the order to take them.
    pub pending: &'a [(usize, usize)],
    /// The gzip level of the output chunks (the input's).
    pub level: u32,
    /// Cooperating runners: chunks are claimed instead of taken from
    /// `pending` (which then only sizes the run).
    pub claims: Option<&'a Claims>,
    /// With `claims`: the `(table, chunk)` of every unit, by its index.
    pub places: &'a [(usize, usize)],
}

/// What this run did.
#[derive(Debug, Default)]
pub(super) struct Counts {
    pub chunks: u64,
    pub rows_in: u64,
    pub rows_out: u64,
}

pub(super) struct Outcome {
    pub counts: Counts,
    /// By table and chunk.
    pub failed: Vec<FailedChunk>,
}

impl Workers<'_> {
    /// Runs `opts.jobs` workers (no more than there are chunks) until they
    /// are done; `total_rows` is for the progress bar.
    pub fn run(self, total_rows: u64) -> Outcome {
        let jobs = self.opts.jobs.min(self.pending.len().max(1));
        let run = Run {
            progress: Mutex::new(Progress::new(self.opts.progress, "process", total_rows)),
            failed: Mutex::new(Vec::new()),
            next: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
            counts: Mutex::new(Counts::default()),
            w: self,
        };
        thread::scope(|scope| {
            for _ in 0..jobs {
                scope.spawn(|| run.work());
            }
        });
        if let Ok(mut p) = run.progress.lock() {
            p.finish();
        }
        let mut failed = run.failed.into_inner().unwrap_or_default();
        failed.sort_by(|a, b| (&a.table, a.chunk).cmp(&(&b.table, b.chunk)));
        Outcome {
            counts: run.counts.into_inner().unwrap_or_default(),
            failed,
        }
    }
}

/// The workers' shared state.
struct Run<'a> {
    w: Workers<'a>,
    progress: Mutex<Progress>,
    failed: Mutex<Vec<FailedChunk>>,
    /// The index in `pending` of the next chunk to take.
    next: AtomicUsize,
    in_flight: AtomicUsize,
    stop: AtomicBool,
    counts: Mutex<Counts>,
}

impl Run<'_> {
    /// One worker thread.
    fn work(&self) {
        loop {
            if self.stop.load(Ordering::SeqCst)
                || self.w.opts.announce.as_ref().is_some_and(|g| g.abandoned())
            {
                return;
            }
            if let Some(claims) = self.w.claims {
                match claims.next() {
                    Ok(Some(claim)) => {
                        let (t, c) = self.w.places[claim.index];
                        let work = &self.w.tables[t];
                        let chunk = work.input.chunks[c].clone();
                        self.one_claimed_chunk(work, &chunk, claims, &claim);
                        continue;
                    }
                    Ok(None) => return,
                    Err(e) => return self.give_up(String::new(), 0, e),
                }
            }
            let Some(&(t, c)) = self.w.pending.get(self.next.fetch_add(1, Ordering::SeqCst)) else {
                return;
            };
            let work = &self.w.tables[t];
            let chunk = match self.input_chunk(work, c) {
                Ok(chunk) => chunk,
                Err(e) => {
                    // The export stopped: nothing more will come.
                    self.give_up(work.label(), work.input.chunks[c].number, e);
                    return;
                }
            };
            if !self.one_chunk(work, &chunk) {
                return;
            }
        }
    }

    /// Chunk `c` of a table, waiting for it if the input is being written.
    fn input_chunk(&self, work: &TableWork, c: usize) -> Result<ChunkRecord> {
        match &self.w.opts.follow {
            None => Ok(work.input.chunks[c].clone()),
            Some(growing) => written_input(growing, self.w.input, work, c),
        }
    }

    /// Processes and records one chunk; false when the run must stop.
    fn one_chunk(&self, work: &TableWork, chunk: &ChunkRecord) -> bool {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        let result = self.process_chunk(work, chunk, &work.out_dir);
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        match result {
            Ok(done) => self.succeeded(work, done),
            Err(e) => {
                self.failed(work, chunk.number, e);
                true
            }
        }
    }

    /// Processes a claimed chunk and commits it if the claim is still this
    /// runner's.
    fn one_claimed_chunk(
        &self,
        work: &TableWork,
        chunk: &ChunkRecord,
        claims: &Claims,
        claim: &Claim,
    ) {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        let result = self.process_chunk(work, chunk, &claim.work_dir);
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        let file = dump::chunk_file_name(chunk.number, work.input.compress);
        let label = work.label();
        let lost = || {
            crate::progress::notice(&format!(
                "myspool process: lost the claim on chunk {:06} of {label}: this runner stalled past its lease and another runner took the chunk over; this runner's work on it is dropped",
                chunk.number
            ))
        };
        match result {
            Ok(done) => match claims.commit(claim, &done, &work.out_dir, &file) {
                Ok(true) => {
                    self.succeeded(work, done);
                }
                Ok(false) => lost(),
                Err(e) => self.give_up(label, chunk.number, e),
            },
            Err(e) => match claims.release(claim) {
                Ok(true) => self.failed(work, chunk.number, e),
                Ok(false) => lost(),
                Err(e) => self.give_up(label, chunk.number, e),
            },
        }
    }

    fn process_chunk(
        &self,
        work: &TableWork,
        chunk: &ChunkRecord,
        out_dir: &std::path::Path,
    ) -> Result<ProcessedChunk> {
        let input = work.input_chunk(self.w.input, chunk);
        let compress = work.input.compress;
        let out_file = dump::chunk_file_name(chunk.number, compress);
        let writer = ChunkWriter::create(out_dir, &out_file, compress, self.w.level)?;
        let mut out = OutputChunk::new(&work.columns, writer);
        let format = self.w.opts.format;
        let rows_in = match self.w.worker {
            Worker::Command(cmd) => {
                let stderr = stderr_path(&work.out_dir, chunk.number);
                run_command(cmd, format, &input, &stderr, &mut out)?
            }
            Worker::Transform(t) => run_transform(t, &input, &mut out)?,
        };
        if out.columns().is_none() {
            no_header(&mut out, format, work)?;
        }
        let (columns, stats) = out.finish()?;
        Ok(ProcessedChunk {
            number: chunk.number,
            columns,
            rows_in,
            stats,
        })
    }

    /// Journals and counts a processed chunk; false when the run must stop.
    fn succeeded(&self, work: &TableWork, done: ProcessedChunk) -> bool {
        let (number, rows_in, rows_out, bytes) = (
            done.number,
            done.rows_in,
            done.stats.rows,
            done.stats.csv_bytes,
        );
        let recorded = match self.w.claims {
            // The claim's commit recorded it.
            Some(_) => work.note_done(done),
            None => record_done(self.w.out, work, done, self.w.opts.announce.as_deref()),
        };
        if let Err(e) = recorded {
            // The journal cannot be written (disk full?): stop.
            self.give_up(work.label(), number, e);
            return false;
        }
        if let Ok(mut n) = self.counts.lock() {
            n.chunks += 1;
            n.rows_in += rows_in;
            n.rows_out += rows_out;
        }
        if let Ok(mut p) = self.progress.lock() {
            let failed_n = self.failed.lock().map(|f| f.len()).unwrap_or(0);
            self.note(&mut p, failed_n);
            p.add(rows_in, bytes);
        }
        true
    }

    /// A chunk that failed on its own: reported, left for the next run.
    fn failed(&self, work: &TableWork, number: u32, e: anyhow::Error) {
        let stderr = stderr_path(&work.out_dir, number);
        let reason = format!("{e:#}");
        let label = work.label();
        crate::progress::notice(&format!(
            "myspool process: chunk {number:06} of {label} failed: {reason}"
        ));
        if let Ok(mut f) = self.failed.lock() {
            f.push(FailedChunk {
                table: label,
                chunk: number,
                reason,
                stderr: stderr.exists().then_some(stderr),
            });
        }
    }

    /// A failure that is not the chunk's own (the journal, the input): stop.
    fn give_up(&self, table: String, chunk: u32, e: anyhow::Error) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(claims) = self.w.claims {
            // Threads waiting for a chunk to claim stop waiting.
            claims.stop();
        }
        if let Ok(mut f) = self.failed.lock() {
            f.push(FailedChunk {
                table,
                chunk,
                reason: format!("{e:#}"),
                stderr: None,
            });
        }
    }

    fn note(&self, p: &mut Progress, failed: usize) {
        let done = self.counts.lock().map(|n| n.chunks).unwrap_or(0);
        p.set_note(format!(
            "{done} of {} chunks done, {failed} failed, {} in flight",
            self.w.pending.len(),
            self.in_flight.load(Ordering::SeqCst)
        ));
    }
}

/// An output that gave no header: an error in CSV.
fn no_header(out: &mut OutputChunk<'_>, format: Format, work: &TableWork) -> Result<()> {
    if format == Format::Csv {
        bail!("the output has no header line");
    }
    // JSON lines with no row say nothing of the columns: the other
    // chunks' (or the input's) apply.
    let known = work
        .columns
        .lock()
        .map_err(|_| anyhow!("a worker panicked"))?
        .clone();
    out.header(known.unwrap_or_else(|| work.input.columns.iter().map(|c| c.name.clone()).collect()))
}
