//! The plan of a table: how many rows a chunk holds, where the chunks'
//! boundaries fall, and the SELECT that reads one chunk.
//!
//! The key (primary key, else a unique NOT NULL key) is streamed once, in
//! key order, and every Nth key becomes a chunk boundary. Chunk `i` is then
//! `lower < key <= upper`, read with one `SELECT … WHERE <range> ORDER BY
//! <key>`, never `LIMIT offset`.

use anyhow::{anyhow, bail, Context, Result};
use mysql::prelude::Queryable;
use mysql::{Conn, Value};

use crate::dialect;
use crate::dump::{self, ChunkRecord, Compress};
use crate::schema::{KeyLiteral, SourceTable};
use crate::sql;

/// Without `--chunk-rows`, chunks aim at about this much data.
const AUTO_CHUNK_BYTES: u64 = 32 * 1024 * 1024;
/// Without `--chunk-rows`, a chunk holds at least this many rows (a chunk
/// costs a query, an fsync and a rename) and at most [`MAX_AUTO_CHUNK_ROWS`].
const MIN_AUTO_CHUNK_ROWS: u64 = 10_000;
const MAX_AUTO_CHUNK_ROWS: u64 = 1_000_000;
/// While the planner does not know the chunk size yet, it keeps at most
/// this many candidate boundaries (a few MB of key literals).
const MAX_CANDIDATES: usize = 65_536;

/// Without `--chunk-rows`: about [`AUTO_CHUNK_BYTES`] per chunk, but at least
/// four chunks per job when the table is big enough, so that the jobs share
/// the work evenly to the end; never under 10,000 rows nor over 1,000,000.
///
/// `rows` is the planner's own count of the rows it reads when the table
/// has a key, so only `avg_row_length` comes from the server's statistics:
/// a stale or zero one (MySQL 8 caches them for a day, see
/// `information_schema_stats_expiry`) changes the bytes per chunk, never
/// which rows the chunks hold.
pub(super) fn auto_chunk_rows(avg_row_length: u64, rows: u64, jobs: usize) -> u64 {
    let by_size = AUTO_CHUNK_BYTES / avg_row_length.max(16);
    let by_jobs = rows.div_ceil((jobs.max(1) as u64).saturating_mul(4));
    by_size
        .min(by_jobs)
        .clamp(MIN_AUTO_CHUNK_ROWS, MAX_AUTO_CHUNK_ROWS)
}

/// How many rows a chunk holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ChunkSize {
    /// `--chunk-rows`.
    Rows(u64),
    /// Chosen by [`auto_chunk_rows`] once the planner has counted the rows.
    Auto { avg_row_length: u64, jobs: usize },
}

/// The chunks of a table, the rows the plan counted, and the rows per chunk:
/// streams the key in order and cuts a chunk every `chunk_rows` keys. A table
/// without a key is one chunk; its rows are the server's estimate, which only
/// the progress display uses.
pub(super) fn plan_chunks(
    conn: &mut Conn,
    source: &SourceTable,
    where_clause: Option<&str>,
    compress: Compress,
    size: ChunkSize,
) -> Result<(Vec<ChunkRecord>, u64, u64)> {
    if source.key_columns.is_empty() {
        let chunk_rows = match size {
            ChunkSize::Rows(n) => n,
            ChunkSize::Auto {
                avg_row_length,
                jobs,
            } => auto_chunk_rows(avg_row_length, source.estimated_rows, jobs),
        };
        let chunks = cut_chunks(Vec::new(), compress);
        return Ok((chunks, source.estimated_rows, chunk_rows));
    }
    let (step, bounded) = match size {
        ChunkSize::Rows(n) => (n, false),
        ChunkSize::Auto { .. } => (MIN_AUTO_CHUNK_ROWS, true),
    };
    let (candidates, rows) = read_boundaries(conn, source, where_clause, step, bounded)?;
    let (boundaries, chunk_rows) = match size {
        ChunkSize::Rows(n) => (candidates.keys, n),
        ChunkSize::Auto {
            avg_row_length,
            jobs,
        } => candidates.every(auto_chunk_rows(avg_row_length, rows, jobs)),
    };
    Ok((cut_chunks(boundaries, compress), rows, chunk_rows))
}

/// Boundaries kept while the key streams: the key of every `step`-th row
/// (each with a later row after it). Without `--chunk-rows` the chunk size
/// depends on the rows counted, known only at the end, so the planner keeps
/// every [`MIN_AUTO_CHUNK_ROWS`]-th key and picks among them then, rather
/// than trust the server's `TABLE_ROWS`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Candidates {
    step: u64,
    keys: Vec<Vec<String>>,
}

