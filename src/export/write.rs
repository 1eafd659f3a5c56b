//! The writer thread of a job: compresses, hashes and writes each chunk to
//! a temporary file, fsynced and renamed into place ([`ChunkWriter`]), then
//! tells the pipeline the chunk is done.

use std::fs::File;
use std::io::Read;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use crossbeam_channel::{Receiver, Sender};

use super::encode::{CsvMsg, BATCH_BYTES};
use super::pipeline::{ChunkEvent, ChunkJob, PipelineClosed};
use super::rate::RateLimit;
use crate::dump::{ChunkWriter, Compress};

/// How chunk files are written.
#[derive(Debug, Clone, Copy)]
pub(super) struct ChunkFormat {
    pub compress: Compress,
    pub level: u32,
    /// Test hook: sleep this long before writing each chunk.
    pub delay: Duration,
}

/// `--max-rate`'s bucket, shared by the writers of all jobs.
pub(super) type Pace = Option<Arc<RateLimit>>;

/// A chunk being written.
struct OpenChunk {
    job: Arc<ChunkJob>,
    writer: ChunkWriter,
}

/// The writer thread.
pub(super) fn write_chunks(
    rx: Receiver<CsvMsg>,
    events: Sender<ChunkEvent>,
    format: ChunkFormat,
    pace: Pace,
) -> Result<()> {
    let mut open: Option<OpenChunk> = None;
    for msg in rx {
        match msg {
            CsvMsg::Start(job) => {
                if !format.delay.is_zero() {
                    thread::sleep(format.delay);
                }
                let label = job.label.clone();
                open = Some(open_chunk(job, format).with_context(|| format!("writing {label}"))?);
            }
            CsvMsg::Block(block) => {
                let chunk = open
                    .as_mut()
                    .ok_or_else(|| anyhow!("CSV before chunk start"))?;
                if let Some(pace) = &pace {
                    pace.pass(block.len());
                }
                chunk
                    .writer
                    .write_all(&block)
                    .with_context(|| write_error(&chunk.job))?;
            }
            CsvMsg::Spilled(file) => {
                let chunk = open
                    .as_mut()
                    .ok_or_else(|| anyhow!("CSV before chunk start"))?;
                copy_spill(file, chunk, &pace)?;
            }
            CsvMsg::End { rows, spilled } => {
                let chunk = open
                    .take()
                    .ok_or_else(|| anyhow!("chunk end before start"))?;
                events
                    .send(close_chunk(chunk, rows, spilled)?)
                    .map_err(|_| PipelineClosed)?;
            }
        }
    }
    Ok(())
}

fn open_chunk(job: Arc<ChunkJob>, format: ChunkFormat) -> Result<OpenChunk> {
    let mut writer = ChunkWriter::create(&job.dir, &job.file, format.compress, format.level)?;
    writer
        .write_all(&job.layout.header)
        .with_context(|| write_error(&job))?;
    Ok(OpenChunk { job, writer })
}

/// Appends the CSV the reader spilled to the chunk.
fn copy_spill(mut file: File, chunk: &mut OpenChunk, pace: &Pace) -> Result<()> {
    let mut buf = vec![0u8; BATCH_BYTES];
    loop {
        let n = file.read(&mut buf).context("reading the spill file")?;
        if n == 0 {
            return Ok(());
        }
        if let Some(pace) = pace {
            pace.pass(n);
        }
        chunk
            .writer
            .write_all(&buf[..n])
            .with_context(|| write_error(&chunk.job))?;
    }
}

/// Finishes the chunk's file; what the pipeline records of it.
fn close_chunk(chunk: OpenChunk, rows: u64, spilled: bool) -> Result<ChunkEvent> {
    let (table, index) = (chunk.job.table, chunk.job.chunk);
    let label = chunk.job.label.clone();
    let stats = chunk
        .writer
        .finish(rows)
        .with_context(|| format!("writing {label}"))?;
    Ok(ChunkEvent::Done {
        table,
        chunk: index,
        stats,
        spilled,
    })
}

fn write_error(job: &ChunkJob) -> String {
    format!(
        "writing {} to {}",
        job.label,
        job.dir.join(&job.file).display()
    )
}
