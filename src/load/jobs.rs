//! The jobs: `--jobs` connections load the chunks of every table side by
//! side, each taking whole chunks (see `Schedule::take`), while the control
//! connection finishes each table as soon as its last chunk commits. The
//! first error stops every job after its current chunk.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::Duration;

use anyhow::{Context, Result};
use crossbeam_channel::{unbounded, Receiver, RecvTimeoutError, Sender};
use mysql::prelude::Queryable;
use mysql::Conn;

use crate::dump::{ChunkRecord, DumpDir, Growing};
use crate::progress::Progress;

use super::loader::{Loader, LoaderSettings, LoadingTable};
use super::schedule::{ChunksOutcome, Schedule};
use super::table::{finish_target, relock_target};
use super::throttle::Throttle;
use super::{locked, poisoned, LoadOptions};

/// How often the control connection says something while the jobs load.
const KEEPALIVE: Duration = Duration::from_secs(300);

/// How the jobs run.
pub(super) struct Jobs<'a> {
    /// Connections loading at once.
    pub count: usize,
    /// The dump's writer, when the dump is still being written (`copy`).
    pub follow: Option<&'a Growing>,
    pub loader: LoaderSettings<'a>,
    /// `--max-replica-lag`: asked before each chunk.
    pub throttle: Option<&'a Throttle>,
}

impl<'a> Jobs<'a> {
    pub(super) fn of(opts: &'a LoadOptions) -> Jobs<'a> {
        Jobs {
            count: opts.jobs,
            follow: opts.follow.as_deref(),
            loader: LoaderSettings::of(opts),
            throttle: None,
        }
    }
}

/// What the jobs and the control connection share while the chunks load.
struct Shared<'a> {
    dir: &'a DumpDir,
    tables: &'a [LoadingTable<'a>],
    jobs: &'a Jobs<'a>,
    progress: &'a Mutex<Progress>,
    schedule: Mutex<Schedule>,
    abort: AtomicBool,
    first_error: Mutex<Option<anyhow::Error>>,
}

/// Loads the pending chunks of every table (`pending[t]` for `tables[t]`)
/// and finishes each table on `control` as its last chunk commits; what
/// each table's chunks did.
pub(super) fn load_chunks(
    control: &mut Conn,
    dir: &DumpDir,
    tables: &[LoadingTable],
    pending: Vec<Vec<ChunkRecord>>,
    jobs: &Jobs,
    progress: &Mutex<Progress>,
) -> Result<Vec<ChunksOutcome>> {
    let total: usize = pending.iter().map(Vec::len).sum();
    let empty: Vec<usize> = (0..tables.len())
        .filter(|&t| pending[t].is_empty())
        .collect();
    let schedule = Schedule::new(
        tables
            .iter()
            .zip(pending)
            .map(|(table, chunks)| (chunks, table.plan.desc.chunk_rows))
            .collect(),
    );
    let shared = Shared {
        dir,
        tables,
        jobs,
        progress,
        schedule: Mutex::new(schedule),
        abort: AtomicBool::new(false),
        first_error: Mutex::new(None),
    };
    let (finished_tx, finished_rx) = unbounded::<usize>();
    for t in empty {
        let _ = finished_tx.send(t);
    }
    thread::scope(|scope| {
        for n in 0..jobs.count.min(total) {
            let finished_tx = finished_tx.clone();
            let shared = &shared;
            scope.spawn(move || {
                if let Err(e) = shared.job(n, &finished_tx) {
                    shared.fail(e);
                }
            });
        }
        drop(finished_tx);
        shared.finish_tables(control, &finished_rx);
    });
    if let Some(e) = shared.first_error.into_inner().ok().flatten() {
        return Err(e);
    }
    Ok(shared
        .schedule
        .into_inner()
        .map_err(|_| poisoned())?
        .into_outcomes())
}

