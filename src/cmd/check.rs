//! `myspool check`

use anyhow::Result;

use myspool::load::{check, CheckOptions, CheckReport};
use myspool::ConnSpec;

use super::{LoadArgs, Output};

/// Run the load preflight against a target without moving any data.
///
/// The same function the load runs before anything moves, with the load's
/// options: reports every problem a load with them would meet, in the
/// load's words: local_infile off; a privilege the options need missing
/// (SELECT, INSERT; CREATE for a missing table; DROP for --truncate; DELETE
/// for --on-duplicate replace; ALTER for --autoinc drop and --indexes defer,
/// INDEX for the latter (auto keeps the indexes of a user without them); SET sql_log_bin for --skip-binlog); the
/// AUTO_INCREMENT policy (with the server's innodb_autoinc_lock_mode, log_bin
/// and binlog_format). --into checks the tables in that database. Without a
/// dump it cannot compare columns, nor know the AUTO_INCREMENT column of a
/// table that does not exist yet; with --dir it reads the dump's schema of
/// each missing table against the target as the load would (collations
/// mapped with --collation-map or the closest equivalent, or refused;
/// MySQL 8 / MariaDB-only syntax). Exits 0 only if a load would be allowed,
/// 3 if it would be refused.
///
/// Example:
///   myspool check --to mysql://app@db2/ --table shop.orders --jobs 4 --truncate
#[derive(clap::Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Target server URL.
    #[arg(long, value_name = "URL")]
    pub to: String,
    /// Table to check, DB.TABLE or DB.* (repeatable).
    #[arg(long = "table", value_name = "DB.T", required_unless_present = "dir")]
    pub tables: Vec<String>,
    /// A dump to check too: its tables, and the schema.sql of each one the
    /// target lacks (collations it lacks, mapped or not; syntax it would
    /// refuse or ignore; sql_require_primary_key for keyless tables).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<std::path::PathBuf>,
    /// The options the load would use (each changes what it needs).
    #[command(flatten)]
    pub load: LoadArgs,
    #[command(flatten)]
    pub output: Output,
}

pub fn run(args: Args) -> Result<()> {
    let opts = CheckOptions {
        target: ConnSpec::parse(&args.to)?,
        tables: args.tables,
        requirements: args.load.requirements(),
        dir: args.dir,
    };
    let report = check(&opts)?;
    args.output.print(&report, print_report)?;
    if args.output.quiet && !args.output.json {
        // What --quiet keeps: the warnings and problems, as warnings and errors.
        for w in &report.warnings {
            eprintln!("myspool check: warning: {w}");
        }
        for p in &report.problems {
            eprintln!("myspool check: problem: {p}");
        }
    }
    if !report.allowed {
        let message = format!(
            "a load would be refused: {} problem(s)",
            report.problems.len()
        );
        return Err(myspool::errors::Refused(message).into());
    }
    Ok(())
}

/// The report for a reader: each table, then the notes and the problems.
fn print_report(report: &CheckReport) {
    println!("myspool check: {}", report.target);
    for t in &report.tables {
        println!(
            "  {}.{}: {}{}",
            t.db,
            t.table,
            if t.exists { "exists" } else { "missing" },
            t.autoinc_column
                .as_deref()
                .map(|c| format!(", AUTO_INCREMENT column {c}"))
                .unwrap_or_default()
        );
    }
    for n in &report.notes {
        println!("  note: {n}");
    }
    for m in &report.mappings {
        println!("  schema mapped: {m}");
    }
    for w in &report.warnings {
        println!("  warning: {w}");
    }
    for p in &report.problems {
        println!("  problem: {p}");
    }
}
