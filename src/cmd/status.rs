//! `myspool status` (not implemented yet)

use std::path::PathBuf;

use anyhow::Result;

use super::Output;

/// Show what is done in a dump directory: chunks exported, processed, loaded (not implemented yet).
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Dump directory.
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
    #[command(flatten)]
    pub output: Output,
}

pub fn run(_args: Args) -> Result<()> {
    super::not_implemented("status")
}
