//! Export: stream tables into keyset chunks of compressed CSV.
//!
//! An export runs in named steps: open (or resume) the dump directory, plan
//! every table's chunks (`plan`: every Nth key becomes a chunk boundary,
//! and chunk `i` is read with one `SELECT … WHERE <range> ORDER BY <key>`,
//! never `LIMIT offset`), start the reading connections' snapshots
//! (`snapshot`, which also reads their binlog `coordinates`), run the
//! pipeline (`pipeline`) and mark the dump complete. A new dump also gets
//! the schema `objects` of the databases exported whole.
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
//! checksum still matches and exports the rest (`resume`).
//!
//! Export may use `dump`, `conn`, `sql`, `schema`, `dialect`, `progress` and
//! `hooks`; never another phase.

mod coordinates;
mod encode;
mod filters;
mod objects;
mod options;
mod pause;
mod pipeline;
mod plan;
mod rate;
mod read;
mod resume;
mod snapshot;
mod start;
mod summary;
mod table;
mod write;

use std::sync::Arc;
use std::time::Instant;

use anyhow::Result;
use mysql::Conn;

use crate::dump::{self, DumpDir, Manifest, TableDescription};
use crate::schema::TablePattern;

pub use filters::{parse_where_arg, split_where_args, where_arg, WhereArg};
pub use options::{Consistency, ExportOptions, Hooks};
pub use pause::{PauseWhen, Pauses};
pub use rate::{parse_rate, TokenBucket};
pub use read::STALL_LIMIT;
pub use summary::{ExportSummary, TableSummary};

use snapshot::{Readers, SnapshotPlan};
use summary::{RunReport, RunTotals, Warnings};
use table::{ExportingTable, PlanSettings};

/// Runs an export (or resumes one) into `opts.dir`.
pub fn export(opts: &ExportOptions) -> Result<ExportSummary> {
    let started = Instant::now();
    opts.check()?;
    let patterns = opts
        .tables
        .iter()
        .map(|t| TablePattern::parse(t))
        .collect::<Result<Vec<_>>>()?;

    let dir = DumpDir::new(&opts.dir);
    let _lock = start::lock_dump_dir(&opts.dir)?;
    let settings = opts.settings();
    let existing = start::existing_manifest(&dir, &settings, &opts.source)?;
    if let Some(m) = existing.as_ref().filter(|m| m.complete) {
        // Nothing to ask the source: the dump is whole.
        return summarize_complete_dump(&dir, m, started);
    }

    let mut control = opts.source.connect("source")?;
    // Its variable checked before anything is written.
    let gate = match &opts.pause_when {
        Some(w) => Some(Arc::new(pause::PauseGate::connect(
            &opts.source,
            w.clone(),
        )?)),
        None => None,
    };
    snapshot::setup_session(&mut control, opts.hooks.raise_net_write_timeout)?;
    let server_version = crate::conn::server_version(&mut control)?;
    let mut manifest = match existing {
        Some(m) => m,
        None => start::new_manifest(
            &mut control,
            &dir,
            &opts.source,
            settings,
            server_version,
            &patterns,
            start::Objects {
                wanted: opts.objects,
                triggers: opts.triggers,
            },
        )?,
    };

    let mut warnings = Warnings::default();
    let mut tables = plan_tables(&mut control, &dir, &manifest, opts, &mut warnings)?;
    let chunks_kept: u64 = tables
        .iter()
        .map(|t| (t.desc.chunks.len() - t.pending.len()) as u64)
        .sum();
    let pending = pending_in_order(&tables, opts.announce.is_some());
    let run = if pending.is_empty() {
        drop(control);
        RunTotals::default()
    } else {
        let jobs = opts.jobs.min(pending.len());
        let readers = start_snapshots(control, jobs, &tables, opts, &mut warnings)?;
        record_consistency(&dir, &mut manifest, chunks_kept, &readers)?;
        let mut run = pipeline::run_pipeline(
            opts,
            &dir,
            &mut tables,
            pending,
            readers.conns,
            gate.clone(),
        )?;
        run.pauses = gate.map(|g| g.pauses()).unwrap_or_default();
        run
    };
    mark_dump_complete(&dir, &mut manifest)?;

    let descs: Vec<TableDescription> = tables.into_iter().map(|t| t.desc).collect();
    let report = RunReport {
        dir: opts.dir.clone(),
        run,
        chunks_kept,
        warnings,
        started,
    };
    Ok(summary::summarize(&manifest, &descs, report))
}

