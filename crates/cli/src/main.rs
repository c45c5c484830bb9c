//! `melv`: the command-line face of the M-ELV system.
//!
//! The binary is thin: each subcommand parses its arguments, calls a library crate and formats the
//! result (a table for people, `--json` for programs). Errors are `anyhow` here and typed below;
//! every failure prints one clear message and exits non-zero, never a panic.

mod cmd_alerts;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "melv",
    version,
    about = "M-ELV home battery system (ATMOCE MS-7K-U): twin, gateway, tools"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List the alert codes of manual 6.3, or show one with its causes and solution steps.
    Alerts(cmd_alerts::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Alerts(args) => cmd_alerts::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("melv: error: {e:#}");
            ExitCode::from(2)
        }
    }
}
