//! `melv gateway SITE.toml`: the live gateway (crate `melv-gateway`, docs/gateway.md).

use anyhow::Result;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    gateway: melv_gateway::GatewayArgs,
}

pub fn run(args: Args) -> Result<()> {
    if let Some(line) = melv_gateway::claim::command(&args.gateway) {
        println!("{}", line.map_err(anyhow::Error::msg)?);
        return Ok(());
    }
    let summary = melv_gateway::run_blocking(args.gateway)?;
    println!("{}", serde_json::to_string(&summary)?);
    Ok(())
}
