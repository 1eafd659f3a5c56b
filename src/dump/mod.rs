//! The dump directory: the contract between export, process and load.
//!
//! ```text
//! DIR/
//!   manifest.json              format version, tool, source server, options, tables
//!   outputs.jsonl              once processed: one JSON line per output directory
//!   <db>/database.sql          SHOW CREATE DATABASE
//!   <db>/objects.sql           views, triggers, routines, events (see `objects.rs`)
//!   <db>/<table>/schema.sql    SHOW CREATE TABLE
//!   <db>/<table>/table.json    columns (type, charset, encoding), key, chunk list
//!   <db>/<table>/000001.csv.gz chunks, numbered in key order
//!   <db>/<table>/export.log    while a table is being exported: one JSON line
//!                              per finished chunk (folded into table.json at the end)
//!   <db>/<table>/process.log   the same while a processing writes the table
//!   <db>/<table>/000001.stderr the stderr of a chunk whose --exec command failed
//!   <db>/<table>/000001.partial    --map: the answered output rows of a chunk in progress
//!   <db>/<table>/000001.checkpoint --map: one JSON line per checkpoint of that chunk
//!   <db>/<table>/rejects.jsonl     --map: the rows rejected, with their key and reason
//!   worker-01.stderr           --map: the stderr of each worker (bounded)
//!   <db>/<table>/.claims/      --exec: the claims of cooperating runners on
//!                              its chunks (see `process::claims`); .claims/
//!                              at the root holds the claim that completes it
//!   <db>/<table>/load@<host:port>@<db>.jsonl
//!                              the load journal of one target (see `journal`)
//! ```
//!
//! This file names every file of a dump and reads and writes the directory
//! ([`DumpDir`]); the files' contents are in `format.rs`, chunk files are
//! written and read in `chunk.rs`, `growing.rs` lets a reader follow a dump
//! being written, and `files.rs` writes files safely.
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
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

mod chunk;
mod files;
mod format;
mod growing;
mod objects;

use self::files::TMP_PREFIX;

pub use self::chunk::{ChunkReader, ChunkWriter};
pub use self::files::{
    append_json_line, create_private_dir, decode_file_name, hex_lower, one_line, parse_json_lines,
    read_json_lines, safe_file_name, sha256_file, sync_dir, write_atomic, write_json_atomic,
};
pub use self::format::{
    utc_now, ChunkCheckpoint, ChunkRecord, ChunkStats, ColumnDescription, Compress, Coordinates,
    CsvConvention, ExportSettings, ExportedChunk, KeyDescription, KeyKind, LeftOutColumn, Manifest,
    OutputRecord, ProcessedChunk, ProcessedFrom, SourceInfo, TableDescription, TableEntry,
    TableWhere, FORMAT_VERSION,
};
pub use self::growing::{first_chunks_first, Growing};
pub use self::objects::{
    objects_sql, parse_objects, read_objects, write_objects, ObjectCounts, ObjectKind, SchemaObject,
};
/// Kept here for the callers that decoded names through the dump; it lives
/// with the other hex text in [`crate::dialect`].
pub use crate::dialect::percent_decode;

/// The text of a `manifest.json` (`label` names it in errors). The version
/// is checked before the shape, so a dump from a newer myspool says so
/// instead of failing on some field it added.
pub fn parse_manifest(text: &str, label: &str) -> Result<Manifest> {
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| anyhow!("{label} is not valid JSON: {}", one_line(e)))?;
    match value.get("format_version").and_then(|v| v.as_u64()) {
        Some(v) if v == FORMAT_VERSION as u64 => {}
        Some(v) => bail!(
            "{label} has dump format version {v}; this myspool reads version {FORMAT_VERSION}"
        ),
        None => bail!("{label} has no format_version: not a myspool dump"),
    }
    serde_json::from_value(value).map_err(|e| anyhow!("{label}: {}", one_line(e)))
}

/// The text of a `table.json` (`label` names it in errors).
pub fn parse_table(text: &str, label: &str) -> Result<TableDescription> {
    serde_json::from_str(text)
        .map_err(|e| anyhow!("{label} is not a valid table description: {}", one_line(e)))
}

