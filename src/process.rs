//! Process: transform every chunk of a dump, offline, into a new dump.
//!
//! For each chunk a shell command runs with the chunk's CSV (decompressed,
//! header first) on its stdin; what it writes on stdout becomes the chunk of
//! the output dump, after checking it: well-formed CSV in the dump's
//! dialect, valid UTF-8, the same number of fields on every row, the same
//! header in every chunk of a table. The output may change values, drop rows,
//! and add, drop or rename columns; its header is the new column list.
//!
//! No database connection is opened. Everything streams (stdin is fed by a
//! thread, stdout is read as it comes, stderr goes straight to a file), so
//! memory stays flat for jobs that run for days. Each output chunk is written
//! to a temporary file and renamed into place only when the command exited 0
//! and its output passed every check; a rerun never redoes a finished chunk
//! and retries the failed ones.
//!
//! `--format jsonl` gives the command one JSON object per row instead
//! (`{"col": "value", "other": null}`; binary columns as hex strings) and
//! reads objects back the same way, so a script needs no CSV convention.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use serde::Serialize;

use crate::dialect::{self, Codec, Encoding, Field};
use crate::dump::{
    self, ChunkReader, ChunkRecord, ChunkWriter, ColumnDescription, DumpDir, Growing, Manifest,
    OutputRecord, ProcessedChunk, ProcessedFrom, TableDescription, TableEntry,
};
use crate::progress::{peak_rss_bytes, Progress, ProgressMode};

/// How rows reach the command and come back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// The dump's own CSV.
    #[default]
    Csv,
    /// One JSON object per line.
    Jsonl,
}

#[derive(Debug, Clone)]
pub struct ProcessOptions {
    pub dir: PathBuf,
    pub out: PathBuf,
    /// Run through `sh -c` once per chunk.
    pub exec: String,
    pub jobs: usize,
    pub format: Format,
    pub progress: ProgressMode,
    /// The input is still being written by another thread of this process
    /// (`copy`): each chunk is processed once it is finished.
    pub follow: Option<Arc<Growing>>,
    /// Told of every processed chunk, for a reader of the output in this
    /// process; if that reader abandons it, no more chunks are started. The
    /// caller calls its `finish` when this returns.
    pub announce: Option<Arc<Growing>>,
}

impl ProcessOptions {
    pub fn new(dir: impl Into<PathBuf>, out: impl Into<PathBuf>, exec: impl Into<String>) -> Self {
        ProcessOptions {
            dir: dir.into(),
            out: out.into(),
            exec: exec.into(),
            jobs: 2,
            format: Format::Csv,
            progress: ProgressMode::Auto,
            follow: None,
            announce: None,
        }
    }
}

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

