//! Export: stream tables into keyset chunks of compressed CSV.
//!
//! The plan: for every table, the key (primary key, else a unique NOT NULL
//! key) is streamed once, in key order, and every Nth key becomes a chunk
//! boundary. Chunk `i` is then `lower < key <= upper`, read with one
//! `SELECT … WHERE <range> ORDER BY <key>`, never `LIMIT offset`.
//!
//! Each job has one reading connection and three threads joined by bounded
//! queues: the reader drains the server, the encoder writes CSV, the writer
//! compresses, hashes and writes the file. The reader never waits long on the
//! others: when its queue stays full for [`STALL_LIMIT`] (a slow disk, a
//! slow compressor), it writes the rest of the chunk as CSV to an anonymous
//! spill file on the dump's file system and hands that over at the end of the
//! chunk. So the server is drained at network speed whatever happens
//! downstream, and a result set is never held in memory: the server's
//! `net_write_timeout` cannot fire because of us. (The session also raises
//! `net_write_timeout`, as a second line of defence only.)
//!
//! A chunk is written to a temporary file, fsynced and renamed into place,
//! then recorded in `export.log`; a rerun keeps every recorded chunk whose
//! checksum still matches and exports the rest.

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use crossbeam_channel::{bounded, unbounded, Receiver, SendTimeoutError, Sender};
use mysql::prelude::Queryable;
use mysql::{Conn, Value};
use serde::Serialize;

use crate::conn::{self, server_error_code, set_optional, ConnSpec};
use crate::dialect::{self, Codec};
use crate::dump::{
    self, ChunkRecord, ChunkStats, ChunkWriter, Compress, DumpDir, ExportSettings, ExportedChunk,
    Growing, Manifest, SourceInfo, TableDescription, TableEntry,
};
use crate::progress::{peak_rss_bytes, Progress, ProgressMode};
use crate::schema::{self, KeyLiteral, SourceTable, TablePattern, TableRef};
use crate::sql;

/// How long the reader waits for room in its queue before it spills to disk.
/// Far below the smallest `net_write_timeout` a server accepts (1 s).
pub const STALL_LIMIT: Duration = Duration::from_millis(250);
/// Rows are handed between threads in batches of about this many bytes.
const BATCH_BYTES: usize = 256 * 1024;
/// Batches or CSV blocks waiting in each queue (4 measured as fast as 8, with
/// 20% less peak memory).
const QUEUE_DEPTH: usize = 4;
/// Without `--chunk-rows`, chunks aim at about this much data.
const AUTO_CHUNK_BYTES: u64 = 32 * 1024 * 1024;
/// Compression level by default (libdeflate's). Measured on a 22 MB chunk of
/// the benchmark table: level 1 wrote 7.83 MB in 107 ms, level 2 7.68 MB in
/// 156 ms, level 6 7.20 MB in 341 ms; mydumper's and `gzip -1`'s zlib level 1
/// write about the size of libdeflate's level 1, so more is rarely worth it.
pub const DEFAULT_LEVEL: u32 = 1;
/// `net_write_timeout` for reading sessions (seconds).
const SESSION_NET_WRITE_TIMEOUT: u32 = 3600;

/// How the snapshots of several reading connections relate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Consistency {
    /// Synchronize the snapshots when possible (with `--jobs` > 1 this needs
    /// the RELOAD privilege); otherwise warn and use one per connection.
    #[default]
    Auto,
    /// Synchronize the snapshots or fail.
    Locked,
    /// Never lock: each connection takes its own snapshot.
    PerConnection,
}

/// Everything `myspool export` does, as a library call.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    pub source: ConnSpec,
    /// `db.table` or `db.*`, as on the command line.
    pub tables: Vec<String>,
    pub dir: PathBuf,
    pub where_clause: Option<String>,
    /// Rows per chunk; `None` picks a size per table (about 32 MiB of data).
    pub chunk_rows: Option<u64>,
    pub jobs: usize,
    pub compress: Compress,
    /// Compression level, 0 (store) to `dump::MAX_LEVEL`.
    pub level: u32,
    pub consistency: Consistency,
    pub progress: ProgressMode,
    /// Told of every finished chunk, for a reader of the dump in this
    /// process (`copy`); the caller calls its `finish` when this returns.
    pub announce: Option<Arc<Growing>>,
    #[doc(hidden)]
    pub hooks: Hooks,
}

impl ExportOptions {
    pub fn new(source: ConnSpec, tables: Vec<String>, dir: impl Into<PathBuf>) -> ExportOptions {
        ExportOptions {
            source,
            tables,
            dir: dir.into(),
            where_clause: None,
            chunk_rows: None,
            jobs: 2,
            compress: Compress::Gzip,
            level: DEFAULT_LEVEL,
            consistency: Consistency::Auto,
            progress: ProgressMode::Auto,
            announce: None,
            hooks: Hooks::default(),
        }
    }
}

/// Test hooks: ways for the test suite to make the disk side slow or turn
/// off a line of defence, to show the others hold.
#[doc(hidden)]
#[derive(Debug, Clone)]
pub struct Hooks {
    /// Sleep this long before writing each chunk: a disk that stalls.
    pub write_delay: Duration,
    /// Raise `net_write_timeout` in the reading sessions.
    pub raise_net_write_timeout: bool,
    /// Spill to disk when the queue stays full (off only to show the failure).
    pub spill: bool,
}

