//! The command line of the fleet: `melv fleet FLEET.toml` and `melv fleet-worker --nats URL`. The
//! only module here that touches files (the bundle, the outputs), the clock (wall and CPU time) and
//! the terminal (the progress bar).

#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use crate::config::{FleetFile, MAX_FLEET_FILE_BYTES};
use crate::fleet::{join, named_files, Bundle, Fleet, MAX_BUNDLE_BYTES};
use crate::output::{write_csv, write_parquet};
use crate::run::{run_local, SiteRow};
use crate::summary::FleetKpis;
use melv_scenario::config::SiteFile;
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Many sites drawn from site templates, on all cores or on NATS JetStream workers (issue 18).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The fleet file (TOML), e.g. examples/fleet.toml.
    pub fleet: PathBuf,
    /// Write the run and the fleet's distributions as JSON ("-" for standard output).
    #[arg(long, value_name = "OUT")]
    pub json: Option<PathBuf>,
    /// Write one row of KPIs per site as Parquet.
    #[arg(long, value_name = "OUT.parquet")]
    pub parquet: Option<PathBuf>,
    /// Write one row of KPIs per site as CSV.
    #[arg(long, value_name = "OUT.csv")]
    pub csv: Option<PathBuf>,
    /// Write the fleet report (HTML, distributions as plots).
    #[arg(long, value_name = "OUT.html")]
    pub report: Option<PathBuf>,
    /// Threads (0: one per core). Ignored with --nats (the workers have their own).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Run only the first N sites of the fleet (a quick look at a big fleet).
    #[arg(long)]
    pub limit: Option<u64>,
    /// Run the sites in an order shuffled with this seed (results do not depend on the order; the
    /// determinism test uses it).
    #[arg(long)]
    pub shuffle: Option<u64>,
    /// Run on NATS JetStream workers (`melv fleet-worker`) instead of this machine's cores.
    #[arg(long, value_name = "nats://HOST:4222")]
    pub nats: Option<String>,
    /// With --nats: seconds after which a task not acknowledged goes to another worker.
    #[arg(long, default_value_t = 30.0)]
    pub ack_wait: f64,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
}

/// A worker of `melv fleet --nats`: pulls chunks of sites from JetStream, runs them, publishes rows.
#[derive(Debug, clap::Args)]
pub struct WorkerArgs {
    /// The NATS server (the coordinator's).
    #[arg(long, value_name = "nats://HOST:4222")]
    pub nats: String,
    /// Threads for a chunk's sites (0: one per core).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Name in the results (default: host name and process id).
    #[arg(long)]
    pub name: Option<String>,
    /// Seconds after which a task not acknowledged goes to another worker (used when this worker
    /// creates the queue; an existing queue keeps its own).
    #[arg(long, default_value_t = 30.0)]
    pub ack_wait: f64,
    /// Exit after this many seconds without a task (default: run until stopped).
    #[arg(long)]
    pub idle_exit: Option<f64>,
}

type Res<T> = Result<T, String>;

fn read_bounded(path: &str, max: u64) -> Res<Vec<u8>> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(max + 1).read_to_end(&mut bytes))
        .map_err(|e| format!("cannot read {path}: {e}"))?;
    if bytes.len() as u64 > max {
        return Err(format!("{path}: larger than {max} bytes"));
    }
    Ok(bytes)
}

/// Reads the fleet file and every file it names into a bundle (at most [`MAX_BUNDLE_BYTES`]).
pub fn read_bundle(path: &std::path::Path) -> Res<Bundle> {
    let file = path.display().to_string();
    let text = String::from_utf8(read_bounded(&file, MAX_FLEET_FILE_BYTES)?)
        .map_err(|_| format!("{file}: not UTF-8 text"))?;
    let f = FleetFile::parse(&file, &text).map_err(|e| e.to_string())?;
    let mut files = BTreeMap::new();
    let mut total = 0u64;
    let sites = f
        .template
        .iter()
        .map(|t| &t.file)
        .chain(f.site.iter().map(|s| &s.file));
    for name in sites.flatten() {
        let key = join(&file, name);
        let max = melv_scenario::scenario::MAX_SITE_FILE_BYTES;
        let bytes = read_bounded(&key, max)?;
        let text = std::str::from_utf8(&bytes).map_err(|_| format!("{key}: not UTF-8 text"))?;
        let cfg = SiteFile::parse(&key, text).map_err(|e| e.to_string())?;
        for k in named_files(&key, &cfg) {
            if let std::collections::btree_map::Entry::Vacant(e) = files.entry(k) {
                let b = read_bounded(e.key(), melv_scenario::profile::MAX_PROFILE_BYTES)?;
                total += b.len() as u64;
                e.insert(b);
            }
        }
        total += bytes.len() as u64;
        files.insert(key, bytes);
        if total > MAX_BUNDLE_BYTES {
            return Err(format!(
                "{file}: the files it names exceed {MAX_BUNDLE_BYTES} bytes"
            ));
        }
    }
    Ok(Bundle { file, text, files })
}

