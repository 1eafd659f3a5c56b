//! Copy: export, optionally process, then load, as one resumable job.
//!
//! `DIR/export` holds the dump and `DIR/processed` the processed one (with
//! `--exec`). Each phase resumes on its own, so rerunning the same `copy`
//! after a crash continues where it stopped. The source connections are
//! closed when the export returns, before any processing starts.

use std::path::PathBuf;

use anyhow::{bail, Result};
use serde::Serialize;

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
    let mut export_opts = opts.export.clone();
    export_opts.dir = opts.dir.join("export");
    let exported = export(&export_opts)?;

    let mut to_load = export_opts.dir.clone();
    let processed = match &opts.exec {
        None => None,
        Some((exec, format)) => {
            let mut p =
                ProcessOptions::new(&export_opts.dir, opts.dir.join("processed"), exec.clone());
            p.jobs = opts.export.jobs;
            p.format = *format;
            p.progress = opts.export.progress;
            let summary = process(&p)?;
            if !summary.failed.is_empty() {
                let first = &summary.failed[0];
                bail!(
                    "{} chunk(s) failed processing (first: {} chunk {:06}: {}); nothing was loaded; fix and rerun the same command",
                    summary.failed.len(),
                    first.table,
                    first.chunk,
                    first.reason
                );
            }
            to_load = p.out;
            Some(summary)
        }
    };

    let mut load_opts = opts.load.clone();
    load_opts.dir = to_load;
    let loaded = load(&load_opts)?;
    Ok(CopySummary {
        export: exported,
        process: processed,
        load: loaded,
    })
}
