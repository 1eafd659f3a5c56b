//! Running a [`RowTransform`] over a chunk, the library's counterpart of
//! `--exec`.

use anyhow::Result;

use super::output_chunk::OutputChunk;
use super::tables::InputChunk;
use crate::dialect::Field;
use crate::dump::ChunkReader;

/// A transformation in Rust, applied row by row (the library's counterpart
/// of `--exec`). `columns` maps a table's input header to its output header;
/// `transform` gets each input row (with the input header, so one transform
/// can serve several tables) and gives any number of output rows to `emit`.
/// `None` is SQL NULL; binary columns are hex text.
pub trait RowTransform: Sync {
    fn columns(&self, input: &[String]) -> Result<Vec<String>>;
    fn transform(
        &self,
        input: &[String],
        row: Vec<Field>,
        emit: &mut dyn FnMut(Vec<Field>),
    ) -> Result<()>;
}

/// Applies `t` to every row of one chunk into `out`; gives the rows read.
pub(super) fn run_transform(
    t: &dyn RowTransform,
    input: &InputChunk<'_>,
    out: &mut OutputChunk<'_>,
) -> Result<u64> {
    let mut reader = ChunkReader::open(&input.path, input.table.compress, input.csv_bytes())?;
    let header = reader.require_header()?.to_vec();
    out.header(t.columns(&header)?)?;
    let mut record = Vec::new();
    let mut rows_in = 0;
    let mut pending: Vec<Vec<Field>> = Vec::new();
    while reader.read_record(&mut record)? {
        rows_in += 1;
        let line = reader.line();
        t.transform(&header, std::mem::take(&mut record), &mut |row| {
            pending.push(row)
        })?;
        for row in pending.drain(..) {
            out.row(&row, line)?;
        }
    }
    Ok(rows_in)
}
