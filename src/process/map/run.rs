//! The threads of a row-mode run: one feeder, one thread per worker slot,
//! and a ticker that checkpoints, tells the workers when the queue is
//! starved, and shows progress.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};

use super::checkpoint::{last_checkpoint, Partial};
use super::chunk::{Answered, Committed, LiveChunk};
use super::protocol::Answer;
use super::queue::{Batch, Queue};
use super::rejects::Rejects;
use super::worker::{CommandWorker, Failure, RowWorker, TransformWorker};
use super::{MapOptions, MapSummary};
use crate::dump::{DumpDir, ProcessedChunk};
use crate::process::options::{FailedChunk, ProcessOptions};
use crate::process::tables::{record_done, TableWork};
use crate::process::transform::RowTransform;
use crate::process::workers::{Counts, Outcome};
use crate::progress::Progress;

/// What answers the rows.
#[derive(Clone, Copy)]
pub enum MapWorker<'a> {
    Command(&'a str),
    Transform(&'a dyn RowTransform),
}

/// What a row-mode run is given.
pub struct MapRun<'a> {
    pub opts: &'a ProcessOptions,
    pub map: &'a MapOptions,
    pub worker: MapWorker<'a>,
    pub input: &'a DumpDir,
    pub out: &'a DumpDir,
    pub tables: &'a [TableWork],
    /// `(table, chunk)` indexes, in the order to take them.
    pub pending: &'a [(usize, usize)],
    pub level: u32,
}

/// A slot whose workers died this many times in a row without answering
/// a row stops the run: the command cannot work at all.
const FRUITLESS_DEATHS: u32 = 10;

/// The run's shared state.
pub(super) struct Run<'a> {
    pub w: MapRun<'a>,
    pub queue: Queue,
    /// The chunks being worked on, by their index in `pending`.
    pub live: Vec<OnceLock<LiveChunk<'a>>>,
    pub rejects: Vec<Rejects>,
    pub rejects_before: u64,
    pub totals: Mutex<MapSummary>,
    pub counts: Mutex<Counts>,
    pub failed: Mutex<Vec<FailedChunk>>,
    pub starved: Arc<AtomicBool>,
    /// Nanoseconds a row takes to answer, averaged (0: not known yet).
    pub ns_per_row: AtomicU64,
    pub answered_any: AtomicBool,
}

impl MapRun<'_> {
    /// Runs every pending chunk through `opts.jobs` workers.
    pub fn run(self) -> Result<(Outcome, MapSummary)> {
        super::malloc::keep_big_blocks_out_of_the_heap();
        let (rejects, rejects_before) = resume_rejects(self.tables)?;
        let rows_before = rows_before(self.tables, self.pending)?;
        let total_rows: u64 = self
            .tables
            .iter()
            .flat_map(|t| &t.input.chunks)
            .filter_map(|c| c.written.as_ref().map(|w| w.rows))
            .sum();
        let jobs = self.opts.jobs;
        let run = Run {
            queue: Queue::new(self.map.budget_bytes, 2 * jobs),
            live: (0..self.pending.len()).map(|_| OnceLock::new()).collect(),
            rejects,
            rejects_before,
            totals: Mutex::new(MapSummary {
                rows_from_earlier_runs: rows_before,
                workers: jobs,
                ..MapSummary::default()
            }),
            counts: Mutex::new(Counts::default()),
            failed: Mutex::new(Vec::new()),
            starved: Arc::new(AtomicBool::new(false)),
            ns_per_row: AtomicU64::new(0),
            answered_any: AtomicBool::new(false),
            w: self,
        };
        let mut progress = Progress::new(run.w.opts.progress, "process", total_rows);
        progress.start_at(rows_before);
        let stop_ticker = AtomicBool::new(false);
        thread::scope(|scope| {
            let ticker = scope.spawn(|| run.tick(&mut progress, &stop_ticker));
            let feeder = scope.spawn(|| run.feed());
            let slots: Vec<_> = (1..=jobs)
                .map(|i| {
                    let run = &run;
                    scope.spawn(move || run.slot(i))
                })
                .collect();
            let _ = feeder.join();
            for s in slots {
                let _ = s.join();
            }
            stop_ticker.store(true, Ordering::SeqCst);
            let _ = ticker.join();
        });
        // What is written is kept, whatever stopped the run.
        for (j, live) in run.live.iter().enumerate() {
            if let Some(chunk) = live.get() {
                if let Err(e) = chunk.checkpoint(Duration::ZERO, &run.rejects[run.w.pending[j].0]) {
                    run.fail(chunk.work, chunk.number, e, None);
                }
            }
        }
        Ok(run.outcome())
    }
}