#[derive(Debug, Clone, Serialize)]
pub struct ProcessSummary {
    pub dir: PathBuf,
    pub out: PathBuf,
    pub tables: Vec<TableProcessSummary>,
    pub rows_in: u64,
    pub rows_out: u64,
    pub chunks_processed: u64,
    /// Finished by an earlier run.
    pub chunks_kept: u64,
    pub failed: Vec<FailedChunk>,
    pub complete: bool,
    pub seconds: f64,
    pub peak_rss_bytes: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TableProcessSummary {
    pub db: String,
    pub table: String,
    pub chunks: usize,
    pub done: usize,
    pub columns: Option<Vec<String>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FailedChunk {
    pub table: String,
    pub chunk: u32,
    pub reason: String,
    /// Where the command's stderr is kept.
    pub stderr: Option<PathBuf>,
}

/// Runs `opts.exec` over every chunk of `opts.dir` into `opts.out`.
pub fn process(opts: &ProcessOptions) -> Result<ProcessSummary> {
    if opts.exec.trim().is_empty() {
        bail!("--exec is empty");
    }
    run(opts, Worker::Command(&opts.exec))
}

/// Applies a Rust transform over every chunk of `opts.dir` into `opts.out`
/// (`opts.exec` only names it in the output manifest).
pub fn process_with(opts: &ProcessOptions, transform: &dyn RowTransform) -> Result<ProcessSummary> {
    run(opts, Worker::Transform(transform))
}

#[derive(Clone, Copy)]
enum Worker<'a> {
    Command(&'a str),
    Transform(&'a dyn RowTransform),
}

/// One table's state during a run.
struct TableWork {
    entry: TableEntry,
    input: TableDescription,
    out_dir: PathBuf,
    /// The output header, once a chunk has set it.
    columns: Mutex<Option<Vec<String>>>,
    done: Mutex<BTreeMap<u32, ProcessedChunk>>,
    /// The output has a table.json (maybe an incomplete one, for a reader
    /// that follows the processing).
    described: AtomicBool,
}

fn run(opts: &ProcessOptions, worker: Worker<'_>) -> Result<ProcessSummary> {
    let started = Instant::now();
    if opts.jobs == 0 {
        bail!("--jobs must be at least 1");
    }
    let input = DumpDir::new(&opts.dir);
    let manifest = match &opts.follow {
        Some(growing) => growing.wait_for(
            || format!("{}", input.manifest_path().display()),
            || input.read_manifest(),
        )?,
        None => input.require_manifest()?,
    };
    if !manifest.complete && opts.follow.is_none() {
        bail!(
            "the dump in {} is not complete (its export was interrupted or is running): finish it first",
            opts.dir.display()
        );
    }
    let from = fs::canonicalize(&opts.dir)
        .with_context(|| format!("--dir {}", opts.dir.display()))?
        .display()
        .to_string();
    if let (Ok(a), Ok(b)) = (fs::canonicalize(&opts.dir), fs::canonicalize(&opts.out)) {
        if a == b {
            bail!("--out must be another directory than --dir");
        }
    }
    let format_name = match opts.format {
        Format::Csv => "csv",
        Format::Jsonl => "jsonl",
    };
    let processed = ProcessedFrom {
        from,
        exec: opts.exec.clone(),
        format: format_name.into(),
    };

    // The output directory: new, or this same processing resumed.
    let out = DumpDir::new(&opts.out);
    match fs::metadata(&opts.out) {
        Ok(m) if !m.is_dir() => bail!("--out {} exists and is not a directory", opts.out.display()),
        Ok(_) => {}
        Err(_) => dump::create_private_dir(&opts.out)?,
    }
    let _lock = out.lock()?;
    let mut out_manifest = match out.read_manifest()? {
        Some(m) => {
            if m.processed.as_ref() != Some(&processed) {
                bail!(
                    "{} holds another processing ({}); use a new --out, or rerun with the original --dir, --exec and --format",
                    opts.out.display(),
                    m.processed
                        .as_ref()
                        .map(|p| format!("of {} with {:?}, {}", p.from, p.exec, p.format))
                        .unwrap_or_else(|| "an export".into())
                );
            }
            m
        }
        None => {
            if !out.is_empty()? {
                bail!(
                    "--out {} is not empty and holds no myspool manifest",
                    opts.out.display()
                );
            }
            let mut m: Manifest = manifest.clone();
            m.processed = Some(processed.clone());
            m.complete = false;
            m.started_at = dump::utc_now();
            m.finished_at = None;
            out.write_manifest(&m)?;
            m
        }
    };

    record_output(&input, &opts.out, &processed)?;

    let mut tables = Vec::new();
    for entry in &manifest.tables {
        let desc = input.table_description(entry, opts.follow.as_deref())?;
        let out_dir = out.path(&entry.dir);
        dump::create_private_dir(&out_dir)?;
        // Temporary files of a killed run.
        for e in fs::read_dir(&out_dir)?.flatten() {
            if e.file_name().to_string_lossy().starts_with(".tmp-") {
                let _ = fs::remove_file(e.path());
            }
        }
        // A processed table may not match its schema.sql any more; it is
        // kept as the source's definition, for reference.
        let schema = input.path(&entry.dir).join(dump::SCHEMA_FILE);
        if schema.exists() && !out_dir.join(dump::SCHEMA_FILE).exists() {
            dump::write_atomic(&out_dir.join(dump::SCHEMA_FILE), &fs::read(&schema)?)?;
        }
        let db_sql = input
            .path(&dump::safe_file_name(&entry.db))
            .join(dump::DATABASE_FILE);
        let out_db_sql = out
            .path(&dump::safe_file_name(&entry.db))
            .join(dump::DATABASE_FILE);
        if db_sql.exists() && !out_db_sql.exists() {
            dump::write_atomic(&out_db_sql, &fs::read(&db_sql)?)?;
        }
        let mut done = BTreeMap::new();
        let mut columns = None;
        let described = out.read_table(entry)?;
        let described_now = described.is_some();
        if let Some(finished) = described.filter(|t| t.complete) {
            columns = Some(finished.columns.iter().map(|c| c.name.clone()).collect());
            for c in finished.chunks {
                if let Some(stats) = c.written {
                    done.insert(
                        c.number,
                        ProcessedChunk {
                            number: c.number,
                            columns: columns.clone().unwrap_or_default(),
                            rows_in: 0,
                            stats,
                        },
                    );
                }
            }
        } else {
            let log: Vec<ProcessedChunk> = dump::read_json_lines(&out_dir.join(dump::PROCESS_LOG))?;
            for p in log {
                // Kept only if the file is still the one recorded.
                let path = out_dir.join(&chunk_of(&desc, p.number)?.file);
                if dump::sha256_file(&path).ok().as_deref() == Some(p.stats.sha256.as_str()) {
                    columns.get_or_insert_with(|| p.columns.clone());
                    done.insert(p.number, p);
                }
            }
        }
        tables.push(TableWork {
            entry: entry.clone(),
            input: desc,
            out_dir,
            columns: Mutex::new(columns),
            done: Mutex::new(done),
            described: AtomicBool::new(described_now),
        });
    }

    let pending: Vec<(usize, usize)> = tables
        .iter()
        .enumerate()
        .flat_map(|(t, w)| {
            let done = w
                .done
                .lock()
                .map(|d| d.keys().copied().collect::<Vec<_>>())
                .unwrap_or_default();
            w.input
                .chunks
                .iter()
                .enumerate()
                .filter(move |(_, c)| !done.contains(&c.number))
                .map(move |(i, _)| (t, i))
                .collect::<Vec<_>>()
        })
        .collect();
    let pending = match opts.follow {
        Some(_) => dump::first_chunks_first(pending),
        None => pending,
    };
    let chunks_kept = tables
        .iter()
        .map(|t| t.done.lock().map(|d| d.len() as u64).unwrap_or(0))
        .sum();
    let total_rows: u64 = if opts.follow.is_some() {
        // Not all written yet: what the export planned.
        tables.iter().map(|t| t.input.planned_rows).sum()
    } else {
        pending
            .iter()
            .filter_map(|&(t, c)| tables[t].input.chunks[c].written.as_ref().map(|w| w.rows))
            .sum()
    };
    let progress = Mutex::new(Progress::new(opts.progress, "process", total_rows));
    let failed = Mutex::new(Vec::new());
    let next = AtomicUsize::new(0);
    let in_flight = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let counts = Mutex::new((0u64, 0u64, 0u64));
    let level = manifest.export.level;
    // A failure that is not the chunk's own (the journal, the input): stop.
    let give_up = |table: String, chunk: u32, e: anyhow::Error| {
        stop.store(true, Ordering::SeqCst);
        if let Ok(mut f) = failed.lock() {
            f.push(FailedChunk {
                table,
                chunk,
                reason: format!("{e:#}"),
                stderr: None,
            });
        }
    };
    thread::scope(|scope| {
        for _ in 0..opts.jobs.min(pending.len().max(1)) {
            scope.spawn(|| loop {
                if stop.load(Ordering::SeqCst)
                    || opts.announce.as_ref().is_some_and(|g| g.abandoned())
                {
                    return;
                }
                let Some(&(t, c)) = pending.get(next.fetch_add(1, Ordering::SeqCst)) else {
                    return;
                };
                let work = &tables[t];
                let label = format!("{}.{}", work.input.db, work.input.table);
                let chunk = match &opts.follow {
                    None => work.input.chunks[c].clone(),
                    Some(growing) => match written_input(growing, &input, work, c) {
                        Ok(chunk) => chunk,
                        Err(e) => {
                            // The export stopped: nothing more will come.
                            give_up(label, work.input.chunks[c].number, e);
                            return;
                        }
                    },
                };
                let chunk = &chunk;
                in_flight.fetch_add(1, Ordering::SeqCst);
                let result = process_chunk(worker, opts.format, &input, work, chunk, level);
                in_flight.fetch_sub(1, Ordering::SeqCst);
                let note = |p: &mut Progress, failed: usize| {
                    let done = counts.lock().map(|n| n.0).unwrap_or(0);
                    p.set_note(format!(
                        "{done} of {} chunks done, {failed} failed, {} in flight",
                        pending.len(),
                        in_flight.load(Ordering::SeqCst)
                    ));
                };
                match result {
                    Ok(done) => {
                        let (rows_in, rows_out, bytes) =
                            (done.rows_in, done.stats.rows, done.stats.csv_bytes);
                        if let Err(e) = record_done(&out, work, done, opts.announce.as_deref()) {
                            // The journal cannot be written (disk full?): stop.
                            give_up(label, chunk.number, e);
                            return;
                        }
                        if let Ok(mut n) = counts.lock() {
                            n.0 += 1;
                            n.1 += rows_in;
                            n.2 += rows_out;
                        }
                        if let Ok(mut p) = progress.lock() {
                            let failed_n = failed.lock().map(|f| f.len()).unwrap_or(0);
                            note(&mut p, failed_n);
                            p.add(rows_in, bytes);
                        }
                    }
                    Err(e) => {
                        let stderr = work.out_dir.join(stderr_name(chunk.number));
                        let reason = format!("{e:#}");
                        if let Ok(p) = progress.lock() {
                            p.println(&format!(
                                "myspool process: chunk {:06} of {label} failed: {reason}",
                                chunk.number
                            ));
                        }
                        if let Ok(mut f) = failed.lock() {
                            f.push(FailedChunk {
                                table: label,
                                chunk: chunk.number,
                                reason,
                                stderr: stderr.exists().then_some(stderr),
                            });
                        }
                    }
                }
            });
        }
    });
    if let Ok(mut p) = progress.lock() {
        p.finish();
    }

    // Tables whose chunks are all done get their table.json.
    let mut summary_tables = Vec::new();
    let mut all_done = true;
    for work in &tables {
        let done = work.done.lock().map_err(|_| anyhow!("a worker panicked"))?;
        let columns = work
            .columns
            .lock()
            .map_err(|_| anyhow!("a worker panicked"))?
            .clone();
        let complete = done.len() == work.input.chunks.len();
        all_done &= complete;
        if complete {
            let cols = columns.clone().unwrap_or_default();
            let desc = output_description(&work.input, &cols, &done);
            out.write_table(&work.entry, &desc)?;
            let _ = fs::remove_file(work.out_dir.join(dump::PROCESS_LOG));
        }
        summary_tables.push(TableProcessSummary {
            db: work.input.db.clone(),
            table: work.input.table.clone(),
            chunks: work.input.chunks.len(),
            done: done.len(),
            columns,
        });
    }
    if all_done && !out_manifest.complete {
        out_manifest.complete = true;
        out_manifest.finished_at = Some(dump::utc_now());
        out.write_manifest(&out_manifest)?;
    }
    let (chunks_processed, rows_in, rows_out) = counts.into_inner().unwrap_or_default();
    let mut failed = failed.into_inner().unwrap_or_default();
    failed.sort_by(|a, b| (&a.table, a.chunk).cmp(&(&b.table, b.chunk)));
    Ok(ProcessSummary {
        dir: opts.dir.clone(),
        out: opts.out.clone(),
        tables: summary_tables,
        rows_in,
        rows_out,
        chunks_processed,
        chunks_kept,
        complete: all_done,
        failed,
        seconds: started.elapsed().as_secs_f64(),
        peak_rss_bytes: peak_rss_bytes(),
    })
}

/// Notes in the input dump where it was processed to (`outputs.jsonl`), so
/// `myspool status` can report on every output. Listed once.
fn record_output(input: &DumpDir, out: &Path, processed: &ProcessedFrom) -> Result<()> {
    let path = input.root().join(dump::OUTPUTS_LOG);
    let out = fs::canonicalize(out)?.display().to_string();
    let known: Vec<OutputRecord> = dump::read_json_lines(&path)?;
    if known.iter().any(|k| k.out == out) {
        return Ok(());
    }
    dump::append_json_line(
        &path,
        &OutputRecord {
            out,
            exec: processed.exec.clone(),
            format: processed.format.clone(),
        },
    )
}

/// Journals a processed chunk in `process.log`, and tells a reader that
/// follows the output.
fn record_done(
    out: &DumpDir,
    work: &TableWork,
    done: ProcessedChunk,
    growing: Option<&Growing>,
) -> Result<()> {
    dump::append_json_line(&work.out_dir.join(dump::PROCESS_LOG), &done)?;
    let mut all = work.done.lock().map_err(|_| anyhow!("a worker panicked"))?;
    all.insert(done.number, done);
    if let Some(growing) = growing {
        // The reader needs a table's columns before its first chunk: an
        // incomplete table.json (the complete one comes at the end).
        if !work.described.swap(true, Ordering::SeqCst) {
            let columns = all.values().next().map(|p| p.columns.clone());
            let mut desc = output_description(&work.input, &columns.unwrap_or_default(), &all);
            desc.complete = false;
            desc.planned_rows = work.input.planned_rows;
            out.write_table(&work.entry, &desc)?;
        }
        growing.changed();
    }
    Ok(())
}

/// Chunk `c` of a table of a dump being exported, once it is written.
fn written_input(
    growing: &Growing,
    input: &DumpDir,
    work: &TableWork,
    c: usize,
) -> Result<ChunkRecord> {
    let number = work.input.chunks[c].number;
    growing.wait_for(
        || {
            format!(
                "chunk {number:06} of {}.{}",
                work.input.db, work.input.table
            )
        },
        || {
            Ok(input
                .written_chunks(&work.entry)?
                .and_then(|desc| desc.chunks.into_iter().find(|ch| ch.number == number))
                .filter(|ch| ch.written.is_some()))
        },
    )
}

fn chunk_of(desc: &TableDescription, number: u32) -> Result<&ChunkRecord> {
    desc.chunks
        .iter()
        .find(|c| c.number == number)
        .ok_or_else(|| anyhow!("chunk {number:06} is not in {}.{}", desc.db, desc.table))
}

fn stderr_name(number: u32) -> String {
    format!("{number:06}.stderr")
}

/// The output table's description: the input's, with the new columns (those
/// that kept a name keep their description; new ones are text of unknown type).
fn output_description(
    input: &TableDescription,
    columns: &[String],
    done: &BTreeMap<u32, ProcessedChunk>,
) -> TableDescription {
    let mut desc = input.clone();
    desc.columns = columns
        .iter()
        .map(|name| {
            input
                .columns
                .iter()
                .find(|c| &c.name == name)
                .cloned()
                .unwrap_or(ColumnDescription {
                    name: name.clone(),
                    column_type: "unknown".into(),
                    data_type: "unknown".into(),
                    nullable: true,
                    charset: None,
                    collation: None,
                    encoding: Encoding::Text,
                    invisible: false,
                })
        })
        .collect();
    // The output is compressed as the input was (copy --compress none keeps
    // its intermediate dumps uncompressed end to end).
    for chunk in &mut desc.chunks {
        chunk.file = dump::chunk_file_name(chunk.number, input.compress);
        chunk.written = done.get(&chunk.number).map(|d| d.stats.clone());
    }
    desc.planned_rows = done.values().map(|d| d.stats.rows).sum();
    desc.complete = true;
    desc
}

/// Checks and writes the rows of an output chunk.
struct OutputChunk<'a> {
    work: &'a TableWork,
    writer: ChunkWriter,
    columns: Option<Vec<String>>,
    rows: u64,
    buf: Vec<u8>,
}

impl<'a> OutputChunk<'a> {
    fn header(&mut self, names: Vec<String>) -> Result<()> {
        if names.is_empty() || names.iter().any(|n| n.is_empty()) {
            bail!("the output header {names:?} has an empty column name");
        }
        for (i, n) in names.iter().enumerate() {
            if names[..i].contains(n) {
                bail!("the output header names column {n:?} twice");
            }
        }
        let mut shared = self
            .work
            .columns
            .lock()
            .map_err(|_| anyhow!("a worker panicked"))?;
        match shared.as_ref() {
            Some(existing) if *existing != names => {
                bail!("the output header {names:?} differs from the other chunks' {existing:?}")
            }
            Some(_) => {}
            None => *shared = Some(names.clone()),
        }
        drop(shared);
        self.buf.clear();
        dialect::write_header(&mut self.buf, &names);
        self.writer.write_all(&self.buf)?;
        self.columns = Some(names);
        Ok(())
    }

    /// `line` is the output line the row started on, for messages.
    fn row(&mut self, row: &[Field], line: u64) -> Result<()> {
        let expected = self.columns.as_ref().map_or(0, |c| c.len());
        if row.len() != expected {
            bail!(
                "output line {line}: {} fields, the header has {expected}",
                row.len()
            );
        }
        self.buf.clear();
        for (i, field) in row.iter().enumerate() {
            if let Some(v) = field {
                if std::str::from_utf8(v).is_err() {
                    bail!("output line {line}, field {}: not valid UTF-8", i + 1);
                }
            }
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
}

fn process_chunk(
    worker: Worker<'_>,
    format: Format,
    input: &DumpDir,
    work: &TableWork,
    chunk: &ChunkRecord,
    level: u32,
) -> Result<ProcessedChunk> {
    let in_path = input.path(&work.entry.dir).join(&chunk.file);
    let compress = work.input.compress;
    let out_file = dump::chunk_file_name(chunk.number, compress);
    let mut out = OutputChunk {
        work,
        writer: ChunkWriter::create(&work.out_dir, &out_file, compress, level)?,
        columns: None,
        rows: 0,
        buf: Vec::with_capacity(64 * 1024),
    };
    let rows_in = match worker {
        Worker::Command(cmd) => run_command(cmd, format, work, chunk, &in_path, &mut out)?,
        Worker::Transform(t) => run_transform(t, work, &in_path, &mut out)?,
    };
    if out.columns.is_none() {
        if format == Format::Csv {
            bail!("the output has no header line");
        }
        // JSON lines with no row say nothing of the columns: the other
        // chunks' (or the input's) apply.
        let known = work
            .columns
            .lock()
            .map_err(|_| anyhow!("a worker panicked"))?
            .clone();
        out.header(
            known.unwrap_or_else(|| work.input.columns.iter().map(|c| c.name.clone()).collect()),
        )?;
    }
    let columns = out.columns.clone().unwrap_or_default();
    let rows = out.rows;
    let stats = out.writer.finish(rows)?;
    Ok(ProcessedChunk {
        number: chunk.number,
        columns,
        rows_in,
        stats,
    })
}

fn run_transform(
    t: &dyn RowTransform,
    work: &TableWork,
    in_path: &Path,
    out: &mut OutputChunk<'_>,
) -> Result<u64> {
    let mut reader = ChunkReader::open(in_path, work.input.compress)?;
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

fn run_command(
    cmd: &str,
    format: Format,
    work: &TableWork,
    chunk: &ChunkRecord,
    in_path: &Path,
    out: &mut OutputChunk<'_>,
) -> Result<u64> {
    let stderr_path = work.out_dir.join(stderr_name(chunk.number));
    let stderr = File::create(&stderr_path)
        .with_context(|| format!("creating {}", stderr_path.display()))?;
    let join = |v: &Option<Vec<String>>| v.as_ref().map(|v| v.join(", ")).unwrap_or_default();
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .env("MYSPOOL_DB", &work.input.db)
        .env("MYSPOOL_TABLE", &work.input.table)
        .env("MYSPOOL_CHUNK", chunk.number.to_string())
        .env("MYSPOOL_CHUNK_FILE", in_path)
        .env("MYSPOOL_KEY_COLUMNS", work.input.key.columns.join(","))
        .env("MYSPOOL_KEY_LOWER", join(&chunk.lower))
        .env("MYSPOOL_KEY_UPPER", join(&chunk.upper))
        .env(
            "MYSPOOL_FORMAT",
            match format {
                Format::Csv => "csv",
                Format::Jsonl => "jsonl",
            },
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(stderr))
        .spawn()
        .with_context(|| format!("starting sh -c {cmd:?}"))?;
    let mut stdin = child
        .stdin
        .take()
        .ok_or_else(|| anyhow!("no stdin for the command"))?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| anyhow!("no stdout from the command"))?;
    let rows_recorded = chunk.written.as_ref().map_or(0, |w| w.rows);
    let feed: StdinFeed = match format {
        Format::Csv => {
            let text = ChunkReader::open_text(in_path, work.input.compress)?;
            Box::new(move |stdin| feed_csv(text, stdin, rows_recorded))
        }
        Format::Jsonl => {
            let reader = ChunkReader::open(in_path, work.input.compress)?;
            Box::new(move |stdin| feed_jsonl(reader, stdin))
        }
    };
    // Feeds stdin on its own thread: the command may read and write at the
    // same time, and a command that stops reading early (head) is fine.
    let feeder = thread::spawn(move || -> Result<u64> {
        let result = feed(&mut stdin);
        drop(stdin);
        match result {
            Err(e)
                if e.downcast_ref::<io::Error>()
                    .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe) =>
            {
                Ok(0)
            }
            other => other,
        }
    });
    let read = match format {
        Format::Csv => read_csv_output(stdout, out),
        Format::Jsonl => read_jsonl_output(stdout, out),
    };
    if read.is_err() {
        let _ = child.kill();
    }
    let status = child.wait().context("waiting for the command")?;
    let rows_in = feeder
        .join()
        .map_err(|_| anyhow!("the stdin feeder panicked"))?;
    read?;
    if !status.success() {
        let tail = stderr_tail(&stderr_path);
        bail!(
            "the command {}{}",
            match status.code() {
                Some(code) => format!("exited with status {code}"),
                None => "was killed by a signal".to_string(),
            },
            if tail.is_empty() {
                String::new()
            } else {
                format!(" (stderr: {tail})")
            }
        );
    }
    let rows_in = rows_in.context("reading the input chunk")?;
    if fs::metadata(&stderr_path)
        .map(|m| m.len() == 0)
        .unwrap_or(false)
    {
        let _ = fs::remove_file(&stderr_path);
    }
    Ok(rows_in)
}

/// What writes a chunk to the command's stdin, returning the rows it wrote.
type StdinFeed = Box<dyn FnOnce(&mut dyn Write) -> Result<u64> + Send>;

/// The last line of a stderr file, for the one-line error.
fn stderr_tail(path: &Path) -> String {
    let text = fs::read(path).unwrap_or_default();
    let start = text.len().saturating_sub(2000);
    String::from_utf8_lossy(&text[start..])
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
        .to_string()
}

/// Copies the chunk's CSV as it is: it is already the dump's dialect, and
/// its row count is in table.json (parsing it here only to count cost a third
/// of the time of a `cat` step).
fn feed_csv(mut input: Box<dyn BufRead + Send>, stdin: &mut dyn Write, rows: u64) -> Result<u64> {
    io::copy(&mut input, stdin)?;
    Ok(rows)
}

fn feed_jsonl(mut reader: ChunkReader, stdin: &mut dyn Write) -> Result<u64> {
    let Some(names) = reader.header().map(<[String]>::to_vec) else {
        return Ok(0);
    };
    let mut record = Vec::new();
    let mut rows = 0;
    let mut out = io::BufWriter::with_capacity(64 * 1024, stdin);
    while reader.read_record(&mut record)? {
        let mut object = serde_json::Map::new();
        for (name, field) in names.iter().zip(&record) {
            let value = match field {
                None => serde_json::Value::Null,
                Some(v) => serde_json::Value::String(String::from_utf8_lossy(v).into_owned()),
            };
            object.insert(name.clone(), value);
        }
        serde_json::to_writer(&mut out, &object)?;
        out.write_all(b"\n")?;
        rows += 1;
    }
    out.flush()?;
    Ok(rows)
}

fn read_csv_output(stdout: impl Read, out: &mut OutputChunk<'_>) -> Result<()> {
    let mut reader = dialect::Reader::new(BufReader::with_capacity(256 * 1024, stdout));
    let mut record = Vec::new();
    if !reader
        .read_record(&mut record)
        .context("reading the command's output")?
    {
        return Ok(());
    }
    let names = record
        .iter()
        .enumerate()
        .map(|(i, f)| match f {
            Some(v) => String::from_utf8(v.clone())
                .map_err(|_| anyhow!("output header, field {}: not valid UTF-8", i + 1)),
            None => Err(anyhow!("output header, field {}: empty column name", i + 1)),
        })
        .collect::<Result<Vec<_>>>()?;
    out.header(names)?;
    while reader
        .read_record(&mut record)
        .context("the command's output is not valid CSV in the dump's dialect")?
    {
        out.row(&record, reader.line())?;
    }
    Ok(())
}

fn read_jsonl_output(stdout: impl Read, out: &mut OutputChunk<'_>) -> Result<()> {
    let reader = BufReader::with_capacity(256 * 1024, stdout);
    let mut row = Vec::new();
    for (i, line) in reader.lines().enumerate() {
        let line_no = i as u64 + 1;
        let line = line.with_context(|| format!("output line {line_no}: not valid UTF-8"))?;
        if line.trim().is_empty() {
            continue;
        }
        let value: serde_json::Value = serde_json::from_str(&line)
            .map_err(|e| anyhow!("output line {line_no}: not a JSON object: {e}"))?;
        let serde_json::Value::Object(object) = value else {
            bail!("output line {line_no}: not a JSON object");
        };
        if out.columns.is_none() {
            out.header(object.keys().cloned().collect())?;
        }
        let columns = out.columns.clone().unwrap_or_default();
        if object.len() != columns.len() || !columns.iter().all(|c| object.contains_key(c)) {
            bail!(
                "output line {line_no}: keys {:?} differ from the first object's {columns:?}",
                object.keys().collect::<Vec<_>>()
            );
        }
        row.clear();
        for c in &columns {
            row.push(match &object[c] {
                serde_json::Value::Null => None,
                serde_json::Value::String(s) => Some(s.clone().into_bytes()),
                other => Some(other.to_string().into_bytes()),
            });
        }
        out.row(&row, line_no)?;
    }
    Ok(())
}