/// `--json`: the run (timing, where it ran) and the fleet's KPIs.
#[derive(Debug, Serialize)]
struct RunJson<'a> {
    fleet: &'a str,
    file: &'a str,
    mode: &'static str,
    #[serde(flatten)]
    kpis: &'a FleetKpis,
    wall_s: f64,
    /// CPU time of the whole run: this process, plus the workers' sites with --nats, s.
    cpu_s: f64,
    /// CPU time the sites themselves took (each site's thread time), s.
    sites_cpu_s: f64,
    /// What the fleet runner added on top of the sites (reading, drawing, threads, outputs), s.
    runner_cpu_s: f64,
    threads: usize,
    site_years_per_s: f64,
    site_years_per_cpu_s: f64,
    /// With --nats: the run's id, the workers that sent results, duplicates dropped.
    #[serde(skip_serializing_if = "Option::is_none")]
    nats: Option<NatsJson>,
}

#[derive(Debug, Serialize)]
struct NatsJson {
    run: String,
    workers: Vec<String>,
    duplicates: u64,
    tasks_published: u64,
}

fn bar(total: u64, quiet: bool) -> indicatif::ProgressBar {
    if quiet || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let b = indicatif::ProgressBar::new(total);
    b.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} fleet [{bar:40}] {pos}/{len} sites, {per_sec}, {eta} left",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    b
}

/// The sites to run: all (or the first `limit`), in order or shuffled.
fn site_order(n: u64, limit: Option<u64>, shuffle: Option<u64>) -> Vec<u64> {
    use rand::seq::SliceRandom;
    use rand::SeedableRng;
    let mut v: Vec<u64> = (0..limit.map_or(n, |l| l.min(n))).collect();
    if let Some(seed) = shuffle {
        v.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed));
    }
    v
}

/// `melv fleet`.
pub fn main(args: Args) -> Result<(), String> {
    let wall = Instant::now();
    let cpu = cpu_time::ProcessTime::now();
    let bundle = read_bundle(&args.fleet)?;
    let fleet = Fleet::build(&bundle).map_err(|e| e.to_string())?;
    let sites = site_order(fleet.sites(), args.limit, args.shuffle);
    let pb = bar(sites.len() as u64, args.quiet);
    let threads = if args.threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        args.threads
    };
    let (rows, sites_cpu_s, nats) = match &args.nats {
        None => {
            let mut rows: Vec<SiteRow> = Vec::with_capacity(sites.len());
            let mut sites_cpu = 0.0;
            run_local(&fleet, &sites, threads, &mut |d| {
                sites_cpu += d.cpu_s;
                rows.push(d.row);
                pb.inc(1);
            })
            .map_err(|e| e.to_string())?;
            rows.sort_by_key(|r| r.site);
            (rows, sites_cpu, None)
        }
        Some(url) => {
            if args.limit.is_some() || args.shuffle.is_some() {
                return Err("--limit and --shuffle are for local runs, not --nats".into());
            }
            let ack = Duration::from_secs_f64(args.ack_wait.clamp(1.0, 3600.0));
            let g = runtime()?
                .block_on(crate::nats::coordinate(
                    url,
                    &bundle,
                    &fleet,
                    ack,
                    &mut |n| pb.set_position(n),
                ))
                .map_err(|e| e.to_string())?;
            let n = NatsJson {
                run: g.run.clone(),
                workers: g.workers.iter().cloned().collect(),
                duplicates: g.duplicates,
                tasks_published: g.published,
            };
            (g.rows, g.workers_cpu_s, Some(n))
        }
    };
    pb.finish_and_clear();
    let kpis = FleetKpis::of(&rows);
    write_outputs(
        &args,
        &fleet,
        &rows,
        &kpis,
        wall,
        cpu,
        sites_cpu_s,
        threads,
        nats,
    )
}

