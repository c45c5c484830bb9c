//! A socketcand server with demo batteries on it, for python-can / cantools interop tests:
//! `cargo run -p melv-can --example can_serve -- [--addr 127.0.0.1:0] [--units 1,2] [--seconds 30]`.
//! Prints `listening on ADDR` once the port is open.
use melv_can::demo::{run, DemoBatteries};
use melv_can::messages::UnitIndex;
use melv_can::transport::socketcand::SocketcandServer;
use std::io::Write;
use std::time::Duration;

fn main() {
    if let Err(e) = real_main() {
        eprintln!("can_serve: error: {e}");
        std::process::exit(2);
    }
}

fn real_main() -> Result<(), String> {
    let mut addr = "127.0.0.1:0".to_string();
    let mut units = vec![1u8, 2];
    let mut seconds = 30.0f64;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--addr" => addr = val()?,
            "--units" => {
                units = val()?
                    .split(',')
                    .map(|u| u.trim().parse().map_err(|_| format!("bad unit {u:?}")))
                    .collect::<Result<_, _>>()?
            }
            "--seconds" => seconds = val()?.parse().map_err(|_| "bad --seconds".to_string())?,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    let units: Vec<UnitIndex> = units
        .into_iter()
        .map(UnitIndex::new)
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    let mut server = SocketcandServer::bind(&addr, "can0").map_err(|e| e.to_string())?;
    println!("listening on {}", server.local_addr());
    std::io::stdout().flush().map_err(|e| e.to_string())?;
    let mut demo = DemoBatteries::new(&units);
    let s = run::<_, std::io::Sink>(
        &mut server,
        &mut demo,
        Duration::from_secs_f64(seconds),
        None,
    )
    .map_err(|e| e.to_string())?;
    println!("done: sent {} frames, received {}", s.sent, s.received);
    Ok(())
}
