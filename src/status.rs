//! Status: what is done in a dump directory, and what would continue it.
//!
//! Read from the files alone (no server): the manifest and `table.json`s for
//! the export, `export.log` while it runs, the outputs a processing recorded
//! in `outputs.jsonl`, and the load journals for every target.

use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::Serialize;

use crate::dump::{
    self, DumpDir, ExportedChunk, Manifest, OutputRecord, TableDescription, TableEntry,
};
use crate::journal;
use crate::process::claims::held_units;
pub use crate::process::claims::HeldUnit;

#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub dir: PathBuf,
    pub exported_complete: bool,
    /// Set when the dump was made by `myspool process`.
    pub processed_from: Option<String>,
    /// The source's binlog coordinates of the rows in the dump, or why none.
    pub coordinates: Option<dump::Coordinates>,
    /// The views, triggers, routines and events in the dump, per database.
    pub objects: Vec<ObjectsStatus>,
    /// The export's `--where` for every table, and per table.
    #[serde(rename = "where")]
    pub where_clause: Option<String>,
    pub table_where: Vec<dump::TableWhere>,
    pub tables: Vec<TableStatus>,
    /// Commands that would continue what is unfinished.
    pub next: Vec<String>,
}

/// A database's schema objects in the dump (`objects.sql`), per kind.
#[derive(Debug, Clone, Serialize)]
pub struct ObjectsStatus {
    pub db: String,
    #[serde(flatten)]
    pub counts: dump::ObjectCounts,
}

#[derive(Debug, Clone, Serialize)]
pub struct TableStatus {
    pub db: String,
    pub table: String,
    pub chunks: usize,
    pub exported: usize,
    pub rows: u64,
    pub processed: Vec<OutputStatus>,
    pub loaded: Vec<LoadStatus>,
    /// In a dump `process --map` is writing: the chunks part done.
    pub partial: Vec<PartialChunk>,
    /// In a dump cooperating `process` runners are writing: the chunks they
    /// hold now.
    pub held: Vec<HeldUnit>,
}

