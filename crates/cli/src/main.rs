//! `melv`: the command-line face of the M-ELV system.
//!
//! The binary is thin: each subcommand parses its arguments, calls a library crate and formats the
//! result (a table for people, `--json` for programs). Errors are `anyhow` here and typed below;
//! every failure prints one clear message and exits non-zero, never a panic.

mod cmd_alerts;
mod cmd_can;
mod cmd_cycle_test;
mod cmd_demo;
mod cmd_gateway;
mod cmd_ingest;
mod cmd_plan;
mod cmd_serve;
mod cmd_simulate;
mod cmd_storage;
mod demo;
mod input;
mod timeseries_out;

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
    /// Seeded fault campaign: thousands of sites with faults, safety invariants on the twins' truth (issue 13).
    Campaign(melv_campaign::cli::Args),
    /// List the alert codes of manual 6.3, or show one with its causes and solution steps.
    Alerts(cmd_alerts::Args),
    /// Many sites drawn from templates, on all cores or on NATS JetStream workers: per-site KPIs and distributions (issue 18).
    Fleet(melv_fleet::cli::Args),
    /// A worker of `melv fleet --nats`: pulls chunks of sites from JetStream, runs them, publishes the rows (issue 18).
    FleetWorker(melv_fleet::cli::WorkerArgs),
    /// Full charge/discharge cycle of one simulated unit through its firmware (datasheet check, manual 7.1).
    CycleTest(cmd_cycle_test::Args),
    /// The CAN link: DBC contract, wiring check (manual 4.6), log decoding, bus load, demo server.
    Can(cmd_can::Args),
    /// The whole system in one process: cloud, web app and one simulated site, time accelerated (issue 6).
    Demo(cmd_demo::Args),
    /// The live gateway: a site in real or accelerated time, MQTT uplink with store-and-forward (issue 6).
    Gateway(cmd_gateway::Args),
    /// MQTT ingest worker: gateway records from the broker into the cloud's database (issue 6).
    Ingest(cmd_ingest::Args),
    /// Installer's plan: wire size, CAN cabling and termination, grid check, mounting (manual 4, appendix 1).
    Plan(cmd_plan::Args),
    /// The cloud service and web app: accounts, sites, settings, telemetry, alerts (issue 5).
    Serve(cmd_serve::Args),
    /// Simulate a site for a year: KPI table, --json KPIs, --report standalone HTML with plots.
    Simulate(cmd_simulate::Args),
    /// Storage planner: recharge, inspection, re-test and discard dates (manual 3).
    Storage(cmd_storage::Args),
}

/// Whether an error comes from writing to a closed pipe.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        // Exit 0: no invariant broke; 1: one did; 2: usage or file error.
        Command::Campaign(args) => return melv_campaign::cli::main(args),
        Command::Alerts(args) => cmd_alerts::run(args),
        Command::CycleTest(args) => cmd_cycle_test::run(args),
        Command::Fleet(args) => melv_fleet::cli::main(args).map_err(anyhow::Error::msg),
        Command::FleetWorker(args) => {
            melv_fleet::cli::worker_main(args).map_err(anyhow::Error::msg)
        }
        Command::Can(args) => cmd_can::run(args),
        Command::Demo(args) => cmd_demo::run(args),
        Command::Gateway(args) => cmd_gateway::run(args),
        Command::Ingest(args) => cmd_ingest::run(args),
        Command::Plan(args) => cmd_plan::run(args),
        Command::Serve(args) => cmd_serve::run(args),
        Command::Simulate(args) => cmd_simulate::run(args),
        Command::Storage(args) => cmd_storage::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // The reader of our output went away (`melv can decode log | head`): not an error of ours.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("melv: error: {e:#}");
            ExitCode::from(2)
        }
    }
}
