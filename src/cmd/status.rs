//! `myspool status`

use std::path::PathBuf;

use anyhow::Result;

use super::Output;

/// Show what is done in a dump directory, and what would continue it.
///
/// For each table: chunks exported, processed (per output directory of
/// `myspool process`, with failed chunks), loaded (per target, from the load
/// journals), and the commands that would finish what is unfinished.
/// Reads files only; no server is contacted: a load shown complete is what
/// its journal recorded, not a look at the target (the next load of the
/// dump checks the target, and refuses if rows went missing since).
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Dump directory.
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
    #[command(flatten)]
    pub output: Output,
}

pub fn run(args: Args) -> Result<()> {
    let s = myspool::status::status(&args.dir)?;
    if args.output.json {
        println!("{}", serde_json::to_string_pretty(&s)?);
        return Ok(());
    }
    if args.output.quiet {
        // Its report is its summary.
        return Ok(());
    }
    println!(
        "myspool status: {}{}",
        s.dir.display(),
        s.processed_from
            .as_deref()
            .map(|f| format!(" (processed from {f})"))
            .unwrap_or_default()
    );
    if let Some(c) = &s.coordinates {
        println!("  binlog coordinates: {}", c.describe());
    }
    for o in &s.objects {
        println!("  objects of {}: {}", o.db, o.counts.describe());
    }
    if let Some(w) = &s.where_clause {
        println!("  rows where: {w}");
    }
    for f in &s.table_where {
        println!("  rows of {}.{} where: {}", f.db, f.table, f.condition);
    }
    for t in &s.tables {
        println!(
            "  {}.{}: {} of {} chunks {}, {} rows",
            t.db,
            t.table,
            t.exported,
            t.chunks,
            if s.processed_from.is_some() {
                "processed"
            } else {
                "exported"
            },
            t.rows
        );
        print_partial("    ", &t.partial);
        print_held("    ", &t.held);
        for p in &t.processed {
            println!(
                "    processed into {} ({}): {} of {} chunks{}",
                p.out,
                p.exec,
                p.done,
                t.chunks,
                if p.failed.is_empty() {
                    String::new()
                } else {
                    format!(", failed: {:?} (stderr kept as NNNNNN.stderr)", p.failed)
                }
            );
            print_partial("      ", &p.partial);
            print_held("      ", &p.held);
        }
        for l in &t.loaded {
            println!(
                "    loaded into {} database {}: {} of {} chunks{}{}{}",
                l.target,
                l.database,
                l.committed,
                t.chunks,
                if l.complete {
                    ", complete per its journal (the target is not checked)"
                } else {
                    ""
                },
                if l.in_doubt.is_empty() {
                    String::new()
                } else {
                    format!(", in doubt: {:?}", l.in_doubt)
                },
                if l.autoinc_removed || l.indexes_dropped {
                    ", AUTO_INCREMENT or indexes still removed"
                } else {
                    ""
                }
            );
        }
    }
    if s.next.is_empty() {
        println!("  nothing left to do");
    } else {
        println!("  to continue:");
        for n in &s.next {
            println!("    {n}");
        }
    }
    Ok(())
}

/// The chunks `process --map` left part done.
fn print_partial(indent: &str, partial: &[myspool::status::PartialChunk]) {
    for p in partial {
        println!(
            "{indent}chunk {:06} in progress: {} rows answered",
            p.chunk, p.rows_answered
        );
    }
}

/// The chunks cooperating runners hold now.
fn print_held(indent: &str, held: &[myspool::status::HeldUnit]) {
    for h in held {
        println!(
            "{indent}chunk {:06} held by runner {} pid {} since {} (claim {}; last heartbeat {}, by its clock)",
            h.chunk,
            h.host,
            h.pid,
            h.since,
            h.generation,
            h.last_beat.as_deref().unwrap_or("none yet")
        );
    }
}
