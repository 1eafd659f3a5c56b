//! `myspool verify`

use anyhow::Result;

use myspool::verify::{verify, ChunkDifference, VerifyOptions, VerifyReport};

use super::{DumpAndTarget, Output};

/// Compare a target server's tables with a dump, chunk by chunk.
///
/// For every chunk, the key range is read from the target, written in the
/// dump's CSV form and hashed; the chunk file is hashed the same way. Row
/// counts and hashes must agree. Works across two independent servers.
/// Prints the ranges that differ and exits 4 if there are any.
///
/// Example:
///   myspool verify --dir dump/ --to mysql://app@db2/
#[derive(clap::Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct Args {
    #[command(flatten)]
    pub dump_and_target: DumpAndTarget,
    /// The database the tables were loaded into, if not their own (load --into).
    #[arg(long, value_name = "DB")]
    pub into: Option<String>,
    #[command(flatten)]
    pub output: Output,
}

pub fn run(args: Args) -> Result<()> {
    let opts = VerifyOptions {
        target: args.dump_and_target.target()?,
        dir: args.dump_and_target.dir,
        into: args.into,
    };
    let report = verify(&opts)?;
    args.output.print(&report, print_report)?;
    if args.output.quiet && !args.output.json {
        // What --quiet keeps: the differences, as errors.
        for d in &report.differences {
            eprintln!("myspool verify: {}", difference_line(d));
        }
    }
    if !report.matches {
        let message = format!(
            "{} chunk(s) differ between the dump and the target",
            report.differences.len()
        );
        return Err(myspool::errors::Differences(message).into());
    }
    Ok(())
}

/// The report for a reader: each table, then each chunk that differs.
fn print_report(report: &VerifyReport) {
    println!(
        "myspool verify: {} against {}",
        report.dir.display(),
        report.target
    );
    for t in &report.tables {
        println!(
            "  {}.{}: {} chunks, {}",
            t.target_db,
            t.table,
            t.chunks,
            if t.chunks_differing == 0 {
                "all match".to_string()
            } else {
                format!("{} differ", t.chunks_differing)
            }
        );
    }
    for d in &report.differences {
        println!("  {}", difference_line(d));
    }
}

/// `differs: shop.t chunk 000003, key range (10) .. (20): …`
fn difference_line(d: &ChunkDifference) -> String {
    let bound = |b: &Option<Vec<String>>, open: &str| {
        b.as_ref()
            .map_or(open.to_string(), |v| format!("({})", v.join(", ")))
    };
    format!(
        "differs: {} chunk {:06}, key range {} .. {}: {} rows in the dump, {} on the target{}",
        d.table,
        d.chunk,
        bound(&d.lower, "start"),
        bound(&d.upper, "end"),
        d.dump_rows,
        d.target_rows,
        if d.dump_rows == d.target_rows {
            " (same count, different values)"
        } else {
            ""
        }
    )
}
