//! The dump directory: the contract between export, process and load.
//!
//! ```text
//! DIR/
//!   manifest.json              format version, tool, source server, options, tables
//!   <db>/database.sql          SHOW CREATE DATABASE
//!   <db>/<table>/schema.sql    SHOW CREATE TABLE
//!   <db>/<table>/table.json    columns (type, charset, encoding), key, chunk list
//!   <db>/<table>/000001.csv.gz chunks, numbered in key order
//!   <db>/<table>/export.log    while a table is being exported: one JSON line
//!                              per finished chunk (folded into table.json at the end)
//! ```
//!
//! `copy` loads (and processes) a dump while it is being written: the reader
//! follows the writer through a [`Growing`], and [`DumpDir::written_chunks`]
//! tells which chunks are finished so far.
//!
//! Every file is written to a temporary name and renamed into place, so a
//! reader (or a rerun after `kill -9`) sees either the old file or the whole
//! new one. Directories are created 0700 and files 0600: a dump holds table
//! data and should not be readable by other users of the machine.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::dialect::{self, Encoding};

/// The files of a dump, each named once here.
pub const MANIFEST_FILE: &str = "manifest.json";
pub const TABLE_FILE: &str = "table.json";
pub const SCHEMA_FILE: &str = "schema.sql";
pub const DATABASE_FILE: &str = "database.sql";
/// While a table is exported: one JSON line per finished chunk.
pub const EXPORT_LOG: &str = "export.log";
/// While a table is processed: one JSON line per finished output chunk.
pub const PROCESS_LOG: &str = "process.log";
/// In a dump that was processed: one JSON line per output directory.
pub const OUTPUTS_LOG: &str = "outputs.jsonl";
/// The advisory lock two myspool processes take before writing a dump.
pub const LOCK_FILE: &str = ".myspool.lock";

/// The dump format this build reads and writes.
pub const FORMAT_VERSION: u32 = 1;
const FORMAT_NAME: &str = "myspool-dump";

/// `manifest.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub format: String,
    pub format_version: u32,
    pub tool_version: String,
    pub source: SourceInfo,
    /// The options that decide what the dump contains; a rerun must match.
    pub export: ExportSettings,
    /// How the reading connections' snapshots relate (see the README).
    pub consistency: Option<String>,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub complete: bool,
    pub csv: CsvConvention,
    pub tables: Vec<TableEntry>,
    /// Set when `myspool process` made this dump from another one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processed: Option<ProcessedFrom>,
}

/// Where a processed dump came from.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ProcessedFrom {
    /// The input dump directory (absolute).
    pub from: String,
    /// The command (or, for the Rust API, the transform's name).
    pub exec: String,
    pub format: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SourceInfo {
    /// `host:port`, never a password.
    pub endpoint: String,
    pub user: String,
    pub server_version: String,
    /// The source server's own clock (UTC) when the export started.
    pub server_time_utc: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ExportSettings {
    /// `--table` arguments as given (`db.t`, `db.*`).
    pub table_patterns: Vec<String>,
    #[serde(rename = "where")]
    pub where_clause: Option<String>,
    pub chunk_rows: Option<u64>,
    pub compress: Compress,
    pub level: u32,
}

/// The CSV convention, spelled out in the manifest for readers of the dump.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CsvConvention {
    pub standard: String,
    pub encoding: String,
    pub delimiter: String,
    pub line_terminator: String,
    pub header: bool,
    pub null: String,
    pub quoting: String,
    pub binary: String,
    pub time_zone: String,
}

