//! `myspool verify`

use anyhow::Result;

use myspool::verify::{verify, ChunkDifference, VerifyOptions, VerifyReport};

use super::{DumpAndTarget, Output};

/// Compare a target server's tables with a dump, chunk by chunk.
///
/// For every chunk, the key range is read from the target, written in the
/// dump's CSV form and hashed; the chunk file is hashed the same way. Row
/// counts and hashes must agree. Works across two independent servers.
/// The target's columns are compared first: a column the target has and
/// the dump lacks (unless generated), a dump column the target lacks, or a
/// source column the export left out that the target has as an ordinary
/// column (or lacks) is a mismatch, as no chunk reads its values.
/// Prints the mismatches and the ranges that differ, and exits 4 if there
/// are any.
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
        // What --quiet keeps: the mismatches and differences, as errors.
        for m in &report.column_mismatches {
            eprintln!("myspool verify: mismatch: {}", m.sentence);
        }
        for d in &report.differences {
            eprintln!("myspool verify: {}", difference_line(d));
        }
    }
    if !report.matches {
        let message = failure(report.differences.len(), report.column_mismatches.len());
        return Err(myspool::errors::Differences(message).into());
    }
    Ok(())
}

/// The report for a reader: each table, the notes, then each column
/// mismatch and each chunk that differs.
fn print_report(report: &VerifyReport) {
    println!(
        "myspool verify: {} against {}",
        report.dir.display(),
        report.target
    );
    for t in &report.tables {
        let chunks = if !t.chunks_compared {
            "not compared (a column of the dump is not on the target)".to_string()
        } else if t.chunks_differing == 0 {
            "all match".to_string()
        } else {
            format!("{} differ", t.chunks_differing)
        };
        let columns = match t.columns_differing {
            0 => String::new(),
            n => format!("; {n} column mismatch(es)"),
        };
        println!(
            "  {}.{}: {} chunks, {chunks}{columns}",
            t.target_db, t.table, t.chunks
        );
    }
    for note in &report.notes {
        println!("  note: {note}");
    }
    for m in &report.column_mismatches {
        println!("  mismatch: {}", m.sentence);
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

/// The one line a failed verify ends with.
fn failure(chunks: usize, columns: usize) -> String {
    match (chunks, columns) {
        (c, 0) => format!("{c} chunk(s) differ between the dump and the target"),
        (0, m) => format!(
            "{m} column mismatch(es) between the dump and the target: their values were not compared"
        ),
        (c, m) => format!(
            "{c} chunk(s) differ and {m} column mismatch(es) between the dump and the target"
        ),
    }
}
