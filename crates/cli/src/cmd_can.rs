//! `melv can ...`: the CAN link's tools.
//! * `dbc`: print the protocol's DBC (the contract; `crates/can/melv.dbc` is this output);
//! * `topology FILE`: check a described wiring (JSON) against manual 4.6, or `--plan N` to print the
//!   manual's wiring for N batteries in that format;
//! * `decode LOG`: decode a candump log (`melv simulate --can-log`, `candump -l`), counting refusals;
//! * `busload`: bus load for 1..=6 batteries, nominal and with worst-case bit stuffing;
//! * `serve`: a socketcand server with demo batteries, for python-can / cantools / a gateway.

use anyhow::{bail, Context, Result};
use melv_can::busload::bus_load;
use melv_can::candump::{parse_entry, Entry, Foreign};
use melv_can::demo::{run as run_demo, DemoBatteries};
use melv_can::messages::{classify, UnitIndex};
use melv_can::repr::{ErrorClass, Message};
use melv_can::topology::{check, Wiring};
use melv_can::transport::socketcand::SocketcandServer;
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Sub,
}

#[derive(clap::Subcommand)]
enum Sub {
    /// Print the protocol's DBC file (the battery <-> gateway contract).
    Dbc,
    /// Check a CAN wiring description (JSON) against manual 4.6.
    Topology {
        /// Wiring file: {"batteries": [{"c1_removed": true, "c2_removed": false}, ...],
        /// "cables": [["gateway", "1.C1"], ["1.C2", "2.C1"], ...]}.
        file: Option<std::path::PathBuf>,
        /// Print the manual's wiring for N batteries in the same format instead.
        #[arg(long, value_name = "N")]
        plan: Option<u8>,
        #[arg(long)]
        json: bool,
    },
    /// Decode a candump log file against the protocol.
    Decode {
        log: std::path::PathBuf,
        /// Print only the per-message summary, not every frame.
        #[arg(long)]
        summary: bool,
        #[arg(long)]
        json: bool,
    },
    /// Bus load of the protocol for 1 to 6 batteries at 500 kbit/s.
    Busload {
        #[arg(long)]
        json: bool,
    },
    /// Serve demo batteries over the socketcand protocol (python-can: interface="socketcand").
    Serve {
        #[arg(long, default_value = "127.0.0.1:29536")]
        addr: String,
        /// Units to simulate, e.g. 1,2,3.
        #[arg(long, default_value = "1,2", value_delimiter = ',')]
        units: Vec<u8>,
        /// How long to serve, s.
        #[arg(long, default_value_t = 3600.0)]
        seconds: f64,
        /// CAN channel name clients open.
        #[arg(long, default_value = "can0")]
        channel: String,
        /// Host this site's battery twins (physics and firmware, as `melv gateway` would simulate
        /// them) instead of the demo batteries; a gateway drives them with `--can socketcand://ADDR/CHANNEL`.
        #[arg(long, value_name = "SITE.toml")]
        site: Option<std::path::PathBuf>,
        /// With --site: the gateway id whose batteries these are (their serials derive from it).
        #[arg(long, requires = "site")]
        gateway_id: Option<String>,
        /// With --site: simulated seconds per wall second (the gateway must run at the same speed).
        #[arg(long, default_value_t = 1.0, requires = "site")]
        speed: f64,
    },
}

pub fn run(args: Args) -> Result<()> {
    match args.command {
        Sub::Dbc => {
            print!("{}", melv_can::dbc::generate());
            Ok(())
        }
        Sub::Topology { file, plan, json } => topology(file, plan, json),
        Sub::Decode { log, summary, json } => decode(&log, summary, json),
        Sub::Busload { json } => {
            let rows: Vec<_> = (1..=6)
                .map(|n| (bus_load(n, false), bus_load(n, true)))
                .collect();
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                println!("UNITS  FRAMES/S  NOMINAL  WORST CASE (bit stuffing)");
                for (n, w) in rows {
                    println!(
                        "{:>5}  {:>8.0}  {:>6.2} %  {:>6.2} %",
                        n.units,
                        n.frames_per_s,
                        n.load * 100.0,
                        w.load * 100.0
                    );
                }
            }
            Ok(())
        }
        Sub::Serve {
            addr,
            channel,
            site: Some(site),
            gateway_id,
            speed,
            seconds,
            ..
        } => serve_twins(&addr, &channel, &site, gateway_id, speed, seconds),
        Sub::Serve {
            addr,
            units,
            seconds,
            channel,
            ..
        } => {
            let units: Vec<UnitIndex> = units
                .into_iter()
                .map(UnitIndex::new)
                .collect::<Result<_, _>>()?;
            let mut server = SocketcandServer::bind(&addr, &channel)?;
            println!(
                "listening on {} (socketcand, channel {channel}), units {:?}",
                server.local_addr(),
                units.iter().map(|u| u.get()).collect::<Vec<_>>()
            );
            std::io::stdout().flush()?;
            let mut demo = DemoBatteries::new(&units);
            let s = run_demo::<_, std::io::Sink>(
                &mut server,
                &mut demo,
                Duration::from_secs_f64(seconds.max(0.0)),
                None,
            )?;
            println!("done: sent {} frames, received {}", s.sent, s.received);
            Ok(())
        }
    }
}

