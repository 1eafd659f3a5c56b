//! `myspool process` (not implemented yet)

use std::path::PathBuf;

use anyhow::Result;

use super::Output;

/// Transform every chunk of a dump with a command, offline (not implemented yet).
///
/// Runs CMD once per chunk with the chunk's CSV (header included) on stdin and
/// writes its stdout, validated, as the chunk of a new dump in --out. Opens no
/// database connection. Finished chunks are never redone.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Dump directory to read.
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
    /// Dump directory to write.
    #[arg(long, value_name = "DIR2")]
    pub out: PathBuf,
    /// Shell command run once per chunk: CSV in on stdin, CSV out on stdout.
    #[arg(long, value_name = "CMD")]
    pub exec: String,
    /// Chunks processed at once.
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub jobs: usize,
    #[command(flatten)]
    pub output: Output,
}

pub fn run(_args: Args) -> Result<()> {
    super::not_implemented("process")
}
