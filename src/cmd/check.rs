//! `myspool check` (not implemented yet)

use anyhow::Result;

use super::{AutoincPolicy, Output};

/// Run the load preflight against a target without moving data (not implemented yet).
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Target server URL.
    #[arg(long, value_name = "URL")]
    pub to: String,
    /// Table to check, DB.TABLE (repeatable).
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

pub fn run(_args: Args) -> Result<()> {
    super::not_implemented("check")
}
