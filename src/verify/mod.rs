//! Verify: a target's tables against the dump they were loaded from, chunk
//! by chunk, across two independent servers (no replication needed, unlike
//! pt-table-checksum).
//!
//! For every chunk the key range is read from the target and each row is
//! written in the dump's own CSV form (the same codecs the exporter uses),
//! then hashed; the chunk file's rows are hashed the same way. A chunk's
//! fingerprint is the row count and the sum of its rows' hashes, so row order
//! does not matter (a table without a key has none).
//!
//! The fingerprints cover the dump's columns only, so the target's columns
//! are first compared with the dump's and with the source columns the export
//! left out ([`columns`]): a column no fingerprint reads is a mismatch, not a
//! pass.

mod columns;

use std::path::PathBuf;

use anyhow::{Context, Result};
use mysql::prelude::Queryable;
use mysql::{Conn, Value};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::conn::{self, ConnSpec};
use crate::dialect::{self, Codec};
use crate::dump::{ChunkReader, ChunkRecord, Compress, DumpDir, TableDescription};
use crate::schema;
use crate::sql::{self, qualified};

pub use self::columns::{compare_columns, ColumnCheck, ColumnMismatch, MismatchKind, TargetColumn};

#[derive(Debug, Clone)]
pub struct VerifyOptions {
    pub dir: PathBuf,
    pub target: ConnSpec,
    /// The database the tables were loaded into, if not their own.
    pub into: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    pub dir: PathBuf,
    pub target: String,
    pub tables: Vec<TableVerify>,
    pub differences: Vec<ChunkDifference>,
    /// Columns of the target that differ from the dump's or the source's,
    /// each a failure: the chunks do not read them.
    pub column_mismatches: Vec<ColumnMismatch>,
    /// What the user should know that is not a failure (e.g. a dump too old
    /// to record the source columns it left out).
    pub notes: Vec<String>,
    pub rows: u64,
    pub matches: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct TableVerify {
    pub db: String,
    pub table: String,
    pub target_db: String,
    pub chunks: usize,
    pub chunks_differing: usize,
    /// False when a column of the dump is not on the target: its chunks
    /// could not be read, and were not compared.
    pub chunks_compared: bool,
    pub columns_differing: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct ChunkDifference {
    pub table: String,
    pub chunk: u32,
    pub lower: Option<Vec<String>>,
    pub upper: Option<Vec<String>>,
    pub dump_rows: u64,
    pub target_rows: u64,
}

/// Rows and an order-independent digest of them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Fingerprint {
    rows: u64,
    sum: u128,
}

impl Fingerprint {
    fn add(&mut self, canonical_row: &[u8]) {
        let digest = Sha256::digest(canonical_row);
        let mut first = [0u8; 16];
        first.copy_from_slice(&digest[..16]);
        self.rows += 1;
        self.sum = self.sum.wrapping_add(u128::from_le_bytes(first));
    }
}

pub fn verify(opts: &VerifyOptions) -> Result<VerifyReport> {
    let dir = DumpDir::new(&opts.dir);
    let manifest = dir.require_manifest()?;
    let mut conn = opts.target.connect("target")?;
    conn::set_exact_session(&mut conn).context("setting up the target session")?;
    let mut report = VerifyReport {
        dir: opts.dir.clone(),
        target: opts.target.to_string(),
        tables: Vec::new(),
        differences: Vec::new(),
        column_mismatches: Vec::new(),
        notes: Vec::new(),
        rows: 0,
        matches: true,
    };
    for entry in &manifest.tables {
        let desc = dir.table_description(entry, None)?;
        let target_db = opts.into.clone().unwrap_or_else(|| desc.db.clone());
        let label = format!("{target_db}.{}", desc.table);
        let mut tv = TableVerify {
            db: desc.db.clone(),
            table: desc.table.clone(),
            target_db: target_db.clone(),
            chunks: desc.chunks.len(),
            chunks_differing: 0,
            chunks_compared: true,
            columns_differing: 0,
        };
        let target_columns: Vec<TargetColumn> =
            schema::column_rows(&mut conn, &target_db, &desc.table)
                .with_context(|| format!("reading the columns of {label} on the target"))?
                .iter()
                .map(TargetColumn::of)
                .collect();
        let check = compare_columns(&label, &desc, &target_columns);
        tv.columns_differing = check.mismatches.len();
        report.column_mismatches.extend(check.mismatches);
        report.notes.extend(check.notes);
        if !check.chunks_comparable {
            tv.chunks_compared = false;
            report.tables.push(tv);
            continue;
        }
        for chunk in &desc.chunks {
            let path = dir.path(&entry.dir).join(&chunk.file);
            let csv_bytes = chunk.written.as_ref().map(|w| w.csv_bytes);
            let dumped = fingerprint_file(&path, desc.compress, csv_bytes)?;
            let target = fingerprint_target(&mut conn, &desc, &target_db, chunk)
                .with_context(|| format!("reading chunk {:06}'s range of {label}", chunk.number))?;
            report.rows += dumped.rows;
            if dumped != target {
                tv.chunks_differing += 1;
                report.differences.push(ChunkDifference {
                    table: label.clone(),
                    chunk: chunk.number,
                    lower: chunk.lower.clone(),
                    upper: chunk.upper.clone(),
                    dump_rows: dumped.rows,
                    target_rows: target.rows,
                });
            }
        }
        report.tables.push(tv);
    }
    report.matches = report.differences.is_empty() && report.column_mismatches.is_empty();
    Ok(report)
}

fn fingerprint_target(
    conn: &mut Conn,
    desc: &TableDescription,
    target_db: &str,
    chunk: &ChunkRecord,
) -> Result<Fingerprint> {
    let readers: Vec<(Codec, String)> = desc
        .columns
        .iter()
        .map(schema::dumped_column_reader)
        .collect();
    let exprs: Vec<&str> = readers.iter().map(|(_, e)| e.as_str()).collect();
    let range = sql::chunk_range(
        &desc.key.columns,
        chunk.lower.as_deref(),
        chunk.upper.as_deref(),
    );
    let q = format!(
        "SELECT {} FROM {}{}",
        exprs.join(", "),
        qualified(target_db, &desc.table),
        sql::where_all(&range)
    );
    let mut fp = Fingerprint::default();
    let mut line = Vec::new();
    for row in conn.query_iter(q)? {
        let values = row?.unwrap_raw();
        line.clear();
        for (i, (value, (codec, _))) in values.iter().zip(&readers).enumerate() {
            if i > 0 {
                line.push(b',');
            }
            match value {
                Some(Value::Bytes(b)) => dialect::write_field(&mut line, Some(b), *codec),
                Some(Value::NULL) | None => {}
                Some(other) => {
                    let text = other.as_sql(true);
                    dialect::write_field(
                        &mut line,
                        Some(text.trim_matches('\'').as_bytes()),
                        *codec,
                    )
                }
            }
        }
        fp.add(&line);
    }
    Ok(fp)
}

fn fingerprint_file(
    path: &std::path::Path,
    compress: Compress,
    csv_bytes: Option<u64>,
) -> Result<Fingerprint> {
    let mut reader = ChunkReader::open(path, compress, csv_bytes)?;
    let mut record = Vec::new();
    let mut fp = Fingerprint::default();
    let mut line = Vec::new();
    while reader.read_record(&mut record)? {
        line.clear();
        for (i, field) in record.iter().enumerate() {
            if i > 0 {
                line.push(b',');
            }
            // The file holds hex as hex text and floats already in their
            // shortest form: written back as text, they are what the target
            // side writes with the column's own codec.
            dialect::write_field(&mut line, field.as_deref(), Codec::Text);
        }
        fp.add(&line);
    }
    Ok(fp)
}
