//! `melv serve`: the cloud service and web app (crate `melv-server`).

use anyhow::Context;
use std::net::SocketAddr;

#[derive(clap::Args)]
pub struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// sqlite://PATH (created if missing) or postgres://USER@HOST/DB.
    #[arg(long, default_value = "sqlite://melv.db")]
    database: String,
    /// E-mail of the admin account created when the database has no account yet.
    #[arg(long, default_value = "admin@localhost")]
    admin_email: String,
    /// Its password (at least 8 characters; also read from MELV_ADMIN_PASSWORD); without it a random
    /// one is printed once.
    #[arg(long)]
    admin_password: Option<String>,
    /// A site is Offline after this many seconds without telemetry.
    #[arg(long, default_value_t = melv_server::DEFAULT_OFFLINE_AFTER_S)]
    offline_after_s: i64,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.offline_after_s > 0,
        "--offline-after-s must be positive, not {}",
        args.offline_after_s
    );
    melv_server::serve_blocking(melv_server::Config {
        listen: args.listen,
        database: args.database.clone(),
        admin_email: args.admin_email,
        admin_password: args
            .admin_password
            .or_else(|| std::env::var("MELV_ADMIN_PASSWORD").ok()),
        offline_after_s: args.offline_after_s,
    })
    .with_context(|| format!("serving with database {}", args.database))
}