/// A chunk `process --map` left part done: its input rows answered by its
/// last checkpoint.
#[derive(Debug, Clone, Serialize)]
pub struct PartialChunk {
    pub chunk: u32,
    pub rows_answered: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct OutputStatus {
    pub out: String,
    pub exec: String,
    pub done: usize,
    /// Chunks whose command failed (their stderr is kept) and not yet redone.
    pub failed: Vec<u32>,
    /// Chunks `--map` left part done.
    pub partial: Vec<PartialChunk>,
    /// Chunks cooperating runners hold now: which runner, since when.
    pub held: Vec<HeldUnit>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LoadStatus {
    /// `host:port` of the target.
    pub target: String,
    pub database: String,
    pub committed: usize,
    pub in_doubt: Vec<u32>,
    /// Every chunk in, every temporary change undone, and with `--swap`
    /// the table swapped in.
    pub complete: bool,
    pub autoinc_removed: bool,
    pub indexes_dropped: bool,
}

pub fn status(dir: &Path) -> Result<Status> {
    let dump = DumpDir::new(dir);
    let manifest = dump.require_manifest()?;
    let mut outputs: Vec<OutputRecord> = dump::read_json_lines(&dir.join(dump::OUTPUTS_LOG))?;
    // Runners that started together may each have listed their output.
    let mut seen = std::collections::BTreeSet::new();
    outputs.retain(|o| seen.insert(o.out.clone()));
    let mut tables = Vec::new();
    for entry in &manifest.tables {
        tables.push(table_status(&dump, &manifest, entry, &outputs)?);
    }
    let next = next_commands(dir, &manifest, &tables, &outputs);
    let mut objects: Vec<ObjectsStatus> = Vec::new();
    for entry in &manifest.tables {
        if objects.iter().all(|o| o.db != entry.db) {
            let found = dump.read_objects(&entry.db)?;
            if !found.is_empty() {
                objects.push(ObjectsStatus {
                    db: entry.db.clone(),
                    counts: dump::ObjectCounts::of(&found),
                });
            }
        }
    }
    Ok(Status {
        dir: dir.to_path_buf(),
        exported_complete: manifest.complete,
        processed_from: manifest.processed.as_ref().map(|p| p.from.clone()),
        coordinates: manifest.coordinates.clone(),
        objects,
        where_clause: manifest.export.where_clause.clone(),
        table_where: manifest.export.table_where.clone(),
        tables,
        next,
    })
}

/// One table: how far its export (or, in a processed dump, its processing)
/// got, each processing of it, each load of it.
fn table_status(
    dump: &DumpDir,
    manifest: &Manifest,
    entry: &TableEntry,
    outputs: &[OutputRecord],
) -> Result<TableStatus> {
    let desc = dump.read_table(entry)?;
    // A processed dump gets its table.json when the table is done; until
    // then its chunks are the input's, and its log says which are done.
    if let (Some(p), false) = (
        &manifest.processed,
        desc.as_ref().is_some_and(|d| d.complete),
    ) {
        return processing_progress(dump, Path::new(&p.from), entry);
    }
    let table_dir = dump.path(&entry.dir);
    let (exported, rows) = export_progress(&table_dir, desc.as_ref())?;
    Ok(TableStatus {
        db: entry.db.clone(),
        table: entry.table.clone(),
        chunks: desc.as_ref().map_or(0, |d| d.chunks.len()),
        exported,
        rows,
        processed: outputs
            .iter()
            .map(|o| output_status(o, entry, desc.as_ref()))
            .collect(),
        loaded: load_statuses(&table_dir)?,
        partial: Vec::new(),
        held: Vec::new(),
    })
}

/// A table of a dump that a processing is still writing: the input's chunks,
/// those of them the processing has finished, and the loads of it so far
/// (`copy` loads a table while it is processed).
fn processing_progress(dump: &DumpDir, input: &Path, entry: &TableEntry) -> Result<TableStatus> {
    let input = DumpDir::new(input).read_table(entry)?;
    let done = dump.processed_chunks(entry).unwrap_or_default();
    let rows = input
        .iter()
        .flat_map(|d| d.chunks.iter())
        .filter(|c| done.contains(&c.number))
        .filter_map(|c| c.written.as_ref().map(|w| w.rows))
        .sum();
    Ok(TableStatus {
        db: entry.db.clone(),
        table: entry.table.clone(),
        chunks: input.as_ref().map_or(0, |d| d.chunks.len()),
        exported: done.len(),
        rows,
        processed: Vec::new(),
        loaded: load_statuses(&dump.path(&entry.dir))?,
        partial: partial_chunks(dump, entry),
        held: held_units(&dump.path(&entry.dir)),
    })
}

/// The export's progress on a table: (chunks, rows) written, from
/// `table.json` once the table is complete, from `export.log` until then.
fn export_progress(table_dir: &Path, desc: Option<&TableDescription>) -> Result<(usize, u64)> {
    Ok(match desc {
        Some(d) if d.complete => (
            d.chunks.len(),
            d.chunks
                .iter()
                .filter_map(|c| c.written.as_ref())
                .map(|w| w.rows)
                .sum(),
        ),
        Some(_) => {
            let done: Vec<ExportedChunk> =
                dump::read_json_lines(&table_dir.join(dump::EXPORT_LOG))?;
            (done.len(), done.iter().map(|d| d.stats.rows).sum())
        }
        None => (0, 0),
    })
}

/// How far one processing of the dump got with a table: the chunks done,
/// and those whose command failed (their stderr is kept) and not yet redone.
fn output_status(
    output: &OutputRecord,
    entry: &TableEntry,
    desc: Option<&TableDescription>,
) -> OutputStatus {
    let out = DumpDir::new(&output.out);
    let done = out.processed_chunks(entry).unwrap_or_default();
    let out_table_dir = out.path(&entry.dir);
    let failed: Vec<u32> = desc
        .iter()
        .flat_map(|d| d.chunks.iter())
        .map(|c| c.number)
        .filter(|&n| !done.contains(&n) && out_table_dir.join(dump::stderr_file_name(n)).exists())
        .collect();
    OutputStatus {
        out: output.out.clone(),
        exec: output.exec.clone(),
        done: done.len(),
        failed,
        partial: partial_chunks(&out, entry),
        held: held_units(&out_table_dir),
    }
}

fn partial_chunks(dump: &DumpDir, entry: &TableEntry) -> Vec<PartialChunk> {
    dump.partial_chunks(entry)
        .unwrap_or_default()
        .into_iter()
        .map(|(chunk, rows_answered)| PartialChunk {
            chunk,
            rows_answered,
        })
        .collect()
}

/// Each load of a table, one per target, from its journal.
fn load_statuses(table_dir: &Path) -> Result<Vec<LoadStatus>> {
    Ok(journal::journals_in(table_dir)?
        .into_iter()
        .map(|(target, database, state)| LoadStatus {
            target,
            database,
            committed: state.committed.len(),
            in_doubt: state.in_doubt.iter().copied().collect(),
            complete: state.finished(),
            autoinc_removed: state.autoinc_dropped.is_some(),
            indexes_dropped: state.indexes_dropped.is_some(),
        })
        .collect())
}

/// The commands that would continue what is unfinished: the export (or the
/// processing that is writing this dump), each processing of it that has
/// chunks left, each load that is not complete.
fn next_commands(
    dir: &Path,
    manifest: &Manifest,
    tables: &[TableStatus],
    outputs: &[OutputRecord],
) -> Vec<String> {
    let dir = dir.display().to_string();
    let mut next = Vec::new();
    if !manifest.complete {
        next.push(match &manifest.processed {
            Some(p) => process_command(&p.from, &dir, &p.exec, &p.format),
            None => export_command(manifest, &quote(&dir)),
        });
    }
    for o in unfinished_outputs(tables, outputs) {
        next.push(process_command(&dir, &o.out, &o.exec, &o.format));
    }
    for (target, database) in unfinished_loads(tables) {
        next.push(format!(
            "myspool load --dir {} --to mysql://USER@{target} --into {} (with the options of the interrupted load)",
            quote(&dir),
            quote(database)
        ));
    }
    next
}

/// The processings with chunks left in some table, each once, in the order
/// the tables first show them.
fn unfinished_outputs<'a>(
    tables: &[TableStatus],
    outputs: &'a [OutputRecord],
) -> Vec<&'a OutputRecord> {
    let mut unfinished: Vec<&OutputRecord> = Vec::new();
    for table in tables {
        // A table's `processed` has one entry per line of outputs.jsonl.
        for (status, output) in table.processed.iter().zip(outputs) {
            if status.done < table.chunks && !unfinished.iter().any(|u| u.out == output.out) {
                unfinished.push(output);
            }
        }
    }
    unfinished
}