impl Candidates {
    /// The key of row `step × (keys.len() + 1)`. Past [`MAX_CANDIDATES`],
    /// every other key goes and the step doubles, so memory stays bounded
    /// (only a fixed `--chunk-rows` keeps every key it asked for).
    fn push(&mut self, key: Vec<String>, bounded: bool) {
        self.keys.push(key);
        if bounded && self.keys.len() > MAX_CANDIDATES {
            let kept = std::mem::take(&mut self.keys)
                .into_iter()
                .skip(1)
                .step_by(2)
                .collect();
            self.keys = kept;
            self.step *= 2;
        }
    }

    /// The boundaries for chunks of about `chunk_rows` rows (a whole number
    /// of steps, at least one) and the rows per chunk that gives.
    fn every(self, chunk_rows: u64) -> (Vec<Vec<String>>, u64) {
        let k = ((chunk_rows + self.step / 2) / self.step).max(1);
        let keys = self
            .keys
            .into_iter()
            .skip(k as usize - 1)
            .step_by(k as usize)
            .collect();
        (keys, k * self.step)
    }
}

/// The SELECT that streams the key, in order, as the planner reads it.
fn key_query(source: &SourceTable, where_clause: Option<&str>) -> String {
    let exprs: Vec<&str> = source
        .key_columns
        .iter()
        .map(|k| k.select_expr.as_str())
        .collect();
    let mut query = format!("SELECT {} FROM {}", exprs.join(", "), source.table.sql());
    if let Some(w) = where_clause {
        query.push_str(&format!(" WHERE ({w})"));
    }
    query.push_str(&source.order_by());
    query
}

/// The key of every `step`-th row as literals (see [`Candidates`]), and the
/// number of rows read.
fn read_boundaries(
    conn: &mut Conn,
    source: &SourceTable,
    where_clause: Option<&str>,
    step: u64,
    bounded: bool,
) -> Result<(Candidates, u64)> {
    let mut candidates = Candidates {
        step,
        keys: Vec::new(),
    };
    // A boundary is kept only once a later row exists, so the last chunk is
    // never empty (unless the table is).
    let mut candidate: Option<Vec<String>> = None;
    let mut rows: u64 = 0;
    let result = conn
        .query_iter(key_query(source, where_clause))
        .context("reading the key")?;
    for row in result {
        let row = row.context("reading the key")?;
        if let Some(b) = candidate.take() {
            candidates.push(b, bounded);
        }
        rows += 1;
        // Every step-th row of the stream; a doubled step keeps only the
        // rows at its multiples.
        if rows.is_multiple_of(candidates.step) {
            let values = row.unwrap_raw();
            let literals = source
                .key_columns
                .iter()
                .zip(values)
                .map(|(k, v)| key_literal(&k.literal, v))
                .collect::<Result<Vec<_>>>()?;
            candidate = Some(literals);
        }
    }
    Ok((candidates, rows))
}

/// The chunks between consecutive boundaries, numbered from 1: the first
/// has no lower bound, the last no upper bound (no boundaries: one chunk,
/// the whole table).
fn cut_chunks(boundaries: Vec<Vec<String>>, compress: Compress) -> Vec<ChunkRecord> {
    let mut chunks = Vec::with_capacity(boundaries.len() + 1);
    let mut lower: Option<Vec<String>> = None;
    for (i, b) in boundaries
        .into_iter()
        .chain(std::iter::once(Vec::new()))
        .enumerate()
    {
        let number = i as u32 + 1;
        let upper = if b.is_empty() { None } else { Some(b) };
        chunks.push(ChunkRecord {
            number,
            file: dump::chunk_file_name(number, compress),
            lower: lower.clone(),
            upper: upper.clone(),
            written: None,
        });
        lower = upper;
    }
    chunks
}

/// A key value as the planner read it, turned into the SQL literal a
/// chunk's bound compares with.
fn key_literal(kind: &KeyLiteral, value: Option<Value>) -> Result<String> {
    let bytes = match value {
        Some(Value::Bytes(b)) => b,
        Some(Value::NULL) | None => bail!("a key column returned NULL"),
        Some(other) => other.as_sql(true).into_bytes(),
    };
    let text = String::from_utf8_lossy(&bytes).into_owned();
    Ok(match kind {
        KeyLiteral::Number | KeyLiteral::Index if sql::is_numeric_literal(&text) => text,
        KeyLiteral::Number | KeyLiteral::Index | KeyLiteral::Quoted => sql::string_literal(&text),
        KeyLiteral::Hex(charset) => {
            let raw =
                dialect::decode_hex(&bytes).ok_or_else(|| anyhow!("HEX() returned {text:?}"))?;
            sql::hex_literal(charset.as_deref(), &raw)
        }
    })
}

