//! `melv-campaign`: the fault campaign as a small binary of its own (the same as `melv campaign`),
//! so that CI can build it in release without the service stack.

use clap::Parser;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "melv-campaign",
    version,
    about = "Seeded fault campaign of the MS-7K-U twin (the same as `melv campaign`)"
)]
struct Standalone {
    #[command(flatten)]
    args: melv_campaign::cli::Args,
}

fn main() -> ExitCode {
    melv_campaign::cli::main(Standalone::parse().args)
}