/// `melv can serve --site`: the site's battery twins on a socketcand server.
fn serve_twins(
    addr: &str,
    channel: &str,
    site: &std::path::Path,
    gateway_id: Option<String>,
    speed: f64,
    seconds: f64,
) -> Result<()> {
    if !(speed.is_finite() && speed > 0.0) {
        bail!("--speed {speed}: must be a positive number");
    }
    let scenario = melv_sim::scenario::Scenario::load(site, Default::default())?;
    let id = gateway_id.unwrap_or_else(|| {
        site.file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "gateway".into())
    });
    let mut host = melv_gateway::remote::TwinHost::new(&id, scenario);
    let mut server = SocketcandServer::bind(addr, channel)?;
    let serials: Vec<u32> = (0..host.units().len())
        .map(|i| melv_gateway::site::battery_serial(&id, i))
        .collect();
    println!(
        "listening on {} (socketcand, channel {channel}): {} battery twin(s) of gateway {id}, serials {serials:?}, {speed}x",
        server.local_addr(),
        serials.len(),
    );
    std::io::stdout().flush()?;
    let wall = std::time::Instant::now();
    melv_gateway::remote::run_twins(
        &mut host,
        &mut server,
        speed,
        Duration::from_millis(10),
        &mut |_| wall.elapsed().as_secs_f64() >= seconds,
    )?;
    let (sent, received) = host.frames();
    println!("done: sent {sent} frames, received {received}");
    Ok(())
}

fn topology(file: Option<std::path::PathBuf>, plan: Option<u8>, json: bool) -> Result<()> {
    let wiring = match (file, plan) {
        (_, Some(n)) => {
            if !(1..=6).contains(&n) {
                bail!("--plan {n}: a site has 1 to 6 batteries (manual appendix 1b)");
            }
            println!("{}", serde_json::to_string_pretty(&Wiring::manual_plan(n))?);
            return Ok(());
        }
        (Some(path), None) => {
            let text = crate::input::read_text(
                &path,
                crate::input::MAX_WIRING_BYTES,
                "a wiring description",
            )?;
            serde_json::from_str::<Wiring>(&text)
                .with_context(|| format!("{}: not a wiring description", path.display()))?
        }
        (None, None) => bail!("give a wiring file, or --plan N for the manual's wiring"),
    };
    let report = check(&wiring)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        let line: Vec<String> = report.line.iter().map(|b| format!("battery {b}")).collect();
        println!("line         gateway -> {}", line.join(" -> "));
        println!(
            "terminators  {} (a correct line has 2: combiner and the last battery's C2)",
            report.terminators
        );
        println!("frame errors {:.2e} per attempt", report.frame_error_rate);
        for f in &report.findings {
            println!("FIX  {f}");
        }
    }
    if !report.ok() {
        bail!(
            "{} wiring finding(s); fix them before powering on (manual 4.6)",
            report.findings.len()
        );
    }
    if !json {
        println!("OK   wiring follows manual 4.6");
    }
    Ok(())
}

#[derive(Serialize, Default)]
struct DecodeSummary {
    frames: u64,
    decoded: BTreeMap<String, u64>,
    malformed: u64,
    unknown_id: u64,
    wrong_length: u64,
    /// Frames of others on a shared bus, skipped: 29-bit, remote, CAN FD, error frames.
    foreign: BTreeMap<Foreign, u64>,
    /// The log's last line was cut short (a capture stopped mid-write) and was skipped.
    truncated_last_line: bool,
    /// Units on whose address more than one serial number announced itself (BAT_IDENT): two
    /// batteries with the same unit address.
    address_conflicts: BTreeMap<u8, Vec<u32>>,
    errors: Vec<String>,
}