impl Default for CsvConvention {
    fn default() -> Self {
        CsvConvention {
            standard: "RFC 4180".into(),
            encoding: "UTF-8".into(),
            delimiter: ",".into(),
            line_terminator: "\n".into(),
            header: true,
            null: "an empty field without quotes".into(),
            quoting: "every non-NULL value is quoted; \" inside is doubled".into(),
            binary: "columns with encoding \"hex\" hold uppercase hex of the bytes".into(),
            time_zone: "TIMESTAMP values are in UTC (+00:00)".into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TableEntry {
    pub db: String,
    pub table: String,
    /// Relative to the dump directory.
    pub dir: String,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Compress {
    Gzip,
    None,
}

impl Compress {
    pub fn extension(self) -> &'static str {
        match self {
            Compress::Gzip => "csv.gz",
            Compress::None => "csv",
        }
    }
}

/// `table.json`: what a reader needs to make sense of the chunks.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TableDescription {
    pub db: String,
    pub table: String,
    /// The columns in the CSV, in order (generated columns are not among them).
    pub columns: Vec<ColumnDescription>,
    /// Generated columns of the source: not exported, recomputed by the target.
    pub generated_columns: Vec<String>,
    pub key: KeyDescription,
    pub chunk_rows: u64,
    /// Rows counted while planning (the final count is the sum of the chunks').
    pub planned_rows: u64,
    pub compress: Compress,
    pub chunks: Vec<ChunkRecord>,
    pub complete: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ColumnDescription {
    pub name: String,
    /// `COLUMN_TYPE` as the source reports it, e.g. `bigint(20) unsigned`.
    pub column_type: String,
    /// `DATA_TYPE`, e.g. `bigint`.
    pub data_type: String,
    pub nullable: bool,
    pub charset: Option<String>,
    pub collation: Option<String>,
    pub encoding: Encoding,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub invisible: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct KeyDescription {
    pub kind: KeyKind,
    /// The index the chunks follow (`PRIMARY`, or a unique index's name).
    pub index: Option<String>,
    pub columns: Vec<String>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum KeyKind {
    Primary,
    /// A unique index whose columns are all NOT NULL.
    Unique,
    /// Neither: the table is one chunk, in no particular order.
    None,
}

/// One chunk: its key range, and once written, what was written.
///
/// The range is `lower < key <= upper`; `None` means unbounded. Bounds are SQL
/// literals, one per key column, ready to put in a `WHERE`
/// (`42`, `'2024-01-01 00:00:00'`, `_utf8mb4 X'616263'`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ChunkRecord {
    pub number: u32,
    pub file: String,
    pub lower: Option<Vec<String>>,
    pub upper: Option<Vec<String>>,
    #[serde(flatten)]
    pub written: Option<ChunkStats>,
}

/// What a finished chunk holds: rows, bytes on disk, CSV bytes, SHA-256 of the
/// file as stored (so `sha256sum` checks it).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ChunkStats {
    pub rows: u64,
    pub bytes: u64,
    pub csv_bytes: u64,
    pub sha256: String,
}

/// A line of `export.log`: a chunk the export finished.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExportedChunk {
    pub number: u32,
    #[serde(flatten)]
    pub stats: ChunkStats,
}

/// A line of a table's `process.log` in a processing's output dump.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProcessedChunk {
    pub number: u32,
    pub columns: Vec<String>,
    pub rows_in: u64,
    #[serde(flatten)]
    pub stats: ChunkStats,
}

/// A line of a dump's `outputs.jsonl`: a directory it was processed into.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OutputRecord {
    pub out: String,
    pub exec: String,
    pub format: String,
}

impl Manifest {
    pub fn new(source: SourceInfo, export: ExportSettings, started_at: String) -> Manifest {
        Manifest {
            format: FORMAT_NAME.into(),
            format_version: FORMAT_VERSION,
            tool_version: format!("myspool {}", env!("CARGO_PKG_VERSION")),
            source,
            export,
            consistency: None,
            started_at,
            finished_at: None,
            complete: false,
            csv: CsvConvention::default(),
            tables: Vec::new(),
            processed: None,
        }
    }
}

/// A dump directory on disk.
#[derive(Debug, Clone)]
pub struct DumpDir {
    root: PathBuf,
}

/// How long `DumpDir::lock` waits for a lock that is briefly held.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

