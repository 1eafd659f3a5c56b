//! A chunk in progress: its answered rows, put back in input order, are
//! checked (the same checks as every output row: `output_chunk`), written
//! to its partial file, and checkpointed; rejects go to the table's file.

use std::sync::Mutex;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use serde_json::{Map, Value};

use super::checkpoint::Partial;
use super::protocol::Answer;
use super::queue::rows_bytes;
use super::rejects::{key_of, RejectLine, Rejects};
use super::sequencer::Sequencer;
use crate::dialect::{self, Codec, Field};
use crate::dump::ChunkStats;
use crate::process::jsonl;
use crate::process::output_chunk::{check_header, check_row, same_header};
use crate::process::tables::TableWork;

/// The answers to a run of rows of a chunk, from one worker.
pub struct Answered {
    pub rows: Vec<Vec<Field>>,
    pub answers: Vec<Answer>,
    /// 1-based worker slot, for messages.
    pub worker: usize,
}

/// What committing rows did, for the run's counts.
#[derive(Debug, Default, Clone, Copy)]
pub struct Committed {
    pub answered: u64,
    pub emitted: u64,
    pub dropped: u64,
    pub rejected: u64,
    /// The budget bytes of the rows written (see `queue`).
    pub bytes: usize,
}

pub struct LiveChunk<'a> {
    pub work: &'a TableWork,
    pub number: u32,
    /// The input columns.
    pub header: Vec<String>,
    state: Mutex<Option<ChunkState>>,
}

struct ChunkState {
    seq: Sequencer<Answered>,
    partial: Partial,
    /// Known once the feeder read the chunk to its end.
    input_rows: Option<u64>,
    row: Vec<Field>,
    buf: Vec<u8>,
}

