//! `myspool man`

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::CommandFactory;

/// Print the manual page (roff), generated from these very options.
///
/// Without --dir, myspool(1) goes to stdout; with --dir, one page per
/// command is written there (myspool.1, myspool-export.1, …), ready for
/// a man/man1 directory.
///
/// Examples:
///   myspool man | man -l -
///   myspool man --dir ~/.local/share/man/man1
#[derive(clap::Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Write every command's page into this directory instead.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

pub fn run(args: Args) -> Result<()> {
    let cmd = super::Cli::command();
    match args.dir {
        Some(dir) => {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            clap_mangen::generate_to(cmd, &dir)
                .with_context(|| format!("writing the pages into {}", dir.display()))?;
        }
        None => {
            let mut page = Vec::new();
            clap_mangen::Man::new(cmd).render(&mut page)?;
            super::print_bytes(&page)?;
        }
    }
    Ok(())
}
