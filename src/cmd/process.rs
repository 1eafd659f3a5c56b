//! `myspool process`

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::ValueEnum;

use myspool::process::{
    Format, MapOptions, ProcessOptions, ProcessSummary, Shard, DEFAULT_LEASE, DEFAULT_MAX_REJECTS,
};
use myspool::progress::human_duration;

use super::Output;

/// Transform every chunk of a dump with a command, offline, into a new dump.
///
/// --exec CMD runs through `sh -c` once per chunk: the chunk's CSV (header
/// first) on stdin, the transformed CSV on stdout. The output may change
/// values, drop rows, and add, drop or rename columns (its header is the new
/// column list); it is checked (well-formed CSV, valid UTF-8, same field
/// count on every row, same header in every chunk) before the chunk is
/// committed to --out. No database connection is opened.
///
/// A chunk whose command exits non-zero, is killed, or writes invalid output
/// leaves no output chunk; its stderr is kept in --out as NNNNNN.stderr and
/// the next run retries it. Finished chunks are never redone.
///
/// The command sees MYSPOOL_DB, MYSPOOL_TABLE, MYSPOOL_CHUNK,
/// MYSPOOL_CHUNK_FILE, MYSPOOL_KEY_COLUMNS, MYSPOOL_KEY_LOWER and
/// MYSPOOL_KEY_UPPER (the chunk's key range as SQL literals; empty = open).
///
/// Jobs that run for days: --map CMD (row mode). CMD starts once per worker
/// (--jobs N workers share the rows of every chunk, however the dump was
/// chunked) and stays up. It reads one JSON object per line (column ->
/// string, null for NULL, binary columns as hex) and writes exactly one line
/// per row, in order, flushing each: the output row (an object), null to
/// drop the row, an array of objects to emit several, or
/// {"myspool_reject": "why"} to reject it. Answers are checkpointed at least
/// once a second: after a crash or kill -9 the same command goes on at each
/// chunk's first unanswered row (a crash costs the rows in flight and at most
/// about a second of answers), and the output is what an uninterrupted run
/// writes. A rejected row goes to --out/<db>/<table>/rejects.jsonl (chunk,
/// row, key, reason, input row) and the job goes on; a worker that dies is
/// restarted and its rows sent again, and a row on which 3 workers died is
/// rejected. Past --max-rejects the job stops, naming the rejects file.
/// A worker's stderr goes to --out/worker-NN.stderr (cut at 1 MiB); it sees
/// MYSPOOL_WORKER (1..N) and PYTHONUNBUFFERED=1.
///
/// Several machines: with --exec, any number of runs of the same command on
/// one dump and one --out (on one machine, or many sharing them over NFS,
/// e.g. the tasks of a Slurm job array) share the chunks with no
/// coordinator. Each claims a chunk with a lease it renews every
/// --lease/3 seconds; a runner that dies is taken over once its lease
/// expires (its chunk is redone). A runner with nothing left to claim waits
/// for the others, and the last one completes the output. `myspool status`
/// on the input shows which runner holds which chunk.
///
/// Examples:
///   myspool process --dir dump/ --out dump2/ --exec 'python3 anonymise.py' --jobs 4
///   myspool process --dir dump/ --out dump2/ --map 'python3 enrich.py' --jobs 16
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
    #[arg(
        long,
        value_name = "CMD",
        required_unless_present = "map",
        conflicts_with = "map"
    )]
    pub exec: Option<String>,
    /// Shell command run once per worker: one JSON row per line in, one
    /// answer line per row out (row mode, see above).
    #[arg(long, value_name = "CMD")]
    pub map: Option<String>,
    /// Chunks processed at once (with --map: workers).
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub jobs: usize,
    /// csv: the dump's own CSV; jsonl: one JSON object per row, null for NULL,
    /// binary columns as hex strings, in both directions (--map is always jsonl).
    #[arg(long, value_enum, default_value_t = FormatArg::Csv, conflicts_with = "map")]
    pub format: FormatArg,
    /// With --map: the job stops once more rows than this are rejected,
    /// earlier runs included (a command that rejects everything is broken,
    /// and should not write a rejects file as big as the table).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_REJECTS, requires = "map")]
    pub max_rejects: u64,
    /// With --exec: seconds a runner's claim on a chunk lives without being
    /// renewed; another runner takes a chunk over once it has seen its
    /// heartbeat unchanged that long. Keep it well above the file system's
    /// attribute caching (NFS: actimeo) and any pause a machine may take.
    #[arg(long, value_name = "SECONDS", default_value_t = DEFAULT_LEASE.as_secs(), conflicts_with = "map")]
    pub lease: u64,
    /// With --exec: this runner starts with every Nth chunk from the Kth
    /// (1-based), then helps with the others; e.g. a job array's task index.
    #[arg(long, value_name = "K/N", conflicts_with = "map")]
    pub shard: Option<Shard>,
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
    let (cmd, map) = match (args.exec, args.map) {
        (Some(exec), None) => (exec, None),
        (None, Some(map)) => (
            map,
            Some(MapOptions {
                max_rejects: args.max_rejects,
                ..MapOptions::default()
            }),
        ),
        _ => bail!("give one of --exec and --map"),
    };
    let mut opts = ProcessOptions::new(args.dir, args.out, cmd);
    opts.map = map;
    opts.jobs = args.jobs;
    opts.format = args.format.into();
    opts.progress = args.output.mode();
    opts.lease = std::time::Duration::from_secs(args.lease);
    opts.shard = args.shard;
    let summary = myspool::process(&opts)?;
    args.output.print(&summary, print_summary)?;
    if let (Some(first), Some(_)) = (summary.failed.first(), &summary.map) {
        // Row mode stops at its first failure: that is the error.
        bail!("{}; rerun the same command to go on", first.reason);
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
    if let Some(runner) = &summary.runner {
        println!(
            "  runner {runner}: {} chunk(s) taken over from runners that stopped, {} claim(s) lost",
            summary.taken_over,
            summary.lost.len()
        );
    }
    for l in &summary.lost {
        println!(
            "  lost the claim on chunk {:06} of {}: another runner took it over (this runner stalled past --lease); its work here was dropped",
            l.chunk, l.table
        );
    }
    if let Some(m) = &summary.map {
        print_map_summary(m);
    }
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

fn print_map_summary(m: &myspool::process::MapSummary) {
    println!(
        "  rows: {} answered ({} by earlier runs), {} emitted, {} dropped, {} rejected ({} in all), {} sent again after a worker died; {} workers, {} started",
        m.rows_answered,
        m.rows_from_earlier_runs,
        m.rows_emitted,
        m.rows_dropped,
        m.rows_rejected,
        m.rejects_total,
        m.rows_redone,
        m.workers,
        m.worker_starts
    );
    for r in &m.rejects_files {
        println!("  rejects: {}", r.display());
    }
    for e in &m.worker_stderr {
        println!("  worker stderr: {}", e.display());
    }
}
