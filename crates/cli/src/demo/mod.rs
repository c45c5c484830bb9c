//! `melv demo`: the whole system in one process (issue 6). The real cloud
//! ([`melv_server::app`]) serves the web app and the API; one simulated site runs the live gateway's
//! own control loop ([`melv_gateway::SiteRuntime`]) in the same process, and what it would publish
//! over MQTT goes through the cloud's gateway feed ([`Feed::ingest`]) as the broker's ingest worker
//! would deliver it. No broker, an embedded SQLite database, time accelerated.
//!
//! ## Shape
//! * [`clock`]: one accelerated clock for the cloud and the site, where it starts, how much history
//!   to fill in.
//! * [`bootstrap`]: the demo accounts and the site, made through the cloud's service functions.
//! * [`gateway`]: the site and its messages, sans-IO.
//! * this module: the async shell. Open the store, make or find the site, fill the history at 60 s
//!   control cycles, then serve and run live at 1 s cycles: every [`TICK`] the cycles up to the
//!   clock's "now" and their messages into the feed; every wall second a look for a new settings
//!   version, answered as the gateway answers it.

pub mod bootstrap;
pub mod clock;
pub mod gateway;

use anyhow::{bail, Context};
use melv_scenario::builtin::SiteSource;
use melv_server::feed::{Feed, FeedCounts, Message};
use melv_server::{AppState, Clock};
use melv_store::{Delivery, Store};
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The demo gateway's id: its serial in the cloud and its MQTT topic level.
pub const GATEWAY_ID: &str = "demo-gw";
/// Control cycle while filling the history: the simulator's usual step.
pub const HISTORY_CYCLE_S: f64 = 60.0;
/// Control cycle live: the real gateway's (`melv gateway --cycle 1`).
pub const LIVE_CYCLE_S: f64 = 1.0;
/// Wall time between two runs of the site.
pub const TICK: Duration = Duration::from_millis(100);
/// Wall time between two looks for new settings.
pub const SETTINGS_POLL: Duration = Duration::from_secs(1);
/// Most control cycles per tick, so a speed the machine cannot keep up with still lets the loop
/// answer settings and stop on Ctrl-C (the site then falls behind the clock, and says so).
pub const MAX_CYCLES_PER_TICK: u64 = 20_000;
/// Highest `--speed`: about 3 hours of site time per wall second, at 1 s control cycles.
pub const MAX_SPEED: f64 = 10_000.0;
/// Longest `--history-days`: the web app's longest chart is a year of months.
pub const MAX_HISTORY_DAYS: f64 = 366.0;
/// Messages per call of the feed (one transaction each).
const FEED_CHUNK: usize = 2_000;
/// Consecutive failed deliveries to the store before the demo gives up.
const MAX_FEED_FAILURES: u32 = 10;

/// What `melv demo` was asked for.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub site: SiteSource,
    pub speed: f64,
    /// `None`: a fresh SQLite database in a new temporary directory, removed at exit.
    pub database: Option<String>,
    pub history_days: f64,
}

impl Config {
    pub fn check(&self) -> anyhow::Result<()> {
        if !(self.speed.is_finite() && self.speed > 0.0 && self.speed <= MAX_SPEED) {
            bail!(
                "--speed {}: expected a number above 0 and at most {MAX_SPEED}",
                self.speed
            );
        }
        if !(self.history_days.is_finite() && (0.0..=MAX_HISTORY_DAYS).contains(&self.history_days))
        {
            bail!(
                "--history-days {}: expected 0 to {MAX_HISTORY_DAYS}",
                self.history_days
            );
        }
        Ok(())
    }
}

/// A directory removed when dropped: the default database's home.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> anyhow::Result<Self> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let p = std::env::temp_dir().join(format!("melv-demo-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&p)
            .with_context(|| format!("creating the demo's database directory {}", p.display()))?;
        Ok(Self(p))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A database URL fit to print: `postgres://user:secret@host/db` becomes `postgres://user:***@host/db`.
pub fn redact_password(url: &str) -> String {
    let Some((scheme, rest)) = url
        .split_once("://")
        .filter(|(s, _)| s.starts_with("postgres"))
    else {
        return url.to_string();
    };
    let Some((auth, host)) = rest.rsplit_once('@') else {
        return url.to_string();
    };
    match auth.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_string(),
    }
}