impl Default for Hooks {
    fn default() -> Self {
        Hooks {
            write_delay: Duration::ZERO,
            raise_net_write_timeout: true,
            spill: true,
        }
    }
}

impl Hooks {
    /// `MYSPOOL_TEST_CHUNK_DELAY_MS`, `MYSPOOL_TEST_NO_NET_WRITE_TIMEOUT`,
    /// `MYSPOOL_TEST_NO_SPILL`: for tests that drive the binary.
    pub fn from_env() -> Hooks {
        Hooks {
            write_delay: crate::hooks::chunk_delay(),
            raise_net_write_timeout: !crate::hooks::flag("MYSPOOL_TEST_NO_NET_WRITE_TIMEOUT"),
            spill: !crate::hooks::flag("MYSPOOL_TEST_NO_SPILL"),
        }
    }
}

/// What an export did.
#[derive(Debug, Clone, Serialize)]
pub struct ExportSummary {
    pub dir: PathBuf,
    pub complete: bool,
    /// `single-snapshot`, `synchronized-snapshots` or `per-connection-snapshots`.
    pub consistency: Option<String>,
    pub tables: Vec<TableSummary>,
    /// Rows in the dump (all chunks, including those kept from an earlier run).
    pub rows: u64,
    /// Rows read from the server by this run.
    pub rows_this_run: u64,
    pub bytes: u64,
    pub csv_bytes: u64,
    pub chunks_written: u64,
    pub chunks_kept: u64,
    /// Chunks whose data passed through a spill file because the disk side
    /// was slower than the network.
    pub chunks_spilled: u64,
    pub seconds: f64,
    pub peak_rss_bytes: Option<u64>,
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TableSummary {
    pub db: String,
    pub table: String,
    pub key: Vec<String>,
    pub chunks: usize,
    pub rows: u64,
    pub bytes: u64,
    pub csv_bytes: u64,
}

/// Runs an export (or resumes one) into `opts.dir`.
pub fn export(opts: &ExportOptions) -> Result<ExportSummary> {
    let started = Instant::now();
    if opts.jobs == 0 {
        bail!("--jobs must be at least 1");
    }
    if opts.chunk_rows == Some(0) {
        bail!("--chunk-rows must be at least 1");
    }
    if opts.level > crate::dump::MAX_LEVEL {
        bail!(
            "--level {} is out of range: levels are 0 (store) to {}",
            opts.level,
            crate::dump::MAX_LEVEL
        );
    }
    if opts.tables.is_empty() {
        bail!("no --table given");
    }
    let patterns = opts
        .tables
        .iter()
        .map(|t| TablePattern::parse(t))
        .collect::<Result<Vec<_>>>()?;

    let dir = DumpDir::new(&opts.dir);
    let _lock = prepare_dir(&opts.dir)?;
    let settings = ExportSettings {
        table_patterns: opts.tables.clone(),
        where_clause: opts.where_clause.clone(),
        chunk_rows: opts.chunk_rows,
        compress: opts.compress,
        level: opts.level,
    };
    let existing = dir.read_manifest()?;
    match &existing {
        None if !dir.is_empty()? => bail!(
            "--dir {} is not empty and holds no myspool manifest; use an empty or new directory",
            opts.dir.display()
        ),
        None => {}
        Some(m) => {
            check_same_export(m, &settings, &opts.source)?;
            if m.complete {
                // Nothing to ask the source: the dump is whole.
                let tables = m
                    .tables
                    .iter()
                    .map(|e| {
                        dir.read_table(e)?
                            .ok_or_else(|| anyhow!("{}: table.json is missing", e.dir))
                    })
                    .collect::<Result<Vec<_>>>()?;
                let kept = tables.iter().map(|t| t.chunks.len() as u64).sum();
                return Ok(summarize(
                    opts,
                    m,
                    &tables,
                    RunTotals::default(),
                    kept,
                    Vec::new(),
                    started,
                ));
            }
        }
    }

    let mut control = opts.source.connect("source")?;
    setup_session(&mut control, &opts.hooks)?;
    let server_version = crate::conn::server_version(&mut control)?;
    let mut warnings = Vec::new();

    let mut manifest = match existing {
        Some(m) => m,
        None => {
            let now: Option<String> = control
                .query_first("SELECT DATE_FORMAT(UTC_TIMESTAMP(6), '%Y-%m-%dT%H:%i:%s.%fZ')")?;
            let source = SourceInfo {
                endpoint: opts.source.endpoint(),
                user: opts.source.user.clone(),
                server_version: server_version.clone(),
                server_time_utc: now.unwrap_or_default(),
            };
            let mut m = Manifest::new(source, settings.clone(), dump::utc_now());
            let tables = schema::resolve_tables(&mut control, &patterns)?;
            m.tables = tables
                .iter()
                .map(|t| TableEntry {
                    db: t.db.clone(),
                    table: t.table.clone(),
                    dir: DumpDir::table_dir_name(&t.db, &t.table),
                })
                .collect();
            write_database_schemas(&mut control, &dir, &tables)?;
            dir.write_manifest(&m)?;
            m
        }
    };

    // Plan (or reload the plan of) every table, and find what is left to do.
    let mut tables: Vec<TableState> = Vec::new();
    for entry in &manifest.tables {
        let state = prepare_table(&mut control, &dir, entry, opts, &mut warnings)?;
        tables.push(state);
    }

    let pending: Vec<(usize, usize)> = tables
        .iter()
        .enumerate()
        .flat_map(|(t, st)| st.pending.iter().map(move |&c| (t, c)))
        .collect();
    let pending = match opts.announce {
        Some(_) => dump::first_chunks_first(pending),
        None => pending,
    };
    let chunks_kept: u64 = tables
        .iter()
        .map(|t| (t.desc.chunks.len() - t.pending.len()) as u64)
        .sum();

    let mut run = RunTotals::default();
    if !pending.is_empty() {
        let jobs = opts.jobs.min(pending.len());
        let (readers, consistency) = open_readers(
            &opts.source,
            &mut control,
            jobs,
            &tables,
            opts,
            &mut warnings,
        )?;
        drop(control);
        // A resumed export mixes the snapshots of several runs; say so.
        let recorded = match &manifest.consistency {
            Some(before) if chunks_kept > 0 => {
                let first = before.split(", resumed").next().unwrap_or(before);
                format!("{first}, resumed with {consistency}")
            }
            _ => consistency.to_string(),
        };
        if manifest.consistency.as_deref() != Some(recorded.as_str()) {
            manifest.consistency = Some(recorded);
            dir.write_manifest(&manifest)?;
        }
        run = run_pipeline(opts, &dir, &mut tables, pending, readers)?;
    } else {
        drop(control);
    }

    if !manifest.complete {
        manifest.complete = true;
        manifest.finished_at = Some(dump::utc_now());
        dir.write_manifest(&manifest)?;
    }

    let descs: Vec<TableDescription> = tables.into_iter().map(|t| t.desc).collect();
    Ok(summarize(
        opts,
        &manifest,
        &descs,
        run,
        chunks_kept,
        warnings,
        started,
    ))
}

fn summarize(
    opts: &ExportOptions,
    manifest: &Manifest,
    tables: &[TableDescription],
    run: RunTotals,
    chunks_kept: u64,
    warnings: Vec<String>,
    started: Instant,
) -> ExportSummary {
    let mut summary = ExportSummary {
        dir: opts.dir.clone(),
        complete: manifest.complete,
        consistency: manifest.consistency.clone(),
        tables: Vec::new(),
        rows: 0,
        rows_this_run: run.rows,
        bytes: 0,
        csv_bytes: 0,
        chunks_written: run.chunks,
        chunks_kept,
        chunks_spilled: run.spilled,
        seconds: started.elapsed().as_secs_f64(),
        peak_rss_bytes: peak_rss_bytes(),
        warnings,
    };
    for desc in tables {
        let stats: Vec<&ChunkStats> = desc
            .chunks
            .iter()
            .filter_map(|c| c.written.as_ref())
            .collect();
        let ts = TableSummary {
            db: desc.db.clone(),
            table: desc.table.clone(),
            key: desc.key.columns.clone(),
            chunks: desc.chunks.len(),
            rows: stats.iter().map(|s| s.rows).sum(),
            bytes: stats.iter().map(|s| s.bytes).sum(),
            csv_bytes: stats.iter().map(|s| s.csv_bytes).sum(),
        };
        summary.rows += ts.rows;
        summary.bytes += ts.bytes;
        summary.csv_bytes += ts.csv_bytes;
        summary.tables.push(ts);
    }
    summary
}

/// `<db>/database.sql`: `SHOW CREATE DATABASE`, so a load can create the
/// database with its character set and collation.
fn write_database_schemas(control: &mut Conn, dir: &DumpDir, tables: &[TableRef]) -> Result<()> {
    let mut dbs: Vec<&str> = tables.iter().map(|t| t.db.as_str()).collect();
    dbs.dedup();
    for db in dbs {
        let row: Option<mysql::Row> = control
            .query_first(format!("SHOW CREATE DATABASE {}", sql::ident(db)))
            .with_context(|| format!("SHOW CREATE DATABASE {db}"))?;
        let create = match &row {
            Some(r) => schema::text(r, 1)?.unwrap_or_default(),
            None => bail!("SHOW CREATE DATABASE {db} returned nothing"),
        };
        let db_dir = dir.path(&dump::safe_file_name(db));
        dump::create_private_dir(&db_dir)?;
        dump::write_atomic(
            &db_dir.join(dump::DATABASE_FILE),
            format!("{create};\n").as_bytes(),
        )?;
    }
    Ok(())
}

/// Creates the dump directory if needed and takes its lock, so that two
/// exports cannot write the same directory at once.
fn prepare_dir(path: &Path) -> Result<File> {
    match fs::metadata(path) {
        Ok(m) if !m.is_dir() => bail!("--dir {} exists and is not a directory", path.display()),
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => dump::create_private_dir(path)?,
        Err(e) => return Err(e).with_context(|| format!("--dir {}", path.display())),
    }
    DumpDir::new(path).lock()
}

/// A rerun must ask for the same export as the run that started the dump.
fn check_same_export(m: &Manifest, wanted: &ExportSettings, source: &ConnSpec) -> Result<()> {
    let dir_note = "rerun with the original options to resume it, or use a new --dir";
    let mut diffs = Vec::new();
    if m.export.table_patterns != wanted.table_patterns {
        diffs.push(format!(
            "--table was {:?}, now {:?}",
            m.export.table_patterns, wanted.table_patterns
        ));
    }
    if m.export.where_clause != wanted.where_clause {
        diffs.push(format!(
            "--where was {:?}, now {:?}",
            m.export.where_clause, wanted.where_clause
        ));
    }
    if m.export.chunk_rows != wanted.chunk_rows {
        diffs.push(format!(
            "--chunk-rows was {:?}, now {:?}",
            m.export.chunk_rows, wanted.chunk_rows
        ));
    }
    if m.export.compress != wanted.compress || m.export.level != wanted.level {
        diffs.push(format!(
            "compression was {:?} level {}, now {:?} level {}",
            m.export.compress, m.export.level, wanted.compress, wanted.level
        ));
    }
    if m.source.endpoint != source.endpoint() || m.source.user != source.user {
        diffs.push(format!(
            "the source was {}@{}, now {}@{}",
            m.source.user,
            m.source.endpoint,
            source.user,
            source.endpoint()
        ));
    }
    if !diffs.is_empty() {
        bail!(
            "the dump in this directory was started with other options ({}); {dir_note}",
            diffs.join("; ")
        );
    }
    Ok(())
}

/// Session settings of every source connection.
fn setup_session(conn: &mut Conn, hooks: &Hooks) -> Result<()> {
    conn::set_exact_session(conn).context("setting up the source session")?;
    conn.query_drop("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        .context("setting up the source session")?;
    if hooks.raise_net_write_timeout {
        conn.query_drop(format!(
            "SET SESSION net_write_timeout = {SESSION_NET_WRITE_TIMEOUT}"
        ))
        .context("setting net_write_timeout")?;
    }
    conn::keep_session_when_idle(conn)?;
    // A server-wide statement time limit would kill a long chunk read.
    set_optional(conn, "max_statement_time = 0")?;
    set_optional(conn, "max_execution_time = 0")?;
    Ok(())
}

/// Warnings are shown at once and repeated in the summary.
fn warn(message: String, warnings: &mut Vec<String>) {
    eprintln!("myspool export: warning: {message}");
    warnings.push(message);
}

/// Per-table state during a run.
struct TableState {
    entry: TableEntry,
    /// The source's definition; `None` for a table finished by an earlier run.
    source: Option<SourceTable>,
    desc: TableDescription,
    /// Indexes into `desc.chunks` still to export.
    pending: Vec<usize>,
}

fn prepare_table(
    control: &mut Conn,
    dir: &DumpDir,
    entry: &TableEntry,
    opts: &ExportOptions,
    warnings: &mut Vec<String>,
) -> Result<TableState> {
    let table = TableRef {
        db: entry.db.clone(),
        table: entry.table.clone(),
    };
    let table_dir = dir.path(&entry.dir);
    let existing = dir.read_table(entry)?;
    if let Some(desc) = &existing {
        if desc.complete {
            // Finished by an earlier run (which may have died before it
            // could remove the log).
            let _ = fs::remove_file(table_dir.join(dump::EXPORT_LOG));
            return Ok(TableState {
                entry: entry.clone(),
                source: None,
                desc: desc.clone(),
                pending: Vec::new(),
            });
        }
    }
    let source = schema::describe(control, &table)?;
    if source.key_columns.is_empty() {
        warn(
            format!(
                "{table} has no primary key and no unique NOT NULL key: exported as one chunk, in no particular order, and a rerun cannot resume inside it"
            ),
            warnings,
        );
    }
    let desc = match existing {
        Some(mut desc) => {
            let columns: Vec<_> = source.columns.iter().map(|c| &c.desc).collect();
            let planned: Vec<_> = desc.columns.iter().collect();
            if columns != planned || desc.key != source.key {
                bail!(
                    "{table} changed since this export started (columns or key differ); start a new export in a new --dir"
                );
            }
            // Chunks recorded as done whose file is intact are kept.
            let log_path = table_dir.join(dump::EXPORT_LOG);
            let done: Vec<ExportedChunk> = dump::read_json_lines(&log_path)?;
            for d in done {
                let Some(chunk) = desc.chunks.iter_mut().find(|c| c.number == d.number) else {
                    continue;
                };
                let path = table_dir.join(&chunk.file);
                match dump::sha256_file(&path) {
                    Ok(sum) if sum == d.stats.sha256 => chunk.written = Some(d.stats),
                    Ok(_) => warn(
                        format!(
                            "{}: checksum differs from the one recorded; exporting it again",
                            path.display()
                        ),
                        warnings,
                    ),
                    Err(_) => warn(
                        format!(
                            "{} is recorded as done but missing; exporting it again",
                            path.display()
                        ),
                        warnings,
                    ),
                }
            }
            desc
        }
        None => {
            dump::create_private_dir(&table_dir)?;
            dump::write_atomic(
                &table_dir.join(dump::SCHEMA_FILE),
                format!("{};\n", source.create_sql).as_bytes(),
            )?;
            let chunk_rows = opts
                .chunk_rows
                .unwrap_or_else(|| auto_chunk_rows(&source, opts.jobs));
            let (chunks, planned_rows) = plan_chunks(control, &source, opts, chunk_rows)
                .with_context(|| format!("planning the chunks of {table}"))?;
            let desc = TableDescription {
                db: entry.db.clone(),
                table: entry.table.clone(),
                columns: source.columns.iter().map(|c| c.desc.clone()).collect(),
                generated_columns: source.generated_columns.clone(),
                key: source.key.clone(),
                chunk_rows,
                planned_rows,
                compress: opts.compress,
                chunks,
                complete: false,
            };
            dir.write_table(entry, &desc)?;
            // Forget chunk records of an earlier attempt whose plan was lost.
            let _ = fs::remove_file(table_dir.join(dump::EXPORT_LOG));
            desc
        }
    };
    remove_stale_temp_files(&table_dir)?;
    let pending = desc
        .chunks
        .iter()
        .enumerate()
        .filter(|(_, c)| c.written.is_none())
        .map(|(i, _)| i)
        .collect();
    Ok(TableState {
        entry: entry.clone(),
        source: Some(source),
        desc,
        pending,
    })
}

/// Temporary files left by a killed run.
fn remove_stale_temp_files(table_dir: &Path) -> Result<()> {
    for entry in
        fs::read_dir(table_dir).with_context(|| format!("reading {}", table_dir.display()))?
    {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with(".tmp-") {
            let _ = fs::remove_file(entry.path());
        }
    }
    Ok(())
}

/// Without `--chunk-rows`: about [`AUTO_CHUNK_BYTES`] per chunk, but at least
/// four chunks per job when the table is big enough, so that the jobs share
/// the work evenly to the end; never under 10,000 rows (a chunk costs a
/// query, an fsync and a rename).
fn auto_chunk_rows(source: &SourceTable, jobs: usize) -> u64 {
    let by_size = AUTO_CHUNK_BYTES / source.avg_row_length.max(16);
    let by_jobs = source.estimated_rows.div_ceil(4 * jobs.max(1) as u64);
    by_size.min(by_jobs).clamp(10_000, 1_000_000)
}

/// Streams the key in order and cuts a chunk every `chunk_rows` keys.
fn plan_chunks(
    conn: &mut Conn,
    source: &SourceTable,
    opts: &ExportOptions,
    chunk_rows: u64,
) -> Result<(Vec<ChunkRecord>, u64)> {
    let file = |n: u32| dump::chunk_file_name(n, opts.compress);
    if source.key_columns.is_empty() {
        let chunk = ChunkRecord {
            number: 1,
            file: file(1),
            lower: None,
            upper: None,
            written: None,
        };
        return Ok((vec![chunk], source.estimated_rows));
    }
    let exprs: Vec<&str> = source
        .key_columns
        .iter()
        .map(|k| k.select_expr.as_str())
        .collect();
    let mut query = format!("SELECT {} FROM {}", exprs.join(", "), source.table.sql());
    if let Some(w) = &opts.where_clause {
        query.push_str(&format!(" WHERE ({w})"));
    }
    query.push_str(&source.order_by());

    let mut boundaries: Vec<Vec<String>> = Vec::new();
    // A boundary is kept only once a later row exists, so the last chunk is
    // never empty (unless the table is).
    let mut candidate: Option<Vec<String>> = None;
    let mut rows: u64 = 0;
    let result = conn.query_iter(query).context("reading the key")?;
    for row in result {
        let row = row.context("reading the key")?;
        if let Some(b) = candidate.take() {
            boundaries.push(b);
        }
        rows += 1;
        if rows.is_multiple_of(chunk_rows) {
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
            file: file(number),
            lower: lower.clone(),
            upper: upper.clone(),
            written: None,
        });
        lower = upper;
    }
    Ok((chunks, rows))
}

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
fn chunk_query(source: &SourceTable, chunk: &ChunkRecord, where_clause: Option<&str>) -> String {
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

/// Opens the reading connections and starts their snapshots.
fn open_readers(
    spec: &ConnSpec,
    control: &mut Conn,
    jobs: usize,
    tables: &[TableState],
    opts: &ExportOptions,
    warnings: &mut Vec<String>,
) -> Result<(Vec<Conn>, &'static str)> {
    let mut readers = Vec::with_capacity(jobs);
    for _ in 0..jobs {
        let mut c = spec.connect("source")?;
        setup_session(&mut c, &opts.hooks)?;
        readers.push(c);
    }
    let start = |c: &mut Conn| {
        c.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
            .context("starting a consistent snapshot")
    };
    if jobs == 1 {
        start(&mut readers[0])?;
        return Ok((readers, "single-snapshot"));
    }
    if opts.consistency == Consistency::PerConnection {
        readers.iter_mut().try_for_each(start)?;
        return Ok((readers, "per-connection-snapshots"));
    }
    // Several snapshots agree only if nothing commits to these tables while
    // they start. FLUSH TABLES … WITH READ LOCK holds writers off for the
    // milliseconds it takes; lock_wait_timeout bounds how long it may queue
    // behind a long-running statement (and so how long writers may stall).
    let list: Vec<String> = tables
        .iter()
        .filter(|t| !t.pending.is_empty())
        .filter_map(|t| t.source.as_ref().map(|s| s.table.sql()))
        .collect();
    control.query_drop("SET SESSION lock_wait_timeout = 10")?;
    match control.query_drop(format!("FLUSH TABLES {} WITH READ LOCK", list.join(", "))) {
        Ok(()) => {
            let started = readers.iter_mut().try_for_each(start);
            control
                .query_drop("UNLOCK TABLES")
                .context("UNLOCK TABLES")?;
            started?;
            Ok((readers, "synchronized-snapshots"))
        }
        Err(e) => {
            let e = anyhow::Error::new(e);
            let code = server_error_code(&e);
            // 1227: access denied (no RELOAD or LOCK TABLES); 1205: lock
            // wait timeout behind a long statement.
            if opts.consistency == Consistency::Auto
                && matches!(code, Some(1227) | Some(1205) | Some(1044) | Some(1142))
            {
                let w = format!(
                    "could not synchronize the snapshots of {jobs} connections ({e}); each connection takes its own snapshot, so tables may be from moments apart. Use --jobs 1 for one snapshot, or grant RELOAD and LOCK TABLES"
                );
                warn(w, warnings);
                readers.iter_mut().try_for_each(start)?;
                Ok((readers, "per-connection-snapshots"))
            } else {
                Err(e.context("synchronizing snapshots with FLUSH TABLES … WITH READ LOCK"))
            }
        }
    }
}

#[derive(Default)]
struct RunTotals {
    rows: u64,
    chunks: u64,
    spilled: u64,
}

/// What flows from the reader to the encoder.
enum RowMsg {
    Start(Arc<ChunkJob>),
    Rows(RowBatch),
    /// CSV the reader wrote itself because the queue was full.
    Spilled(File),
    End {
        rows: u64,
    },
}

/// What flows from the encoder to the writer.
enum CsvMsg {
    Start(Arc<ChunkJob>),
    Block(Vec<u8>),
    Spilled(File),
    End { rows: u64, spilled: bool },
}

enum Event {
    Done {
        table: usize,
        chunk: usize,
        stats: ChunkStats,
        spilled: bool,
    },
    Failed(anyhow::Error),
}

/// One chunk to export.
struct ChunkJob {
    table: usize,
    chunk: usize,
    label: String,
    query: String,
    layout: Arc<CsvLayout>,
    dir: PathBuf,
    file: String,
}

/// How a table's rows become CSV.
struct CsvLayout {
    codecs: Vec<Codec>,
    header: Vec<u8>,
}

/// Counters the progress display reads.
#[derive(Default)]
struct Counters {
    rows: AtomicU64,
    bytes: AtomicU64,
}

fn run_pipeline(
    opts: &ExportOptions,
    dir: &DumpDir,
    tables: &mut [TableState],
    pending: Vec<(usize, usize)>,
    readers: Vec<Conn>,
) -> Result<RunTotals> {
    let total_rows: u64 = tables
        .iter()
        .map(|t| {
            let done: u64 = t
                .desc
                .chunks
                .iter()
                .filter_map(|c| c.written.as_ref())
                .map(|s| s.rows)
                .sum();
            if t.pending.is_empty() {
                0
            } else {
                t.desc.planned_rows.saturating_sub(done).max(1)
            }
        })
        .sum();
    let mut progress = Progress::new(opts.progress, "export", total_rows);

    // Chunks go out in table order and key order (the first chunk of every
    // table first when a reader follows the dump); each job takes the next.
    let (work_tx, work_rx) = unbounded::<Arc<ChunkJob>>();
    let mut layouts: Vec<Option<Arc<CsvLayout>>> = vec![None; tables.len()];
    for (t, c) in pending {
        let st = &tables[t];
        let Some(source) = &st.source else { continue };
        let layout = layouts[t]
            .get_or_insert_with(|| {
                let names: Vec<&str> = source
                    .columns
                    .iter()
                    .map(|c| c.desc.name.as_str())
                    .collect();
                let mut header = Vec::new();
                dialect::write_header(&mut header, &names);
                Arc::new(CsvLayout {
                    codecs: source.columns.iter().map(|c| c.codec).collect(),
                    header,
                })
            })
            .clone();
        let chunk = &st.desc.chunks[c];
        let _ = work_tx.send(Arc::new(ChunkJob {
            table: t,
            chunk: c,
            label: format!("chunk {:06} of {}", chunk.number, source.table),
            query: chunk_query(source, chunk, opts.where_clause.as_deref()),
            layout,
            dir: dir.path(&st.entry.dir),
            file: chunk.file.clone(),
        }));
    }
    drop(work_tx);

    let abort = Arc::new(AtomicBool::new(false));
    let counters = Arc::new(Counters::default());
    let (event_tx, event_rx) = unbounded::<Event>();
    let mut handles = Vec::new();
    for conn in readers {
        let (row_tx, row_rx) = bounded::<RowMsg>(QUEUE_DEPTH);
        let (csv_tx, csv_rx) = bounded::<CsvMsg>(QUEUE_DEPTH);
        let hooks = opts.hooks.clone();
        let (work, ev, ab, ct) = (
            work_rx.clone(),
            event_tx.clone(),
            abort.clone(),
            counters.clone(),
        );
        let spill_dir = dir.root().to_path_buf();
        handles.push(spawn("myspool-read", ev.clone(), ab.clone(), move || {
            read_chunks(conn, work, row_tx, &spill_dir, &hooks, &ab, &ct)
        })?);
        let ab2 = abort.clone();
        handles.push(spawn("myspool-encode", ev.clone(), ab2, move || {
            encode_chunks(row_rx, csv_tx)
        })?);
        let (compress, level, delay) = (opts.compress, opts.level, opts.hooks.write_delay);
        let ab3 = abort.clone();
        handles.push(spawn("myspool-write", ev.clone(), ab3, move || {
            write_chunks(csv_rx, ev, compress, level, delay)
        })?);
    }
    drop(event_tx);

    let mut totals = RunTotals::default();
    let mut first_error: Option<anyhow::Error> = None;
    loop {
        match event_rx.recv_timeout(Duration::from_millis(200)) {
            Ok(Event::Done {
                table,
                chunk,
                stats,
                spilled,
            }) => {
                let st = &mut tables[table];
                let record = &mut st.desc.chunks[chunk];
                let log = dir.path(&st.entry.dir).join(dump::EXPORT_LOG);
                let done = ExportedChunk {
                    number: record.number,
                    stats: stats.clone(),
                };
                if let Err(e) = dump::append_json_line(&log, &done) {
                    abort.store(true, Ordering::SeqCst);
                    first_error.get_or_insert(e);
                    continue;
                }
                totals.chunks += 1;
                totals.rows += stats.rows;
                totals.spilled += u64::from(spilled);
                record.written = Some(stats);
                if let Some(g) = &opts.announce {
                    g.changed();
                }
                st.pending.retain(|&c| c != chunk);
                if st.pending.is_empty() {
                    if let Err(e) = finish_table(dir, st) {
                        abort.store(true, Ordering::SeqCst);
                        first_error.get_or_insert(e);
                    }
                }
            }
            Ok(Event::Failed(e)) => {
                abort.store(true, Ordering::SeqCst);
                first_error.get_or_insert(e);
            }
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
        }
        progress.set(
            counters.rows.load(Ordering::Relaxed),
            counters.bytes.load(Ordering::Relaxed),
        );
    }
    for h in handles {
        let _ = h.join();
    }
    progress.finish();
    match first_error {
        Some(e) => Err(e),
        None => Ok(totals),
    }
}

/// Folds the log into `table.json` once every chunk of a table is written.
fn finish_table(dir: &DumpDir, st: &mut TableState) -> Result<()> {
    st.desc.complete = true;
    dir.write_table(&st.entry, &st.desc)?;
    let log = dir.path(&st.entry.dir).join(dump::EXPORT_LOG);
    let _ = fs::remove_file(log);
    Ok(())
}

/// The downstream thread has stopped; it reports its own error.
#[derive(Debug)]
struct PipelineClosed;

impl std::fmt::Display for PipelineClosed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("pipeline closed")
    }
}

