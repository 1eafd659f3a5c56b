//! Hands out the batches of rows to the workers: fresh batches from the
//! feeder, and before them the rows of a worker that died, sent again.
//!
//! Memory stays flat: the feeder waits while the rows given out and not yet
//! written to their chunk (in a worker, or waiting for an earlier row) pass
//! a byte budget. The queue also says when it is *starved* (nothing left to
//! give): a worker that holds rows then has its input closed, so that one
//! that owes an answer it will never write (it wrote one line too few) ends
//! and is found out, instead of everyone waiting for it.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::dialect::Field;

/// Rows of one chunk given to one worker at a time.
#[derive(Debug)]
pub struct Batch {
    /// The chunk's index in the run's list of pending chunks.
    pub job: usize,
    /// The index of its first row in the chunk (0-based).
    pub first: u64,
    pub rows: Vec<Vec<Field>>,
    /// How many workers died on its first row so far.
    pub attempts: u32,
}

impl Batch {
    pub fn bytes(&self) -> usize {
        rows_bytes(&self.rows)
    }

    /// Splits off the rows from `at` on into a batch of their own.
    pub fn split_off(&mut self, at: usize) -> Batch {
        Batch {
            job: self.job,
            first: self.first + at as u64,
            rows: self.rows.split_off(at),
            attempts: 0,
        }
    }
}

/// The bytes a batch's rows hold, as the budget counts them.
pub fn rows_bytes(rows: &[Vec<Field>]) -> usize {
    rows.iter()
        .map(|r| {
            16 + r
                .iter()
                .map(|f| 8 + f.as_ref().map_or(0, Vec::len))
                .sum::<usize>()
        })
        .sum()
}

/// After how long without progress a feeder stuck on the budget counts as
/// starved (a worker holds the row everything waits for).
const STALL: Duration = Duration::from_secs(5);

#[derive(Debug)]
struct State {
    retries: VecDeque<Batch>,
    fresh: VecDeque<Batch>,
    /// Bytes given out (or queued) and not yet written to their chunk.
    in_use: usize,
    /// Batches taken and not yet settled.
    outstanding: usize,
    input_done: bool,
    stopped: bool,
    feeder_waiting_since: Option<Instant>,
    last_release: Instant,
}

pub struct Queue {
    state: Mutex<State>,
    /// Workers wait on it for a batch (or the end).
    work: Condvar,
    /// The feeder waits on it for room (one condvar each, so that a row
    /// answered does not wake every worker).
    room: Condvar,
    budget: usize,
    /// Fresh batches waiting at most: the feeder stays close behind the
    /// workers, so each batch is sized with what the last ones took.
    max_queued: usize,
}

