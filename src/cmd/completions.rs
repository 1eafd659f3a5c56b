//! `myspool completions`

use anyhow::Result;
use clap::CommandFactory;
use clap_complete::Shell;

/// Print a shell completion script, generated from these very options.
///
/// Examples:
///   myspool completions bash > ~/.local/share/bash-completion/completions/myspool
///   myspool completions zsh > ~/.zfunc/_myspool     (with fpath+=~/.zfunc before compinit)
///   myspool completions fish > ~/.config/fish/completions/myspool.fish
#[derive(clap::Args, Debug)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: Shell,
}

pub fn run(args: Args) -> Result<()> {
    let mut cmd = super::Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "myspool", &mut script);
    super::print_bytes(&script)
}
