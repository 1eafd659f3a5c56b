//! `myspool load`

use std::path::PathBuf;

use anyhow::Result;

use myspool::load::{DefinerPolicy, LoadOptions, LoadSummary, TableLoadSummary};
use myspool::progress::human_duration;

use super::{LoadArgs, Output, ReplicaLagArgs, RestartArg};

/// Load a dump into a server with LOAD DATA LOCAL INFILE.
///
/// One statement per chunk, each in its own transaction, in key order,
/// keeping explicit primary-key values. LOAD DATA LOCAL turns duplicate keys
/// and bad values into warnings, so every chunk's row count and warnings are
/// checked, and any mismatch rolls the chunk back and fails the load.
/// A missing target table is created from the dump's schema.sql.
///
/// A journal in the dump directory makes a rerun (after a crash, kill -9 or
/// a dead server) load each chunk exactly once and put back AUTO_INCREMENT
/// and deferred indexes. A rerun first checks that each target table is
/// still the one the journal loaded into (not dropped, truncated or
/// re-created, no rows missing) and otherwise refuses, naming --restart.
///
/// The target must allow LOAD DATA LOCAL INFILE (local_infile=ON; MySQL 8
/// ships with it OFF).
///
/// Example:
///   myspool load --dir dump/ --to mysql://app@db2/ --jobs 4 --autoinc drop
#[derive(clap::Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Dump directory to load.
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
    /// Target server: mysql://user[:password]@host[:port][/db]. Given once
    /// per node of a Galera cluster, the jobs load through every node.
    #[arg(long, value_name = "URL", required = true)]
    pub to: Vec<String>,
    #[command(flatten)]
    pub load: LoadArgs,
    #[command(flatten)]
    pub replica_lag: ReplicaLagArgs,
    #[command(flatten)]
    pub restart: RestartArg,
    #[command(flatten)]
    pub objects: ObjectArgs,
    /// Only undo what an interrupted load left changed (AUTO_INCREMENT
    /// removed by --autoinc drop, indexes dropped by --indexes); load nothing.
    #[arg(long)]
    pub repair: bool,
    #[command(flatten)]
    pub output: Output,
}

/// What a load does with the dump's views, triggers, routines and events
/// (`load` and `copy`).
#[derive(clap::Args, Debug, Clone)]
pub struct ObjectArgs {
    /// DEFINER of the views, triggers, routines and events created: keep
    /// (the target must have each account; checked before anything is
    /// created), strip (the loading user becomes the definer), or
    /// 'USER'@'HOST' for all of them.
    #[arg(long, value_name = "keep|strip|'USER'@'HOST'", default_value = "keep")]
    pub definer: String,
    /// Do not create the dump's views, triggers, routines and events.
    #[arg(long)]
    pub no_objects: bool,
}

impl ObjectArgs {
    pub fn apply(&self, opts: &mut LoadOptions) -> Result<()> {
        opts.definer = DefinerPolicy::parse(&self.definer)?;
        opts.objects = !self.no_objects;
        Ok(())
    }
}

pub fn run(args: Args) -> Result<()> {
    let (target, nodes) = super::targets(&args.to)?;
    let mut opts = LoadOptions::new(target, args.dir);
    opts.nodes = nodes;
    args.load.apply(&mut opts);
    args.objects.apply(&mut opts)?;
    args.replica_lag.apply(&mut opts)?;
    opts.restart = args.restart.restart;
    opts.repair = args.repair;
    opts.progress = args.output.mode();
    opts.chunk_delay = myspool::hooks::chunk_delay();
    let summary = myspool::load(&opts)?;
    args.output.print(&summary, print_summary)
}

/// The summary for a reader: one line per table, then the totals.
fn print_summary(summary: &LoadSummary) {
    println!(
        "myspool load: {} into {} in {}",
        summary.dir.display(),
        summary.target,
        human_duration(summary.seconds)
    );
    for t in &summary.tables {
        println!("  {}", table_line(t));
    }
    for o in &summary.objects {
        println!(
            "  objects of {}{}: {} created",
            o.db,
            if o.target_db != o.db {
                format!(" into {}", o.target_db)
            } else {
                String::new()
            },
            o.counts.describe()
        );
    }
    println!(
        "  {} rows, {} chunks loaded, {} skipped, {} retries",
        summary.rows, summary.chunks_loaded, summary.chunks_skipped, summary.retries
    );
    print_swaps_and_pauses(summary);
    if let Some(g) = &summary.galera {
        println!("  {}", g.describe());
    }
    if let Some(rss) = summary.peak_rss_bytes {
        println!("  peak memory: {}", myspool::progress::human_bytes(rss));
    }
}

/// One table's line: what this run did to it, or that an earlier run had
/// loaded it all (and the target was found still holding it).
fn table_line(t: &TableLoadSummary) -> String {
    let name = if t.target_db != t.db {
        format!("{}.{} into {}", t.db, t.table, t.target_db)
    } else {
        format!("{}.{}", t.db, t.table)
    };
    if let Some(before) = &t.loaded_before {
        return format!("{name}  {}, nothing to do", before.describe());
    }
    format!(
        "{name}  {} rows loaded, {} of {} chunks loaded ({} already there){}{}{}{}",
        t.rows,
        t.chunks_loaded,
        t.chunks,
        t.chunks_skipped,
        if t.duplicates > 0 {
            format!(", {} duplicate keys", t.duplicates)
        } else {
            String::new()
        },
        if t.created { ", table created" } else { "" },
        t.autoinc
            .as_deref()
            .map(|a| format!(", AUTO_INCREMENT: {a}"))
            .unwrap_or_default(),
        t.indexes.as_ref().map(indexes_note).unwrap_or_default(),
    )
}

/// `, indexes built after the rows: a, b; kept: c (why)`.
fn indexes_note(r: &myspool::load::IndexReport) -> String {
    let mut note = String::new();
    if !r.deferred.is_empty() {
        note.push_str(&format!(
            ", indexes built after the rows: {}",
            r.deferred.join(", ")
        ));
    }
    if !r.kept.is_empty() {
        note.push_str(&format!(", indexes kept: {}", r.kept.join(", ")));
    }
    note
}

/// `--swap`'s tables and `--max-replica-lag`'s pauses, if any (`load` and
/// `copy` alike).
pub(super) fn print_swaps_and_pauses(summary: &LoadSummary) {
    for s in &summary.swapped {
        println!(
            "  {}.{} swapped in{}{}",
            s.db,
            s.table,
            if s.now { "" } else { " by an earlier run" },
            s.kept_as
                .as_deref()
                .map(|k| format!(", the old table kept as {k}"))
                .unwrap_or_default()
        );
    }
    if summary.replica_pauses > 0 {
        println!(
            "  paused {} time(s) for lagging replicas, {} in all",
            summary.replica_pauses,
            human_duration(summary.replica_pause_seconds)
        );
    }
}