impl Queue {
    pub fn new(budget: usize, max_queued: usize) -> Queue {
        Queue {
            state: Mutex::new(State {
                retries: VecDeque::new(),
                fresh: VecDeque::new(),
                in_use: 0,
                outstanding: 0,
                input_done: false,
                stopped: false,
                feeder_waiting_since: None,
                last_release: Instant::now(),
            }),
            work: Condvar::new(),
            room: Condvar::new(),
            budget,
            max_queued: max_queued.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The feeder's: queues a batch, waiting while the budget is spent
    /// (one batch always fits, however big). False once the run stopped.
    pub fn push(&self, batch: Batch) -> bool {
        let bytes = batch.bytes();
        let mut s = self.lock();
        while !s.stopped
            && (s.fresh.len() >= self.max_queued
                || (s.in_use > 0 && s.in_use + bytes > self.budget))
        {
            s.feeder_waiting_since.get_or_insert_with(Instant::now);
            s = self
                .room
                .wait_timeout(s, Duration::from_millis(200))
                .map(|(s, _)| s)
                .unwrap_or_else(|p| p.into_inner().0);
        }
        s.feeder_waiting_since = None;
        if s.stopped {
            return false;
        }
        s.in_use += bytes;
        s.fresh.push_back(batch);
        self.work.notify_one();
        true
    }

    /// A worker's: rows to send again, before any fresh batch. Their bytes
    /// are still counted from when they were first queued.
    pub fn retry(&self, batch: Batch) {
        let mut s = self.lock();
        s.retries.push_back(batch);
        self.work.notify_one();
    }

    /// The next batch for a worker; `None` when every row is settled and
    /// no more will come, or the run stopped.
    pub fn take(&self) -> Option<Batch> {
        let mut s = self.lock();
        loop {
            if s.stopped {
                return None;
            }
            if let Some(b) = s.retries.pop_front().or_else(|| s.fresh.pop_front()) {
                s.outstanding += 1;
                self.room.notify_one();
                return Some(b);
            }
            if s.input_done && s.outstanding == 0 {
                return None;
            }
            s = self.work.wait(s).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// A worker is done with a batch it took (its rows delivered, or what
    /// is left of them queued again with [`Queue::retry`]).
    pub fn settled(&self) {
        let mut s = self.lock();
        s.outstanding = s.outstanding.saturating_sub(1);
        if s.outstanding == 0 && s.input_done {
            // The end, for every worker waiting.
            self.work.notify_all();
        }
    }

    /// Rows written to their chunk: their bytes are free again.
    pub fn release(&self, bytes: usize) {
        let mut s = self.lock();
        s.in_use = s.in_use.saturating_sub(bytes);
        s.last_release = Instant::now();
        self.room.notify_one();
    }

    /// The feeder read every chunk.
    pub fn input_done(&self) {
        self.lock().input_done = true;
        self.work.notify_all();
    }

    /// Stops the run: nothing more is given out.
    pub fn stop(&self) {
        self.lock().stopped = true;
        self.work.notify_all();
        self.room.notify_all();
    }

    pub fn stopped(&self) -> bool {
        self.lock().stopped
    }

    /// Nothing is left to give out, nor will be until a worker answers.
    pub fn starved(&self) -> bool {
        let s = self.lock();
        starved(
            s.retries.is_empty() && s.fresh.is_empty(),
            s.input_done || s.stopped,
            s.feeder_waiting_since.map(|t| t.elapsed()),
            s.last_release.elapsed(),
        )
    }
}

/// Starved: the queues are empty and the feeder has nothing more, or has
/// waited on the budget for a while with no row written meanwhile.
fn starved(
    empty: bool,
    input_done: bool,
    feeder_waiting: Option<Duration>,
    since_release: Duration,
) -> bool {
    empty && (input_done || feeder_waiting.is_some_and(|w| w >= STALL && since_release >= STALL))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(job: usize, first: u64, rows: usize) -> Batch {
        Batch {
            job,
            first,
            rows: vec![vec![Some(vec![b'x'; 100])]; rows],
            attempts: 0,
        }
    }

    #[test]
    fn retries_go_first_and_the_end_comes_when_all_is_settled() {
        let q = Queue::new(1 << 20, 8);
        assert!(q.push(batch(0, 0, 2)));
        q.retry(batch(0, 7, 1));
        assert_eq!(q.take().unwrap().first, 7);
        assert_eq!(q.take().unwrap().first, 0);
        q.input_done();
        // Two batches outstanding: not the end yet; a retry may come.
        q.settled();
        q.retry(batch(0, 1, 1));
        assert_eq!(q.take().unwrap().first, 1);
        q.settled();
        q.settled();
        assert!(q.take().is_none());
    }

    #[test]
    fn the_feeder_waits_on_the_budget_until_rows_are_written() {
        let q = std::sync::Arc::new(Queue::new(300, 8));
        let one = batch(0, 0, 2).bytes();
        assert!(q.push(batch(0, 0, 2)));
        let q2 = q.clone();
        let feeder = std::thread::spawn(move || q2.push(batch(0, 2, 2)));
        std::thread::sleep(Duration::from_millis(50));
        assert!(!feeder.is_finished(), "the budget is spent: it waits");
        q.release(one);
        assert!(feeder.join().unwrap());
        // A batch bigger than the budget still goes when nothing is in use.
        let q = Queue::new(10, 8);
        assert!(q.push(batch(0, 0, 5)));
        // At most `max_queued` fresh batches wait.
        let q2 = std::sync::Arc::new(Queue::new(1 << 20, 1));
        assert!(q2.push(batch(0, 0, 1)));
        let q3 = q2.clone();
        let feeder = std::thread::spawn(move || q3.push(batch(0, 1, 1)));
        std::thread::sleep(Duration::from_millis(50));
        assert!(!feeder.is_finished());
        assert_eq!(q2.take().unwrap().first, 0);
        assert!(feeder.join().unwrap());
        q.stop();
        assert!(!q.push(batch(0, 5, 1)));
        assert!(q.take().is_none());
    }

    #[test]
    fn starved_when_nothing_is_left_or_the_feeder_is_stuck_behind_one_row() {
        let s = Duration::from_secs;
        assert!(starved(true, true, None, s(0)));
        assert!(!starved(false, true, None, s(0)));
        assert!(!starved(true, false, None, s(60)));
        assert!(!starved(true, false, Some(s(1)), s(60)));
        assert!(!starved(true, false, Some(s(60)), s(1)));
        assert!(starved(true, false, Some(s(6)), s(6)));
    }

    #[test]
    fn a_split_batch_keeps_its_rows_and_their_places() {
        let mut b = batch(3, 10, 5);
        b.attempts = 2;
        let rest = b.split_off(2);
        assert_eq!((b.first, b.rows.len(), b.attempts), (10, 2, 2));
        assert_eq!(
            (rest.job, rest.first, rest.rows.len(), rest.attempts),
            (3, 12, 3, 0)
        );
        assert_eq!(b.bytes() + rest.bytes(), batch(3, 10, 5).bytes());
    }
}
