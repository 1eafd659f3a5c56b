//! The `myspool` command line: a thin layer over the library. Each
//! subcommand's options and usage text live in `src/cmd/<name>.rs`.

mod cmd;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cmd::Cli::parse();
    match cmd::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // `{:#}` prints the whole chain of context on one line:
            // "exporting chunk 000042 of shop.orders: writing …: No space left on device".
            eprintln!("myspool: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
