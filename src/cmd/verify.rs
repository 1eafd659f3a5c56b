//! `myspool verify` (not implemented yet)

use std::path::PathBuf;

use anyhow::Result;

use super::Output;

/// Compare a target server's tables with a dump (not implemented yet).
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Dump directory.
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
    /// Target server URL.
    #[arg(long, value_name = "URL")]
    pub to: String,
    #[command(flatten)]
    pub output: Output,
}

pub fn run(_args: Args) -> Result<()> {
    super::not_implemented("verify")
}
