//! One table of the dump through a run: planned by the first run (its
//! `schema.sql`, its chunks in `table.json`) or resumed from that plan,
//! then marked complete once its last chunk is written.

use std::fs;
use std::path::Path;

use anyhow::{Context, Result};
use mysql::Conn;

use super::plan;
use super::resume::{self, Redo};
use super::summary::Warnings;
use crate::dump::{self, Compress, DumpDir, LeftOutColumn, TableDescription, TableEntry};
use crate::schema::{self, SourceTable, TableRef};

/// A table during a run.
pub(super) struct ExportingTable {
    pub entry: TableEntry,
    /// The source's definition; `None` for a table finished by an earlier run.
    pub source: Option<SourceTable>,
    pub desc: TableDescription,
    /// Indexes into `desc.chunks` still to export.
    pub pending: Vec<usize>,
    /// The rows' condition, every `--where` for it (`PlanSettings`).
    pub where_clause: Option<String>,
}

/// The options that shape a table's plan.
pub(super) struct PlanSettings {
    /// The table's `--where` conditions, both (`filters::table_condition`).
    pub where_clause: Option<String>,
    /// `--chunk-rows`; `None` picks a size per table.
    pub chunk_rows: Option<u64>,
    pub jobs: usize,
    pub compress: Compress,
}

/// Reads a table's plan back (keeping its intact chunks) or, on the first
/// run, describes the table and plans its chunks; either way, finds what is
/// left to export.
pub(super) fn plan_or_resume_table(
    control: &mut Conn,
    dir: &DumpDir,
    entry: &TableEntry,
    settings: &PlanSettings,
    warnings: &mut Warnings,
) -> Result<ExportingTable> {
    let table = TableRef {
        db: entry.db.clone(),
        table: entry.table.clone(),
    };
    let table_dir = dir.path(&entry.dir);
    let existing = dir.read_table(entry)?;
    if let Some(desc) = existing.as_ref().filter(|d| d.complete) {
        // Finished by an earlier run (which may have died before it
        // could remove the log).
        let _ = fs::remove_file(table_dir.join(dump::EXPORT_LOG));
        return Ok(ExportingTable {
            entry: entry.clone(),
            source: None,
            desc: desc.clone(),
            pending: Vec::new(),
            where_clause: settings.where_clause.clone(),
        });
    }
    let source = schema::describe(control, &table)?;
    if source.key_columns.is_empty() {
        warnings.warn(format!(
            "{table} has no primary key and no unique NOT NULL key: exported as one chunk, in no particular order, and a rerun cannot resume inside it"
        ));
    }
    let desc = match existing {
        Some(desc) => resume_table(&table_dir, &source, desc, warnings)?,
        None => plan_table(control, dir, entry, &source, settings)?,
    };
    remove_stale_temp_files(&table_dir)?;
    Ok(ExportingTable {
        entry: entry.clone(),
        pending: resume::pending_chunks(&desc.chunks),
        source: Some(source),
        desc,
        where_clause: settings.where_clause.clone(),
    })
}

/// The plan of an earlier run, with the chunks it finished intact marked
/// written.
fn resume_table(
    table_dir: &Path,
    source: &SourceTable,
    mut desc: TableDescription,
    warnings: &mut Warnings,
) -> Result<TableDescription> {
    resume::check_same_table(source, &desc)?;
    let done = dump::read_json_lines(&table_dir.join(dump::EXPORT_LOG))?;
    let checksum = |file: &str| dump::sha256_file(&table_dir.join(file)).ok();
    for redo in resume::keep_intact_chunks(&mut desc.chunks, done, checksum) {
        warnings.warn(match redo {
            Redo::ChecksumDiffers(file) => format!(
                "{}: checksum differs from the one recorded; exporting it again",
                table_dir.join(file).display()
            ),
            Redo::Missing(file) => format!(
                "{} is recorded as done but missing; exporting it again",
                table_dir.join(file).display()
            ),
        });
    }
    Ok(desc)
}

/// The first run's plan of a table: its `schema.sql`, then its chunks,
/// recorded in `table.json`.
fn plan_table(
    control: &mut Conn,
    dir: &DumpDir,
    entry: &TableEntry,
    source: &SourceTable,
    settings: &PlanSettings,
) -> Result<TableDescription> {
    let table_dir = dir.path(&entry.dir);
    dump::create_private_dir(&table_dir)?;
    dump::write_atomic(
        &table_dir.join(dump::SCHEMA_FILE),
        format!("{};\n", source.create_sql).as_bytes(),
    )?;
    let size = match settings.chunk_rows {
        Some(n) => plan::ChunkSize::Rows(n),
        None => plan::ChunkSize::Auto {
            avg_row_length: source.avg_row_length,
            jobs: settings.jobs,
        },
    };
    let (chunks, planned_rows, chunk_rows) = plan::plan_chunks(
        control,
        source,
        settings.where_clause.as_deref(),
        settings.compress,
        size,
    )
    .with_context(|| format!("planning the chunks of {}", source.table))?;
    let desc = TableDescription {
        db: entry.db.clone(),
        table: entry.table.clone(),
        columns: source.columns.iter().map(|c| c.desc.clone()).collect(),
        generated_columns: source.generated_columns.clone(),
        left_out: Some(
            source
                .generated_columns
                .iter()
                .map(|name| LeftOutColumn::generated(name))
                .collect(),
        ),
        key: source.key.clone(),
        chunk_rows,
        planned_rows,
        compress: settings.compress,
        chunks,
        complete: false,
    };
    dir.write_table(entry, &desc)?;
    // Forget chunk records of an earlier attempt whose plan was lost.
    let _ = fs::remove_file(table_dir.join(dump::EXPORT_LOG));
    Ok(desc)
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

/// Folds the log into `table.json` once every chunk of a table is written.
pub(super) fn mark_table_complete(dir: &DumpDir, table: &mut ExportingTable) -> Result<()> {
    table.desc.complete = true;
    dir.write_table(&table.entry, &table.desc)?;
    let log = dir.path(&table.entry.dir).join(dump::EXPORT_LOG);
    let _ = fs::remove_file(log);
    Ok(())
}
