//! Rows as they travel from the reader to the encoder ([`RowBatch`]), and
//! the encoder thread that turns them into CSV blocks for the writer.

use std::fs::File;
use std::sync::Arc;

use anyhow::Result;
use crossbeam_channel::{Receiver, Sender};
use mysql::Value;

use super::pipeline::{ChunkJob, CsvLayout, PipelineClosed};
use super::read::RowMsg;
use crate::dialect::{self, Codec};

/// Rows are handed between threads in batches of about this many bytes.
pub(super) const BATCH_BYTES: usize = 256 * 1024;

/// Rows on their way from the reader to the encoder, packed into one buffer.
///
/// Why not the mysql crate's rows as they are: each value is its own heap
/// allocation, and freeing millions of them on another thread than the one
/// that allocated them cost a third of the exporter's CPU (glibc malloc,
/// measured with perf). Copying the bytes once here frees them where they
/// were made.
pub(super) struct RowBatch {
    pub bytes: Vec<u8>,
    /// `(start, len)` in `bytes` per value, row after row; a `len` of
    /// `NULL_LEN` is SQL NULL. (A batch is far smaller than 4 GiB: it is cut
    /// at BATCH_BYTES, plus at most one row of max_allowed_packet ≤ 1 GiB.)
    pub fields: Vec<(u32, u32)>,
}

const NULL_LEN: u32 = u32::MAX;

impl Default for RowBatch {
    fn default() -> Self {
        RowBatch {
            bytes: Vec::with_capacity(BATCH_BYTES + BATCH_BYTES / 4),
            fields: Vec::new(),
        }
    }
}

impl RowBatch {
    pub fn push_row(&mut self, values: Vec<Option<Value>>) {
        for value in values {
            match value {
                Some(Value::Bytes(b)) => self.push_value(&b),
                Some(Value::NULL) | None => self.fields.push((0, NULL_LEN)),
                // The text protocol returns only bytes and NULL; anything
                // else is written as the server would print it.
                Some(other) => {
                    let text = other.as_sql(true);
                    self.push_value(text.trim_matches('\'').as_bytes());
                }
            }
        }
    }

    fn push_value(&mut self, b: &[u8]) {
        self.fields.push((self.bytes.len() as u32, b.len() as u32));
        self.bytes.extend_from_slice(b);
    }
}

/// Appends the batch's rows to `out` as CSV lines, one codec per column.
pub(super) fn encode_rows(out: &mut Vec<u8>, batch: &RowBatch, codecs: &[Codec]) {
    if codecs.is_empty() {
        return;
    }
    for row in batch.fields.chunks(codecs.len()) {
        for (i, (field, codec)) in row.iter().zip(codecs).enumerate() {
            if i > 0 {
                out.push(b',');
            }
            let (start, len) = (field.0 as usize, field.1);
            let value = (len != NULL_LEN).then(|| &batch.bytes[start..start + len as usize]);
            dialect::write_field(out, value, *codec);
        }
        out.push(b'\n');
    }
}

/// What flows from the encoder to the writer.
pub(super) enum CsvMsg {
    Start(Arc<ChunkJob>),
    Block(Vec<u8>),
    Spilled(File),
    End { rows: u64, spilled: bool },
}

/// The encoder thread: CSV-encodes the reader's batches and passes the
/// rest (chunk starts and ends, spill files) on to the writer.
pub(super) fn encode_chunks(rx: Receiver<RowMsg>, tx: Sender<CsvMsg>) -> Result<()> {
    let send = |msg| tx.send(msg).map_err(|_| anyhow::Error::new(PipelineClosed));
    let mut layout: Option<Arc<CsvLayout>> = None;
    let mut spilled = false;
    for msg in rx {
        match msg {
            RowMsg::Start(job) => {
                layout = Some(job.layout.clone());
                spilled = false;
                send(CsvMsg::Start(job))?;
            }
            RowMsg::Rows(rows) => {
                let mut out = Vec::with_capacity(rows.bytes.len() * 5 / 4 + 1024);
                let codecs = layout.as_ref().map_or(&[][..], |l| &l.codecs[..]);
                encode_rows(&mut out, &rows, codecs);
                drop(rows);
                send(CsvMsg::Block(out))?;
            }
            RowMsg::Spilled(file) => {
                spilled = true;
                send(CsvMsg::Spilled(file))?;
            }
            RowMsg::End { rows } => send(CsvMsg::End { rows, spilled })?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_encodes_as_the_rows_it_was_given() {
        let mut batch = RowBatch::default();
        batch.push_row(vec![
            Some(Value::Bytes(b"1".to_vec())),
            Some(Value::NULL),
            Some(Value::Bytes(vec![0xAB])),
        ]);
        batch.push_row(vec![
            Some(Value::Int(2)),
            Some(Value::Bytes(b"a,b".to_vec())),
            None,
        ]);
        let mut out = Vec::new();
        encode_rows(&mut out, &batch, &[Codec::Text, Codec::Text, Codec::Hex]);
        // NULL is an empty field; a value the server did not send as bytes
        // is written as it would print it.
        assert_eq!(out, b"\"1\",,\"AB\"\n\"2\",\"a,b\",\n".to_vec());
    }

    #[test]
    fn a_table_without_columns_encodes_nothing() {
        let mut out = Vec::new();
        encode_rows(&mut out, &RowBatch::default(), &[]);
        assert!(out.is_empty());
    }
}
