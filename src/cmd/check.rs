//! `myspool check`

use anyhow::{bail, Result};

use myspool::load::{check, CheckOptions, CheckReport};
use myspool::ConnSpec;

use super::{AutoincPolicy, Output};

/// Run the load preflight against a target without moving any data.
///
/// Reports every problem a load would meet: local_infile off, missing
/// privileges, the AUTO_INCREMENT policy (with the server's
/// innodb_autoinc_lock_mode, log_bin and binlog_format), max_allowed_packet,
/// the server version. Exits 0 only if a load would be allowed.
///
/// Example:
///   myspool check --to mysql://app@db2/ --table shop.orders --jobs 4
#[derive(clap::Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Target server URL.
    #[arg(long, value_name = "URL")]
    pub to: String,
    /// Table to check, DB.TABLE or DB.* (repeatable).
    #[arg(long = "table", value_name = "DB.T", required = true)]
    pub tables: Vec<String>,
    /// Jobs the load would use.
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub jobs: usize,
    /// AUTO_INCREMENT policy the load would use.
    #[arg(long, value_enum, default_value_t = AutoincPolicy::Check)]
    pub autoinc: AutoincPolicy,
    #[command(flatten)]
    pub output: Output,
}

pub fn run(args: Args) -> Result<()> {
    let opts = CheckOptions {
        target: ConnSpec::parse(&args.to)?,
        tables: args.tables,
        jobs: args.jobs,
        autoinc: args.autoinc.into(),
    };
    let report = check(&opts)?;
    if args.output.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    if !report.allowed {
        bail!(
            "a load would be refused: {} problem(s)",
            report.problems.len()
        );
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
    for p in &report.problems {
        println!("  problem: {p}");
    }
}
