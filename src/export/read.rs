//! The reader thread of a job: runs each chunk's SELECT on its connection
//! and drains the result at network speed.
//!
//! The reader never waits long on the others: when its queue stays full for
//! [`STALL_LIMIT`] (a slow disk, a slow compressor), it writes the rest of
//! the chunk as CSV to an anonymous spill file on the dump's file system and
//! hands that over at the end of the chunk. So a result set is never held in
//! memory and the server's `net_write_timeout` cannot fire because of us.

use std::fs::File;
use std::io::{BufWriter, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use crossbeam_channel::{Receiver, SendTimeoutError, Sender};
use mysql::prelude::Queryable;
use mysql::Conn;

use super::encode::{encode_rows, RowBatch, BATCH_BYTES};
use super::pause::PauseGate;
use super::pipeline::{ChunkJob, Counters, PipelineClosed};
use crate::dialect::Codec;

/// How long the reader waits for room in its queue before it spills to disk.
/// Far below the smallest `net_write_timeout` a server accepts (1 s).
pub const STALL_LIMIT: Duration = Duration::from_millis(250);

/// What flows from the reader to the encoder.
pub(super) enum RowMsg {
    Start(Arc<ChunkJob>),
    Rows(RowBatch),
    /// CSV the reader wrote itself because the queue was full.
    Spilled(File),
    End {
        rows: u64,
    },
}

/// A job's reading side.
pub(super) struct Reader {
    pub conn: Conn,
    pub tx: Sender<RowMsg>,
    /// Where spill files go: the dump's own file system.
    pub spill_dir: PathBuf,
    /// Spill when the queue stays full (a test hook turns it off).
    pub may_spill: bool,
    pub abort: Arc<AtomicBool>,
    pub counters: Arc<Counters>,
    /// `--pause-when`, asked before each chunk.
    pub gate: Option<Arc<PauseGate>>,
}

impl Reader {
    /// The reader thread: reads the chunks it takes from `work` until there
    /// are none left or the pipeline aborts.
    pub fn read_chunks(mut self, work: Receiver<Arc<ChunkJob>>) -> Result<()> {
        while let Ok(job) = work.recv() {
            if let Some(gate) = &self.gate {
                gate.wait_while_busy(&self.abort)?;
            }
            if self.abort.load(Ordering::SeqCst) {
                return Ok(());
            }
            self.send(RowMsg::Start(job.clone()))?;
            let rows = self
                .read_chunk(&job)
                .with_context(|| format!("exporting {}", job.label))?;
            self.send(RowMsg::End { rows })?;
        }
        Ok(())
    }

    fn send(&self, msg: RowMsg) -> Result<()> {
        self.tx
            .send(msg)
            .map_err(|_| anyhow::Error::new(PipelineClosed))
    }

    fn read_chunk(&mut self, job: &ChunkJob) -> Result<u64> {
        let mut sink = RowSink {
            tx: &self.tx,
            may_spill: self.may_spill,
            spill_dir: &self.spill_dir,
            codecs: &job.layout.codecs,
            spill: None,
            csv: Vec::new(),
        };
        let mut batch = RowBatch::default();
        let mut rows = 0u64;
        let result = self
            .conn
            .query_iter(job.query.as_str())
            .context("querying the server")?;
        for row in result {
            let row = row.context("reading from the server")?;
            let before = batch.bytes.len();
            batch.push_row(row.unwrap_raw());
            rows += 1;
            self.counters.rows.fetch_add(1, Ordering::Relaxed);
            self.counters
                .bytes
                .fetch_add((batch.bytes.len() - before) as u64, Ordering::Relaxed);
            if batch.bytes.len() >= BATCH_BYTES {
                if self.abort.load(Ordering::SeqCst) {
                    return Err(PipelineClosed.into());
                }
                sink.hand_on(std::mem::take(&mut batch))?;
            }
        }
        if !batch.fields.is_empty() {
            sink.hand_on(batch)?;
        }
        sink.finish()?;
        Ok(rows)
    }
}

/// Where a chunk's batches go: the encoder's queue, until it stays full for
/// [`STALL_LIMIT`]; from then on, to the end of the chunk, a spill file.
struct RowSink<'a> {
    tx: &'a Sender<RowMsg>,
    may_spill: bool,
    spill_dir: &'a Path,
    codecs: &'a [Codec],
    spill: Option<BufWriter<File>>,
    /// The CSV of one batch on its way into the spill file.
    csv: Vec<u8>,
}

impl RowSink<'_> {
    /// Hands a batch on, or into the spill file once the queue has stayed
    /// full for STALL_LIMIT: the socket must keep draining.
    fn hand_on(&mut self, batch: RowBatch) -> Result<()> {
        if self.spill.is_some() {
            return self.write_spill(&batch);
        }
        let msg = RowMsg::Rows(batch);
        if !self.may_spill {
            return self.tx.send(msg).map_err(|_| PipelineClosed.into());
        }
        let msg = match self.tx.send_timeout(msg, STALL_LIMIT) {
            Ok(()) => return Ok(()),
            Err(SendTimeoutError::Disconnected(_)) => return Err(PipelineClosed.into()),
            Err(SendTimeoutError::Timeout(msg)) => msg,
        };
        let file = tempfile::tempfile_in(self.spill_dir)
            .with_context(|| format!("creating a spill file in {}", self.spill_dir.display()))?;
        self.spill = Some(BufWriter::with_capacity(256 * 1024, file));
        let RowMsg::Rows(batch) = msg else {
            unreachable!("send_timeout returns the message it was given")
        };
        self.write_spill(&batch)
    }

    fn write_spill(&mut self, batch: &RowBatch) -> Result<()> {
        let Some(w) = self.spill.as_mut() else {
            return Ok(());
        };
        self.csv.clear();
        encode_rows(&mut self.csv, batch, self.codecs);
        w.write_all(&self.csv).context("writing the spill file")
    }

    /// Hands the spill file over, rewound, if the chunk needed one.
    fn finish(self) -> Result<()> {
        let Some(w) = self.spill else {
            return Ok(());
        };
        let mut file = w
            .into_inner()
            .map_err(|e| e.into_error())
            .context("writing the spill file")?;
        file.rewind().context("rewinding the spill file")?;
        self.tx
            .send(RowMsg::Spilled(file))
            .map_err(|_| PipelineClosed)?;
        Ok(())
    }
}