impl Shared<'_> {
    /// Stops every job after its current chunk; the first error is the one
    /// the load returns.
    fn fail(&self, e: anyhow::Error) {
        self.abort.store(true, Ordering::SeqCst);
        if let Ok(mut slot) = self.first_error.lock() {
            slot.get_or_insert(e);
        }
    }

    /// Job `n`: its own connection (through node `n` of a cluster given
    /// with several `--to`), loading chunks until none is left or the load
    /// fails. Sends each table whose last chunk it committed.
    fn job(&self, n: usize, finished: &Sender<usize>) -> Result<()> {
        let mut loader = Loader::connect(self.jobs.loader.of_job(n))?;
        while !self.abort.load(Ordering::SeqCst) {
            if let Some(throttle) = self.jobs.throttle {
                throttle.wait_for_replicas(&self.abort)?;
            }
            let Some((t, chunk)) = self.next_chunk()? else {
                return Ok(());
            };
            let table = &self.tables[t];
            let loaded = loader.load_with_retries(table, &chunk).with_context(|| {
                format!(
                    "loading chunk {:06} of {}",
                    chunk.number,
                    table.plan.label()
                )
            })?;
            if let Ok(mut p) = self.progress.lock() {
                p.add(loaded.rows, loaded.bytes);
            }
            if locked(&self.schedule)?.done(t, &loaded) {
                let _ = finished.send(t);
            }
        }
        Ok(())
    }

    /// The next chunk for a job, once it is written; None when none is left.
    fn next_chunk(&self) -> Result<Option<(usize, ChunkRecord)>> {
        let Some(growing) = self.jobs.follow else {
            return Ok(locked(&self.schedule)?.take_chunk());
        };
        let what = || match self.schedule.lock().ok().and_then(|s| s.waiting_for()) {
            Some((t, number)) => format!("chunk {number:06} of {}", self.tables[t].plan.label()),
            None => "the next chunk".into(),
        };
        growing.wait_for(what, || self.look_for_written_chunk())
    }

    /// One look of a job waiting on a dump being written: Some(chunk), or
    /// Some(None) when every chunk is handed out (or the load failed); None
    /// to wait for the writer.
    fn look_for_written_chunk(&self) -> Result<Option<Option<(usize, ChunkRecord)>>> {
        if self.abort.load(Ordering::SeqCst) {
            return Ok(Some(None));
        }
        let mut s = locked(&self.schedule)?;
        if s.all_handed_out() {
            return Ok(Some(None));
        }
        if let Some(found) = s.take_chunk() {
            return Ok(Some(Some(found)));
        }
        let waiting: Vec<usize> = s.waiting().collect();
        for t in waiting {
            if let Some(now) = self.dir.written_chunks(&self.tables[t].plan.entry)? {
                s.refresh(t, &now);
            }
        }
        Ok(s.take_chunk().map(Some))
    }

    /// The control connection's part: finishes each table `finished` names,
    /// and keeps the session alive between them. Ends when every job has
    /// returned (each holds a sender).
    fn finish_tables(&self, control: &mut Conn, finished: &Receiver<usize>) {
        let mut unfinished: Vec<bool> = vec![true; self.tables.len()];
        loop {
            let t = match finished.recv_timeout(KEEPALIVE) {
                Ok(t) => t,
                Err(RecvTimeoutError::Timeout) => {
                    // Chunks can be minutes or hours apart (`copy` loads them
                    // as a slow --exec writes them): keep the session, and
                    // with it the tables' locks, from reaching wait_timeout.
                    let _ = control.query_drop("DO 1");
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            };
            if self.abort.load(Ordering::SeqCst) {
                continue;
            }
            let result = self.finish_loaded_table(control, t, &unfinished);
            unfinished[t] = false;
            if let Err(e) = result {
                self.fail(e.context(format!("finishing {}", self.tables[t].plan.label())));
            }
        }
    }

    /// Finishes table `t`, all of whose chunks have committed.
    fn finish_loaded_table(&self, control: &mut Conn, t: usize, unfinished: &[bool]) -> Result<()> {
        // The control connection sat idle while chunks loaded; a short
        // wait_timeout may have closed it, and with it the locks.
        if self.jobs.loader.session.ensure_alive(control)? {
            for (table, &open) in self.tables.iter().zip(unfinished) {
                if open {
                    relock_target(control, table.plan)?;
                }
            }
        }
        let table = &self.tables[t];
        let mut journal = locked(&table.journal)?;
        finish_target(control, table.plan, &mut journal)
    }
}
