//! `strata`: the command-line tool over Strata's stacks.
//!
//! One module per command under `cmd/`; `main` only parses the command line and
//! dispatches.

use clap::{Parser, Subcommand};
use std::process::ExitCode;

mod cmd;

#[derive(Parser)]
#[command(name = "strata", version, about = "Group communication stacks: check, run, measure")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check stack descriptors: print each stack bottom to top, or every problem found.
    Check(cmd::check::Args),
    /// Run a group in the deterministic simulator and print a JSON summary.
    Sim(cmd::sim::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Check(args) => cmd::check::run(args),
        Command::Sim(args) => cmd::sim::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("strata: {e:#}");
            ExitCode::FAILURE
        }
    }
}
