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
//! `--map CMD` (row mode, `map/`) runs CMD once per worker instead, and
//! hands it rows one by one: checkpoints every second, workers sharing the
//! rows of a chunk, bad rows rejected into a file (see `map`).
//!
//! `--format jsonl` gives the command one JSON object per row instead
//! (`{"col": "value", "other": null}`; binary columns as hex strings) and
//! reads objects back the same way, so a script needs no CSV convention.

pub mod claims;
mod command;
#[cfg(test)]
pub(crate) mod fixtures;
pub(crate) mod jsonl;
pub mod map;
mod options;
mod output_chunk;
mod output_dump;
mod tables;
mod transform;
mod workers;

use std::fs;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Instant;

use anyhow::{bail, Context, Result};

use claims::{Claims, LostClaim};
pub use claims::{Shard, DEFAULT_LEASE};
pub use map::{MapOptions, MapSummary, DEFAULT_MAX_REJECTS, REJECT_KEY};
pub use options::{FailedChunk, Format, ProcessOptions, ProcessSummary, TableProcessSummary};
pub use transform::RowTransform;

use crate::dump::{DumpDir, Manifest, ProcessedFrom};
use crate::progress::peak_rss_bytes;
use map::{MapRun, MapWorker};
pub use output_dump::missing_work;
use output_dump::OutputDump;
use tables::TableWork;
use workers::{Worker, Workers};

/// Runs `opts.exec` over every chunk of `opts.dir` into `opts.out` (with
/// `opts.map`, as row-mode workers).
pub fn process(opts: &ProcessOptions) -> Result<ProcessSummary> {
    if opts.exec.trim().is_empty() {
        bail!(
            "{} is empty",
            if opts.map.is_some() {
                "--map"
            } else {
                "--exec"
            }
        );
    }
    match opts.map {
        Some(_) => process_dump(opts, Mode::Map(MapWorker::Command(&opts.exec))),
        None => process_dump(opts, Mode::Chunks(Worker::Command(&opts.exec))),
    }
}

/// Applies a Rust transform row by row, as row mode does (checkpoints,
/// `opts.jobs` threads sharing the rows of a chunk, an `Err` from the
/// transform rejects the row into the table's rejects file); `opts.map`
/// gives its settings (the defaults when `None`).
pub fn process_rows_with(
    opts: &ProcessOptions,
    transform: &dyn RowTransform,
) -> Result<ProcessSummary> {
    let mut opts = opts.clone();
    opts.map.get_or_insert_with(MapOptions::default);
    process_dump(&opts, Mode::Map(MapWorker::Transform(transform)))
}

/// Applies a Rust transform over every chunk of `opts.dir` into `opts.out`
/// (`opts.exec` only names it in the output manifest).
pub fn process_with(opts: &ProcessOptions, transform: &dyn RowTransform) -> Result<ProcessSummary> {
    process_dump(opts, Mode::Chunks(Worker::Transform(transform)))
}