impl<'a> LiveChunk<'a> {
    /// Opens chunk `number` of `work` where its last checkpoint left it.
    pub fn open(work: &'a TableWork, number: u32, header: Vec<String>) -> Result<LiveChunk<'a>> {
        let partial = Partial::open(&work.out_dir, number)?;
        if let Some(columns) = &partial.state.columns {
            let mut shared = work
                .columns
                .lock()
                .map_err(|_| anyhow!("a worker panicked"))?;
            same_header(&mut shared, columns)?;
        }
        Ok(LiveChunk {
            work,
            number,
            header,
            state: Mutex::new(Some(ChunkState {
                seq: Sequencer::new(partial.state.rows_answered),
                partial,
                input_rows: None,
                row: Vec::new(),
                buf: Vec::new(),
            })),
        })
    }

    /// `chunk 000002 of db.t`, for messages.
    pub fn label(&self) -> String {
        format!("chunk {:06} of {}", self.number, self.work.label())
    }

    /// The input rows its earlier runs answered.
    pub fn rows_done(&self) -> u64 {
        self.with(|s| Ok(s.seq.next())).unwrap_or(0)
    }

    fn with<T>(&self, f: impl FnOnce(&mut ChunkState) -> Result<T>) -> Result<T> {
        let mut guard = self
            .state
            .lock()
            .map_err(|_| anyhow!("a worker panicked"))?;
        let state = guard
            .as_mut()
            .ok_or_else(|| anyhow!("{} is already finished", self.label()))?;
        f(state)
    }

    /// Rows `first..` answered: commits every run now in order.
    pub fn deliver(&self, first: u64, answered: Answered, rejects: &Rejects) -> Result<Committed> {
        let n = answered.rows.len() as u64;
        self.with(|s| {
            s.seq.insert(first, n, answered)?;
            let mut done = Committed::default();
            while let Some((first, a)) = s.seq.pop_ready() {
                self.commit(s, first, a, rejects, &mut done)?;
            }
            Ok(done)
        })
    }

    fn commit(
        &self,
        s: &mut ChunkState,
        first: u64,
        a: Answered,
        rejects: &Rejects,
        done: &mut Committed,
    ) -> Result<()> {
        done.bytes += rows_bytes(&a.rows);
        for (i, (input, answer)) in a.rows.iter().zip(&a.answers).enumerate() {
            let row_no = first + i as u64 + 1;
            let ctx = || format!("worker {}, {}, row {row_no}", a.worker, self.label());
            match answer {
                Answer::Drop => {
                    s.partial.state.dropped += 1;
                    done.dropped += 1;
                }
                Answer::Reject(reason) => {
                    let input = jsonl::object_of(&self.header, input);
                    rejects.append(&RejectLine {
                        chunk: self.number,
                        row: row_no,
                        key: key_of(&input, &self.work.input.key.columns),
                        reason: reason.clone(),
                        input,
                    })?;
                    s.partial.state.rejected += 1;
                    done.rejected += 1;
                }
                Answer::Row(_) | Answer::Rows(_) => {
                    for object in answer.rows() {
                        self.write_object(s, object, row_no).with_context(ctx)?;
                        done.emitted += 1;
                    }
                }
            }
            s.partial.state.rows_answered = row_no;
            done.answered += 1;
        }
        Ok(())
    }

    /// Checks and writes one output row.
    fn write_object(&self, s: &mut ChunkState, o: &Map<String, Value>, row_no: u64) -> Result<()> {
        if s.partial.state.columns.is_none() {
            let names: Vec<String> = o.keys().cloned().collect();
            check_header(&names)?;
            let mut shared = self
                .work
                .columns
                .lock()
                .map_err(|_| anyhow!("a worker panicked"))?;
            same_header(&mut shared, &names)?;
            s.partial.state.columns = Some(names);
        }
        let columns = s.partial.state.columns.as_deref().unwrap_or_default();
        jsonl::fields_of(o, columns, row_no, &mut s.row)?;
        check_row(&s.row, columns.len(), row_no)?;
        s.buf.clear();
        for (i, field) in s.row.iter().enumerate() {
            if i > 0 {
                s.buf.push(b',');
            }
            dialect::write_field(&mut s.buf, field.as_deref(), Codec::Text);
        }
        s.buf.push(b'\n');
        s.partial.write_row(&s.buf)
    }

    /// The feeder read the chunk to its end: it has `rows` input rows.
    pub fn input_ended(&self, rows: u64) -> Result<()> {
        self.with(|s| {
            s.input_rows = Some(rows);
            Ok(())
        })
    }

    /// Checkpoints if rows were answered since the last one and `interval`
    /// passed (always with `Duration::ZERO`); gives how long that took.
    pub fn checkpoint(&self, interval: Duration, rejects: &Rejects) -> Result<Option<Duration>> {
        let started = std::time::Instant::now();
        let mut guard = self
            .state
            .lock()
            .map_err(|_| anyhow!("a worker panicked"))?;
        match guard.as_mut() {
            Some(s) if s.partial.due(interval) => {
                rejects.sync()?;
                s.partial.checkpoint()?;
                Ok(Some(started.elapsed()))
            }
            _ => Ok(None),
        }
    }

    /// Once every row is answered and written (and only once): turns the
    /// chunk into its output file; gives its header, input rows and what
    /// was written.
    pub fn finish_if_complete(
        &self,
        level: u32,
        rejects: &Rejects,
    ) -> Result<Option<(Vec<String>, u64, ChunkStats)>> {
        let mut guard = self
            .state
            .lock()
            .map_err(|_| anyhow!("a worker panicked"))?;
        let complete = guard
            .as_ref()
            .is_some_and(|s| s.input_rows == Some(s.seq.next()));
        if !complete {
            return Ok(None);
        }
        let Some(mut s) = guard.take() else {
            return Ok(None);
        };
        if s.partial.state.columns.is_none() {
            // No output row at all: the table's header, else the input's.
            let mut shared = self
                .work
                .columns
                .lock()
                .map_err(|_| anyhow!("a worker panicked"))?;
            let names = shared.clone().unwrap_or_else(|| self.header.clone());
            same_header(&mut shared, &names)?;
            s.partial.state.columns = Some(names);
        }
        rejects.sync()?;
        let columns = s.partial.state.columns.clone().unwrap_or_default();
        let rows_in = s.partial.state.rows_answered;
        let compress = self.work.input.compress;
        let file = crate::dump::chunk_file_name(self.number, compress);
        let stats = s
            .partial
            .finish(&self.work.out_dir, &file, compress, level)?;
        Ok(Some((columns, rows_in, stats)))
    }
}
