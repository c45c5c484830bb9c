//! `melv ingest`: a standalone MQTT ingest worker (no HTTP), `melv_server::mqtt`. Several workers
//! with distinct client ids and the same group split the gateways' messages (shared subscription).

use anyhow::Context;

#[derive(clap::Args)]
pub struct Args {
    /// Broker, mqtt://[USER@]HOST[:PORT] (port 1883 by default).
    #[arg(long, value_name = "URL")]
    mqtt: String,
    /// sqlite://PATH (created if missing) or postgres://USER@HOST/DB: the cloud's database.
    #[arg(long)]
    database: String,
    /// MQTT client id: unique per worker and the same at every restart (the broker keeps this
    /// worker's session, with the messages it has not acknowledged yet, under it).
    #[arg(long, value_name = "ID")]
    client_id: String,
    /// Username at the broker (its password from MELV_MQTT_PASSWORD); anonymous without it.
    #[arg(long, value_name = "USER")]
    mqtt_username: Option<String>,
    /// Shared-subscription group.
    #[arg(long, value_name = "G", default_value = melv_server::mqtt::DEFAULT_GROUP)]
    group: String,
    /// Most messages per batch (one database transaction per gateway, then the PUBACKs).
    #[arg(long, default_value_t = 500)]
    batch_max: usize,
    /// Longest a message waits for its batch to fill, ms.
    #[arg(long, default_value_t = 20)]
    batch_wait_ms: u64,
    /// How often to look for new settings versions to publish, s.
    #[arg(long, default_value_t = 2.0)]
    settings_poll_s: f64,
    /// An unanswered settings version is published again after this many seconds.
    #[arg(long, default_value_t = 30.0)]
    settings_retry_s: f64,
    /// A one-line JSON summary on stderr this often while counters change, s (0: never).
    #[arg(long, default_value_t = 60.0)]
    log_every_s: f64,
    /// Reset period of the guard sessions that catch what the broker drops for want of a shared
    /// subscriber after it restarts (Mosquitto 2.0 does not keep shared subscriptions), s;
    /// 0 turns the guard off (docs/cloud.md, MQTT ingest).
    #[arg(long, default_value_t = 60.0)]
    guard_period_s: f64,
    /// Take this (stopped) worker out of service for good instead of running it: leave the shared
    /// subscriptions, ingest what was queued for it, end its sessions at the broker. Other workers
    /// of the group must be running.
    #[arg(long)]
    retire: bool,
}

fn seconds(flag: &str, v: f64, min: f64) -> anyhow::Result<std::time::Duration> {
    anyhow::ensure!(
        v.is_finite() && (min..=86_400.0).contains(&v),
        "--{flag} {v}: expected {min} to 86400 seconds"
    );
    Ok(std::time::Duration::from_secs_f64(v))
}

/// The worker's broker credentials: `--mqtt-username` or the URL's user, the password from the
/// URL or `MELV_MQTT_PASSWORD` (kept off the command line, where other users of the machine could
/// read it); anonymous when neither names a user ([`melv_wire::MqttUrl::credentials`]).
pub fn credentials(
    cfg: &melv_server::mqtt::WorkerConfig,
    user: Option<&str>,
) -> anyhow::Result<Option<melv_wire::Credentials>> {
    Ok(cfg.broker.credentials_from_env(user)?)
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let mut cfg = melv_server::mqtt::WorkerConfig::new(&args.mqtt, &args.client_id, &args.group)
        .map_err(anyhow::Error::msg)?;
    anyhow::ensure!(
        (1..=10_000).contains(&args.batch_max),
        "--batch-max {}: expected 1 to 10000 messages",
        args.batch_max
    );
    anyhow::ensure!(
        args.batch_wait_ms <= 10_000,
        "--batch-wait-ms {}: expected 0 to 10000 ms",
        args.batch_wait_ms
    );
    cfg.credentials = credentials(&cfg, args.mqtt_username.as_deref())?;
    cfg.batch_max = args.batch_max;
    cfg.batch_wait = std::time::Duration::from_millis(args.batch_wait_ms);
    cfg.settings_poll = seconds("settings-poll-s", args.settings_poll_s, 0.05)?;
    cfg.settings_retry = seconds("settings-retry-s", args.settings_retry_s, 0.05)?;
    cfg.log_every = if args.log_every_s == 0.0 {
        None
    } else {
        Some(seconds("log-every-s", args.log_every_s, 1.0)?)
    };
    cfg.guard_period = if args.guard_period_s == 0.0 {
        None
    } else {
        Some(seconds("guard-period-s", args.guard_period_s, 1.0)?)
    };
    let summary = if args.retire {
        melv_server::retire_blocking(&args.database, cfg)
    } else {
        melv_server::ingest_blocking(&args.database, cfg)
    }
    .with_context(|| format!("ingesting into {}", args.database))?;
    println!("{}", serde_json::to_string(&summary)?);
    Ok(())
}
