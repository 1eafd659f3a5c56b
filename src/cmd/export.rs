//! `myspool export`

use std::path::PathBuf;

use anyhow::Result;
use clap::ValueEnum;

use myspool::dump::Compress;
use myspool::export::{split_where_args, Consistency, ExportOptions, ExportSummary, Hooks};
use myspool::progress::{human_bytes, human_duration};
use myspool::ConnSpec;

use super::Output;

/// Stream tables into a dump directory of compressed CSV chunks.
///
/// Each table is cut into chunks along its primary key (or a unique NOT NULL
/// key) and every chunk is read with one keyset query, in key order, on
/// connections used for nothing else. The server is drained at network speed
/// while CSV encoding and compression run on other threads; nothing is ever
/// buffered whole, so memory stays flat whatever the table size.
///
/// Rerunning the same command after a crash keeps the finished chunks
/// (checksums verified) and exports the rest. A rerun with other options
/// into a non-empty --dir is refused.
///
/// Example:
///   myspool export --from mysql://app@db1/shop --table shop.orders --table 'logs.*' --dir dump/
#[derive(clap::Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Source server: mysql://user[:password]@host[:port][/db][?socket=PATH]
    #[arg(long, value_name = "URL")]
    pub from: String,
    /// Table to export, DB.TABLE, or DB.* for every base table of DB (repeatable).
    #[arg(long = "table", value_name = "DB.T", required = true)]
    pub tables: Vec<String>,
    /// Dump directory (created if missing; must be empty or hold this same export).
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
    /// Only rows matching this SQL condition, e.g. "created_at >= '2024-01-01'"; with
    /// 'DB.TABLE: condition', only that table's (repeatable; both hold where both are given).
    #[arg(long = "where", value_name = "SQL")]
    pub where_clause: Vec<String>,
    /// Rows per chunk [default: about 32 MiB of data per chunk, at least 4 chunks per job, at least 10000 rows].
    #[arg(long, value_name = "N")]
    pub chunk_rows: Option<u64>,
    /// Reading connections (each with its own reader, encoder and writer thread).
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub jobs: usize,
    /// Chunk compression: gzip (*.csv.gz, read everywhere), zstd (*.csv.zst:
    /// smaller and faster; Python needs the zstandard package), or none.
    #[arg(long, value_enum, default_value_t = CompressArg::Gzip)]
    pub compress: CompressArg,
    /// Compression level: gzip 0 (store), 1 (fastest) to 12 (smallest;
    /// libdeflate's); zstd 1 (fastest) to 19 [default: 1].
    #[arg(long, value_name = "N")]
    pub level: Option<u32>,
    /// With --jobs > 1: auto synchronizes the connections' snapshots with a
    /// brief FLUSH TABLES … WITH READ LOCK when the user may, else warns and
    /// lets each take its own; locked insists; per-connection never locks.
    #[arg(long, value_enum, default_value_t = ConsistencyArg::Auto)]
    pub consistency: ConsistencyArg,
    /// Leave out the views, triggers, routines and events of the databases
    /// exported whole (DB.*), which are otherwise kept in DIR/DB/objects.sql.
    #[arg(long)]
    pub no_objects: bool,
    /// Also keep the triggers of the tables named one by one (DB.TABLE).
    #[arg(long, conflicts_with = "no_objects")]
    pub triggers: bool,
    /// At most this many bytes of CSV a second, all jobs together (10M,
    /// 500K; K, M, G are 1024-fold): to share the source with its users.
    #[arg(long, value_name = "BYTES", value_parser = myspool::export::parse_rate)]
    pub max_rate: Option<u64>,
    /// Wait between chunks while this holds on the source: a global status variable,
    /// > or >=, a number ('Threads_running>40'), read at most once a second.
    #[arg(long, value_name = "VAR>N", value_parser = myspool::export::PauseWhen::parse)]
    pub pause_when: Option<myspool::export::PauseWhen>,
    #[command(flatten)]
    pub output: Output,
}

#[derive(ValueEnum, Debug, Clone, Copy)]
pub enum CompressArg {
    Gzip,
    Zstd,
    None,
}

impl From<CompressArg> for Compress {
    fn from(arg: CompressArg) -> Compress {
        match arg {
            CompressArg::Gzip => Compress::Gzip,
            CompressArg::Zstd => Compress::Zstd,
            CompressArg::None => Compress::None,
        }
    }
}

#[derive(ValueEnum, Debug, Clone, Copy)]
pub enum ConsistencyArg {
    Auto,
    Locked,
    PerConnection,
}

pub fn run(args: Args) -> Result<()> {
    let output = args.output.clone();
    let summary = myspool::export(&options(args)?)?;
    output.print(&summary, print_summary)
}

fn options(args: Args) -> Result<ExportOptions> {
    let source = ConnSpec::parse(&args.from)?;
    let mut opts = ExportOptions::new(source, args.tables, args.dir);
    (opts.where_clause, opts.table_where) = split_where_args(&args.where_clause)?;
    opts.chunk_rows = args.chunk_rows;
    opts.jobs = args.jobs;
    opts.compress = args.compress.into();
    opts.level = args.level.unwrap_or(opts.compress.default_level());
    opts.max_rate = args.max_rate;
    opts.pause_when = args.pause_when;
    opts.consistency = match args.consistency {
        ConsistencyArg::Auto => Consistency::Auto,
        ConsistencyArg::Locked => Consistency::Locked,
        ConsistencyArg::PerConnection => Consistency::PerConnection,
    };
    opts.objects = !args.no_objects;
    opts.triggers = args.triggers;
    opts.progress = args.output.mode();
    opts.hooks = Hooks::from_env();
    Ok(opts)
}

fn print_summary(summary: &ExportSummary) {
    let width = summary
        .tables
        .iter()
        .map(|t| t.db.len() + t.table.len() + 1)
        .max()
        .unwrap_or(0);
    println!(
        "myspool export: {} in {}",
        summary.dir.display(),
        human_duration(summary.seconds)
    );
    for t in &summary.tables {
        let name = format!("{}.{}", t.db, t.table);
        println!(
            "  {name:width$}  {:>12} rows  {:>5} chunks  {:>10}  (CSV {})  key: {}",
            t.rows,
            t.chunks,
            human_bytes(t.bytes),
            human_bytes(t.csv_bytes),
            if t.key.is_empty() {
                "none".to_string()
            } else {
                t.key.join(", ")
            }
        );
    }
    let rate = if summary.seconds > 0.0 {
        summary.csv_bytes as f64 / summary.seconds
    } else {
        0.0
    };
    println!(
        "  {} rows in the dump; this run read {} rows, wrote {} chunks ({} kept from before, {} spilled); {} CSV/s",
        summary.rows,
        summary.rows_this_run,
        summary.chunks_written,
        summary.chunks_kept,
        summary.chunks_spilled,
        human_bytes(rate as u64)
    );
    if let Some(c) = &summary.consistency {
        println!("  consistency: {c}");
    }
    if let Some(c) = &summary.coordinates {
        println!("  binlog coordinates: {}", c.describe());
    }
    if summary.pauses > 0 {
        println!(
            "  paused {} time(s) for --pause-when, {}",
            summary.pauses,
            human_duration(summary.pause_seconds)
        );
    }
    if let Some(rss) = summary.peak_rss_bytes {
        println!("  peak memory: {}", human_bytes(rss));
    }
    if !summary.warnings.is_empty() {
        println!("  {} warning(s), shown above", summary.warnings.len());
    }
}