impl<'a> Run<'a> {
    /// One worker slot (1-based `id`).
    fn slot(&self, id: usize) {
        let mut worker: Box<dyn RowWorker + '_> = match self.w.worker {
            MapWorker::Command(cmd) => Box::new(CommandWorker::new(
                id,
                cmd,
                self.w.out.root(),
                self.starved.clone(),
            )),
            MapWorker::Transform(t) => Box::new(TransformWorker::new(t)),
        };
        let mut fruitless = 0u32;
        while let Some(batch) = self.queue.take() {
            let Some(chunk) = self.live[batch.job].get() else {
                self.queue.settled();
                continue;
            };
            let (started, starts) = (Instant::now(), worker.starts());
            let mut answers = Vec::with_capacity(batch.rows.len());
            let result = worker.answer(&batch, &chunk.header, &mut answers);
            // A worker's start-up is not the rows' time.
            if worker.starts() == starts {
                self.observe(started.elapsed(), answers.len());
            }
            match result {
                Ok(()) => {
                    fruitless = 0;
                    self.deliver(batch, answers, id);
                }
                Err(Failure::Died { how }) => {
                    fruitless = if answers.is_empty() { fruitless + 1 } else { 0 };
                    if fruitless >= FRUITLESS_DEATHS {
                        let e = anyhow!("worker {id} ended {fruitless} times in a row without answering a row; last: it {how}");
                        self.fail(
                            chunk.work,
                            chunk.number,
                            e,
                            worker.stderr_path().map(PathBuf::from),
                        );
                    }
                    self.died(batch, answers, &how, id);
                }
                Err(Failure::Fatal(e)) => {
                    let e = e.context(chunk.label());
                    self.fail(
                        chunk.work,
                        chunk.number,
                        e,
                        worker.stderr_path().map(PathBuf::from),
                    );
                }
            }
            self.queue.settled();
        }
        if let Some(p) = worker.stderr_path() {
            let p = p.to_path_buf();
            if !self.queue.stopped() {
                if let Err(e) = worker.finish() {
                    self.fail_run(e, Some(p.clone()));
                }
            }
            self.note_stderr(p);
        }
        self.totals
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .worker_starts += worker.starts();
        drop(worker);
    }

    /// A fully or partly answered batch goes to its chunk.
    fn deliver(&self, batch: Batch, answers: Vec<Answer>, worker: usize) {
        if answers.is_empty() {
            return;
        }
        self.answered_any.store(true, Ordering::SeqCst);
        let Some(chunk) = self.live[batch.job].get() else {
            return;
        };
        let rejects = &self.rejects[self.w.pending[batch.job].0];
        let answered = Answered {
            rows: batch.rows,
            answers,
            worker,
        };
        match chunk.deliver(batch.first, answered, rejects) {
            Ok(done) => self.committed(batch.job, chunk, done),
            Err(e) => self.fail(chunk.work, chunk.number, e, None),
        }
    }

    /// Rows written: counted, their memory freed, the reject limit
    /// checked, and the chunk finished if it is complete.
    fn committed(&self, job: usize, chunk: &LiveChunk<'_>, done: Committed) {
        self.queue.release(done.bytes);
        let rejects_total = {
            let mut t = self.totals.lock().unwrap_or_else(|p| p.into_inner());
            t.rows_answered += done.answered;
            t.rows_emitted += done.emitted;
            t.rows_rejected += done.rejected;
            t.rows_dropped += done.dropped;
            self.rejects_before + t.rows_rejected
        };
        if done.rejected > 0 && rejects_total > self.w.map.max_rejects {
            let max = self.w.map.max_rejects;
            let path = &self.rejects[self.w.pending[job].0].path;
            let e = anyhow!(
                "{rejects_total} rows rejected, more than --max-rejects {max}: see {}",
                path.display()
            );
            self.fail(chunk.work, chunk.number, e, None);
            return;
        }
        self.finish_chunk(chunk, job);
    }

    /// The chunk, if complete, becomes its output chunk and is recorded.
    pub(super) fn finish_chunk(&self, chunk: &LiveChunk<'_>, job: usize) {
        let rejects = &self.rejects[self.w.pending[job].0];
        let finished = match chunk.finish_if_complete(self.w.level, rejects) {
            Ok(Some(f)) => f,
            Ok(None) => return,
            Err(e) => return self.fail(chunk.work, chunk.number, e, None),
        };
        let (columns, rows_in, stats) = finished;
        let rows_out = stats.rows;
        let done = ProcessedChunk {
            number: chunk.number,
            columns,
            rows_in,
            stats,
        };
        if let Err(e) = record_done(
            self.w.out,
            chunk.work,
            done,
            self.w.opts.announce.as_deref(),
        ) {
            return self.fail(chunk.work, chunk.number, e, None);
        }
        Partial::remove(&chunk.work.out_dir, chunk.number);
        let mut n = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        n.chunks += 1;
        n.rows_in += rows_in;
        n.rows_out += rows_out;
    }

    /// A worker died with the rows of `batch` from `answers.len()` on
    /// unanswered: those answered go on; the first unanswered row (the
    /// suspect) is sent again alone, or rejected once it has killed
    /// `attempts` workers; the others are sent again.
    fn died(&self, mut batch: Batch, answers: Vec<Answer>, how: &str, worker: usize) {
        let k = answers.len();
        let prior = if k == 0 { batch.attempts } else { 0 };
        let mut suspect = batch.split_off(k);
        self.deliver(batch, answers, worker);
        if suspect.rows.is_empty() {
            return;
        }
        let rest = suspect.split_off(1);
        let redone = suspect.rows.len() + rest.rows.len();
        self.totals
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .rows_redone += redone as u64;
        if !rest.rows.is_empty() {
            self.queue.retry(rest);
        }
        suspect.attempts = prior + 1;
        // Before any row is answered a death says nothing of the row (the
        // command may not start at all): it is only sent again.
        if suspect.attempts >= self.w.map.attempts && self.answered_any.load(Ordering::SeqCst) {
            let reason = format!(
                "{} workers died on this row; the last {how}",
                suspect.attempts
            );
            self.deliver(suspect, vec![Answer::Reject(reason)], worker);
        } else {
            self.queue.retry(suspect);
        }
    }

    /// Averages how long a row takes, for the batch size.
    fn observe(&self, took: Duration, rows: usize) {
        if rows == 0 {
            return;
        }
        let now = (took.as_nanos() / rows as u128).min(u64::MAX as u128) as u64;
        let old = self.ns_per_row.load(Ordering::Relaxed);
        let avg = if old == 0 { now } else { (old * 3 + now) / 4 };
        self.ns_per_row.store(avg.max(1), Ordering::Relaxed);
    }

    /// A failure that stops the run, recorded against a chunk.
    pub(super) fn fail(
        &self,
        work: &TableWork,
        chunk: u32,
        e: anyhow::Error,
        stderr: Option<PathBuf>,
    ) {
        // Not printed here: the run stops, and its summary says why.
        let reason = format!("{e:#}");
        self.queue.stop();
        let mut f = self.failed.lock().unwrap_or_else(|p| p.into_inner());
        if !f.iter().any(|x| x.reason == reason) {
            f.push(FailedChunk {
                table: work.label(),
                chunk,
                reason,
                stderr,
            });
        }
    }

    /// A failure of a worker that is no chunk's.
    fn fail_run(&self, e: anyhow::Error, stderr: Option<PathBuf>) {
        self.queue.stop();
        self.failed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(FailedChunk {
                table: String::new(),
                chunk: 0,
                reason: format!("{e:#}"),
                stderr,
            });
    }

    fn note_stderr(&self, path: PathBuf) {
        if std::fs::metadata(&path).is_ok_and(|m| m.len() > 0) {
            let mut t = self.totals.lock().unwrap_or_else(|p| p.into_inner());
            t.worker_stderr.push(path);
        }
    }

    /// Every 100 ms: tells the workers whether the queue is starved;
    /// checkpoints the chunks that are due; shows progress.
    fn tick(&self, progress: &mut Progress, stop: &AtomicBool) {
        while !stop.load(Ordering::SeqCst) {
            thread::sleep(Duration::from_millis(100));
            self.starved.store(self.queue.starved(), Ordering::SeqCst);
            for (j, live) in self.live.iter().enumerate() {
                if let Some(chunk) = live.get() {
                    let rejects = &self.rejects[self.w.pending[j].0];
                    match chunk.checkpoint(self.w.map.checkpoint_interval, rejects) {
                        Ok(Some(took)) => {
                            let mut t = self.totals.lock().unwrap_or_else(|p| p.into_inner());
                            t.checkpoints += 1;
                            t.checkpoint_seconds += took.as_secs_f64();
                        }
                        Ok(None) => {}
                        Err(e) => self.fail(chunk.work, chunk.number, e, None),
                    }
                }
            }
            let (answered, rejected) = {
                let t = self.totals.lock().unwrap_or_else(|p| p.into_inner());
                (t.rows_from_earlier_runs + t.rows_answered, t.rows_rejected)
            };
            progress.set_note(format!(
                "{} workers, {} rejected",
                self.w.opts.jobs,
                self.rejects_before + rejected
            ));
            progress.set(answered, 0);
        }
        progress.finish();
    }

    fn outcome(self) -> (Outcome, MapSummary) {
        let mut totals = self.totals.into_inner().unwrap_or_else(|p| p.into_inner());
        totals.rejects_total = self.rejects_before + totals.rows_rejected;
        totals.rejects_files = self
            .rejects
            .iter()
            .map(|r| r.path.clone())
            .filter(|p| std::fs::metadata(p).is_ok_and(|m| m.len() > 0))
            .collect();
        totals.worker_stderr.sort();
        let mut failed = self.failed.into_inner().unwrap_or_else(|p| p.into_inner());
        failed.sort_by(|a, b| (&a.table, a.chunk).cmp(&(&b.table, b.chunk)));
        (
            Outcome {
                counts: self.counts.into_inner().unwrap_or_else(|p| p.into_inner()),
                failed,
            },
            totals,
        )
    }
}