impl std::error::Error for PipelineClosed {}

fn spawn<F>(
    name: &str,
    events: Sender<Event>,
    abort: Arc<AtomicBool>,
    body: F,
) -> Result<thread::JoinHandle<()>>
where
    F: FnOnce() -> Result<()> + Send + 'static,
{
    thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            if let Err(e) = body() {
                abort.store(true, Ordering::SeqCst);
                if e.downcast_ref::<PipelineClosed>().is_none() {
                    let _ = events.send(Event::Failed(e));
                }
            }
        })
        .context("starting a thread")
}

fn read_chunks(
    mut conn: Conn,
    work: Receiver<Arc<ChunkJob>>,
    tx: Sender<RowMsg>,
    spill_dir: &Path,
    hooks: &Hooks,
    abort: &AtomicBool,
    counters: &Counters,
) -> Result<()> {
    let send = |msg| tx.send(msg).map_err(|_| anyhow::Error::new(PipelineClosed));
    while let Ok(job) = work.recv() {
        if abort.load(Ordering::SeqCst) {
            return Ok(());
        }
        send(RowMsg::Start(job.clone()))?;
        let rows = read_one_chunk(&mut conn, &job, &tx, spill_dir, hooks, abort, counters)
            .with_context(|| format!("exporting {}", job.label))?;
        send(RowMsg::End { rows })?;
    }
    Ok(())
}