/// The (target, database) of every load not complete, each once, in the
/// order the tables first show them.
fn unfinished_loads(tables: &[TableStatus]) -> Vec<(&str, &str)> {
    let mut unfinished: Vec<(&str, &str)> = Vec::new();
    for load in tables.iter().flat_map(|t| &t.loaded) {
        let target = (load.target.as_str(), load.database.as_str());
        if !load.complete && !unfinished.contains(&target) {
            unfinished.push(target);
        }
    }
    unfinished
}

/// `myspool process` reading `input` into `out` with `exec`.
fn process_command(input: &str, out: &str, exec: &str, format: &str) -> String {
    format!(
        "myspool process --dir {} --out {} --{} {}{}",
        quote(input),
        quote(out),
        if format == "map" { "map" } else { "exec" },
        quote(exec),
        if format == "jsonl" {
            " --format jsonl"
        } else {
            ""
        }
    )
}

fn export_command(m: &Manifest, dir_arg: &str) -> String {
    let mut cmd = format!(
        "myspool export --from mysql://{}@{}",
        m.source.user, m.source.endpoint
    );
    for t in &m.export.table_patterns {
        cmd.push_str(&format!(" --table {}", quote(t)));
    }
    cmd.push_str(&format!(" --dir {dir_arg}"));
    if let Some(w) = &m.export.where_clause {
        cmd.push_str(&format!(" --where {}", quote(w)));
    }
    for f in &m.export.table_where {
        cmd.push_str(&format!(" --where {}", quote(&crate::export::where_arg(f))));
    }
    if let Some(n) = m.export.chunk_rows {
        cmd.push_str(&format!(" --chunk-rows {n}"));
    }
    match m.export.compress {
        dump::Compress::None => cmd.push_str(" --compress none"),
        dump::Compress::Gzip => cmd.push_str(&format!(" --level {}", m.export.level)),
        dump::Compress::Zstd => {
            cmd.push_str(&format!(" --compress zstd --level {}", m.export.level))
        }
    }
    cmd
}

/// Quotes for a POSIX shell when needed.
fn quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:@=,".contains(&b))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::quote;

    #[test]
    fn shell_quoting() {
        assert_eq!(quote("shop.orders"), "shop.orders");
        assert_eq!(quote("shop.*"), "'shop.*'");
        assert_eq!(quote("it's"), "'it'\\''s'");
    }
}
