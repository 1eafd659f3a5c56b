//! Copy: export, optionally process, and load, as one resumable job.
//!
//! `DIR/export` holds the dump and `DIR/processed` the processed one (with
//! `--exec`). The three phases run at the same time: a chunk is processed
//! as soon as it is exported, and loaded as soon as it is processed, so the
//! load (usually the longest phase) starts within seconds instead of after
//! the whole export. Each phase still writes its own directory and journal
//! exactly as when run alone, so rerunning the same `copy` after a crash
//! continues where each phase stopped. The export reads at full speed
//! whatever the later phases do, and closes its source connections as soon
//! as it is done, however long the processing takes.

use std::path::PathBuf;
use std::sync::Arc;
use std::thread;

use anyhow::{anyhow, bail, Context, Result};
use serde::Serialize;

use crate::dump::{DumpDir, Growing};
use crate::export::{export, ExportOptions, ExportSummary};
use crate::load::{load, LoadOptions, LoadSummary};
use crate::process::{process, Format, ProcessOptions, ProcessSummary};

#[derive(Debug, Clone)]
pub struct CopyOptions {
    /// Its `dir` is replaced by `DIR/export`.
    pub export: ExportOptions,
    /// The command and format of a processing step, if any.
    pub exec: Option<(String, Format)>,
    /// Its `dir` is replaced by the dump to load.
    pub load: LoadOptions,
    pub dir: PathBuf,
}

#[derive(Debug, Clone, Serialize)]
pub struct CopySummary {
    pub export: ExportSummary,
    pub process: Option<ProcessSummary>,
    pub load: LoadSummary,
}

pub fn copy(opts: &CopyOptions) -> Result<CopySummary> {
    crate::dump::create_private_dir(&opts.dir)?;
    // The phases follow each other's dumps without the dumps' own locks
    // (each writer holds its own); this one keeps a second copy out of DIR.
    let _lock = DumpDir::new(&opts.dir).lock()?;

    let exported = Arc::new(Growing::default());
    let mut export_opts = opts.export.clone();
    export_opts.dir = opts.dir.join("export");
    export_opts.announce = Some(exported.clone());

    let process_opts = opts.exec.as_ref().map(|(exec, format)| {
        let mut p = ProcessOptions::new(&export_opts.dir, opts.dir.join("processed"), exec.clone());
        p.jobs = opts.export.jobs;
        p.format = *format;
        p.progress = opts.export.progress;
        p.follow = Some(exported.clone());
        p.announce = Some(Arc::new(Growing::default()));
        p
    });
    let to_load = process_opts
        .as_ref()
        .and_then(|p| p.announce.clone())
        .unwrap_or_else(|| exported.clone());
    let mut load_opts = opts.load.clone();
    load_opts.dir = process_opts
        .as_ref()
        .map_or_else(|| export_opts.dir.clone(), |p| p.out.clone());
    load_opts.follow = Some(to_load.clone());

    let (exported_result, processed_result, loaded_result) = thread::scope(|scope| {
        let exporting = scope.spawn(|| {
            let _finish = FinishOnDrop(&exported);
            export(&export_opts)
        });
        let processing = process_opts.as_ref().map(|p| {
            scope.spawn(move || {
                let _finish = p.announce.as_deref().map(FinishOnDrop);
                process(p)
            })
        });
        let loaded = load(&load_opts);
        if loaded.is_err() {
            // No use processing chunks that will not be loaded in this run.
            to_load.abandon();
        }
        (
            joined(exporting.join(), "export"),
            processing.map(|h| joined(h.join(), "process")),
            loaded,
        )
    });

    // The first phase that failed explains the others: a load that waited
    // for a chunk the export or the processing never wrote says only that.
    let exported = exported_result.context("exporting")?;
    let processed = match processed_result {
        None => None,
        Some(result) => {
            let summary = result.context("processing")?;
            if !summary.failed.is_empty() {
                let first = &summary.failed[0];
                bail!(
                    "{} chunk(s) failed processing (first: {} chunk {:06}: {}); the chunks before it were loaded meanwhile; fix and rerun the same command to process and load the rest",
                    summary.failed.len(),
                    first.table,
                    first.chunk,
                    first.reason
                );
            }
            Some(summary)
        }
    };
    let loaded = loaded_result.context("loading")?;
    Ok(CopySummary {
        export: exported,
        process: processed,
        load: loaded,
    })
}

/// Tells the readers a writer has stopped, however it stops (a panic
/// included: they would wait for it forever).
struct FinishOnDrop<'a>(&'a Growing);

impl Drop for FinishOnDrop<'_> {
    fn drop(&mut self) {
        self.0.finish();
    }
}

fn joined<T>(result: thread::Result<Result<T>>, phase: &str) -> Result<T> {
    result
        .map_err(|_| anyhow!("the {phase} thread panicked"))
        .and_then(|r| r)
}