fn read_one_chunk(
    conn: &mut Conn,
    job: &ChunkJob,
    tx: &Sender<RowMsg>,
    spill_dir: &Path,
    hooks: &Hooks,
    abort: &AtomicBool,
    counters: &Counters,
) -> Result<u64> {
    let mut batch = RowBatch::default();
    let mut rows = 0u64;
    let mut spill: Option<BufWriter<File>> = None;
    let mut csv = Vec::new();

    // Hands a batch on, or into the spill file once the queue has stayed
    // full for STALL_LIMIT: the socket must keep draining.
    let mut flush = |batch: RowBatch, spill: &mut Option<BufWriter<File>>| -> Result<()> {
        if spill.is_none() {
            let msg = RowMsg::Rows(batch);
            let msg = if hooks.spill {
                match tx.send_timeout(msg, STALL_LIMIT) {
                    Ok(()) => return Ok(()),
                    Err(SendTimeoutError::Disconnected(_)) => return Err(PipelineClosed.into()),
                    Err(SendTimeoutError::Timeout(msg)) => msg,
                }
            } else {
                return tx.send(msg).map_err(|_| PipelineClosed.into());
            };
            let file = tempfile::tempfile_in(spill_dir)
                .with_context(|| format!("creating a spill file in {}", spill_dir.display()))?;
            *spill = Some(BufWriter::with_capacity(256 * 1024, file));
            let RowMsg::Rows(batch) = msg else {
                unreachable!("send_timeout returns the message it was given")
            };
            return write_spill(spill, &batch, &job.layout.codecs, &mut csv);
        }
        write_spill(spill, &batch, &job.layout.codecs, &mut csv)
    };

    let result = conn
        .query_iter(job.query.as_str())
        .context("querying the server")?;
    for row in result {
        let row = row.context("reading from the server")?;
        let before = batch.bytes.len();
        batch.push_row(row.unwrap_raw());
        rows += 1;
        counters.rows.fetch_add(1, Ordering::Relaxed);
        counters
            .bytes
            .fetch_add((batch.bytes.len() - before) as u64, Ordering::Relaxed);
        if batch.bytes.len() >= BATCH_BYTES {
            if abort.load(Ordering::SeqCst) {
                return Err(PipelineClosed.into());
            }
            flush(std::mem::take(&mut batch), &mut spill)?;
        }
    }
    if !batch.fields.is_empty() {
        flush(batch, &mut spill)?;
    }
    if let Some(w) = spill {
        let mut file = w
            .into_inner()
            .map_err(|e| e.into_error())
            .context("writing the spill file")?;
        file.rewind().context("rewinding the spill file")?;
        tx.send(RowMsg::Spilled(file)).map_err(|_| PipelineClosed)?;
    }
    Ok(rows)
}

