//! The uplink mark (`Store::advance_uplink`): contiguity over points, events and rejects, gaps,
//! records lost at the gateway, and a mark that only moves forward. SQLite always, PostgreSQL when
//! `MELV_TEST_POSTGRES` holds a URL.

mod common;
use common::stores;
use melv_store::*;

fn point(seq: i64) -> PointRow {
    PointRow {
        seq,
        ts_ms: seq * 60_000,
        interval_s: 60.0,
        pv_w: 0.0,
        load_w: 100.0,
        grid_w: 100.0,
        battery_w: 0.0,
        soc: 0.5,
    }
}

fn event(seq: i64) -> EventRow {
    EventRow {
        seq,
        ts_ms: seq * 60_000,
        device_serial: "GW1".into(),
        code: 63,
        active: true,
    }
}

async fn site(s: &Store) -> i64 {
    let u = s
        .create_user("i@example.com", "Ina", Role::Installer, "hash", 1)
        .await
        .unwrap();
    s.create_site(
        &NewSite {
            name: "Home".into(),
            installer_id: u.id,
            phases: 1,
            country: "DE".into(),
            timezone: "Europe/Berlin".into(),
        },
        2,
    )
    .await
    .unwrap()
    .id
}

async fn points(s: &Store, site: i64, seqs: &[i64]) {
    let p: Vec<PointRow> = seqs.iter().map(|&q| point(q)).collect();
    s.ingest(site, "GW1", &p, &[], &[]).await.unwrap();
}

/// (stored_through, highest, missing, lost)
fn marks(r: &UplinkRow) -> (i64, i64, i64, i64) {
    (r.stored_through, r.highest, r.missing, r.lost)
}

#[tokio::test]
async fn the_mark_follows_what_is_held_and_steps_over_what_the_gateway_dropped() {
    for s in stores().await {
        let site = site(&s).await;
        assert_eq!(s.uplink("GW1").await.unwrap(), None);
        points(&s, site, &[1, 2, 3, 4, 5]).await;
        s.ingest(site, "GW1", &[], &[], &[event(7)]).await.unwrap();
        let r = s.advance_uplink("GW1", 0, 10).await.unwrap();
        assert_eq!(marks(&r), (5, 7, 1, 0));
        assert_eq!(r.complete_to_ms, Some(5 * 60_000));
        assert_eq!(r.newest_ms, Some(7 * 60_000));
        assert_eq!(r.backlog_age_s(), 120.0);
        // Record 6 could not be data: kept as a reject, it counts as committed.
        s.reject(&RejectRow {
            received_ms: 11,
            source: "melv/v1/GW1/telemetry".into(),
            gateway_serial: Some("GW1".into()),
            seq: Some(6),
            reason: "soc: out of range".into(),
            payload: "{}".into(),
        })
        .await
        .unwrap();
        points(&s, site, &[9, 10]).await;
        let r = s.advance_uplink("GW1", 0, 12).await.unwrap();
        assert_eq!(marks(&r), (7, 10, 1, 0));
        assert_eq!(r.updated_ms, 12);
        // The gateway's queue discarded everything up to 8: 8 is lost, and the mark moves on.
        let r = s.advance_uplink("GW1", 8, 13).await.unwrap();
        assert_eq!(marks(&r), (10, 10, 0, 1));
        assert_eq!(r.backlog_age_s(), 0.0);
        // Up to 12 discarded, none of 11 and 12 held: two more lost. A repeat changes nothing.
        let r = s.advance_uplink("GW1", 12, 14).await.unwrap();
        assert_eq!(marks(&r), (12, 12, 0, 3));
        let r = s.advance_uplink("GW1", 12, 15).await.unwrap();
        assert_eq!(marks(&r), (12, 12, 0, 3));
        // Another gateway's mark is its own.
        assert_eq!(s.uplink("GW2").await.unwrap(), None);
    }
}

#[tokio::test]
async fn a_long_contiguous_run_is_walked_in_pieces() {
    for s in stores().await {
        let site = site(&s).await;
        let all: Vec<i64> = (1..=12_001).filter(|q| *q != 11_000).collect();
        for chunk in all.chunks(2000) {
            points(&s, site, chunk).await;
        }
        let r = s.advance_uplink("GW1", 0, 1).await.unwrap();
        assert_eq!(marks(&r), (10_999, 12_001, 1, 0));
        points(&s, site, &[11_000]).await;
        let r = s.advance_uplink("GW1", 0, 2).await.unwrap();
        assert_eq!(marks(&r), (12_001, 12_001, 0, 0));
    }
}