/// The SELECT that reads one chunk.
pub(super) fn chunk_query(
    source: &SourceTable,
    chunk: &ChunkRecord,
    where_clause: Option<&str>,
) -> String {
    let key: Vec<String> = source.key_columns.iter().map(|k| k.name.clone()).collect();
    let mut conds = sql::chunk_range(&key, chunk.lower.as_deref(), chunk.upper.as_deref());
    if let Some(w) = where_clause {
        conds.push(format!("({w})"));
    }
    let mut q = source.select_prefix();
    q.push_str(&sql::where_all(&conds));
    q.push_str(&source.order_by());
    q
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(text: &str) -> Option<Value> {
        Some(Value::Bytes(text.as_bytes().to_vec()))
    }

    #[test]
    fn auto_chunk_rows_aims_at_32_mib_and_four_chunks_per_job() {
        // 100-byte rows: 32 MiB is 335,544 rows, but 10M rows over 2 jobs
        // want 8 chunks of 1.25M: the size wins.
        assert_eq!(auto_chunk_rows(100, 10_000_000, 2), 335_544);
        // A smaller table is cut for the jobs.
        assert_eq!(auto_chunk_rows(100, 800_000, 2), 100_000);
        // Never under 10,000 rows, never over 1,000,000.
        assert_eq!(auto_chunk_rows(100, 1_000, 2), 10_000);
        assert_eq!(auto_chunk_rows(0, u64::MAX / 2, 1), 1_000_000);
    }

    #[test]
    fn a_zero_or_stale_row_estimate_only_changes_the_chunk_size() {
        // MySQL 8 may say TABLE_ROWS 0 for a day after a bulk insert:
        // chunks are then small, never wrong, and the planner's own count
        // replaces the estimate for a keyed table (below).
        assert_eq!(auto_chunk_rows(100, 0, 2), MIN_AUTO_CHUNK_ROWS);
        assert_eq!(auto_chunk_rows(0, 0, 0), MIN_AUTO_CHUNK_ROWS);
        assert_eq!(
            auto_chunk_rows(u64::MAX, u64::MAX, usize::MAX),
            MIN_AUTO_CHUNK_ROWS
        );
    }

    fn keys(step: u64, n: u64) -> Candidates {
        Candidates {
            step,
            keys: (1..=n).map(|i| vec![(i * step).to_string()]).collect(),
        }
    }

    #[test]
    fn candidates_are_cut_by_the_size_the_counted_rows_ask_for() {
        // 10,000-row steps over 1,000,000 counted rows, 2 jobs, 100-byte
        // rows: 125,000 rows a chunk, rounded to 13 steps.
        let rows = 1_000_000;
        let size = auto_chunk_rows(100, rows, 2);
        assert_eq!(size, 125_000);
        let (bounds, chunk_rows) = keys(10_000, 99).every(size);
        assert_eq!(chunk_rows, 130_000);
        let first: Vec<&str> = bounds.iter().take(3).map(|b| b[0].as_str()).collect();
        assert_eq!(first, ["130000", "260000", "390000"]);
        assert_eq!(bounds.len(), 7);
        // A size under one step is one step.
        assert_eq!(keys(10_000, 5).every(1).1, 10_000);
        // No candidates: one chunk.
        assert_eq!(keys(10_000, 0).every(50_000), (Vec::new(), 50_000));
    }

    #[test]
    fn candidates_stay_bounded_by_doubling_their_step() {
        let mut c = Candidates {
            step: 1,
            keys: Vec::new(),
        };
        let total = 3 * MAX_CANDIDATES as u64;
        let mut rows = 0;
        while rows < total {
            rows += 1;
            if rows.is_multiple_of(c.step) {
                c.push(vec![rows.to_string()], true);
            }
        }
        assert!(c.keys.len() <= MAX_CANDIDATES);
        assert_eq!(c.step, 4);
        // Every key kept is still the key of row step × (index + 1).
        for (i, key) in c.keys.iter().enumerate() {
            assert_eq!(key[0], (c.step * (i as u64 + 1)).to_string());
        }
        // A fixed --chunk-rows keeps every key it asked for.
        let mut fixed = Candidates {
            step: 1,
            keys: Vec::new(),
        };
        for i in 0..=MAX_CANDIDATES {
            fixed.push(vec![i.to_string()], false);
        }
        assert_eq!((fixed.keys.len(), fixed.step), (MAX_CANDIDATES + 1, 1));
    }

    #[test]
    fn cut_chunks_bounds_each_chunk_by_its_neighbours() {
        let chunks = cut_chunks(vec![vec!["10".into()], vec!["20".into()]], Compress::Gzip);
        let bounds: Vec<_> = chunks
            .iter()
            .map(|c| (c.number, c.lower.clone(), c.upper.clone()))
            .collect();
        let b = |v: &str| Some(vec![v.to_string()]);
        assert_eq!(
            bounds,
            vec![
                (1, None, b("10")),
                (2, b("10"), b("20")),
                (3, b("20"), None)
            ]
        );
        assert_eq!(chunks[0].file, dump::chunk_file_name(1, Compress::Gzip));
        assert!(chunks.iter().all(|c| c.written.is_none()));
    }

    #[test]
    fn cut_chunks_without_boundaries_is_the_whole_table() {
        let chunks = cut_chunks(Vec::new(), Compress::None);
        assert_eq!(chunks.len(), 1);
        assert_eq!(
            (chunks[0].lower.as_ref(), chunks[0].upper.as_ref()),
            (None, None)
        );
        assert_eq!(chunks[0].file, dump::chunk_file_name(1, Compress::None));
    }

    #[test]
    fn key_literals() {
        assert_eq!(
            key_literal(&KeyLiteral::Number, bytes("-42")).unwrap(),
            "-42"
        );
        assert_eq!(key_literal(&KeyLiteral::Index, bytes("3")).unwrap(), "3");
        assert_eq!(
            key_literal(&KeyLiteral::Quoted, bytes("2024-01-02 03:04:05")).unwrap(),
            "'2024-01-02 03:04:05'"
        );
        // Charset introducers make the server compare the bytes in the
        // column's own collation.
        assert_eq!(
            key_literal(&KeyLiteral::Hex(Some("latin1".into())), bytes("E9")).unwrap(),
            "_latin1 X'E9'"
        );
        assert_eq!(
            key_literal(&KeyLiteral::Hex(None), bytes("00FF")).unwrap(),
            "X'00FF'"
        );
        assert!(key_literal(&KeyLiteral::Number, Some(Value::NULL)).is_err());
        assert!(key_literal(&KeyLiteral::Hex(None), bytes("not hex")).is_err());
    }

    fn orders(key: &[&str]) -> SourceTable {
        use crate::dialect::Codec;
        use crate::dump::{ColumnDescription, KeyDescription, KeyKind};
        use crate::schema::{KeyColumn, SourceColumn, TableRef};
        let column = |name: &str, codec: Codec| SourceColumn {
            desc: ColumnDescription {
                name: name.into(),
                column_type: String::new(),
                data_type: String::new(),
                nullable: false,
                charset: None,
                collation: None,
                encoding: codec.encoding(),
                invisible: false,
            },
            codec,
            select_expr: crate::schema::select_expr(name, codec),
        };
        SourceTable {
            table: TableRef {
                db: "shop".into(),
                table: "orders".into(),
            },
            columns: vec![column("id", Codec::Text), column("price", Codec::Float32)],
            generated_columns: Vec::new(),
            key: KeyDescription {
                kind: KeyKind::Primary,
                index: Some("PRIMARY".into()),
                columns: key.iter().map(|k| k.to_string()).collect(),
            },
            key_columns: key
                .iter()
                .map(|k| KeyColumn {
                    name: k.to_string(),
                    select_expr: format!("`{k}`"),
                    literal: KeyLiteral::Number,
                })
                .collect(),
            estimated_rows: 0,
            avg_row_length: 0,
            create_sql: String::new(),
        }
    }

    #[test]
    fn a_chunk_is_read_by_its_key_range_in_key_order() {
        let bounds = vec![vec!["10".into()], vec!["20".into()]];
        let chunk = cut_chunks(bounds, Compress::Gzip).remove(1);
        let query = chunk_query(&orders(&["id"]), &chunk, Some("price > 1"));
        assert_eq!(
            query,
            "SELECT `id`, (`price` + 0e0) FROM `shop`.`orders` \
             WHERE (`id` > 10) AND (`id` <= 20) AND (price > 1) ORDER BY `id`"
        );
    }

    #[test]
    fn a_table_without_a_key_is_read_whole_in_no_order() {
        let chunk = cut_chunks(Vec::new(), Compress::Gzip).remove(0);
        let query = chunk_query(&orders(&[]), &chunk, None);
        assert_eq!(query, "SELECT `id`, (`price` + 0e0) FROM `shop`.`orders`");
    }

    #[test]
    fn the_planner_streams_the_key_in_order() {
        assert_eq!(
            key_query(&orders(&["id"]), Some("price > 1")),
            "SELECT `id` FROM `shop`.`orders` WHERE (price > 1) ORDER BY `id`"
        );
    }
}
