//! `melv storage`: recharge, inspection and discard dates of a stored battery (manual section 3), via
//! `melv_install::storage_plan`.

use anyhow::{bail, Context, Result};
use melv_install::{
    parse_log, storage_plan, DueAction, History, NaiveDate, Status, StoragePlan, StorageRequest,
};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// Storage temperature, °C (with --since).
    #[arg(
        long,
        allow_negative_numbers = true,
        requires = "since",
        conflicts_with = "log"
    )]
    temp_c: Option<f64>,
    /// Start of the interval (last recharge, or start of storage), YYYY-MM-DD (with --temp-c).
    #[arg(long, requires = "temp_c")]
    since: Option<String>,
    /// Temperature log, CSV `date,temp_c` with one reading per date in increasing order.
    #[arg(long, value_name = "TEMPS.csv")]
    log: Option<PathBuf>,
    /// Recharges already done during storage (at most 3, manual 3).
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    recharges: i64,
    /// Date the battery entered storage (for inspections and the two-year re-test), YYYY-MM-DD.
    #[arg(long)]
    stored_since: Option<String>,
    /// Evaluate the status on this date, YYYY-MM-DD (default: today, UTC; for a log: the last reading).
    #[arg(long)]
    today: Option<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

fn date(flag: &str, text: &str) -> Result<NaiveDate> {
    NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
        .with_context(|| format!("--{flag}: {text:?} is not a date YYYY-MM-DD"))
}

pub fn run(args: Args) -> Result<()> {
    let history = match (args.temp_c, &args.since, &args.log) {
        (Some(temp_c), Some(since), None) => History::Constant {
            temp_c,
            since: date("since", since)?,
        },
        (None, None, Some(path)) => {
            let text = crate::input::read_text(
                path,
                crate::input::MAX_TEMPLOG_BYTES,
                "a temperature log",
            )?;
            let readings = parse_log(&text).with_context(|| format!("{}", path.display()))?;
            History::Log { readings }
        }
        _ => bail!("give either --temp-c T --since YYYY-MM-DD, or --log TEMPS.csv"),
    };
    let as_of = match (&args.today, &history) {
        (Some(t), _) => Some(date("today", t)?),
        (None, History::Constant { .. }) => Some(melv_install::chrono::Utc::now().date_naive()),
        (None, History::Log { .. }) => None,
    };
    let req = StorageRequest {
        history,
        recharges_done: args.recharges,
        stored_since: args
            .stored_since
            .as_deref()
            .map(|s| date("stored-since", s))
            .transpose()?,
        as_of,
    };
    let p = storage_plan(&req)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&p)?);
    } else {
        print!("{}", render(&p));
    }
    Ok(())
}

fn pct(soc: f64) -> String {
    format!("{:.1} %", soc * 100.0)
}

fn render(p: &StoragePlan) -> String {
    let mut o = String::new();
    o += &format!(
        "Storage plan (manual 3), interval from {}, in storage since {}\n\n",
        p.interval_start, p.stored_since
    );
    o += "Temperature bands used until the due date:\n";
    for u in &p.band_usage {
        o += &format!(
            "  {:>4} < t <= {:<3} °C ({:>2} months = {} days): {:>4} days, {:.1} % of the interval\n",
            u.band.above_c, u.band.up_to_c, u.band.months, u.allowance_days, u.days, u.fraction * 100.0
        );
    }
    o += &format!("  rule: {}\n\n", p.rule);
    match &p.action_at_due {
        DueAction::Recharge {
            target_soc,
            number,
            max,
        } => {
            o += &format!(
                "Recharge due:   {} (to {} SOC; recharge {number} of at most {max})\n",
                p.recharge_due,
                pct(*target_soc)
            )
        }
        DueAction::Discard { reason } => {
            o += &format!("Storage time ends: {}: {reason}\n", p.recharge_due)
        }
    }
    let list: Vec<String> = p.inspections.iter().map(|d| d.to_string()).collect();
    o += &format!(
        "Inspections:    every 3 months: {}\n",
        if list.is_empty() {
            "none in this interval".into()
        } else {
            list.join(", ")
        }
    );
    o += &format!("Re-test due:    {} (two years in storage: qualified personnel inspect and test before use)\n", p.retest_due);
    if let (Some(a), Some(s)) = (p.as_of, &p.status) {
        let s = match s {
            Status::WithinStorageTime { days_left } => format!("within storage time, {days_left} days left"),
            Status::RechargeDue { days_overdue } => format!("RECHARGE DUE ({days_overdue} days past the storage time): recharge to 30 % SOC as soon as possible"),
            Status::DiscardRecommended { days_overdue } => format!("DISCARD RECOMMENDED ({days_overdue} days past the storage time, no recharge left)"),
        };
        o += &format!(
            "\nOn {a}: {s}; {:.1} % of the interval used",
            p.consumed_fraction.unwrap_or(0.0) * 100.0
        );
        if let Some(n) = p.next_inspection {
            o += &format!("; next inspection {n}");
        }
        o += "\n";
    }
    for f in &p.flags {
        let at = f.line.map(|l| format!("line {l}, ")).unwrap_or_default();
        o += &format!("FLAG ({at}{}): {}\n", f.date, f.reason);
    }
    for n in &p.notices {
        o += &format!("NOTICE: {n}\n");
    }
    let t = &p.twin;
    o += &format!(
        "\nTwin cross-check ({}): from {} SOC, expected {} on the due date (floor {}): {}\n",
        t.model,
        pct(t.soc_start),
        pct(t.estimated_soc_at_due),
        pct(t.floor_soc),
        if t.ok { "ok" } else { "BELOW FLOOR" }
    );
    for b in &t.bands {
        o += &format!(
            "  {:>2} months at {:>4} °C ({} days, {:.3} %/day): {} -> {} {}\n",
            b.band.months,
            b.temp_c,
            b.days,
            b.self_discharge_per_day * 100.0,
            pct(b.soc_start),
            pct(b.soc_end),
            if b.ok { "ok" } else { "BELOW FLOOR" }
        );
    }
    o
}
