//! Write the candump log of a simulated two-battery day through the codec (SimLink), for the
//! cantools interop test: `cargo run -p melv-can --example can_log -- OUT [--seconds 86400] [--step 10]`.
//! Battery 1's SOC follows a daily sine; battery 2's cable is cut from 12:00 to 13:00.
#![allow(
    clippy::disallowed_methods,
    clippy::disallowed_types,
    reason = "an example program: it writes a log file"
)]
use melv_can::demo::{demo_identity, demo_status};
use melv_can::messages::UnitIndex;
use melv_can::SimLink;
use melv_core::status::BatteryCommand;
use std::io::BufWriter;

fn main() {
    if let Err(e) = real_main() {
        eprintln!("can_log: error: {e}");
        std::process::exit(2);
    }
}

fn real_main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let out = args
        .next()
        .ok_or("usage: can_log OUT [--seconds S] [--step S]")?;
    let (mut seconds, mut step) = (86_400u32, 10u32);
    while let Some(a) = args.next() {
        let v: u32 = args.next().ok_or(format!("{a} needs a value"))?.parse()?;
        match a.as_str() {
            "--seconds" => seconds = v,
            "--step" => step = v,
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    let units = [UnitIndex::new(1)?, UnitIndex::new(2)?];
    let ids: Vec<_> = units.iter().map(|&u| demo_identity(u)).collect();
    let mut link = SimLink::new(&ids, 42)?;
    let epoch = 1_700_000_000.0;
    link.set_log(BufWriter::new(std::fs::File::create(&out)?), "can0", epoch);
    let cmds = [BatteryCommand::default(); 2];
    let mut t = 0;
    while t < seconds {
        let now = f64::from(t);
        link.set_cut(units[1], (43_200..46_800).contains(&t));
        let mut statuses: Vec<_> = units.iter().map(|&u| demo_status(u)).collect();
        statuses[0].soc = 0.5 + 0.4 * (now / 86_400.0 * std::f64::consts::TAU).sin();
        let unix_ms = ((epoch + now) * 1000.0) as u64;
        link.step(now, Some(unix_ms), &cmds, &[], &statuses)?;
        t += step;
    }
    let mut log = link.take_log().ok_or("log writer missing")?;
    log.flush()?;
    println!("wrote {} frames to {out}", log.frames);
    Ok(())
}
