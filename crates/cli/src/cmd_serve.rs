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
    /// Also run an MQTT ingest worker against this broker (mqtt://[USER@]HOST[:PORT]): gateway telemetry,
    /// alerts and settings acks into the database, settings out to the gateways (docs/cloud.md).
    #[arg(long, value_name = "URL")]
    mqtt: Option<String>,
    /// The worker's MQTT client id; keep it stable across restarts, unique per worker
    /// (default: melv-serve-HOSTNAME).
    #[arg(long, value_name = "ID", requires = "mqtt")]
    mqtt_client_id: Option<String>,
    /// The worker's username at the broker (its password from MELV_MQTT_PASSWORD).
    #[arg(long, value_name = "USER", requires = "mqtt")]
    mqtt_username: Option<String>,
    /// Shared-subscription group of the ingest workers.
    #[arg(long, value_name = "G", default_value = melv_server::mqtt::DEFAULT_GROUP, requires = "mqtt")]
    mqtt_group: String,
    /// Keep the broker's password file: one entry per bound gateway (username = its serial,
    /// password = its claim code), rewritten at start and after every bind, unbind and rotation.
    /// Mosquitto re-reads it on SIGHUP (docs/cloud.md, "Threat model").
    #[arg(long, value_name = "FILE")]
    mosquitto_passwd: Option<std::path::PathBuf>,
    /// A password file of the broker's service accounts (e.g. melv-ingest, from mosquitto_passwd),
    /// copied to the top of --mosquitto-passwd.
    #[arg(long, value_name = "FILE", requires = "mosquitto_passwd")]
    mosquitto_passwd_include: Option<std::path::PathBuf>,
}

/// `melv-serve-HOSTNAME`: stable across restarts of this machine's service (the broker keeps the
/// worker's session under it) and different on each machine.
fn default_client_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .unwrap_or_default();
    let host: String = host
        .trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .take(40)
        .collect();
    if host.is_empty() {
        "melv-serve".to_string()
    } else {
        format!("melv-serve-{host}")
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.offline_after_s > 0,
        "--offline-after-s must be positive, not {}",
        args.offline_after_s
    );
    let mqtt = match &args.mqtt {
        None => None,
        Some(url) => {
            let id = args
                .mqtt_client_id
                .clone()
                .unwrap_or_else(default_client_id);
            let mut cfg = melv_server::mqtt::WorkerConfig::new(url, &id, &args.mqtt_group)
                .map_err(|e| anyhow::anyhow!("--mqtt: {e}"))?;
            cfg.credentials = crate::cmd_ingest::credentials(&cfg, args.mqtt_username.as_deref())?;
            Some(cfg)
        }
    };
    melv_server::serve_blocking(melv_server::Config {
        listen: args.listen,
        database: args.database.clone(),
        admin_email: args.admin_email,
        admin_password: args
            .admin_password
            .or_else(|| std::env::var("MELV_ADMIN_PASSWORD").ok()),
        offline_after_s: args.offline_after_s,
        mqtt,
        broker: args
            .mosquitto_passwd
            .map(|passwd| melv_server::broker_auth::BrokerAuth {
                passwd,
                include: args.mosquitto_passwd_include,
            }),
    })
    .with_context(|| format!("serving with database {}", args.database))
}
