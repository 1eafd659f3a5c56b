//! Which chunk a job loads next: every table's chunks in key order, the jobs
//! spread over the tables, and what each table has done so far.

use std::cmp::Reverse;

use crate::dump::{ChunkRecord, TableDescription};

/// What loading one chunk did.
pub(super) struct ChunkLoaded {
    pub rows: u64,
    pub bytes: u64,
    pub duplicates: u64,
    pub retries: u64,
}

/// What loading a table's chunks did, in this run.
#[derive(Default)]
pub(super) struct ChunksOutcome {
    pub chunks: u64,
    pub rows: u64,
    pub duplicates: u64,
    pub retries: u64,
}

/// Which chunk a job loads next, and what each table has done.
pub(super) struct Schedule {
    tables: Vec<TableQueue>,
}

/// One table's chunks, as the schedule hands them out.
#[derive(Default)]
struct TableQueue {
    /// The chunks to load, in key order.
    chunks: Vec<ChunkRecord>,
    /// How many of `chunks` are written (all of them, unless the dump is
    /// still being written: see `Schedule::refresh`).
    ready: usize,
    /// Rows of a chunk not written yet (the planned chunk size).
    planned_rows: u64,
    /// Position in `chunks` of the next chunk to hand out.
    next: usize,
    /// Rows of the chunks not handed out yet (planned rows for those not
    /// written yet).
    rows_to_hand_out: u64,
    /// Jobs loading one of its chunks right now.
    active: usize,
    outcome: ChunksOutcome,
}

impl TableQueue {
    fn rows_of(&self, chunk: &ChunkRecord) -> u64 {
        chunk.written.as_ref().map_or(self.planned_rows, |w| w.rows)
    }
}

impl Schedule {
    /// Per table, the chunks to load in key order, and the rows planned per
    /// chunk (counted for the chunks not written yet).
    pub(super) fn new(tables: Vec<(Vec<ChunkRecord>, u64)>) -> Schedule {
        let mut schedule = Schedule {
            tables: tables
                .into_iter()
                .map(|(chunks, planned_rows)| TableQueue {
                    chunks,
                    planned_rows,
                    ..TableQueue::default()
                })
                .collect(),
        };
        for queue in &mut schedule.tables {
            queue.rows_to_hand_out = queue.chunks.iter().map(|c| queue.rows_of(c)).sum();
            queue.ready = queue
                .chunks
                .iter()
                .take_while(|c| c.written.is_some())
                .count();
        }
        schedule
    }

    /// Marks the chunks of table `t` that `now` (its description as on disk)
    /// shows written, in key order.
    pub(super) fn refresh(&mut self, t: usize, now: &TableDescription) {
        let queue = &mut self.tables[t];
        while queue.ready < queue.chunks.len() {
            let number = queue.chunks[queue.ready].number;
            let Some(written) = now
                .chunks
                .iter()
                .find(|c| c.number == number)
                .and_then(|c| c.written.clone())
            else {
                break;
            };
            queue.rows_to_hand_out = queue.rows_to_hand_out - queue.planned_rows + written.rows;
            queue.chunks[queue.ready].written = Some(written);
            queue.ready += 1;
        }
    }