/// The files of a dump, each named once here.
pub const MANIFEST_FILE: &str = "manifest.json";
pub const TABLE_FILE: &str = "table.json";
pub const SCHEMA_FILE: &str = "schema.sql";
pub const DATABASE_FILE: &str = "database.sql";
/// A database's views, triggers, routines and events; absent in dumps
/// exported without them (`--no-objects`, named tables, older versions).
pub const OBJECTS_FILE: &str = "objects.sql";
/// While a table is exported: one JSON line per finished chunk.
pub const EXPORT_LOG: &str = "export.log";
/// While a table is processed: one JSON line per finished output chunk.
pub const PROCESS_LOG: &str = "process.log";
/// In a dump that was processed: one JSON line per output directory.
pub const OUTPUTS_LOG: &str = "outputs.jsonl";
/// Cooperating `process` runners' claims, in each table's directory and in
/// the output's root.
pub const CLAIMS_DIR: &str = ".claims";
/// A unit the cooperating runners committed: `<unit>.done` in `CLAIMS_DIR`.
const DONE_SUFFIX: &str = ".done";
/// The advisory lock two myspool processes take before writing a dump.
pub const LOCK_FILE: &str = ".myspool.lock";

/// Chunk file name: `000042.csv.gz`.
pub fn chunk_file_name(number: u32, compress: Compress) -> String {
    format!("{number:06}.{}", compress.extension())
}

/// The stderr of a chunk whose `process --exec` command failed, kept next to
/// where the chunk would be: `000042.stderr`.
pub fn stderr_file_name(number: u32) -> String {
    format!("{number:06}.stderr")
}

/// The answered output rows of a chunk `process --map` is working on (CSV
/// rows without a header, valid up to its last checkpoint): `000042.partial`.
pub fn partial_file_name(number: u32) -> String {
    format!("{number:06}.partial")
}

/// The checkpoints of a chunk `process --map` is working on, one
/// [`ChunkCheckpoint`] per line: `000042.checkpoint`.
pub fn checkpoint_file_name(number: u32) -> String {
    format!("{number:06}{CHECKPOINT_SUFFIX}")
}

const CHECKPOINT_SUFFIX: &str = ".checkpoint";

/// The rows `process --map` rejected in a table: one JSON line each.
pub const REJECTS_FILE: &str = "rejects.jsonl";

/// The stderr of `process --map` worker `n` (1-based), in the output's root.
pub fn worker_stderr_file_name(n: usize) -> String {
    format!("worker-{n:02}.stderr")
}

/// The load journal of one target in a table's directory:
/// `load@<host:port>@<db>.jsonl`, each part made safe for any file system.
pub fn journal_file_name(endpoint: &str, target_db: &str) -> String {
    format!(
        "{JOURNAL_PREFIX}{}@{}{JOURNAL_SUFFIX}",
        safe_file_name(endpoint),
        safe_file_name(target_db)
    )
}

/// The target (endpoint, database) a [`journal_file_name`] names; `None` for
/// any other file.
pub fn journal_target(file_name: &str) -> Option<(String, String)> {
    let rest = file_name
        .strip_prefix(JOURNAL_PREFIX)?
        .strip_suffix(JOURNAL_SUFFIX)?;
    let (endpoint, db) = rest.split_once('@')?;
    Some((decode_file_name(endpoint), decode_file_name(db)))
}

const JOURNAL_PREFIX: &str = "load@";
const JOURNAL_SUFFIX: &str = ".jsonl";

/// A dump directory on disk.
#[derive(Debug, Clone)]
pub struct DumpDir {
    root: PathBuf,
}

