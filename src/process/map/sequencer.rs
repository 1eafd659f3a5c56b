//! Puts the answered batches of a chunk back in input order: batches of
//! rows come back from N workers in any order (and a batch may come back
//! split, after a worker died in its middle); each is released once every
//! row before it has been.

use std::collections::BTreeMap;

use anyhow::{bail, Result};

/// A reorder buffer over the rows of one chunk, holding `T`s that each
/// cover a run of rows.
#[derive(Debug)]
pub struct Sequencer<T> {
    /// The first row not released yet.
    next: u64,
    /// Waiting: first row -> (rows covered, item).
    waiting: BTreeMap<u64, (u64, T)>,
}

impl<T> Sequencer<T> {
    /// Rows before `next` were released by an earlier run.
    pub fn new(next: u64) -> Sequencer<T> {
        Sequencer {
            next,
            waiting: BTreeMap::new(),
        }
    }

    /// The first row not released yet.
    pub fn next(&self) -> u64 {
        self.next
    }

    /// An answered run of `rows` rows starting at `first`. A run that was
    /// already released or overlaps a waiting one is a bug of the caller.
    pub fn insert(&mut self, first: u64, rows: u64, item: T) -> Result<()> {
        let overlaps_next = self
            .waiting
            .range(first..)
            .next()
            .is_some_and(|(&f, _)| f < first + rows);
        let overlaps_prev = self
            .waiting
            .range(..first)
            .next_back()
            .is_some_and(|(&f, (n, _))| f + n > first);
        if first < self.next || overlaps_next || overlaps_prev {
            bail!("rows {first}..{} were answered twice", first + rows);
        }
        self.waiting.insert(first, (rows, item));
        Ok(())
    }

    /// The next run in order, if it has been answered.
    pub fn pop_ready(&mut self) -> Option<(u64, T)> {
        let (rows, item) = self.waiting.remove(&self.next)?;
        let first = self.next;
        self.next += rows;
        Some((first, item))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_come_out_in_input_order_whatever_order_they_came_in() {
        let mut s = Sequencer::new(10);
        s.insert(14, 3, "c").unwrap();
        s.insert(12, 2, "b").unwrap();
        assert_eq!(s.pop_ready(), None);
        s.insert(10, 2, "a").unwrap();
        assert_eq!(s.pop_ready(), Some((10, "a")));
        assert_eq!(s.pop_ready(), Some((12, "b")));
        assert_eq!(s.pop_ready(), Some((14, "c")));
        assert_eq!(s.pop_ready(), None);
        assert_eq!(s.next(), 17);
    }

    #[test]
    fn a_batch_split_by_a_dead_worker_fills_the_same_rows() {
        let mut s = Sequencer::new(0);
        // Rows 0..8 given out; the worker died after 3: the first 3, the
        // suspect row alone, and the rest come back separately.
        s.insert(4, 4, "rest").unwrap();
        s.insert(0, 3, "answered").unwrap();
        assert_eq!(s.pop_ready(), Some((0, "answered")));
        assert_eq!(s.pop_ready(), None);
        s.insert(3, 1, "suspect").unwrap();
        assert_eq!(s.pop_ready(), Some((3, "suspect")));
        assert_eq!(s.pop_ready(), Some((4, "rest")));
    }

    #[test]
    fn rows_answered_twice_are_refused() {
        let mut s = Sequencer::new(5);
        assert!(s.insert(3, 2, ()).is_err());
        s.insert(8, 4, ()).unwrap();
        assert!(s.insert(10, 1, ()).is_err());
        assert!(s.insert(6, 3, ()).is_err());
        assert!(s.insert(5, 3, ()).is_ok());
    }
}
