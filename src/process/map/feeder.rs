//! The feeder: reads the pending chunks, one after the other, from each
//! one's first unanswered row, into batches for the workers.

use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Result;

use super::chunk::LiveChunk;
use super::queue::{rows_bytes, Batch};
use super::run::Run;
use crate::dialect::Field;
use crate::dump::ChunkReader;

/// A batch takes about this long to answer: long enough that handing it
/// out costs nothing next to it, short enough that the rows in flight (lost
/// if everything is killed) and the wait at the end stay small.
const BATCH_TIME: Duration = Duration::from_millis(100);
const MAX_BATCH_ROWS: usize = 256;
const MAX_BATCH_BYTES: usize = 256 * 1024;

/// Rows per batch when a row takes `ns_per_row` (0: not known yet).
pub fn batch_rows(ns_per_row: u64) -> usize {
    if ns_per_row == 0 {
        return 1;
    }
    let rows = BATCH_TIME.as_nanos() as u64 / ns_per_row;
    (rows as usize).clamp(1, MAX_BATCH_ROWS)
}

impl Run<'_> {
    /// Feeds every pending chunk, then tells the queue there is no more.
    pub(super) fn feed(&self) {
        for (job, &(t, c)) in self.w.pending.iter().enumerate() {
            if self.queue.stopped() {
                break;
            }
            let work = &self.w.tables[t];
            let number = work.input.chunks[c].number;
            if let Err(e) = self.feed_chunk(job, t, c) {
                self.fail(work, number, e.context(format!("chunk {number:06}")), None);
            }
        }
        self.queue.input_done();
    }

    fn feed_chunk(&self, job: usize, t: usize, c: usize) -> Result<()> {
        let work = &self.w.tables[t];
        let record = &work.input.chunks[c];
        let path = self.w.input.path(&work.entry.dir).join(&record.file);
        let csv_bytes = record.written.as_ref().map(|w| w.csv_bytes);
        let mut reader = ChunkReader::open(&path, work.input.compress, csv_bytes)?;
        let header = reader.require_header()?.to_vec();
        if self.live[job].get().is_none() {
            let _ = self.live[job].set(LiveChunk::open(work, record.number, header)?);
        }
        let Some(chunk) = self.live[job].get() else {
            return Ok(());
        };
        let skip = chunk.rows_done();
        let mut row: Vec<Field> = Vec::new();
        let mut index = 0u64;
        while index < skip && reader.read_record(&mut row)? {
            index += 1;
        }
        let mut batch = Vec::new();
        let mut bytes = 0;
        loop {
            let more = reader.read_record(&mut row)?;
            if more {
                bytes += rows_bytes(std::slice::from_ref(&row));
                batch.push(std::mem::take(&mut row));
            }
            let full = batch.len() >= batch_rows(self.ns_per_row.load(Ordering::Relaxed))
                || bytes >= MAX_BATCH_BYTES;
            if !batch.is_empty() && (full || !more) {
                bytes = 0;
                let rows = std::mem::take(&mut batch);
                let first = index;
                index += rows.len() as u64;
                let b = Batch {
                    job,
                    first,
                    rows,
                    attempts: 0,
                };
                if !self.queue.push(b) {
                    return Ok(());
                }
            }
            if !more {
                break;
            }
        }
        chunk.input_ended(index)?;
        self.finish_chunk(chunk, job);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_is_about_a_tenth_of_a_second_of_work() {
        assert_eq!(batch_rows(0), 1);
        assert_eq!(batch_rows(2_000_000_000), 1);
        assert_eq!(batch_rows(10_000_000), 10);
        assert_eq!(batch_rows(1_000), MAX_BATCH_ROWS);
    }
}
