//! `melv alerts [CODE] [--json]`: the alert catalogue of manual 6.3.

use anyhow::{Context, Result};
use melv_core::alerts::{AlertCode, AlertInfo, CATALOGUE};
use serde::Serialize;

#[derive(clap::Args)]
pub struct Args {
    /// One alert code to show in full (e.g. 53). Without it, all codes are listed.
    code: Option<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Catalogue<'a> {
    count: usize,
    alerts: Vec<&'a AlertInfo>,
}

pub fn run(args: Args) -> Result<()> {
    match args.code {
        Some(text) => {
            let number: u32 = text
                .trim()
                .parse()
                .with_context(|| format!("alert code {text:?} is not a number"))?;
            let info = AlertCode::new(number)?.info();
            if args.json {
                println!("{}", serde_json::to_string_pretty(info)?);
            } else {
                print!("{}", render_one(info));
            }
        }
        None => {
            if args.json {
                let all = Catalogue {
                    count: CATALOGUE.len(),
                    alerts: CATALOGUE.iter().collect(),
                };
                println!("{}", serde_json::to_string_pretty(&all)?);
            } else {
                println!(
                    "{:>4}  {:<9} {:<11} {:<10} ISSUE",
                    "CODE", "SEVERITY", "LATCH", "WHO ACTS"
                );
                for a in CATALOGUE.iter() {
                    println!(
                        "{:>4}  {:<9} {:<11} {:<10} {}",
                        a.code.get(),
                        json_name(&a.severity),
                        json_name(&a.latch),
                        json_name(&a.actor),
                        a.issue
                    );
                }
                println!(
                    "\n{} codes (manual 6.3). `melv alerts CODE` shows causes and solution steps.",
                    CATALOGUE.len()
                );
            }
        }
    }
    Ok(())
}

/// The serde name of a unit enum, so text and JSON use the same words.
fn json_name<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn render_one(a: &AlertInfo) -> String {
    let mut out = format!(
        "Alert {}: {}\nSeverity: {}   Clears: {}   Who acts: {}   Detected by: {}\n",
        a.code.get(),
        a.issue,
        json_name(&a.severity),
        json_name(&a.latch),
        json_name(&a.actor),
        json_name(&a.source)
    );
    for g in a.groups {
        out.push_str("\nCause:\n");
        for (i, c) in g.causes.iter().enumerate() {
            out.push_str(&format!("  {}. {}\n", i + 1, c));
        }
        out.push_str("Solution:\n");
        for (i, s) in g.solutions.iter().enumerate() {
            out.push_str(&format!("  {}. {}\n", i + 1, s));
        }
    }
    out
}