/// The summary of a dump an earlier run finished: all its chunks kept.
fn summarize_complete_dump(
    dir: &DumpDir,
    manifest: &Manifest,
    started: Instant,
) -> Result<ExportSummary> {
    let tables = manifest
        .tables
        .iter()
        .map(|e| dir.table_description(e, None))
        .collect::<Result<Vec<_>>>()?;
    let report = RunReport {
        dir: dir.root().to_path_buf(),
        run: RunTotals::default(),
        chunks_kept: tables.iter().map(|t| t.chunks.len() as u64).sum(),
        warnings: Warnings::default(),
        started,
    };
    Ok(summary::summarize(manifest, &tables, report))
}

/// Plans (or reloads the plan of) every table, and finds what is left to do.
fn plan_tables(
    control: &mut Conn,
    dir: &DumpDir,
    manifest: &Manifest,
    opts: &ExportOptions,
    warnings: &mut Warnings,
) -> Result<Vec<ExportingTable>> {
    manifest
        .tables
        .iter()
        .map(|entry| {
            let settings = PlanSettings {
                where_clause: filters::table_condition(
                    manifest.export.where_clause.as_deref(),
                    &manifest.export.table_where,
                    &entry.db,
                    &entry.table,
                ),
                chunk_rows: opts.chunk_rows,
                jobs: opts.jobs,
                compress: opts.compress,
            };
            table::plan_or_resume_table(control, dir, entry, &settings, warnings)
        })
        .collect()
}

/// The `(table, chunk)` pairs left to export, in table order and key order;
/// the first chunk of every table first when a reader follows the dump.
fn pending_in_order(tables: &[ExportingTable], followed: bool) -> Vec<(usize, usize)> {
    let pending: Vec<(usize, usize)> = tables
        .iter()
        .enumerate()
        .flat_map(|(t, st)| st.pending.iter().map(move |&c| (t, c)))
        .collect();
    if followed {
        dump::first_chunks_first(pending)
    } else {
        pending
    }
}

/// Opens `jobs` reading connections in their snapshots; the control
/// connection is closed once they have started.
fn start_snapshots(
    mut control: Conn,
    jobs: usize,
    tables: &[ExportingTable],
    opts: &ExportOptions,
    warnings: &mut Warnings,
) -> Result<Readers> {
    let to_read: Vec<String> = tables
        .iter()
        .filter(|t| !t.pending.is_empty())
        .filter_map(|t| t.source.as_ref().map(|s| s.table.sql()))
        .collect();
    let plan = SnapshotPlan {
        jobs,
        consistency: opts.consistency,
        raise_net_write_timeout: opts.hooks.raise_net_write_timeout,
        tables: &to_read,
    };
    snapshot::open_readers(&opts.source, &mut control, &plan, warnings)
}

/// Records in the manifest how this run's snapshots relate and their binlog
/// coordinates (and, when it resumes, that the dump mixes several runs').
fn record_consistency(
    dir: &DumpDir,
    manifest: &mut Manifest,
    chunks_kept: u64,
    readers: &Readers,
) -> Result<()> {
    let recorded = resume::recorded_consistency(
        manifest.consistency.as_deref(),
        chunks_kept,
        readers.consistency,
    );
    let coordinates = coordinates::recorded(chunks_kept, readers.coordinates.clone());
    if manifest.consistency.as_deref() != Some(recorded.as_str())
        || manifest.coordinates.as_ref() != Some(&coordinates)
    {
        manifest.consistency = Some(recorded);
        manifest.coordinates = Some(coordinates);
        dir.write_manifest(manifest)?;
    }
    Ok(())
}

fn mark_dump_complete(dir: &DumpDir, manifest: &mut Manifest) -> Result<()> {
    if !manifest.complete {
        manifest.complete = true;
        manifest.finished_at = Some(dump::utc_now());
        dir.write_manifest(manifest)?;
    }
    Ok(())
}
