//! `melv-gateway`: the same process as `melv gateway`, as this crate's own binary so that its
//! integration tests can start it, `kill -9` it and start it again.

use clap::Parser;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "melv-gateway",
    about = "M-ELV live gateway: site controller + MQTT uplink"
)]
struct Cli {
    #[command(flatten)]
    args: melv_gateway::GatewayArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match melv_gateway::claim::command(&cli.args) {
        Some(Ok(line)) => {
            println!("{line}");
            return ExitCode::SUCCESS;
        }
        Some(Err(e)) => {
            eprintln!("melv-gateway: error: {e}");
            return ExitCode::from(2);
        }
        None => {}
    }
    match melv_gateway::run_blocking(cli.args) {
        Ok(s) => {
            println!("{}", serde_json::to_string(&s).unwrap_or_default());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("melv-gateway: error: {e}");
            ExitCode::from(2)
        }
    }
}