/// How long `DumpDir::lock` waits for a lock that is briefly held.
const LOCK_WAIT: Duration = Duration::from_secs(1);

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
        let deadline = Instant::now() + LOCK_WAIT;
        loop {
            match lock.try_lock() {
                Ok(()) => return Ok(lock),
                Err(fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
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
        parse_manifest(&text, &path.display().to_string()).map(Some)
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

    /// True when the directory holds nothing but, at most, the lock file and
    /// what a first run killed before its manifest leaves (temporary files
    /// of atomic writes, `<db>/database.sql`): a directory a new dump may be
    /// written into.
    pub fn is_empty(&self) -> Result<bool> {
        Self::holds_only(&self.root, true)
    }

    fn holds_only(dir: &Path, root: bool) -> Result<bool> {
        let entries =
            fs::read_dir(dir).with_context(|| format!("reading directory {}", dir.display()))?;
        for entry in entries {
            let entry = entry.with_context(|| format!("reading directory {}", dir.display()))?;
            let name = entry.file_name();
            let left = name.to_string_lossy().starts_with(TMP_PREFIX)
                || if root {
                    name == LOCK_FILE
                        || (entry.file_type().is_ok_and(|t| t.is_dir())
                            && Self::holds_only(&entry.path(), false)?)
                } else {
                    name == DATABASE_FILE || name == OBJECTS_FILE
                };
            if !left {
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

    /// `<db>/objects.sql`.
    pub fn objects_path(&self, db: &str) -> PathBuf {
        self.root.join(safe_file_name(db)).join(OBJECTS_FILE)
    }

    /// The schema objects of database `db` (none if the dump has none).
    pub fn read_objects(&self, db: &str) -> Result<Vec<SchemaObject>> {
        read_objects(&self.objects_path(db))
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.root.join(relative)
    }

    pub fn read_table(&self, entry: &TableEntry) -> Result<Option<TableDescription>> {
        let path = self.path(&entry.dir).join(TABLE_FILE);
        match fs::read_to_string(&path) {
            Ok(text) => parse_table(&text, &path.display().to_string()).map(Some),
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
        let mut done: Vec<u32> = log.into_iter().map(|p| p.number).collect();
        // Cooperating runners record a chunk by its claim's done directory.
        if let Ok(entries) = fs::read_dir(self.path(&entry.dir).join(CLAIMS_DIR)) {
            done.extend(entries.flatten().filter_map(|e| {
                e.file_name()
                    .to_string_lossy()
                    .strip_suffix(DONE_SUFFIX)?
                    .parse::<u32>()
                    .ok()
            }));
        }
        done.sort_unstable();
        done.dedup();
        Ok(done)
    }

    /// The chunks of a table that `process --map` left part done, with the
    /// input rows answered by their last checkpoint (for `myspool status`).
    pub fn partial_chunks(&self, entry: &TableEntry) -> Result<Vec<(u32, u64)>> {
        let dir = self.path(&entry.dir);
        let mut partial = Vec::new();
        let Ok(entries) = fs::read_dir(&dir) else {
            return Ok(partial);
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(number) = name
                .strip_suffix(CHECKPOINT_SUFFIX)
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            let log: Vec<ChunkCheckpoint> = read_json_lines(&e.path())?;
            if let Some(last) = log.last() {
                partial.push((number, last.rows_answered));
            }
        }
        partial.sort_unstable();
        Ok(partial)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_holding_what_a_run_killed_before_its_manifest_left_is_empty() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DumpDir::new(tmp.path());
        let _lock = dir.lock().unwrap();
        assert!(dir.is_empty().unwrap());
        fs::write(tmp.path().join(".tmp-qTZ7O6"), "").unwrap();
        fs::create_dir(tmp.path().join("shop")).unwrap();
        fs::write(tmp.path().join("shop").join(DATABASE_FILE), "CREATE …").unwrap();
        fs::write(tmp.path().join("shop").join(".tmp-x1"), "").unwrap();
        assert!(dir.is_empty().unwrap());
        fs::write(tmp.path().join("shop").join("notes.txt"), "").unwrap();
        assert!(!dir.is_empty().unwrap());
        fs::remove_file(tmp.path().join("shop").join("notes.txt")).unwrap();
        fs::write(tmp.path().join(DATABASE_FILE), "").unwrap();
        assert!(!dir.is_empty().unwrap(), "database.sql belongs in <db>/");
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
    fn chunk_names_are_numbered() {
        assert_eq!(chunk_file_name(42, Compress::Gzip), "000042.csv.gz");
        assert_eq!(chunk_file_name(1_234_567, Compress::None), "1234567.csv");
    }

    #[test]
    fn journal_names_say_their_target() {
        let name = journal_file_name("db1:3306", "shop");
        assert_eq!(name, "load@db1%3A3306@shop.jsonl");
        assert_eq!(
            journal_target(&name),
            Some(("db1:3306".to_string(), "shop".to_string()))
        );
        assert_eq!(journal_target("load@x.jsonl"), None);
        assert_eq!(journal_target(TABLE_FILE), None);
    }
}
