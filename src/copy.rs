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
    let phases = Phases::new(opts);
    phases.run().summary()
}

/// Each phase's options, chained: a phase follows the dump of the one
/// before it.
struct Phases {
    export: ExportOptions,
    /// Told of every exported chunk.
    exported: Arc<Growing>,
    process: Option<ProcessOptions>,
    load: LoadOptions,
    /// What the load follows: the processing's output, or the export.
    to_load: Arc<Growing>,
}

/// Each phase's result.
struct Results {
    exported: Result<ExportSummary>,
    processed: Option<Result<ProcessSummary>>,
    loaded: Result<LoadSummary>,
}

impl Phases {
    fn new(opts: &CopyOptions) -> Phases {
        let exported = Arc::new(Growing::default());
        let mut export = opts.export.clone();
        export.dir = opts.dir.join("export");
        export.announce = Some(exported.clone());

        let process = opts.exec.as_ref().map(|(exec, format)| {
            let mut p = ProcessOptions::new(&export.dir, opts.dir.join("processed"), exec.clone());
            p.jobs = opts.export.jobs;
            p.format = *format;
            p.progress = opts.export.progress;
            p.follow = Some(exported.clone());
            p.announce = Some(Arc::new(Growing::default()));
            p
        });
        let to_load = process
            .as_ref()
            .and_then(|p| p.announce.clone())
            .unwrap_or_else(|| exported.clone());
        let mut load = opts.load.clone();
        load.dir = process
            .as_ref()
            .map_or_else(|| export.dir.clone(), |p| p.out.clone());
        load.follow = Some(to_load.clone());
        Phases {
            export,
            exported,
            process,
            load,
            to_load,
        }
    }

    /// Runs the phases at the same time, the load on this thread.
    fn run(&self) -> Results {
        thread::scope(|scope| {
            let exporting = scope.spawn(|| {
                let _finish = FinishOnDrop(&self.exported);
                export(&self.export)
            });
            let processing = self.process.as_ref().map(|p| {
                scope.spawn(move || {
                    let _finish = p.announce.as_deref().map(FinishOnDrop);
                    process(p)
                })
            });
            let loaded = load(&self.load);
            if loaded.is_err() {
                // No use processing chunks that will not be loaded in this run.
                self.to_load.abandon();
            }
            Results {
                exported: joined(exporting.join(), "export"),
                processed: processing.map(|h| joined(h.join(), "process")),
                loaded,
            }
        })
    }
}

impl Results {
    /// The first phase that failed explains the others: a load that waited
    /// for a chunk the export or the processing never wrote says only that.
    fn summary(self) -> Result<CopySummary> {
        let exported = self.exported.context("exporting")?;
        let processed = match self.processed {
            None => None,
            Some(result) => Some(all_processed(result.context("processing")?)?),
        };
        let loaded = self.loaded.context("loading")?;
        Ok(CopySummary {
            export: exported,
            process: processed,
            load: loaded,
        })
    }
}

/// A processing that left failed chunks fails the copy.
fn all_processed(summary: ProcessSummary) -> Result<ProcessSummary> {
    if let Some(first) = summary.failed.first() {
        bail!(
            "{} chunk(s) failed processing (first: {} chunk {:06}: {}); the chunks before it were loaded meanwhile; fix and rerun the same command to process and load the rest",
            summary.failed.len(),
            first.table,
            first.chunk,
            first.reason
        );
    }
    Ok(summary)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::FailedChunk;

    fn summary(failed: Vec<FailedChunk>) -> ProcessSummary {
        ProcessSummary {
            dir: "export".into(),
            out: "processed".into(),
            tables: vec![],
            rows_in: 0,
            rows_out: 0,
            chunks_processed: 0,
            chunks_kept: 0,
            failed,
            complete: false,
            seconds: 0.0,
            peak_rss_bytes: None,
            runner: None,
            taken_over: 0,
            lost: vec![],
            map: None,
        }
    }

    #[test]
    fn a_processing_with_failed_chunks_fails_the_copy_naming_the_first() {
        assert!(all_processed(summary(vec![])).is_ok());
        let failed = |table: &str, chunk| FailedChunk {
            table: table.into(),
            chunk,
            reason: "the command exited with status 1".into(),
            stderr: None,
        };
        let e = all_processed(summary(vec![failed("shop.a", 3), failed("shop.b", 1)])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "2 chunk(s) failed processing (first: shop.a chunk 000003: the command exited with status 1); the chunks before it were loaded meanwhile; fix and rerun the same command to process and load the rest"
        );
    }
}