fn wall_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Hands messages to the feed; keeps them for the next tick when the store fails (as a broker
/// redelivers what was not acknowledged), and gives up after [`MAX_FEED_FAILURES`] in a row.
struct Outbox {
    pending: Vec<Message>,
    failures: u32,
    totals: FeedCounts,
}

impl Outbox {
    fn new() -> Self {
        Self {
            pending: Vec::new(),
            failures: 0,
            totals: FeedCounts::default(),
        }
    }

    async fn deliver(&mut self, feed: &Feed) -> anyhow::Result<()> {
        while !self.pending.is_empty() {
            let n = self.pending.len().min(FEED_CHUNK);
            match feed.ingest(&self.pending[..n]).await {
                Ok(c) => {
                    self.failures = 0;
                    self.pending.drain(..n);
                    if c.rejected > 0 || c.batteries_unknown > 0 {
                        eprintln!(
                            "melv demo: warning: the cloud refused {} messages and left out {} battery reports \
                             (see the ingest_rejects table)",
                            c.rejected, c.batteries_unknown
                        );
                    }
                    self.totals.add(&c);
                }
                Err(e) => {
                    self.failures += 1;
                    if self.failures >= MAX_FEED_FAILURES {
                        return Err(e).context("storing the site's messages in the cloud database");
                    }
                    eprintln!(
                        "melv demo: warning: storing {} messages failed ({e}); retrying",
                        self.pending.len()
                    );
                    return Ok(());
                }
            }
        }
        Ok(())
    }
}

/// Looks for a settings version the gateway has not answered (pending or delivered), marks it
/// delivered (the gateway fetched it) and answers it; the ack goes to the feed with the records.
async fn poll_settings(
    state: &AppState,
    site_id: i64,
    gw: &mut gateway::DemoGateway,
) -> anyhow::Result<Option<Message>> {
    let Some(v) = state.store.latest_settings(site_id).await? else {
        return Ok(None);
    };
    if !matches!(v.delivery, Delivery::Pending | Delivery::Delivered) {
        return Ok(None);
    }
    state
        .store
        .mark_delivered(site_id, v.version, state.clock.now_ms())
        .await?;
    let before = gw.settings_version();
    let a = gw.answer_settings(v.version, &v.settings_json);
    if a.ack.accepted && a.ack.applied_version != before {
        eprintln!(
            "melv demo: settings v{} applied ({:?} mode, reserve {:.0} %)",
            v.version,
            gw.site().settings().mode,
            gw.site().settings().reserve_soc * 100.0
        );
    } else if !a.ack.accepted {
        eprintln!(
            "melv demo: settings v{} refused by the gateway: {}",
            v.version,
            a.ack.reason.as_deref().unwrap_or("no reason")
        );
    }
    Ok(Some(a.message))
}

/// Where an earlier run on this database left off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resume {
    /// Time of the demo site's newest telemetry point, Unix ms.
    pub last_seen_ms: Option<i64>,
    /// The sequence number of the gateway's next record: one past the highest the cloud holds.
    pub next_seq: u64,
}

pub async fn resume(store: &Store) -> anyhow::Result<Resume> {
    let known = store
        .device(GATEWAY_ID)
        .await?
        .filter(|d| d.kind == melv_store::DeviceKind::Gateway);
    let last_seen_ms = match &known {
        Some(d) => store.last_seen(d.site_id).await?,
        None => None,
    };
    let next_seq = store
        .stored_seqs(GATEWAY_ID)
        .await?
        .iter()
        .map(|(_, s)| *s)
        .max()
        .map_or(1, |s| s.max(0) as u64 + 1);
    Ok(Resume {
        last_seen_ms,
        next_seq,
    })
}

/// Whether `shutdown` has resolved, without waiting for it.
async fn requested<F: Future<Output = ()>>(shutdown: std::pin::Pin<&mut F>) -> bool {
    tokio::select! {
        biased;
        _ = shutdown => true,
        _ = std::future::ready(()) => false,
    }
}

/// Runs the demo until `shutdown` resolves.
pub async fn run(cfg: Config, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    cfg.check()?;
    let scenario = cfg
        .site
        .load(Default::default())
        .with_context(|| format!("site {}", cfg.site.label()))?;
    let (database, temp) = match &cfg.database {
        Some(url) => (url.clone(), None),
        None => {
            let dir = TempDir::new()?;
            let url = format!("sqlite://{}", dir.0.join("melv-demo.db").display());
            (url, Some(dir))
        }
    };
    // Bind first: a busy port is refused before anything else happens.
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .with_context(|| format!("--listen {}: cannot listen there", cfg.listen))?;
    let addr = listener.local_addr().unwrap_or(cfg.listen);
    let shown = redact_password(&database);
    let store = Store::open(&database)
        .await
        .with_context(|| format!("--database {shown}"))?;
    let result = run_with(cfg, scenario, &store, &shown, listener, addr, shutdown).await;
    store.close().await;
    drop(temp);
    result
}

