//! `myspool copy`

use std::path::PathBuf;

use anyhow::Result;

use myspool::copy::{copy, CopyOptions, CopySummary};
use myspool::export::{split_where_args, ExportOptions, Hooks};
use myspool::load::LoadOptions;
use myspool::process::Format;
use myspool::progress::human_duration;
use myspool::ConnSpec;

use super::export::CompressArg;
use super::load::ObjectArgs;
use super::process::FormatArg;
use super::{LoadArgs, Output, ReplicaLagArgs, RestartArg};

/// Export, optionally process, and load, as one resumable job.
///
/// The dump goes to DIR/export, the processed dump (with --exec) to
/// DIR/processed. The phases run at the same time: each chunk is processed as
/// soon as it is exported and loaded as soon as it is processed, so the
/// target is being loaded (and, with --truncate, emptied) from the first
/// processed chunks on; run export, process and load separately to leave it
/// untouched until everything is processed. Rerunning the same command after
/// a crash continues where it stopped: finished chunks are never exported,
/// processed or loaded twice. The source connections are closed as soon as
/// the export is done.
///
/// Example:
///   myspool copy --from mysql://app@db1/ --to mysql://app@db2/ --table 'shop.*' --dir work/ --autoinc drop
#[derive(clap::Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Source server URL.
    #[arg(long, value_name = "URL")]
    pub from: String,
    /// Target server URL. A Galera node: the load goes through every node of
    /// its cluster (found, see --no-discover, or each given with another --to).
    #[arg(long, value_name = "URL", required = true)]
    pub to: Vec<String>,
    /// Load only through the nodes given with --to (see load --no-discover).
    #[arg(long)]
    pub no_discover: bool,
    /// Table to copy, DB.TABLE or DB.* (repeatable).
    #[arg(long = "table", value_name = "DB.T", required = true)]
    pub tables: Vec<String>,
    /// Working directory (holds export/ and processed/).
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
    /// Shell command to transform each chunk on the way (see `myspool process`).
    #[arg(long, value_name = "CMD")]
    pub exec: Option<String>,
    /// Format the --exec command reads and writes.
    #[arg(long, value_enum, default_value_t = FormatArg::Csv)]
    pub format: FormatArg,
    /// Only rows matching this SQL condition; with 'DB.TABLE: condition', only that
    /// table's (repeatable; both hold where both are given).
    #[arg(long = "where", value_name = "SQL")]
    pub where_clause: Vec<String>,
    /// Rows per chunk [default: about 32 MiB of data per chunk].
    #[arg(long, value_name = "N")]
    pub chunk_rows: Option<u64>,
    /// Compression of the chunks in DIR (export/ and processed/ alike): zstd
    /// costs less CPU than gzip; none saves the CPU of compressing twice and
    /// decompressing twice, at the cost of about three times the disk space.
    #[arg(long, value_enum, default_value_t = CompressArg::Gzip)]
    pub compress: CompressArg,
    /// Compression level: gzip 0 (store) to 12; zstd 1 to 19 [default: 1].
    #[arg(long, value_name = "N")]
    pub level: Option<u32>,
    /// The export reads at most this many bytes of CSV a second (10M, 500K).
    #[arg(long, value_name = "BYTES", value_parser = myspool::export::parse_rate)]
    pub max_rate: Option<u64>,
    /// The export waits between chunks while this holds on the source ('Threads_running>40').
    #[arg(long, value_name = "VAR>N", value_parser = myspool::export::PauseWhen::parse)]
    pub pause_when: Option<myspool::export::PauseWhen>,
    #[command(flatten)]
    pub load: LoadArgs,
    #[command(flatten)]
    pub replica_lag: ReplicaLagArgs,
    #[command(flatten)]
    pub restart: RestartArg,
    /// (--no-objects also leaves them out of the export.)
    #[command(flatten)]
    pub objects: ObjectArgs,
    /// Also copy the triggers of the tables named one by one (DB.TABLE).
    #[arg(long, conflicts_with = "no_objects")]
    pub triggers: bool,
    #[command(flatten)]
    pub output: Output,
}

pub fn run(args: Args) -> Result<()> {
    let mut export = ExportOptions::new(ConnSpec::parse(&args.from)?, args.tables, &args.dir);
    (export.where_clause, export.table_where) = split_where_args(&args.where_clause)?;
    export.chunk_rows = args.chunk_rows;
    export.compress = args.compress.into();
    export.level = args.level.unwrap_or(export.compress.default_level());
    export.max_rate = args.max_rate;
    export.pause_when = args.pause_when;
    export.jobs = args.load.jobs;
    export.progress = args.output.mode();
    export.hooks = Hooks::from_env();
    export.objects = !args.objects.no_objects;
    export.triggers = args.triggers;
    let (target, nodes) = super::targets(&args.to)?;
    let mut load = LoadOptions::new(target, &args.dir);
    load.nodes = nodes;
    load.discover = !args.no_discover;
    args.load.apply(&mut load);
    args.objects.apply(&mut load)?;
    args.replica_lag.apply(&mut load)?;
    load.restart = args.restart.restart;
    load.progress = args.output.mode();
    load.chunk_delay = myspool::hooks::chunk_delay();
    let format: Format = args.format.into();
    let opts = CopyOptions {
        export,
        exec: args.exec.map(|e| (e, format)),
        load,
        dir: args.dir,
    };
    let s = copy(&opts)?;
    args.output.print(&s, print_summary)
}

fn print_summary(s: &CopySummary) {
    println!(
        "myspool copy: exported {} rows ({} chunks written, {} kept) in {}",
        s.export.rows,
        s.export.chunks_written,
        s.export.chunks_kept,
        human_duration(s.export.seconds)
    );
    if let Some(p) = &s.process {
        println!(
            "  processed {} chunks ({} kept), {} rows in, {} rows out, in {}",
            p.chunks_processed,
            p.chunks_kept,
            p.rows_in,
            p.rows_out,
            human_duration(p.seconds)
        );
    }
    println!(
        "  loaded {} rows into {} ({} chunks, {} already there, {} retries) in {}",
        s.load.rows,
        s.load.target,
        s.load.chunks_loaded,
        s.load.chunks_skipped,
        s.load.retries,
        human_duration(s.load.seconds)
    );
    for o in &s.load.objects {
        println!("  objects of {}: {} created", o.db, o.counts.describe());
    }
    if let Some(c) = &s.export.coordinates {
        println!("  source binlog coordinates: {}", c.describe());
    }
    super::load::print_swaps_and_pauses(&s.load);
}
