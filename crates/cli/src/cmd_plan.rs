//! `melv plan`: the installer's plan for one site (manual 4 and appendix 1), via `melv_install::plan`.

use anyhow::{bail, Context, Result};
use melv_install::termination::{Endpoint, Resistor, Terminal};
use melv_install::{plan, Mount, Plan, PlanRequest};

#[derive(clap::Args)]
pub struct Args {
    /// Grid phases at the point of connection: 1 or 3.
    #[arg(long, allow_negative_numbers = true)]
    phases: i64,
    /// Number of batteries: 1-3 on single phase, 1-6 on three phase.
    #[arg(long, allow_negative_numbers = true)]
    batteries: i64,
    /// Measured L-N voltages, V: one value (single phase) or L1,L2,L3 (three phase).
    #[arg(long, value_name = "V[,V,V]", allow_hyphen_values = true)]
    grid_voltage: Option<String>,
    /// Mounting: floor or wall (both checklists when omitted).
    #[arg(long)]
    mount: Option<Mount>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

fn parse_voltages(text: &str) -> Result<Vec<f64>> {
    text.split(',')
        .enumerate()
        .map(|(i, v)| {
            v.trim().parse::<f64>().with_context(|| {
                format!(
                    "--grid-voltage: value {} {:?} is not a number of volts",
                    i + 1,
                    v.trim()
                )
            })
        })
        .collect()
}

pub fn run(args: Args) -> Result<()> {
    let req = PlanRequest {
        phases: args.phases,
        batteries: args.batteries,
        grid_voltages_v: match &args.grid_voltage {
            Some(t) => parse_voltages(t)?,
            None => Vec::new(),
        },
        mount: args.mount,
    };
    let p = plan(&req)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&p)?);
    } else {
        print!("{}", render(&p));
    }
    if !p.installable {
        bail!("installation refused: {}", p.refusals.join("; "));
    }
    Ok(())
}

fn end(e: &Endpoint) -> String {
    match e {
        Endpoint::Combiner => "combiner CAN COM terminal".to_string(),
        Endpoint::Battery { battery, terminal } => format!(
            "battery {battery} {}",
            match terminal {
                Terminal::C1 => "C1",
                Terminal::C2 => "C2",
            }
        ),
    }
}

fn action(r: Resistor) -> &'static str {
    match r {
        Resistor::Remove => "remove resistor",
        Resistor::Keep => "KEEP resistor (do not touch)",
    }
}

fn render(p: &Plan) -> String {
    let mut o = String::new();
    let phases = p.phases.count();
    o += &format!(
        "Installation plan: {phases}-phase, {} batter{}\n\n",
        p.batteries,
        if p.batteries == 1 { "y" } else { "ies" }
    );
    o += &format!("Power cable ({})\n", p.wire.source);
    o += &format!(
        "  cross-section  {} mm² copper\n  max. current   {} A{}\n  cable          {}\n",
        p.wire.cross_section_mm2,
        p.wire.max_current_a,
        if phases == 3 { " per line" } else { "" },
        p.wire.power_cable
    );
    o += &format!("CAN cable        {}\n", p.wire.can_cable);
    for n in &p.wire.notes {
        o += &format!("  note: {n}\n");
    }
    o += "\nCAN chain (manual 4.6)\n";
    for c in &p.can.cables {
        o += &format!(
            "  {:>4} m cable: {} -> {}\n",
            c.length_m,
            end(&c.from),
            end(&c.to)
        );
    }
    for t in &p.can.termination {
        o += &format!(
            "  battery {}: C1 {}; C2 {}\n",
            t.battery,
            action(t.c1),
            action(t.c2)
        );
    }
    o += &format!(
        "  bus terminated at battery {}; 3 m cables used {} of {}, 1.5 m cables used {} of {} supplied\n",
        p.can.terminated_at_battery, p.can.cables_3m.used, p.can.cables_3m.supplied, p.can.cables_1_5m.used, p.can.cables_1_5m.supplied
    );
    o += &format!(
        "  plug-in bridge: {}\n  {}\n",
        p.can.plug_in_bridge.instruction, p.can.knockouts
    );
    o += "\nGrid check (manual 4.1.1, 176-276 V L-N)\n";
    match &p.grid {
        Some(g) => {
            for ph in &g.phases {
                o += &format!(
                    "  {:<3} {:>6} V  {}\n",
                    ph.conductor,
                    ph.voltage_v,
                    if ph.pass {
                        "PASS".to_string()
                    } else {
                        format!("FAIL: {}", ph.reason)
                    }
                );
            }
        }
        None => o += "  not checked: pass --grid-voltage\n",
    }
    for m in &p.mounting {
        o += &format!("\nMounting: {} (manual 4.3)\n", m.mount);
        for i in &m.items {
            o += &format!("  [ ] {} ({})\n", i.text, i.section);
        }
        o += "  torques:\n";
        for t in &m.torques {
            let nm = if t.min_nm == t.max_nm {
                format!("{}", t.min_nm)
            } else {
                format!("{}-{}", t.min_nm, t.max_nm)
            };
            o += &format!("    {:>7} N·m  {} ({})\n", nm, t.what, t.section);
        }
    }
    o += "\nWiring and power-on (manual 4.4-4.11)\n";
    for i in &p.wiring {
        o += &format!("  [ ] {} ({})\n", i.text, i.section);
    }
    o += &format!(
        "\nInstallable: {}\n",
        if p.installable { "yes" } else { "NO" }
    );
    for r in &p.refusals {
        o += &format!("  refused: {r}\n");
    }
    for r in &p.pending {
        o += &format!("  pending: {r}\n");
    }
    o
}