fn runtime() -> Res<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))
}

fn create(path: &std::path::Path) -> Res<std::io::BufWriter<std::fs::File>> {
    std::fs::File::create(path)
        .map(std::io::BufWriter::new)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))
}

#[allow(clippy::too_many_arguments)]
fn write_outputs(
    args: &Args,
    fleet: &Fleet,
    rows: &[SiteRow],
    kpis: &FleetKpis,
    wall: Instant,
    cpu: cpu_time::ProcessTime,
    sites_cpu_s: f64,
    threads: usize,
    nats: Option<NatsJson>,
) -> Res<()> {
    // Timing stops before the outputs are written: the run is the sites, the outputs are IO.
    let wall_s = wall.elapsed().as_secs_f64();
    let own_cpu_s = cpu.elapsed().as_secs_f64();
    let (cpu_s, runner_cpu_s) = if nats.is_some() {
        (own_cpu_s + sites_cpu_s, own_cpu_s)
    } else {
        (own_cpu_s, own_cpu_s - sites_cpu_s)
    };
    let timing = format!(
        "{:.1} site-years in {wall_s:.1} s wall, {cpu_s:.1} s CPU ({:.2} site-years per CPU second)",
        kpis.site_years,
        kpis.site_years / cpu_s.max(1e-9)
    );
    if let Some(p) = &args.csv {
        write_csv(rows, create(p)?).map_err(|e| format!("{}: {e}", p.display()))?;
    }
    if let Some(p) = &args.parquet {
        write_parquet(rows, create(p)?).map_err(|e| format!("{}: {e}", p.display()))?;
    }
    if let Some(p) = &args.report {
        let html = crate::report::render(&fleet.name, rows, kpis, &timing)?;
        std::fs::write(p, html).map_err(|e| format!("cannot write {}: {e}", p.display()))?;
    }
    let j = RunJson {
        fleet: &fleet.name,
        file: &fleet.file,
        mode: if nats.is_some() { "nats" } else { "local" },
        kpis,
        wall_s,
        cpu_s,
        sites_cpu_s,
        runner_cpu_s,
        threads,
        site_years_per_s: kpis.site_years / wall_s.max(1e-9),
        site_years_per_cpu_s: kpis.site_years / cpu_s.max(1e-9),
        nats,
    };
    let text = serde_json::to_string_pretty(&j).map_err(|e| e.to_string())?;
    match &args.json {
        Some(p) if p.as_os_str() == "-" => println!("{text}"),
        Some(p) => std::fs::write(p, text + "\n")
            .map_err(|e| format!("cannot write {}: {e}", p.display()))?,
        None => {}
    }
    if args.json.as_deref().is_none_or(|p| p.as_os_str() != "-") {
        eprintln!("{}: {timing}", fleet.name);
        for (name, d) in &kpis.distributions {
            eprintln!(
                "  {name:<24} p5 {:>10.3}  median {:>10.3}  p95 {:>10.3}",
                d.p5, d.p50, d.p95
            );
        }
    }
    Ok(())
}

/// `melv fleet-worker`.
pub fn worker_main(args: WorkerArgs) -> Result<(), String> {
    let name = args.name.clone().unwrap_or_else(|| {
        let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
        format!("{}-{}", host.trim(), std::process::id())
    });
    let o = crate::nats::WorkerOptions {
        url: args.nats.clone(),
        name: name.clone(),
        threads: args.threads,
        ack_wait: Duration::from_secs_f64(args.ack_wait.clamp(1.0, 3600.0)),
        idle_exit: args
            .idle_exit
            .map(|s| Duration::from_secs_f64(s.clamp(0.1, 86_400.0))),
    };
    let n = runtime()?
        .block_on(crate::nats::work(&o, &mut |line| {
            eprintln!("{name}: {line}")
        }))
        .map_err(|e| e.to_string())?;
    eprintln!("{name}: idle, exiting after {n} tasks");
    Ok(())
}
