//! `myspool load` (not implemented yet)

use std::path::PathBuf;

use anyhow::Result;

use super::{LoadOptions, Output};

/// Load a dump into a server with LOAD DATA LOCAL INFILE (not implemented yet).
///
/// One statement per chunk, each in its own transaction, in key order,
/// keeping explicit primary-key values; every chunk's row count and warnings
/// are checked; a journal makes a rerun load each chunk exactly once.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Dump directory to load.
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
    /// Target server: mysql://user[:password]@host[:port][/db]
    #[arg(long, value_name = "URL")]
    pub to: String,
    #[command(flatten)]
    pub load: LoadOptions,
    #[command(flatten)]
    pub output: Output,
}

pub fn run(_args: Args) -> Result<()> {
    super::not_implemented("load")
}
