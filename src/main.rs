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
            // The whole chain of context on one line, server errors as
            // sentences: "loading chunk 000042 of shop.orders: server error 1062 …".
            eprintln!("myspool: error: {}", myspool::errors::sentence(&e));
            // 3: refused before anything was touched; 4: verify found
            // differences; 1: any other failure (README "Unattended runs").
            ExitCode::from(myspool::errors::exit_code(&e))
        }
    }
}