    /// Tables with chunks not handed out yet because they are not written.
    pub(super) fn waiting(&self) -> impl Iterator<Item = usize> + '_ {
        self.tables
            .iter()
            .enumerate()
            .filter(|(_, queue)| queue.next == queue.ready && queue.ready < queue.chunks.len())
            .map(|(t, _)| t)
    }

    /// The first table waiting for a chunk to be written, and that chunk's
    /// number.
    pub(super) fn waiting_for(&self) -> Option<(usize, u32)> {
        let t = self.waiting().next()?;
        let queue = &self.tables[t];
        Some((t, queue.chunks.get(queue.ready)?.number))
    }

    /// `take`, with the chunk itself.
    pub(super) fn take_chunk(&mut self) -> Option<(usize, ChunkRecord)> {
        let (t, i) = self.take()?;
        Some((t, self.tables[t].chunks[i].clone()))
    }

    pub(super) fn all_handed_out(&self) -> bool {
        self.tables
            .iter()
            .all(|queue| queue.next == queue.chunks.len())
    }

    /// The next chunk, as (table, position in its chunks): the next one in
    /// key order of the table with the fewest jobs on it; on a tie, the one
    /// with the most rows left to hand out, then the earliest in the dump.
    /// Jobs on different tables do not take turns on one table's locks and
    /// latches (on MariaDB every insert into a table with an AUTO_INCREMENT
    /// column latches its primary key's root page), so the jobs spread over
    /// the tables while there is a choice; and the biggest table starts
    /// first, so that the load does not end with every job on it.
    fn take(&mut self) -> Option<(usize, usize)> {
        let (t, queue) = self
            .tables
            .iter_mut()
            .enumerate()
            .filter(|(_, queue)| queue.next < queue.ready)
            .min_by_key(|(t, queue)| (queue.active, Reverse(queue.rows_to_hand_out), *t))?;
        queue.active += 1;
        queue.rows_to_hand_out -= queue.rows_of(&queue.chunks[queue.next]);
        queue.next += 1;
        Some((t, queue.next - 1))
    }

    /// Counts a committed chunk of table `t`; true if it was the table's last.
    pub(super) fn done(&mut self, t: usize, done: &ChunkLoaded) -> bool {
        let queue = &mut self.tables[t];
        queue.active -= 1;
        queue.outcome.chunks += 1;
        queue.outcome.rows += done.rows;
        queue.outcome.duplicates += done.duplicates;
        queue.outcome.retries += done.retries;
        queue.outcome.chunks as usize == queue.chunks.len()
    }

    /// What each table's chunks did, in the order of `new`.
    pub(super) fn into_outcomes(self) -> Vec<ChunksOutcome> {
        self.tables.into_iter().map(|q| q.outcome).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dump::{self, Compress};

    fn finish(schedule: &mut Schedule, (t, _): (usize, usize)) -> bool {
        let done = ChunkLoaded {
            rows: 1,
            bytes: 1,
            duplicates: 0,
            retries: 0,
        };
        schedule.done(t, &done)
    }

    /// A table's chunks to load, `None` for one not written yet.
    fn table(rows: &[Option<u64>], planned: u64) -> (Vec<ChunkRecord>, u64) {
        let chunks = rows
            .iter()
            .enumerate()
            .map(|(i, rows)| ChunkRecord {
                number: i as u32 + 1,
                file: dump::chunk_file_name(i as u32 + 1, Compress::Gzip),
                lower: None,
                upper: None,
                written: rows.map(|rows| dump::ChunkStats {
                    rows,
                    bytes: 0,
                    csv_bytes: 0,
                    sha256: String::new(),
                }),
            })
            .collect();
        (chunks, planned)
    }

    /// A table's description as the writer has it on disk.
    fn on_disk((chunks, planned): (Vec<ChunkRecord>, u64)) -> TableDescription {
        TableDescription {
            db: "d".into(),
            table: "t".into(),
            columns: Vec::new(),
            generated_columns: Vec::new(),
            left_out: None,
            key: dump::KeyDescription {
                kind: dump::KeyKind::Primary,
                index: None,
                columns: Vec::new(),
            },
            chunk_rows: planned,
            planned_rows: planned * chunks.len() as u64,
            compress: Compress::Gzip,
            chunks,
            complete: false,
        }
    }

    fn written(rows: &[u64]) -> (Vec<ChunkRecord>, u64) {
        table(&rows.iter().map(|&r| Some(r)).collect::<Vec<_>>(), 0)
    }

    #[test]
    fn jobs_go_to_the_biggest_table_first_then_spread_over_the_others() {
        // A small table first in the dump, a big one last, one of 3 chunks.
        let mut s = Schedule::new(vec![
            written(&[10]),
            written(&[100, 100, 100]),
            written(&[50, 50]),
        ]);
        let first = s.take();
        assert_eq!(first, Some((1, 0)), "the biggest table starts");
        let second = s.take();
        assert_eq!(second, Some((2, 0)), "a table no job is on, the bigger one");
        let third = s.take();
        assert_eq!(third, Some((0, 0)), "still a table of its own");
        // Every table has a job now: the next goes to the most rows left.
        assert_eq!(s.take(), Some((1, 1)));
        assert!(
            finish(&mut s, third.unwrap()),
            "table 0's only chunk: it is done"
        );
        assert!(!finish(&mut s, first.unwrap()));
        // Table 1 (one job, 100 rows left) against table 2 (one job, 50 left).
        assert_eq!(s.take(), Some((1, 2)));
        assert_eq!(s.take(), Some((2, 1)));
        assert_eq!(s.take(), None, "everything handed out");
        assert_eq!(s.tables[0].outcome.chunks, 1);
    }

    #[test]
    fn a_dump_being_written_hands_out_only_written_chunks_in_key_order() {
        // Table 0: chunk 1 written, 2 and 3 not yet; table 1: nothing yet,
        // planned at 500 rows a chunk.
        let mut s = Schedule::new(vec![
            table(&[Some(10), None, None], 10),
            table(&[None], 500),
        ]);
        assert_eq!(s.take(), Some((0, 0)));
        assert_eq!(s.take(), None, "nothing else is written");
        assert!(!s.all_handed_out());
        assert_eq!(s.waiting().collect::<Vec<_>>(), vec![0, 1]);
        // Chunk 3 shows up before chunk 2: it waits for chunk 2.
        s.refresh(0, &on_disk(table(&[Some(10), None, Some(7)], 10)));
        assert_eq!(s.take(), None, "chunk 3 waits for chunk 2");
        s.refresh(0, &on_disk(table(&[Some(10), Some(9), Some(7)], 10)));
        // Table 1 has more rows left (500 planned) but nothing written.
        assert_eq!(s.take(), Some((0, 1)));
        assert_eq!(s.take(), Some((0, 2)));
        assert_eq!(s.tables[0].rows_to_hand_out, 0);
        assert_eq!(s.waiting().collect::<Vec<_>>(), vec![1]);
        s.refresh(1, &on_disk(table(&[Some(3)], 500)));
        assert_eq!(s.take(), Some((1, 0)));
        assert!(s.all_handed_out());
    }
}