impl DumpDir {
    pub fn new(root: impl Into<PathBuf>) -> DumpDir {
        DumpDir { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Takes the directory's advisory lock (`.myspool.lock`), held until the
    /// returned file is dropped: two myspool processes never write one dump
    /// (or its load journals) at once.
    pub fn lock(&self) -> Result<File> {
        let lock_path = self.root.join(LOCK_FILE);
        let lock = OpenOptions::new()
            .mode(0o600)
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .with_context(|| format!("{} is not writable", self.root.display()))?;
        // A myspool killed while spawning an --exec command leaves the lock
        // with the forked child until that child execs (the descriptor is
        // close-on-exec, not close-on-fork): on a busy machine that can take
        // milliseconds, so a rerun right after a kill waits briefly for it.
        let deadline = std::time::Instant::now() + LOCK_WAIT;
        loop {
            match lock.try_lock() {
                Ok(()) => return Ok(lock),
                Err(fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(fs::TryLockError::WouldBlock) => bail!(
                    "another myspool process is working on {}; wait for it to finish",
                    self.root.display()
                ),
                Err(fs::TryLockError::Error(e)) => {
                    return Err(e).with_context(|| format!("locking {}", lock_path.display()))
                }
            }
        }
    }

    pub fn manifest_path(&self) -> PathBuf {
        self.root.join(MANIFEST_FILE)
    }

    /// Reads `manifest.json`; `Ok(None)` when there is none.
    pub fn read_manifest(&self) -> Result<Option<Manifest>> {
        let path = self.manifest_path();
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        // Check the version before the shape, so a dump from a newer myspool
        // says so instead of failing on some field it added.
        let value: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{} is not valid JSON: {e}", path.display()))?;
        match value.get("format_version").and_then(|v| v.as_u64()) {
            Some(v) if v == FORMAT_VERSION as u64 => {}
            Some(v) => bail!(
                "{} has dump format version {v}; this myspool reads version {FORMAT_VERSION}",
                path.display()
            ),
            None => bail!(
                "{} has no format_version: not a myspool dump",
                path.display()
            ),
        }
        let manifest: Manifest = serde_json::from_value(value)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        Ok(Some(manifest))
    }

    /// Reads the manifest of a directory that must be a dump.
    pub fn require_manifest(&self) -> Result<Manifest> {
        self.read_manifest()?.ok_or_else(|| {
            anyhow!(
                "{} holds no {MANIFEST_FILE}: not a myspool dump",
                self.root.display()
            )
        })
    }

    /// True when the directory holds nothing but, at most, the lock file: a
    /// directory a new dump may be written into.
    pub fn is_empty(&self) -> Result<bool> {
        let entries = fs::read_dir(&self.root)
            .with_context(|| format!("reading directory {}", self.root.display()))?;
        for entry in entries {
            let entry =
                entry.with_context(|| format!("reading directory {}", self.root.display()))?;
            if entry.file_name() != LOCK_FILE {
                return Ok(false);
            }
        }
        Ok(true)
    }

    pub fn write_manifest(&self, manifest: &Manifest) -> Result<()> {
        write_json_atomic(&self.manifest_path(), manifest)
    }

    /// The directory of a table, relative to the root: `<db>/<table>`, each
    /// name made safe for any file system.
    pub fn table_dir_name(db: &str, table: &str) -> String {
        format!("{}/{}", safe_file_name(db), safe_file_name(table))
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.root.join(relative)
    }

    pub fn read_table(&self, entry: &TableEntry) -> Result<Option<TableDescription>> {
        let path = self.path(&entry.dir).join(TABLE_FILE);
        match fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).map(Some).map_err(|e| {
                anyhow::anyhow!("{} is not a valid table description: {e}", path.display())
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    pub fn write_table(&self, entry: &TableEntry, desc: &TableDescription) -> Result<()> {
        write_json_atomic(&self.path(&entry.dir).join(TABLE_FILE), desc)
    }

    /// A table's description; following a dump being written, once the
    /// writer has written it.
    pub fn table_description(
        &self,
        entry: &TableEntry,
        follow: Option<&Growing>,
    ) -> Result<TableDescription> {
        match follow {
            Some(growing) => growing.wait_for(
                || format!("{}/table.json", entry.dir),
                || self.read_table(entry),
            ),
            None => self
                .read_table(entry)?
                .ok_or_else(|| anyhow!("{}: table.json is missing", entry.dir)),
        }
    }

    /// A table of a dump that may still be being written (by `export` or
    /// `process`): its description (`None` until there is one), with every
    /// chunk finished so far marked written, from `table.json` or from the
    /// writer's log of finished chunks.
    pub fn written_chunks(&self, entry: &TableEntry) -> Result<Option<TableDescription>> {
        // The log before table.json: the writer completes table.json before
        // it removes the log, so one of the two holds every finished chunk.
        let dir = self.path(&entry.dir);
        let mut logged: BTreeMap<u32, ChunkStats> = BTreeMap::new();
        for log in [EXPORT_LOG, PROCESS_LOG] {
            for done in read_json_lines::<ExportedChunk>(&dir.join(log))? {
                logged.insert(done.number, done.stats);
            }
        }
        let Some(mut desc) = self.read_table(entry)? else {
            return Ok(None);
        };
        if !desc.complete {
            for chunk in &mut desc.chunks {
                if chunk.written.is_none() {
                    chunk.written = logged.remove(&chunk.number);
                }
            }
        }
        Ok(Some(desc))
    }
}

impl DumpDir {
    /// The chunks of a table that a processing into this directory has
    /// finished, as it records them (for `myspool status`).
    pub fn processed_chunks(&self, entry: &TableEntry) -> Result<Vec<u32>> {
        if let Some(t) = self.read_table(entry)?.filter(|t| t.complete) {
            return Ok(t
                .chunks
                .iter()
                .filter(|c| c.written.is_some())
                .map(|c| c.number)
                .collect());
        }
        let log: Vec<ProcessedChunk> = read_json_lines(&self.path(&entry.dir).join(PROCESS_LOG))?;
        Ok(log.into_iter().map(|p| p.number).collect())
    }
}

/// `(table, chunk)` pairs in table order, reordered so that the first chunk
/// of every table comes first: a reader following the dump (`copy`) learns
/// every table's columns early, and can check them all before loading any.
pub fn first_chunks_first(pending: Vec<(usize, usize)>) -> Vec<(usize, usize)> {
    let mut seen = std::collections::BTreeSet::new();
    let (first, rest): (Vec<_>, Vec<_>) = pending.into_iter().partition(|&(t, _)| seen.insert(t));
    first.into_iter().chain(rest).collect()
}

/// What the writer of a [`Growing`] dump is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Writer {
    Writing,
    Finished,
    /// The reader gave up: the writer should not start more chunks.
    Abandoned,
}

/// A dump that another thread of this process is writing while this one
/// reads it (`copy` loads chunks as they are exported and processed). The
/// writer calls `changed` after each chunk and `finish` when it returns; the
/// reader waits in `wait_for`, and calls `abandon` if it stops early.
#[derive(Debug)]
pub struct Growing {
    /// The writer's state, and a count of the signals so far.
    state: Mutex<(Writer, u64)>,
    signal: Condvar,
}

/// How often a waiting reader looks again without a signal (the writer
/// signals finished chunks; files such as table.json are found by looking).
const GROWING_POLL: Duration = Duration::from_millis(100);

impl Default for Growing {
    fn default() -> Self {
        Growing {
            state: Mutex::new((Writer::Writing, 0)),
            signal: Condvar::new(),
        }
    }
}

impl Growing {
    fn signal(&self, change: impl FnOnce(&mut Writer)) {
        if let Ok(mut state) = self.state.lock() {
            change(&mut state.0);
            state.1 += 1;
        }
        self.signal.notify_all();
    }

    /// Something new is on disk.
    pub fn changed(&self) {
        self.signal(|_| {});
    }

    /// The writer returned (done or failed): nothing more will appear.
    pub fn finish(&self) {
        self.signal(|w| {
            if *w == Writer::Writing {
                *w = Writer::Finished;
            }
        });
    }

    /// The reader stopped: the writer need not go on.
    pub fn abandon(&self) {
        self.signal(|w| *w = Writer::Abandoned);
    }

    pub fn abandoned(&self) -> bool {
        self.state.lock().map_or(true, |s| s.0 == Writer::Abandoned)
    }

    /// Calls `look` until it finds what it looks for, waiting for the writer
    /// between calls. Fails, naming `what`, when the writer has stopped and
    /// a last look still finds nothing.
    pub fn wait_for<T>(
        &self,
        what: impl Fn() -> String,
        mut look: impl FnMut() -> Result<Option<T>>,
    ) -> Result<T> {
        let poisoned = || anyhow!("a writer thread panicked");
        loop {
            let (writer, seen) = *self.state.lock().map_err(|_| poisoned())?;
            if let Some(found) = look()? {
                return Ok(found);
            }
            if writer != Writer::Writing {
                bail!("{} was never written: its writer stopped", what());
            }
            let state = self.state.lock().map_err(|_| poisoned())?;
            if state.1 == seen {
                drop(
                    self.signal
                        .wait_timeout(state, GROWING_POLL)
                        .map_err(|_| poisoned())?,
                );
            }
        }
    }
}

/// Writes one chunk file: to a temporary name in its directory, compressed
/// or not, counting the CSV bytes and hashing the stored bytes; `finish`
/// fsyncs it and renames it into place. Dropped unfinished, it leaves
/// nothing behind.
pub struct ChunkWriter {
    dir: PathBuf,
    file: String,
    tmp: tempfile::TempPath,
    sink: Sink,
    csv_bytes: u64,
}

/// Counts and hashes what reaches the file.
struct HashingFile {
    file: std::io::BufWriter<File>,
    hasher: Sha256,
    bytes: u64,
}

impl Write for HashingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

enum Sink {
    Gzip(Box<GzipMembers>),
    Plain(HashingFile),
}

/// Uncompressed bytes per gzip member. Each member is compressed in one call
/// (libdeflate has no streaming interface); at 1 MiB the members' headers and
/// restarted windows cost under 0.1% of the size.
const MEMBER_BYTES: usize = 1024 * 1024;

/// A gzip file written as a series of members of `MEMBER_BYTES` each (RFC 1952
/// allows any number; gzip, zcat, Python's gzip module, Java's
/// GZIPInputStream and flate2's MultiGzDecoder read them as one stream).
struct GzipMembers {
    file: HashingFile,
    compressor: libdeflater::Compressor,
    pending: Vec<u8>,
    out: Vec<u8>,
}

impl GzipMembers {
    fn new(file: HashingFile, level: u32) -> Result<GzipMembers> {
        let level = libdeflater::CompressionLvl::new(level as i32)
            .map_err(|_| anyhow!("gzip level {level} is out of range (0 to {MAX_LEVEL})"))?;
        Ok(GzipMembers {
            file,
            compressor: libdeflater::Compressor::new(level),
            pending: Vec::new(),
            out: Vec::new(),
        })
    }

    fn write_all(&mut self, mut buf: &[u8]) -> io::Result<()> {
        while !buf.is_empty() {
            if self.pending.is_empty() && buf.len() >= MEMBER_BYTES {
                // A whole member's worth: compress it in place, no copy.
                write_member(
                    &mut self.compressor,
                    &mut self.out,
                    &mut self.file,
                    &buf[..MEMBER_BYTES],
                )?;
                buf = &buf[MEMBER_BYTES..];
                continue;
            }
            if self.pending.capacity() == 0 {
                self.pending.reserve_exact(MEMBER_BYTES);
            }
            let take = (MEMBER_BYTES - self.pending.len()).min(buf.len());
            self.pending.extend_from_slice(&buf[..take]);
            buf = &buf[take..];
            if self.pending.len() == MEMBER_BYTES {
                self.write_pending()?;
            }
        }
        Ok(())
    }

    fn write_pending(&mut self) -> io::Result<()> {
        write_member(
            &mut self.compressor,
            &mut self.out,
            &mut self.file,
            &self.pending,
        )?;
        self.pending.clear();
        Ok(())
    }

    /// Compresses what is pending; an empty file still gets one (empty)
    /// member, so that it is valid gzip.
    fn finish(mut self) -> io::Result<HashingFile> {
        if !self.pending.is_empty() || self.file.bytes == 0 {
            self.write_pending()?;
        }
        Ok(self.file)
    }
}

/// Compresses `data` into one gzip member (using `out` as the buffer) and
/// writes it to `file`.
fn write_member(
    compressor: &mut libdeflater::Compressor,
    out: &mut Vec<u8>,
    file: &mut HashingFile,
    data: &[u8],
) -> io::Result<()> {
    let bound = compressor.gzip_compress_bound(data.len());
    if out.len() < bound {
        out.resize(bound, 0);
    }
    let n = compressor
        .gzip_compress(data, out)
        .map_err(|e| io::Error::other(format!("gzip compression failed: {e:?}")))?;
    file.write_all(&out[..n])
}

/// The highest compression level (libdeflate's; 0 stores without compressing).
pub const MAX_LEVEL: u32 = 12;

impl ChunkWriter {
    pub fn create(dir: &Path, file: &str, compress: Compress, level: u32) -> Result<ChunkWriter> {
        let tmp = tempfile::Builder::new()
            .prefix(&format!(".tmp-{file}-"))
            .tempfile_in(dir)
            .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
        let (f, tmp) = tmp.into_parts();
        let hashing = HashingFile {
            file: std::io::BufWriter::with_capacity(256 * 1024, f),
            hasher: Sha256::new(),
            bytes: 0,
        };
        let sink = match compress {
            Compress::Gzip => Sink::Gzip(Box::new(GzipMembers::new(hashing, level)?)),
            Compress::None => Sink::Plain(hashing),
        };
        Ok(ChunkWriter {
            dir: dir.to_path_buf(),
            file: file.to_string(),
            tmp,
            sink,
            csv_bytes: 0,
        })
    }

    pub fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.csv_bytes += buf.len() as u64;
        match &mut self.sink {
            Sink::Gzip(g) => g.write_all(buf),
            Sink::Plain(p) => p.write_all(buf),
        }
    }

    /// Completes the file and renames it into place, returning what it holds.
    pub fn finish(self, rows: u64) -> Result<ChunkStats> {
        let dest = self.dir.join(&self.file);
        let ctx = || format!("writing {}", dest.display());
        let mut hashing = match self.sink {
            Sink::Gzip(g) => g.finish().with_context(ctx)?,
            Sink::Plain(p) => p,
        };
        hashing.flush().with_context(ctx)?;
        let HashingFile {
            file,
            hasher,
            bytes,
        } = hashing;
        let file = file
            .into_inner()
            .map_err(|e| e.into_error())
            .with_context(ctx)?;
        file.sync_all().with_context(ctx)?;
        drop(file);
        self.tmp
            .persist(&dest)
            .map_err(|e| e.error)
            .with_context(|| format!("renaming into {}", dest.display()))?;
        sync_dir(&self.dir)?;
        Ok(ChunkStats {
            rows,
            bytes,
            csv_bytes: self.csv_bytes,
            sha256: hex_lower(&hasher.finalize()),
        })
    }
}

/// Reads one chunk file: the one place that opens a chunk for reading, as
/// [`ChunkWriter`] is the one that writes one. It decompresses the file,
/// reads its header line, splits the rest into records of the dump's dialect
/// (errors name the file and line), and can hash the file as stored so that
/// [`ChunkReader::check_sha256`] proves it is the file the writer recorded.
pub struct ChunkReader {
    label: String,
    records: dialect::Reader<Box<dyn BufRead + Send>>,
    /// `None` for a file with no header line at all (an empty file).
    header: Option<Vec<String>>,
    /// Where the hash of the stored bytes lands once the file is read.
    digest: Option<Arc<Mutex<Option<String>>>>,
}

/// Decompressed bytes are read in pieces of this size.
const READ_BUFFER: usize = 256 * 1024;

impl ChunkReader {
    /// Opens a chunk and reads its header line.
    pub fn open(path: &Path, compress: Compress) -> Result<ChunkReader> {
        ChunkReader::open_with(path, compress, false)
    }

    /// Opens a chunk, hashing the file as it is read: call
    /// [`ChunkReader::check_sha256`] once every record is read.
    pub fn open_hashed(path: &Path, compress: Compress) -> Result<ChunkReader> {
        ChunkReader::open_with(path, compress, true)
    }

    /// The decompressed CSV text of a chunk, header line included, for a
    /// reader that passes it on as it is (`process --exec` with CSV).
    pub fn open_text(path: &Path, compress: Compress) -> Result<Box<dyn BufRead + Send>> {
        let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        Ok(decompressed(file, compress))
    }

    fn open_with(path: &Path, compress: Compress, hashed: bool) -> Result<ChunkReader> {
        let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let (input, digest) = if hashed {
            let digest = Arc::new(Mutex::new(None));
            let hashing = HashingReader {
                inner: file,
                hasher: Sha256::new(),
                digest: digest.clone(),
            };
            (decompressed(hashing, compress), Some(digest))
        } else {
            (decompressed(file, compress), None)
        };
        let mut reader = ChunkReader {
            label: path.display().to_string(),
            records: dialect::Reader::new(input),
            header: None,
            digest,
        };
        let mut record = Vec::new();
        if reader.read_record(&mut record)? {
            reader.header = Some(
                record
                    .iter()
                    .map(|f| String::from_utf8_lossy(f.as_deref().unwrap_or_default()).into_owned())
                    .collect(),
            );
        }
        Ok(reader)
    }

    /// The file's path, as errors name it.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The column names of the header line; `None` for an empty file.
    pub fn header(&self) -> Option<&[String]> {
        self.header.as_deref()
    }

    /// The header line, which a chunk must have.
    pub fn require_header(&self) -> Result<&[String]> {
        self.header()
            .ok_or_else(|| anyhow!("{} is empty (no header)", self.label))
    }

    /// Fails unless the header names exactly `columns`, in order.
    pub fn expect_header(&self, columns: &[String]) -> Result<()> {
        let header = self.require_header()?;
        if header != columns {
            bail!(
                "{}: the header {header:?} is not the columns of {TABLE_FILE} {columns:?}",
                self.label
            );
        }
        Ok(())
    }

    /// The next row into `record`; `Ok(false)` at the end of the file.
    pub fn read_record(&mut self, record: &mut Vec<dialect::Field>) -> Result<bool> {
        let label = &self.label;
        self.records
            .read_record(record)
            .with_context(|| label.clone())
    }

    /// The 1-based line of the file on which the last row read started.
    pub fn line(&self) -> u64 {
        self.records.line()
    }

    /// Checks, after the last row, that the file is the one recorded: its
    /// SHA-256 as stored must be `expected` (only for [`ChunkReader::open_hashed`]).
    pub fn check_sha256(self, expected: &str) -> Result<()> {
        let ChunkReader {
            label,
            records,
            digest,
            ..
        } = self;
        // Dropping the reader drops the HashingReader, which hashes whatever
        // the decoder left unread and leaves the digest behind.
        drop(records);
        let sum = digest
            .and_then(|d| d.lock().ok().and_then(|mut d| d.take()))
            .ok_or_else(|| anyhow!("{label}: checksum not computed"))?;
        if sum != expected {
            bail!("{label}: SHA-256 {sum} differs from {expected} recorded in {TABLE_FILE}: the file changed since the export");
        }
        Ok(())
    }
}

fn decompressed(file: impl Read + Send + 'static, compress: Compress) -> Box<dyn BufRead + Send> {
    match compress {
        Compress::Gzip => Box::new(BufReader::with_capacity(
            READ_BUFFER,
            flate2::read::MultiGzDecoder::new(file),
        )),
        Compress::None => Box::new(BufReader::with_capacity(READ_BUFFER, file)),
    }
}

/// Hashes what is read, and leaves the hex digest in `digest` when dropped
/// (after the decoder has read the whole file).
struct HashingReader {
    inner: File,
    hasher: Sha256,
    digest: Arc<Mutex<Option<String>>>,
}

impl Read for HashingReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

impl Drop for HashingReader {
    fn drop(&mut self) {
        // Whatever the decoder did not need (bytes after the gzip trailer)
        // still belongs to the file's checksum.
        let mut rest = Vec::new();
        if self.inner.read_to_end(&mut rest).is_ok() {
            self.hasher.update(&rest);
        }
        let digest = std::mem::take(&mut self.hasher).finalize();
        if let Ok(mut slot) = self.digest.lock() {
            *slot = Some(hex_lower(&digest));
        }
    }
}

/// Chunk file name: `000042.csv.gz`.
pub fn chunk_file_name(number: u32, compress: Compress) -> String {
    format!("{number:06}.{}", compress.extension())
}

/// Keeps `[A-Za-z0-9_-]` and other letters/digits; every other byte becomes
/// `%XX`, so `a/b` or ``a`b; DROP`` cannot escape the dump directory or
/// collide with the files myspool writes.
pub fn safe_file_name(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_alphanumeric() || c == '_' || c == '-' {
            out.push(c);
        } else {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        }
    }
    if out.is_empty() {
        out.push('%');
    }
    out
}

/// The name [`safe_file_name`] encoded.
pub fn decode_file_name(encoded: &str) -> String {
    percent_decode(encoded)
}

/// `%XX` escapes decoded (invalid ones kept as they are), as UTF-8.
pub fn percent_decode(encoded: &str) -> String {
    let bytes = encoded.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 3 <= bytes.len() {
            if let Some(v) = crate::dialect::decode_hex(&bytes[i + 1..i + 3]) {
                out.push(v[0]);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Creates a directory (and parents) with mode 0700.
pub fn create_private_dir(path: &Path) -> Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .with_context(|| format!("creating directory {}", path.display()))
}

/// Writes `bytes` to `path` atomically: a temporary file in the same
/// directory, fsync, rename, fsync of the directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
    tmp.write_all(bytes)
        .and_then(|_| tmp.as_file().sync_all())
        .with_context(|| format!("writing {}", path.display()))?;
    tmp.persist(path)
        .map_err(|e| e.error)
        .with_context(|| format!("renaming into {}", path.display()))?;
    sync_dir(dir)
}

pub fn write_json_atomic<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let mut text = serde_json::to_vec_pretty(value)?;
    text.push(b'\n');
    write_atomic(path, &text)
}

/// fsync of a directory, so a rename in it survives a power cut.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing directory {}", dir.display()))
}

/// Appends one JSON line to a log file and fsyncs it.
pub fn append_json_line<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let mut line = serde_json::to_vec(value)?;
    line.push(b'\n');
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    f.write_all(&line)
        .and_then(|_| f.sync_data())
        .with_context(|| format!("appending to {}", path.display()))
}

