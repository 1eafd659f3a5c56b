//! One output chunk: the checks every row a worker gives passes (a header
//! with names, the same header in every chunk of a table, the header's number
//! of fields on every row, valid UTF-8), and its writing in the dump's CSV.

use std::sync::Mutex;

use anyhow::{anyhow, bail, Result};

use crate::dialect::{self, Codec, Field};
use crate::dump::{ChunkStats, ChunkWriter};

/// Checks and writes the rows of an output chunk.
pub(super) struct OutputChunk<'a> {
    /// The table's header, shared by its chunks: the first one sets it.
    table_columns: &'a Mutex<Option<Vec<String>>>,
    writer: ChunkWriter,
    columns: Option<Vec<String>>,
    rows: u64,
    buf: Vec<u8>,
}

impl<'a> OutputChunk<'a> {
    pub fn new(table_columns: &'a Mutex<Option<Vec<String>>>, writer: ChunkWriter) -> Self {
        OutputChunk {
            table_columns,
            writer,
            columns: None,
            rows: 0,
            buf: Vec::with_capacity(64 * 1024),
        }
    }

    /// The header, once written.
    pub fn columns(&self) -> Option<&[String]> {
        self.columns.as_deref()
    }

    pub fn header(&mut self, names: Vec<String>) -> Result<()> {
        check_header(&names)?;
        let mut shared = self
            .table_columns
            .lock()
            .map_err(|_| anyhow!("a worker panicked"))?;
        same_header(&mut shared, &names)?;
        drop(shared);
        self.buf.clear();
        dialect::write_header(&mut self.buf, &names);
        self.writer.write_all(&self.buf)?;
        self.columns = Some(names);
        Ok(())
    }

    /// `line` is the output line the row started on, for messages.
    pub fn row(&mut self, row: &[Field], line: u64) -> Result<()> {
        check_row(row, self.columns.as_ref().map_or(0, |c| c.len()), line)?;
        self.buf.clear();
        for (i, field) in row.iter().enumerate() {
            if i > 0 {
                self.buf.push(b',');
            }
            dialect::write_field(&mut self.buf, field.as_deref(), Codec::Text);
        }
        self.buf.push(b'\n');
        self.writer.write_all(&self.buf)?;
        self.rows += 1;
        Ok(())
    }

    /// Commits the chunk; gives its header and what was written.
    pub fn finish(self) -> Result<(Vec<String>, ChunkStats)> {
        let stats = self.writer.finish(self.rows)?;
        Ok((self.columns.unwrap_or_default(), stats))
    }
}

/// An output header names every column, each once.
pub(super) fn check_header(names: &[String]) -> Result<()> {
    if names.is_empty() || names.iter().any(|n| n.is_empty()) {
        bail!("the output header {names:?} has an empty column name");
    }
    for (i, n) in names.iter().enumerate() {
        if names[..i].contains(n) {
            bail!("the output header names column {n:?} twice");
        }
    }
    Ok(())
}

/// Every chunk of a table has the header of the first one.
pub(super) fn same_header(table_columns: &mut Option<Vec<String>>, names: &[String]) -> Result<()> {
    match table_columns.as_ref() {
        Some(existing) if *existing != names => {
            bail!("the output header {names:?} differs from the other chunks' {existing:?}")
        }
        Some(_) => {}
        None => *table_columns = Some(names.to_vec()),
    }
    Ok(())
}

/// A row has the header's number of fields, each valid UTF-8 (the dump is
/// UTF-8 text; binary columns are hex).
pub(super) fn check_row(row: &[Field], expected: usize, line: u64) -> Result<()> {
    if row.len() != expected {
        bail!(
            "output line {line}: {} fields, the header has {expected}",
            row.len()
        );
    }
    for (i, field) in row.iter().enumerate() {
        if let Some(v) = field {
            if std::str::from_utf8(v).is_err() {
                bail!("output line {line}, field {}: not valid UTF-8", i + 1);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::fixtures::names;

    #[test]
    fn a_header_names_every_column_once() {
        assert!(check_header(&names(&["id", "name"])).is_ok());
        assert_eq!(
            check_header(&names(&[])).unwrap_err().to_string(),
            "the output header [] has an empty column name"
        );
        assert_eq!(
            check_header(&names(&["id", ""])).unwrap_err().to_string(),
            "the output header [\"id\", \"\"] has an empty column name"
        );
        assert_eq!(
            check_header(&names(&["id", "a", "id"]))
                .unwrap_err()
                .to_string(),
            "the output header names column \"id\" twice"
        );
    }

    #[test]
    fn the_first_header_of_a_table_is_every_chunks_header() {
        let mut table = None;
        same_header(&mut table, &names(&["id"])).unwrap();
        assert_eq!(table, Some(names(&["id"])));
        same_header(&mut table, &names(&["id"])).unwrap();
        assert_eq!(
            same_header(&mut table, &names(&["id", "x"]))
                .unwrap_err()
                .to_string(),
            "the output header [\"id\", \"x\"] differs from the other chunks' [\"id\"]"
        );
    }

    #[test]
    fn a_row_has_the_headers_field_count_and_is_utf8() {
        let ok: Vec<Field> = vec![Some(b"1".to_vec()), None];
        assert!(check_row(&ok, 2, 3).is_ok());
        assert_eq!(
            check_row(&ok, 3, 3).unwrap_err().to_string(),
            "output line 3: 2 fields, the header has 3"
        );
        let bad: Vec<Field> = vec![Some(b"1".to_vec()), Some(vec![0xff])];
        assert_eq!(
            check_row(&bad, 2, 7).unwrap_err().to_string(),
            "output line 7, field 2: not valid UTF-8"
        );
    }

    #[test]
    fn an_output_chunk_writes_the_header_and_rows_in_the_dumps_csv() {
        let dir = tempfile::tempdir().unwrap();
        let shared = Mutex::new(None);
        let writer =
            ChunkWriter::create(dir.path(), "000001.csv", crate::dump::Compress::None, 0).unwrap();
        let mut out = OutputChunk::new(&shared, writer);
        out.header(names(&["id", "note"])).unwrap();
        out.row(&[Some(b"1".to_vec()), None], 2).unwrap();
        out.row(&[Some(b"2".to_vec()), Some(b"a \"b\"".to_vec())], 3)
            .unwrap();
        assert!(out.row(&[None], 4).is_err());
        let (columns, stats) = out.finish().unwrap();
        assert_eq!(columns, names(&["id", "note"]));
        assert_eq!(stats.rows, 2);
        assert_eq!(*shared.lock().unwrap(), Some(names(&["id", "note"])));
        let text = std::fs::read_to_string(dir.path().join("000001.csv")).unwrap();
        assert_eq!(text, "\"id\",\"note\"\n\"1\",\n\"2\",\"a \"\"b\"\"\"\n");
    }
}
