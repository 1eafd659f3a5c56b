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

mod command;
#[cfg(test)]
mod fixtures;
pub(crate) mod jsonl;
mod options;
mod output_chunk;
mod output_dump;
mod tables;
mod transform;
mod workers;

use std::fs;
use std::time::Instant;

use anyhow::{bail, Context, Result};

pub use options::{FailedChunk, Format, ProcessOptions, ProcessSummary, TableProcessSummary};
pub use transform::RowTransform;

use crate::dump::{DumpDir, Manifest, ProcessedFrom};
use crate::progress::peak_rss_bytes;
use output_dump::OutputDump;
use tables::TableWork;
use workers::{Worker, Workers};

/// Runs `opts.exec` over every chunk of `opts.dir` into `opts.out`.
pub fn process(opts: &ProcessOptions) -> Result<ProcessSummary> {
    if opts.exec.trim().is_empty() {
        bail!("--exec is empty");
    }
    process_dump(opts, Worker::Command(&opts.exec))
}

/// Applies a Rust transform over every chunk of `opts.dir` into `opts.out`
/// (`opts.exec` only names it in the output manifest).
pub fn process_with(opts: &ProcessOptions, transform: &dyn RowTransform) -> Result<ProcessSummary> {
    process_dump(opts, Worker::Transform(transform))
}

/// Processes the dump in `opts.dir` with `worker` into `opts.out`: what an
/// earlier run finished is kept, the rest is processed now.
fn process_dump(opts: &ProcessOptions, worker: Worker<'_>) -> Result<ProcessSummary> {
    let started = Instant::now();
    if opts.jobs == 0 {
        bail!("--jobs must be at least 1");
    }
    let input = DumpDir::new(&opts.dir);
    let manifest = open_input(&input, opts)?;
    let processed = processed_from(opts)?;
    let mut out = OutputDump::open(&opts.out, &manifest, &processed)?;
    output_dump::record_output(&input, &opts.out, &processed)?;

    let follow = opts.follow.is_some();
    let tables = manifest
        .tables
        .iter()
        .map(|entry| TableWork::resume(&input, &out.dir, entry, opts.follow.as_deref()))
        .collect::<Result<Vec<_>>>()?;
    let pending = tables::pending_chunks(&tables, follow);
    let chunks_kept = tables::kept_chunks(&tables);
    let total_rows = tables::rows_to_process(&tables, &pending, follow);
    let outcome = Workers {
        opts,
        worker,
        input: &input,
        out: &out.dir,
        tables: &tables,
        pending: &pending,
        level: manifest.export.level,
    }
    .run(total_rows);

    let (summary_tables, all_done) = tables::finish_tables(&out.dir, &tables)?;
    if all_done {
        out.complete()?;
    }
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
    })
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
        format: opts.format.name().into(),
    })
}
