//! `melv demo`: the cloud, the web app and one simulated site in one process (issue 6, docs/demo.md).

use crate::demo;
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// Address of the web app and API (port 0: any free port; the line "listening on" names it).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Site TOML (the simulator's format) of the simulated site. Default: the built-in example
    /// `self-consumption` (`--example` names another one).
    #[arg(long, conflicts_with = "example")]
    site: Option<PathBuf>,
    /// A built-in example site: self-consumption, tou-two-batteries or backup-outages.
    #[arg(long)]
    example: Option<String>,
    /// Time acceleration: site seconds per wall second (60: an hour a minute).
    #[arg(long, default_value_t = 60.0)]
    speed: f64,
    /// sqlite://PATH or postgres://...; a demo started again on the same database goes on where it
    /// stopped. Default: a fresh SQLite file in a temporary directory, deleted at exit.
    #[arg(long)]
    database: Option<String>,
    /// Days of history filled in before the site goes live (at 60 s control cycles).
    #[arg(long, default_value_t = 1.0)]
    history_days: f64,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let cfg = demo::Config {
        listen: args.listen,
        site: melv_scenario::builtin::SiteSource::from_args(args.site, args.example.as_deref())?,
        speed: args.speed,
        database: args.database,
        history_days: args.history_days,
    };
    cfg.check()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(demo::run(cfg, melv_wire::shutdown_signal()))
}
