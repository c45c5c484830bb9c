//! Telemetry ingest rate of the store: `cargo run -p melv-store --example ingest_bench -- URL [BATCHES]`
//! (URL: sqlite://PATH or postgres://...). Ingests BATCHES batches of 1,000 points (one gateway's
//! 1,000 minutes) through `Store::ingest`, one transaction each, and prints points per second.

use melv_store::{NewSite, PointRow, Role, Store};
use std::time::Instant;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let url = args.get(1).ok_or("usage: ingest_bench URL [BATCHES]")?;
    let batches: i64 = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(50);
    // PostgreSQL: a scratch database of its own, so the benchmark never writes into the given one.
    let url = if url.starts_with("postgres") {
        melv_store::scratch_postgres(url, "melv_bench").await?
    } else {
        url.clone()
    };
    let store = Store::open(&url).await?;
    let stamp = std::process::id() as i64;
    let u = store
        .create_user(
            &format!("bench{stamp}@example.com"),
            "bench",
            Role::Installer,
            "x",
            0,
        )
        .await?;
    let site = store
        .create_site(
            &NewSite {
                name: "bench".into(),
                installer_id: u.id,
                phases: 3,
                country: "DE".into(),
                timezone: "UTC".into(),
            },
            0,
        )
        .await?;
    let gw = format!("BENCH{stamp}");
    let start = Instant::now();
    let mut stored = 0;
    for b in 0..batches {
        let points: Vec<PointRow> = (0..1000)
            .map(|i| {
                let seq = b * 1000 + i;
                PointRow {
                    seq,
                    ts_ms: 1_800_000_000_000 + seq * 60_000,
                    interval_s: 60.0,
                    pv_w: 2000.0,
                    load_w: 900.0,
                    grid_w: -600.0,
                    battery_w: -500.0,
                    soc: 0.5,
                }
            })
            .collect();
        stored += store
            .ingest(site.id, &gw, &points, &[], &[])
            .await?
            .points_stored;
    }
    let s = start.elapsed().as_secs_f64();
    println!(
        "{:?}: {stored} points in {s:.2} s = {:.0} points/s",
        store.backend(),
        stored as f64 / s
    );
    Ok(())
}