#[allow(clippy::too_many_arguments)]
async fn run_with(
    cfg: Config,
    scenario: melv_sim::scenario::Scenario,
    store: &Store,
    database: &str,
    listener: tokio::net::TcpListener,
    addr: SocketAddr,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    // Polled once now, so that Ctrl-C is ours from here on (and not the default "terminate", which
    // would leave the temporary database behind), and again between parts of the history.
    tokio::pin!(shutdown);
    if requested(shutdown.as_mut()).await {
        return Ok(());
    }
    let mut live = prepare(&cfg, scenario, store, database).await?;
    let t0 = Instant::now();
    if !fill_history(&mut live, shutdown.as_mut()).await? {
        eprintln!("melv demo: stopped while filling in the history");
        return Ok(());
    }
    let filled = live.out.totals;
    live.gw.set_cycle_s(LIVE_CYCLE_S)?;
    print_banner(&cfg, addr, &live.site, database, filled, t0.elapsed());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let app = melv_server::app(live.feed.state().clone());
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stop_rx.await;
            })
            .await
    });
    let result = run_live(&cfg, &mut live, shutdown.as_mut()).await;
    // Whatever was produced is stored before the database closes.
    let flushed = live.out.deliver(&live.feed).await;
    let _ = stop_tx.send(());
    match tokio::time::timeout(Duration::from_secs(5), server).await {
        Ok(Ok(Err(e))) => eprintln!("melv demo: web server: {e}"),
        Ok(Err(e)) => eprintln!("melv demo: web server task: {e}"),
        _ => {}
    }
    result?;
    flushed?;
    eprintln!(
        "melv demo: stopped; {} telemetry points and {} alert events stored in all, next seq {}",
        live.out.totals.points_stored,
        live.out.totals.events_stored,
        live.gw.next_seq()
    );
    Ok(())
}

/// The running demo: the site, the cloud's feed and clock, and what is still to be stored.
struct Live {
    gw: gateway::DemoGateway,
    site: bootstrap::DemoSite,
    feed: Feed,
    clock: Arc<clock::DemoClock>,
    out: Outbox,
    /// The site's clock when the history is complete and the site goes live, Unix s.
    history_until_s: f64,
}

/// Where the demo starts (after an earlier run's newest point, or now), the site made or found in
/// the cloud, and the settings an earlier run left in force.
async fn prepare(
    cfg: &Config,
    scenario: melv_sim::scenario::Scenario,
    store: &Store,
    database: &str,
) -> anyhow::Result<Live> {
    let Resume {
        last_seen_ms: last_seen,
        next_seq,
    } = resume(store).await?;
    let start_ms = clock::start_ms(wall_now_ms(), last_seen);
    let from_ms = clock::history_from_ms(start_ms, last_seen, cfg.history_days);
    let clock = Arc::new(clock::DemoClock::new(start_ms, cfg.speed));
    let state = AppState::new(
        store.clone(),
        clock.clone(),
        clock::offline_after_s(cfg.speed),
    );
    let mut gw = gateway::DemoGateway::new(
        scenario.clone(),
        GATEWAY_ID,
        from_ms as f64 / 1000.0,
        HISTORY_CYCLE_S,
        next_seq,
    )?;
    let site = bootstrap::ensure(&state, &scenario, GATEWAY_ID, &gw.battery_serials())
        .await
        .with_context(|| format!("--database {database}"))?;
    // The settings in force at the end of an earlier run: the newest version the gateway accepted.
    if let Some(v) = store
        .settings_versions(site.site_id)
        .await?
        .into_iter()
        .find(|v| v.delivery == Delivery::Acked)
    {
        if let Err(e) = gw.restore_settings(v.version, &v.settings_json) {
            eprintln!("melv demo: stored {e}; running the site file's settings");
        }
    }
    Ok(Live {
        gw,
        site,
        feed: Feed::new(state),
        clock,
        out: Outbox::new(),
        history_until_s: (start_ms / 1000) as f64,
    })
}

