//! `myspool process`

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::ValueEnum;

use myspool::process::{Format, ProcessOptions, ProcessSummary};
use myspool::progress::human_duration;

use super::Output;

/// Transform every chunk of a dump with a command, offline, into a new dump.
///
/// CMD runs through `sh -c` once per chunk: the chunk's CSV (header first) on
/// stdin, the transformed CSV on stdout. The output may change values, drop
/// rows, and add, drop or rename columns (its header is the new column list);
/// it is checked (well-formed CSV, valid UTF-8, same field count on every row,
/// same header in every chunk) before the chunk is committed to --out.
/// No database connection is opened.
///
/// A chunk whose command exits non-zero, is killed, or writes invalid output
/// leaves no output chunk; its stderr is kept in --out as NNNNNN.stderr and
/// the next run retries it. Finished chunks are never redone, so a job that
/// runs for days can be killed and rerun at any time.
///
/// The command sees MYSPOOL_DB, MYSPOOL_TABLE, MYSPOOL_CHUNK,
/// MYSPOOL_CHUNK_FILE, MYSPOOL_KEY_COLUMNS, MYSPOOL_KEY_LOWER and
/// MYSPOOL_KEY_UPPER (the chunk's key range as SQL literals; empty = open).
///
/// Example:
///   myspool process --dir dump/ --out dump2/ --exec 'python3 anonymise.py' --jobs 4
#[derive(clap::Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Dump directory to read.
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
    /// Dump directory to write (new, or the same processing to resume).
    #[arg(long, value_name = "DIR2")]
    pub out: PathBuf,
    /// Shell command run once per chunk: CSV in on stdin, CSV out on stdout.
    #[arg(long, value_name = "CMD")]
    pub exec: String,
    /// Chunks processed at once.
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub jobs: usize,
    /// csv: the dump's own CSV; jsonl: one JSON object per row, null for NULL,
    /// binary columns as hex strings, in both directions.
    #[arg(long, value_enum, default_value_t = FormatArg::Csv)]
    pub format: FormatArg,
    #[command(flatten)]
    pub output: Output,
}

#[derive(ValueEnum, Debug, Clone, Copy)]
pub enum FormatArg {
    Csv,
    Jsonl,
}

impl From<FormatArg> for Format {
    fn from(f: FormatArg) -> Format {
        match f {
            FormatArg::Csv => Format::Csv,
            FormatArg::Jsonl => Format::Jsonl,
        }
    }
}

pub fn run(args: Args) -> Result<()> {
    let mut opts = ProcessOptions::new(args.dir, args.out, args.exec);
    opts.jobs = args.jobs;
    opts.format = args.format.into();
    opts.progress = args.output.progress.into();
    let summary = myspool::process(&opts)?;
    if args.output.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print_summary(&summary);
    }
    if !summary.failed.is_empty() {
        bail!(
            "{} chunk(s) failed; fix the command or the data and rerun the same command to retry them",
            summary.failed.len()
        );
    }
    Ok(())
}

fn print_summary(summary: &ProcessSummary) {
    println!(
        "myspool process: {} -> {} in {}",
        summary.dir.display(),
        summary.out.display(),
        human_duration(summary.seconds)
    );
    for t in &summary.tables {
        println!(
            "  {}.{}: {} of {} chunks done",
            t.db, t.table, t.done, t.chunks
        );
    }
    println!(
        "  this run: {} chunks, {} rows in, {} rows out; {} chunks kept from before",
        summary.chunks_processed, summary.rows_in, summary.rows_out, summary.chunks_kept
    );
    for f in &summary.failed {
        println!(
            "  failed: {} chunk {:06}: {}{}",
            f.table,
            f.chunk,
            f.reason,
            f.stderr
                .as_ref()
                .map(|p| format!(" (stderr in {})", p.display()))
                .unwrap_or_default()
        );
    }
}