/// Rows on their way from the reader to the encoder, packed into one buffer.
///
/// Why not the mysql crate's rows as they are: each value is its own heap
/// allocation, and freeing millions of them on another thread than the one
/// that allocated them cost a third of the exporter's CPU (glibc malloc,
/// measured with perf). Copying the bytes once here frees them where they
/// were made.
struct RowBatch {
    bytes: Vec<u8>,
    /// `(start, len)` in `bytes` per value, row after row; a `len` of
    /// `NULL_LEN` is SQL NULL. (A batch is far smaller than 4 GiB: it is cut
    /// at BATCH_BYTES, plus at most one row of max_allowed_packet ≤ 1 GiB.)
    fields: Vec<(u32, u32)>,
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
    fn push_row(&mut self, values: Vec<Option<Value>>) {
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

fn write_spill(
    spill: &mut Option<BufWriter<File>>,
    batch: &RowBatch,
    codecs: &[Codec],
    csv: &mut Vec<u8>,
) -> Result<()> {
    let Some(w) = spill.as_mut() else {
        return Ok(());
    };
    csv.clear();
    encode_rows(csv, batch, codecs);
    w.write_all(csv).context("writing the spill file")
}

fn encode_rows(out: &mut Vec<u8>, batch: &RowBatch, codecs: &[Codec]) {
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

fn encode_chunks(rx: Receiver<RowMsg>, tx: Sender<CsvMsg>) -> Result<()> {
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

/// A chunk being written.
struct OpenChunk {
    job: Arc<ChunkJob>,
    writer: ChunkWriter,
}

fn write_chunks(
    rx: Receiver<CsvMsg>,
    events: Sender<Event>,
    compress: Compress,
    level: u32,
    delay: Duration,
) -> Result<()> {
    let mut open: Option<OpenChunk> = None;
    for msg in rx {
        match msg {
            CsvMsg::Start(job) => {
                if !delay.is_zero() {
                    thread::sleep(delay);
                }
                let label = job.label.clone();
                open = Some(
                    open_chunk(job, compress, level).with_context(|| format!("writing {label}"))?,
                );
            }
            CsvMsg::Block(block) => {
                let chunk = open
                    .as_mut()
                    .ok_or_else(|| anyhow!("CSV before chunk start"))?;
                chunk
                    .writer
                    .write_all(&block)
                    .with_context(|| write_error(&chunk.job))?;
            }
            CsvMsg::Spilled(mut file) => {
                let chunk = open
                    .as_mut()
                    .ok_or_else(|| anyhow!("CSV before chunk start"))?;
                let mut buf = vec![0u8; BATCH_BYTES];
                loop {
                    let n = file.read(&mut buf).context("reading the spill file")?;
                    if n == 0 {
                        break;
                    }
                    chunk
                        .writer
                        .write_all(&buf[..n])
                        .with_context(|| write_error(&chunk.job))?;
                }
            }
            CsvMsg::End { rows, spilled } => {
                let chunk = open
                    .take()
                    .ok_or_else(|| anyhow!("chunk end before start"))?;
                let (table, index) = (chunk.job.table, chunk.job.chunk);
                let label = chunk.job.label.clone();
                let stats = chunk
                    .writer
                    .finish(rows)
                    .with_context(|| format!("writing {label}"))?;
                events
                    .send(Event::Done {
                        table,
                        chunk: index,
                        stats,
                        spilled,
                    })
                    .map_err(|_| PipelineClosed)?;
            }
        }
    }
    Ok(())
}

fn write_error(job: &ChunkJob) -> String {
    format!(
        "writing {} to {}",
        job.label,
        job.dir.join(&job.file).display()
    )
}

fn open_chunk(job: Arc<ChunkJob>, compress: Compress, level: u32) -> Result<OpenChunk> {
    let mut writer = ChunkWriter::create(&job.dir, &job.file, compress, level)?;
    writer
        .write_all(&job.layout.header)
        .with_context(|| write_error(&job))?;
    Ok(OpenChunk { job, writer })
}