/// The history, at 60 s cycles, as fast as the machine goes. `false` when stopped on the way.
async fn fill_history<F: Future<Output = ()>>(
    live: &mut Live,
    mut shutdown: std::pin::Pin<&mut F>,
) -> anyhow::Result<bool> {
    loop {
        if requested(shutdown.as_mut()).await {
            return Ok(false);
        }
        let p = live.gw.run_until(live.history_until_s, 1_440)?;
        if p.cycles == 0 {
            break;
        }
        live.out.pending.extend(p.messages);
        live.out.deliver(&live.feed).await?;
    }
    if !live.out.pending.is_empty() {
        bail!("storing the history failed; see the warnings above");
    }
    Ok(true)
}

/// Live: every [`TICK`] the cycles up to the clock's now into the feed, every [`SETTINGS_POLL`] a
/// look for new settings, until `shutdown`.
async fn run_live<F: Future<Output = ()>>(
    cfg: &Config,
    live: &mut Live,
    mut shutdown: std::pin::Pin<&mut F>,
) -> anyhow::Result<()> {
    let state = live.feed.state().clone();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_poll: Option<Instant> = None;
    let mut warned_behind: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            _ = tick.tick() => {}
        }
        let now_s = live.clock.now_ms() as f64 / 1000.0;
        let p = live.gw.run_until(now_s, MAX_CYCLES_PER_TICK)?;
        for h in &p.hours {
            eprintln!("melv demo: {h}");
        }
        live.out.pending.extend(p.messages);
        let behind_s = now_s - live.gw.clock_utc_s();
        if behind_s > 600.0 && warned_behind.is_none_or(|t| t.elapsed() >= Duration::from_secs(10))
        {
            warned_behind = Some(Instant::now());
            eprintln!(
                "melv demo: warning: the site is {:.0} min behind the clock: --speed {} is more than this machine runs",
                behind_s / 60.0,
                cfg.speed
            );
        }
        if last_poll.is_none_or(|t| t.elapsed() >= SETTINGS_POLL) {
            last_poll = Some(Instant::now());
            if let Some(ack) = poll_settings(&state, live.site.site_id, &mut live.gw).await? {
                live.out.pending.push(ack);
            }
        }
        live.out.deliver(&live.feed).await?;
    }
    Ok(())
}

fn print_banner(
    cfg: &Config,
    addr: SocketAddr,
    site: &bootstrap::DemoSite,
    database: &str,
    filled: FeedCounts,
    took: Duration,
) {
    let url = format!("http://{addr}");
    let mut s = String::new();
    s.push_str(&format!(
        "melv demo: the cloud, the web app and one simulated site in one process, site time at {}x\n",
        cfg.speed
    ));
    s.push_str(&format!(
        "  site:     {} ({}), gateway {GATEWAY_ID}\n",
        site.name,
        cfg.site.label()
    ));
    match &cfg.database {
        Some(_) => s.push_str(&format!(
            "  database: {database} ({})\n",
            if site.created {
                "new demo site"
            } else {
                "the demo goes on where it stopped"
            }
        )),
        None => s.push_str(&format!(
            "  database: {database} (fresh, deleted at exit; --database sqlite://melv-demo.db keeps one)\n"
        )),
    }
    if site.created || cfg.database.is_none() {
        s.push_str(&format!(
            "  history:  {} telemetry points filled in ({:.1} s)\n",
            filled.points_stored,
            took.as_secs_f64()
        ));
    } else {
        s.push_str(&format!(
            "  history:  kept from the earlier runs; {} telemetry points filled into the gap since ({:.1} s)\n",
            filled.points_stored,
            took.as_secs_f64()
        ));
    }
    s.push_str(&format!("\n  Open {url}/ and sign in:\n"));
    for a in bootstrap::ACCOUNTS {
        s.push_str(&format!(
            "    {:<22} password {:<15} ({}: {})\n",
            a.email, a.password, a.role, a.sees
        ));
    }
    s.push_str(&format!(
        "\n  As the owner: click the site for its status, power flow and batteries ({url}/sites/{id}),\n  \
         History for the charts, Settings to change the working mode: a second later the gateway has\n  \
         applied it and the version shows \"acked\". Reload a page to see the site move on.\n  \
         One simulated hour takes {:.0} wall seconds. Ctrl-C stops.\n\n",
        3600.0 / cfg.speed,
        id = site.site_id
    ));
    s.push_str(&format!("melv demo: listening on {url}\n"));
    print!("{s}");
    use std::io::Write;
    let _ = std::io::stdout().flush();
    if !addr.ip().is_loopback() {
        eprintln!(
            "melv demo: warning: listening on {addr}, beyond this machine: the demo accounts' passwords are published"
        );
    }
}

#[cfg(test)]
mod tests;
