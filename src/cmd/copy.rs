//! `myspool copy` (not implemented yet)

use std::path::PathBuf;

use anyhow::Result;

use super::{LoadArgs, Output};

/// Export, optionally process, then load, as one resumable job (not implemented yet).
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Source server URL.
    #[arg(long, value_name = "URL")]
    pub from: String,
    /// Target server URL.
    #[arg(long, value_name = "URL")]
    pub to: String,
    /// Table to copy, DB.TABLE or DB.* (repeatable).
    #[arg(long = "table", value_name = "DB.T", required = true)]
    pub tables: Vec<String>,
    /// Dump directory used on the way.
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
    /// Shell command to transform each chunk on the way (see `myspool process`).
    #[arg(long, value_name = "CMD")]
    pub exec: Option<String>,
    #[command(flatten)]
    pub load: LoadArgs,
    #[command(flatten)]
    pub output: Output,
}

pub fn run(_args: Args) -> Result<()> {
    super::not_implemented("copy")
}
