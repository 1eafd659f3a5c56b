//! Following a dump while another thread writes it: [`Growing`] carries the
//! writer's signals to the reader, and [`first_chunks_first`] is the order in
//! which a followed dump is written.

use std::sync::{Condvar, Mutex};
use std::time::Duration;

use anyhow::{anyhow, bail, Result};

/// `(table, chunk)` pairs in table order, reordered so that the first chunk
/// of every table comes first: a reader following the dump (`copy`) learns
/// every table's columns early, and can check them all before loading any.
pub fn first_chunks_first(pending: Vec<(usize, usize)>) -> Vec<(usize, usize)> {
    let mut seen = std::collections::BTreeSet::new();
    let (first, rest): (Vec<_>, Vec<_>) = pending.into_iter().partition(|&(t, _)| seen.insert(t));
    first.into_iter().chain(rest).collect()
}

/// What the writer of a [`Growing`] dump is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WriterState {
    Writing,
    Finished,
    /// The reader gave up: the writer should not start more chunks.
    Abandoned,
}

/// A dump that another thread of this process is writing while this one
/// reads it (`copy` loads chunks as they are exported and processed). The
/// writer calls `changed` after each chunk and `finish` when it returns; the
/// reader waits in `wait_for`, and calls `abandon` if it stops early.
#[derive(Debug)]
pub struct Growing {
    /// The writer's state, and a count of the signals so far.
    state: Mutex<(WriterState, u64)>,
    signal: Condvar,
}

/// How often a waiting reader looks again without a signal (the writer
/// signals finished chunks; files such as table.json are found by looking).
const GROWING_POLL: Duration = Duration::from_millis(100);

impl Default for Growing {
    fn default() -> Self {
        Growing {
            state: Mutex::new((WriterState::Writing, 0)),
            signal: Condvar::new(),
        }
    }
}

impl Growing {
    fn signal(&self, change: impl FnOnce(&mut WriterState)) {
        if let Ok(mut state) = self.state.lock() {
            change(&mut state.0);
            state.1 += 1;
        }
        self.signal.notify_all();
    }

    /// Something new is on disk.
    pub fn changed(&self) {
        self.signal(|_| {});
    }

    /// The writer returned (done or failed): nothing more will appear.
    pub fn finish(&self) {
        self.signal(|w| {
            if *w == WriterState::Writing {
                *w = WriterState::Finished;
            }
        });
    }

    /// The reader stopped: the writer need not go on.
    pub fn abandon(&self) {
        self.signal(|w| *w = WriterState::Abandoned);
    }

    pub fn abandoned(&self) -> bool {
        self.state
            .lock()
            .map_or(true, |s| s.0 == WriterState::Abandoned)
    }

    /// Calls `look` until it finds what it looks for, waiting for the writer
    /// between calls. Fails, naming `what`, when the writer has stopped and
    /// a last look still finds nothing.
    pub fn wait_for<T>(
        &self,
        what: impl Fn() -> String,
        mut look: impl FnMut() -> Result<Option<T>>,
    ) -> Result<T> {
        let poisoned = || anyhow!("a writer thread panicked");
        loop {
            let (writer, seen) = *self.state.lock().map_err(|_| poisoned())?;
            if let Some(found) = look()? {
                return Ok(found);
            }
            if writer != WriterState::Writing {
                bail!("{} was never written: its writer stopped", what());
            }
            let state = self.state.lock().map_err(|_| poisoned())?;
            if state.1 == seen {
                drop(
                    self.signal
                        .wait_timeout(state, GROWING_POLL)
                        .map_err(|_| poisoned())?,
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reader_waits_for_the_writer_and_fails_when_it_stops_without_the_thing() {
        let growing = std::sync::Arc::new(Growing::default());
        let found = std::sync::Mutex::new(None);
        std::thread::scope(|s| {
            s.spawn(|| {
                std::thread::sleep(Duration::from_millis(50));
                *found.lock().unwrap() = Some(7);
                growing.changed();
            });
            let got = growing.wait_for(|| "seven".into(), || Ok(*found.lock().unwrap()));
            assert_eq!(got.unwrap(), 7);
        });
        growing.finish();
        let err = growing
            .wait_for(|| "chunk 000008 of d.t".into(), || Ok(None::<u32>))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "chunk 000008 of d.t was never written: its writer stopped"
        );
        assert!(!growing.abandoned());
        growing.abandon();
        assert!(growing.abandoned());
    }

    #[test]
    fn a_followed_dump_writes_the_first_chunk_of_every_table_first() {
        let pending = vec![(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (2, 3)];
        assert_eq!(
            first_chunks_first(pending),
            vec![(0, 0), (1, 0), (2, 3), (0, 1), (0, 2), (1, 1)]
        );
    }
}