/// Reads a JSON-lines log. A torn last line (the process died mid-write) is
/// ignored; a bad line before the last is an error naming the line.
pub fn read_json_lines<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Vec<T>> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("opening {}", path.display())),
    };
    let lines: Vec<String> = BufReader::new(file)
        .lines()
        .collect::<io::Result<_>>()
        .with_context(|| format!("reading {}", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str(line) {
            Ok(v) => out.push(v),
            Err(_) if i + 1 == lines.len() => break,
            Err(e) => bail!("{} line {}: {e}", path.display(), i + 1),
        }
    }
    Ok(out)
}

/// SHA-256 of a file, as lowercase hex (what `sha256sum` prints).
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = file
            .read(&mut buf)
            .with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex_lower(&hasher.finalize()))
}

pub fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The current time as RFC 3339 UTC (`2026-11-21T05:33:00Z`).
pub fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gunzip(path: &Path) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(File::open(path).unwrap())
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    #[test]
    fn a_reader_waits_for_the_writer_and_fails_when_it_stops_without_the_thing() {
        let growing = std::sync::Arc::new(Growing::default());
        let found = std::sync::Mutex::new(None);
        std::thread::scope(|s| {
            s.spawn(|| {
                std::thread::sleep(Duration::from_millis(50));
                *found.lock().unwrap() = Some(7);
                growing.changed();
            });
            let got = growing.wait_for(|| "seven".into(), || Ok(*found.lock().unwrap()));
            assert_eq!(got.unwrap(), 7);
        });
        growing.finish();
        let err = growing
            .wait_for(|| "chunk 000008 of d.t".into(), || Ok(None::<u32>))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "chunk 000008 of d.t was never written: its writer stopped"
        );
        assert!(!growing.abandoned());
        growing.abandon();
        assert!(growing.abandoned());
    }

    #[test]
    fn a_followed_dump_writes_the_first_chunk_of_every_table_first() {
        let pending = vec![(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (2, 3)];
        assert_eq!(
            first_chunks_first(pending),
            vec![(0, 0), (1, 0), (2, 3), (0, 1), (0, 2), (1, 1)]
        );
    }

    #[test]
    fn a_briefly_held_lock_is_waited_for_and_a_held_one_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DumpDir::new(tmp.path());
        let holder = dir.lock().unwrap();
        let released = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(200));
            drop(holder);
        });
        let second = dir.lock();
        assert!(second.is_ok(), "{:?}", second.err());
        released.join().unwrap();
        let err = dir.lock().unwrap_err().to_string();
        assert!(
            err.contains("another myspool process is working on"),
            "{err}"
        );
        drop(second);
    }

    #[test]
    fn gzip_chunks_are_members_that_read_back_as_one_stream() {
        let dir = tempfile::tempdir().unwrap();
        // 2.5 members' worth, written in pieces that straddle member borders,
        // then one write bigger than a member.
        let data: Vec<u8> = (0..(MEMBER_BYTES * 5 / 2))
            .map(|i| b"id,name\n1,\"x\"\n"[i % 14])
            .collect();
        let mut w = ChunkWriter::create(dir.path(), "000001.csv.gz", Compress::Gzip, 1).unwrap();
        for piece in data.chunks(300_001) {
            w.write_all(piece).unwrap();
        }
        w.write_all(&data).unwrap();
        let stats = w.finish(7).unwrap();
        let path = dir.path().join("000001.csv.gz");
        let mut expected = data.clone();
        expected.extend_from_slice(&data);
        assert_eq!(gunzip(&path), expected);
        assert_eq!(stats.csv_bytes, expected.len() as u64);
        assert_eq!(stats.bytes, fs::metadata(&path).unwrap().len());
        let stored = fs::read(&path).unwrap();
        assert_eq!(stats.sha256, hex_lower(&Sha256::digest(&stored)));
        // Five members: each starts with the gzip magic bytes.
        let members = stored.windows(3).filter(|w| w == &[0x1f, 0x8b, 8]).count();
        assert!(members >= 5, "{members} gzip headers");
    }

    #[test]
    fn an_empty_gzip_chunk_is_still_gzip() {
        let dir = tempfile::tempdir().unwrap();
        let w = ChunkWriter::create(dir.path(), "e.csv.gz", Compress::Gzip, 0).unwrap();
        w.finish(0).unwrap();
        assert_eq!(gunzip(&dir.path().join("e.csv.gz")), b"");
    }

    #[test]
    fn compression_levels_beyond_the_maximum_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let err = ChunkWriter::create(dir.path(), "x.csv.gz", Compress::Gzip, MAX_LEVEL + 1)
            .err()
            .unwrap();
        assert!(err.to_string().contains("out of range"), "{err}");
    }

    #[test]
    fn file_names_cannot_escape_the_dump() {
        assert_eq!(safe_file_name("orders"), "orders");
        assert_eq!(safe_file_name("../x"), "%2E%2E%2Fx");
        assert_eq!(safe_file_name("a`b; DROP"), "a%60b%3B%20DROP");
        assert_eq!(safe_file_name("café"), "café");
        assert_eq!(safe_file_name(""), "%");
        for name in ["a`b; DROP", "caf\u{e9}", "../x", "db1:3306"] {
            assert_eq!(decode_file_name(&safe_file_name(name)), name);
        }
    }

    #[test]
    fn chunk_names_are_numbered() {
        assert_eq!(chunk_file_name(42, Compress::Gzip), "000042.csv.gz");
        assert_eq!(chunk_file_name(1_234_567, Compress::None), "1234567.csv");
    }

    #[test]
    fn utc_now_is_rfc3339() {
        let t = utc_now();
        assert_eq!(t.len(), 20, "{t}");
        assert!(t.ends_with('Z') && t.as_bytes()[10] == b'T');
    }

    #[test]
    fn torn_last_log_line_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        fs::write(
            &path,
            "{\"number\":1,\"rows\":2,\"bytes\":3,\"csv_bytes\":4,\"sha256\":\"ab\"}\n{\"numb",
        )
        .unwrap();
        let done: Vec<ExportedChunk> = read_json_lines(&path).unwrap();
        assert_eq!(done.len(), 1);
        fs::write(
            &path,
            "garbage\n{\"number\":1,\"rows\":2,\"bytes\":3,\"csv_bytes\":4,\"sha256\":\"ab\"}\n",
        )
        .unwrap();
        assert!(read_json_lines::<ExportedChunk>(&path).is_err());
    }
}