/// Chunk by chunk (`--exec`, `process_with`) or row by row (`--map`,
/// `process_rows_with`).
#[derive(Clone, Copy)]
enum Mode<'a> {
    Chunks(Worker<'a>),
    Map(MapWorker<'a>),
}

/// Processes the dump in `opts.dir` with `worker` into `opts.out`: what an
/// earlier run finished is kept, the rest is processed now.
fn process_dump(opts: &ProcessOptions, mode: Mode<'_>) -> Result<ProcessSummary> {
    let started = Instant::now();
    if opts.jobs == 0 {
        bail!("--jobs must be at least 1");
    }
    if matches!(mode, Mode::Map(_)) && opts.follow.is_some() {
        bail!("row mode (--map) does not follow a dump being written; export first");
    }
    let input = DumpDir::new(&opts.dir);
    let manifest = open_input(&input, opts)?;
    let processed = processed_from(opts)?;
    // Chunk by chunk, on a finished dump, any number of runners share the
    // work through claims; row mode and a followed input take the lock.
    let cooperating = matches!(mode, Mode::Chunks(_)) && !follows(opts);
    if !cooperating && opts.shard.is_some() {
        bail!("--shard is for runners that share a dump chunk by chunk (--exec), not --map");
    }
    let mut out = OutputDump::open(&opts.out, &manifest, &processed, cooperating)?;
    output_dump::record_output(&input, &opts.out, &processed)?;

    let follow = opts.follow.is_some();
    let tables = manifest
        .tables
        .iter()
        .map(|entry| {
            TableWork::resume(&input, &out.dir, entry, opts.follow.as_deref(), cooperating)
        })
        .collect::<Result<Vec<_>>>()?;
    let places = all_chunks(&tables);
    let claims = match cooperating {
        true => {
            let units: Vec<(std::path::PathBuf, u32)> = places
                .iter()
                .map(|&(t, c)| (tables[t].out_dir.clone(), tables[t].input.chunks[c].number))
                .collect();
            Some(Claims::new(&out.dir, &units, opts.lease, opts.shard)?)
        }
        false => None,
    };
    let pending = tables::pending_chunks(&tables, follow);
    let chunks_kept = tables::kept_chunks(&tables);
    let total_rows = tables::rows_to_process(&tables, &pending, follow);
    let renewed = AtomicBool::new(false);
    let (outcome, map_summary) = match mode {
        Mode::Chunks(worker) => {
            let outcome = thread::scope(|scope| {
                if let Some(c) = &claims {
                    scope.spawn(|| c.renew(&renewed));
                }
                let outcome = Workers {
                    opts,
                    worker,
                    input: &input,
                    out: &out.dir,
                    tables: &tables,
                    pending: &pending,
                    level: manifest.export.level,
                    claims: claims.as_ref(),
                    places: &places,
                }
                .run(total_rows);
                renewed.store(true, Ordering::SeqCst);
                outcome
            });
            (outcome, None)
        }
        Mode::Map(worker) => {
            let map = opts.map.clone().unwrap_or_default();
            let (outcome, summary) = MapRun {
                opts,
                map: &map,
                worker,
                input: &input,
                out: &out.dir,
                tables: &tables,
                pending: &pending,
                level: manifest.export.level,
            }
            .run()?;
            (outcome, Some(summary))
        }
    };

    let (summary_tables, all_done) = match &claims {
        None => {
            let (summary, all_done) = tables::finish_tables(&out.dir, &tables, true)?;
            if all_done {
                out.complete()?;
            }
            (summary, all_done)
        }
        Some(c) => finish_cooperating(c, &mut out, &tables, outcome.failed.is_empty())?,
    };
    let lost = claims.as_ref().map(|c| c.lost()).unwrap_or_default();
    Ok(ProcessSummary {
        dir: opts.dir.clone(),
        out: opts.out.clone(),
        tables: summary_tables,
        rows_in: outcome.counts.rows_in,
        rows_out: outcome.counts.rows_out,
        chunks_processed: outcome.counts.chunks,
        chunks_kept,
        complete: all_done,
        failed: outcome.failed,
        seconds: started.elapsed().as_secs_f64(),
        peak_rss_bytes: peak_rss_bytes(),
        runner: claims
            .as_ref()
            .map(|c| format!("{} {}", c.runner().host, c.runner().pid)),
        taken_over: claims.as_ref().map_or(0, |c| c.taken_over()),
        lost: lost
            .into_iter()
            .map(|i| {
                let (t, c) = places[i];
                LostClaim {
                    table: tables[t].label(),
                    chunk: tables[t].input.chunks[c].number,
                }
            })
            .collect(),
        map: map_summary,
    })
}

/// The input is being written by this process (`copy`), or the output is
/// read as it is written.
fn follows(opts: &ProcessOptions) -> bool {
    opts.follow.is_some() || opts.announce.is_some()
}

/// Every chunk of every table, as `(table, chunk)` indexes.
fn all_chunks(tables: &[TableWork]) -> Vec<(usize, usize)> {
    tables
        .iter()
        .enumerate()
        .flat_map(|(t, w)| (0..w.input.chunks.len()).map(move |c| (t, c)))
        .collect()
}

/// Cooperating runners: once every chunk is committed (by any runner), one
/// of them writes the tables' descriptions and completes the manifest;
/// every runner reports the tables as the claims say.
fn finish_cooperating(
    claims: &Claims,
    out: &mut OutputDump,
    tables: &[TableWork],
    ok: bool,
) -> Result<(Vec<TableProcessSummary>, bool)> {
    let all_done = ok && claims.all_done()?;
    for t in tables {
        t.refresh_committed()?;
    }
    if !all_done {
        return tables::finish_tables(&out.dir, tables, false);
    }
    let renewed = AtomicBool::new(false);
    let summary = thread::scope(|scope| {
        scope.spawn(|| claims.renew(&renewed));
        let mut summary = None;
        let result = claims.finish(|| {
            let (s, _) = tables::finish_tables(&out.dir, tables, true)?;
            for t in tables {
                claims::tidy(&t.out_dir);
            }
            out.complete()?;
            summary = Some(s);
            Ok(())
        });
        renewed.store(true, Ordering::SeqCst);
        result.map(|_| summary)
    })?;
    match summary {
        Some(s) => Ok((s, true)),
        // Another runner completed the output.
        None => Ok((tables::finish_tables(&out.dir, tables, false)?.0, true)),
    }
}

/// The input's manifest: complete, or (followed) being written.
fn open_input(input: &DumpDir, opts: &ProcessOptions) -> Result<Manifest> {
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
    Ok(manifest)
}

/// What this processing is, as the output manifest records it (a rerun
/// resumes only the same one).
fn processed_from(opts: &ProcessOptions) -> Result<ProcessedFrom> {
    let from = fs::canonicalize(&opts.dir)
        .with_context(|| format!("--dir {}", opts.dir.display()))?
        .display()
        .to_string();
    if let (Ok(a), Ok(b)) = (fs::canonicalize(&opts.dir), fs::canonicalize(&opts.out)) {
        if a == b {
            bail!("--out must be another directory than --dir");
        }
    }
    Ok(ProcessedFrom {
        from,
        exec: opts.exec.clone(),
        // Row mode speaks its own protocol: a rerun with --exec is another
        // processing.
        format: match opts.map {
            Some(_) => "map".into(),
            None => opts.format.name().into(),
        },
    })
}