/// Whether the file ends without a newline (its last line may be cut short).
fn ends_mid_line(path: &std::path::Path) -> Result<bool> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    if f.metadata()?.len() == 0 {
        return Ok(false);
    }
    f.seek(SeekFrom::End(-1))?;
    let mut last = [0u8; 1];
    f.read_exact(&mut last)?;
    Ok(last[0] != b'\n')
}

fn decode(path: &std::path::Path, summary_only: bool, json: bool) -> Result<()> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut sum = DecodeSummary::default();
    let name = path.display().to_string();
    let reader = std::io::BufReader::new(file);
    // A line that does not parse is an error unless it is the last one and the file ends in the
    // middle of it: a capture cut short. So its error waits for the next line.
    let mut unparsed: Option<anyhow::Error> = None;
    crate::input::for_each_line(reader, crate::input::MAX_CANDUMP_LINE, &name, |n, line| {
        if let Some(e) = unparsed.take() {
            return Err(e);
        }
        if line.trim().is_empty() {
            return Ok(());
        }
        let (t, _iface, entry) = match parse_entry(line, n) {
            Ok(x) => x,
            Err(e) => {
                unparsed = Some(anyhow::Error::new(e).context(name.clone()));
                return Ok(());
            }
        };
        let frame = match entry {
            Entry::Classic(f) => f,
            Entry::Foreign(kind) => {
                *sum.foreign.entry(kind).or_insert(0) += 1;
                return Ok(());
            }
        };
        sum.frames += 1;
        match Message::parse(&frame) {
            Ok(m) => {
                if let Message::Ident(u, i) = m {
                    let serials = sum.address_conflicts.entry(u.get()).or_default();
                    if !serials.contains(&i.serial) && serials.len() < 8 {
                        serials.push(i.serial);
                    }
                }
                let (def, unit) = classify(frame.id())?;
                let msg = match unit {
                    Some(u) => format!("{}_{u}", def.name),
                    None => def.name.to_string(),
                };
                *sum.decoded.entry(msg.clone()).or_insert(0) += 1;
                if !summary_only && !json {
                    let p = frame.payload();
                    let fields: Vec<String> = def
                        .signals
                        .iter()
                        .filter_map(|s| {
                            p.get(s).ok().map(|v| format!("{}={}{}", s.name, v, s.unit))
                        })
                        .collect();
                    // A reader that stops early (`| head`) ends the run quietly (main: broken pipe).
                    use std::io::Write as _;
                    writeln!(
                        std::io::stdout().lock(),
                        "{t:.6} {msg:<13} {}",
                        fields.join(" ")
                    )?;
                }
            }
            Err(e) => {
                match e.class() {
                    ErrorClass::Malformed => sum.malformed += 1,
                    ErrorClass::UnknownId => sum.unknown_id += 1,
                    ErrorClass::WrongLength => sum.wrong_length += 1,
                }
                // Keep the first few reasons; the counters hold the rest.
                if sum.errors.len() < 20 {
                    sum.errors.push(format!("line {n}: {e}"));
                }
            }
        }
        Ok(())
    })?;
    if let Some(e) = unparsed {
        if !ends_mid_line(path)? {
            return Err(e);
        }
        sum.truncated_last_line = true;
    }
    sum.address_conflicts.retain(|_, serials| serials.len() > 1);
    print_summary(&sum, json)
}

fn print_summary(sum: &DecodeSummary, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(&sum)?);
    } else {
        println!(
            "{} frames; refused: {} malformed, {} unknown id, {} wrong length",
            sum.frames, sum.malformed, sum.unknown_id, sum.wrong_length
        );
        let foreign: Vec<String> = sum
            .foreign
            .iter()
            .map(|(k, n)| format!("{n} {}", format!("{k:?}").to_lowercase()))
            .collect();
        if !foreign.is_empty() {
            println!("skipped (not ours): {}", foreign.join(", "));
        }
        if sum.truncated_last_line {
            println!("skipped: the last line, cut short");
        }
        for (unit, serials) in &sum.address_conflicts {
            println!(
                "  unit {unit}: {} batteries answer on one address (serials {serials:?}); give each its own unit address",
                serials.len()
            );
        }
        for (name, n) in &sum.decoded {
            println!("  {name:<13} {n}");
        }
        for e in &sum.errors {
            println!("  {e}");
        }
    }
    Ok(())
}