/// Every table's rejects, cut back to the rows its chunks' checkpoints
/// count; gives them and how many rejects they hold.
fn resume_rejects(tables: &[TableWork]) -> Result<(Vec<Rejects>, u64)> {
    let mut all = Vec::new();
    let mut count = 0;
    for work in tables {
        let done: Vec<u32> = work
            .done
            .lock()
            .map_err(|_| anyhow!("a worker panicked"))?
            .keys()
            .copied()
            .collect();
        let mut answered = std::collections::BTreeMap::new();
        for &number in &done {
            // Killed between recording a chunk and removing its pieces.
            Partial::remove(&work.out_dir, number);
        }
        for c in &work.input.chunks {
            let rows = last_checkpoint(&work.out_dir, c.number)?.map_or(0, |cp| cp.rows_answered);
            answered.insert(c.number, rows);
        }
        let (r, n) = Rejects::resume(&work.out_dir, |chunk, row| {
            done.contains(&chunk) || answered.get(&chunk).is_some_and(|&a| row <= a)
        })?;
        all.push(r);
        count += n;
    }
    Ok((all, count))
}

/// Rows answered by earlier runs: finished chunks, and the checkpoints of
/// the pending ones.
fn rows_before(tables: &[TableWork], pending: &[(usize, usize)]) -> Result<u64> {
    let mut rows = 0;
    for (t, work) in tables.iter().enumerate() {
        for (c, chunk) in work.input.chunks.iter().enumerate() {
            if pending.contains(&(t, c)) {
                rows +=
                    last_checkpoint(&work.out_dir, chunk.number)?.map_or(0, |cp| cp.rows_answered);
            } else {
                rows += chunk.written.as_ref().map_or(0, |w| w.rows);
            }
        }
    }
    Ok(rows)
}
