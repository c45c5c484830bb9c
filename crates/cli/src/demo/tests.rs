//! The demo's bootstrap and its site-to-cloud path on a real (SQLite) store, without HTTP.

use super::*;
use melv_server::auth::Principal;
use melv_server::{service, ManualClock};
use melv_store::{DeviceKind, Role};
use std::sync::atomic::{AtomicU32, Ordering};

/// 2026-11-25 12:00:00 UTC.
const NOON_MS: i64 = 1_795_608_000_000;

fn scenario() -> melv_sim::scenario::Scenario {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/self-consumption.toml");
    melv_sim::scenario::Scenario::load(&path, Default::default()).expect("example site file")
}

/// A store in a directory of its own, removed with the guard.
async fn store() -> (Store, TempDir) {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = TempDir::new().unwrap();
    let url = format!(
        "sqlite://{}",
        dir.0
            .join(format!("t{}.db", N.fetch_add(1, Ordering::SeqCst)))
            .display()
    );
    (Store::open(&url).await.unwrap(), dir)
}

fn state(store: &Store) -> (AppState, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::default());
    clock.set(NOON_MS);
    (AppState::new(store.clone(), clock.clone(), 300), clock)
}

async fn sign_in(state: &AppState, a: &bootstrap::Account) -> Principal {
    let (user, token) = service::login(state, a.email, a.password, "api")
        .await
        .unwrap_or_else(|e| panic!("{}: {}", a.email, e.message));
    assert_eq!(user.role, a.role);
    Principal {
        user,
        token_hash: melv_server::auth::token_hash(&token),
    }
}

fn gateway_at(ms: i64, next_seq: u64) -> gateway::DemoGateway {
    gateway::DemoGateway::new(
        scenario(),
        GATEWAY_ID,
        ms as f64 / 1000.0,
        HISTORY_CYCLE_S,
        next_seq,
    )
    .unwrap()
}

#[tokio::test]
async fn bootstrap_deploys_the_site_through_the_cloud_rules() {
    let (store, _dir) = store().await;
    let (state, _) = state(&store);
    let gw = gateway_at(NOON_MS, 1);
    let sc = scenario();
    let site = bootstrap::ensure(&state, &sc, GATEWAY_ID, &gw.battery_serials())
        .await
        .unwrap();
    assert!(site.created);
    assert_eq!(
        site.name,
        "Demo: Greensboro NC: one MS-7K-U, self-consumption"
    );
    let owner = sign_in(&state, &bootstrap::OWNER).await;
    let installer = sign_in(&state, &bootstrap::INSTALLER).await;
    sign_in(&state, &bootstrap::ADMIN).await;

    let s = store.site(site.site_id).await.unwrap().unwrap();
    assert_eq!(s.activated_ms, Some(NOON_MS), "activated");
    assert_eq!(s.owner_id, Some(owner.user.id), "handed over to the owner");
    assert_eq!(
        s.installer_id, installer.user.id,
        "deployed by the installer"
    );
    assert_eq!(
        (s.phases, s.country.as_str(), s.timezone.as_str()),
        (1, "generic", "America/New_York")
    );
    let mut devices: Vec<(DeviceKind, String)> = store
        .devices(s.id)
        .await
        .unwrap()
        .into_iter()
        .map(|d| (d.kind, d.serial))
        .collect();
    devices.sort_by(|a, b| a.1.cmp(&b.1));
    let mut want = vec![(DeviceKind::Gateway, GATEWAY_ID.to_string())];
    want.extend(
        gw.battery_serials()
            .into_iter()
            .map(|b| (DeviceKind::Battery, b)),
    );
    want.sort_by(|a, b| a.1.cmp(&b.1));
    assert_eq!(devices, want);
    let checks = store.checks(s.id).await.unwrap();
    assert_eq!(checks.len(), 1);
    assert!(checks[0].installable, "{}", checks[0].summary);
    // The site file's settings are version 1, waiting for the gateway.
    let v = store.latest_settings(s.id).await.unwrap().unwrap();
    assert_eq!((v.version, v.delivery), (1, Delivery::Pending));
    let saved: melv_ems::Settings = serde_json::from_str(&v.settings_json).unwrap();
    assert_eq!(saved, sc.settings);
    // The owner sees exactly this site; the installer too.
    for who in [&owner, &installer] {
        let sites = store.sites(service::filter_for(who)).await.unwrap();
        assert_eq!(sites.iter().map(|s| s.id).collect::<Vec<_>>(), [s.id]);
    }

    // A second start finds it and makes nothing.
    let again = bootstrap::ensure(&state, &sc, GATEWAY_ID, &gw.battery_serials())
        .await
        .unwrap();
    assert_eq!((again.site_id, again.created), (site.site_id, false));
    assert_eq!(store.count_users().await.unwrap(), 3);
    // A site file with other batteries does not fit this database.
    let e = bootstrap::ensure(&state, &sc, GATEWAY_ID, &["12345".to_string()])
        .await
        .unwrap_err();
    assert!(e.to_string().contains("made with another --site"), "{e}");
}

#[tokio::test]
async fn a_database_that_is_not_a_demo_database_is_refused() {
    let (store, _dir) = store().await;
    let (state, _) = state(&store);
    let hash = melv_server::auth::hash_password("someone's password").unwrap();
    store
        .create_user("ops@example.net", "Ops", Role::Admin, &hash, NOON_MS)
        .await
        .unwrap();
    let gw = gateway_at(NOON_MS, 1);
    let e = bootstrap::ensure(&state, &scenario(), GATEWAY_ID, &gw.battery_serials())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("not a demo database"), "{e}");
    assert_eq!(store.count_users().await.unwrap(), 1, "nothing was added");
}

/// Every `(kind, seq)` the cloud holds for the demo gateway is 1..=n, each once.
async fn assert_gapless(store: &Store) -> u64 {
    let seqs: Vec<i64> = store
        .stored_seqs(GATEWAY_ID)
        .await
        .unwrap()
        .into_iter()
        .map(|(_, s)| s)
        .collect();
    let want: Vec<i64> = (1..=seqs.len() as i64).collect();
    assert_eq!(seqs, want);
    seqs.len() as u64
}

/// Part of [`the_site_reaches_the_cloud_and_answers_settings_and_a_restart_goes_on`]: two hours of
/// history stored gapless, the site Normal, hourly buckets, Offline once the clock moves on.
async fn two_hours_of_history(
    state: &AppState,
    clock: &ManualClock,
    store: &Store,
    site: &bootstrap::DemoSite,
    gw: &mut gateway::DemoGateway,
    feed: &Feed,
    out: &mut Outbox,
) {
    // Two hours of history.
    let p = gw.run_until(NOON_MS as f64 / 1000.0, u64::MAX).unwrap();
    assert_eq!(p.cycles, 120);
    out.pending.extend(p.messages);
    out.deliver(feed).await.unwrap();
    assert!(out.pending.is_empty());
    assert_eq!(out.totals.points_stored, 120);
    assert_eq!((out.totals.rejected, out.totals.batteries_unknown), (0, 0));
    assert_eq!(store.count_rejects().await.unwrap(), 0);
    let n = assert_gapless(store).await;
    assert_eq!(n, gw.next_seq() - 1);

    let s = store.site(site.site_id).await.unwrap().unwrap();
    let view = service::site_view(state, s.clone()).await.unwrap();
    assert_eq!(view.status, melv_core::SiteStatus::Normal);
    assert_eq!(view.last_seen_ms, Some(NOON_MS));
    assert_eq!(
        view.batteries
            .iter()
            .map(|b| b.serial.clone())
            .collect::<Vec<_>>(),
        gw.battery_serials()
    );
    let hours = service::history(state, &s, service::Resolution::Hour, None, None)
        .await
        .unwrap();
    // Points are stamped with their interval's end: 10:01..=12:00 fall into three UTC hours.
    assert_eq!(hours.len(), 3);
    assert_eq!(hours.iter().map(|b| b.points).sum::<i64>(), 120);
    // The cloud's clock moves on without telemetry: Offline after its threshold.
    clock.set(NOON_MS + 301_000);
    let view = service::site_view(state, s.clone()).await.unwrap();
    assert_eq!(view.status, melv_core::SiteStatus::Offline);
    clock.set(NOON_MS);
}

/// Part of the same test: version 1 (the site file's) and then the owner's TOU settings are
/// answered and acknowledged; returns the TOU settings in force.
async fn settings_are_answered(
    state: &AppState,
    store: &Store,
    site: &bootstrap::DemoSite,
    gw: &mut gateway::DemoGateway,
    feed: &Feed,
    out: &mut Outbox,
) -> melv_ems::Settings {
    // Version 1 (the site file's) is answered and acknowledged; then nothing is left to answer.
    let ack = poll_settings(state, site.site_id, gw)
        .await
        .unwrap()
        .expect("v1 answered");
    out.pending.push(ack);
    out.deliver(feed).await.unwrap();
    let v = store.latest_settings(site.site_id).await.unwrap().unwrap();
    assert_eq!((v.version, v.delivery), (1, Delivery::Acked));
    assert_eq!(v.acked_ms, Some(NOON_MS));
    assert!(poll_settings(state, site.site_id, gw)
        .await
        .unwrap()
        .is_none());

    // The owner saves TOU with one charging period all day: the gateway applies it.
    let owner = sign_in(state, &bootstrap::OWNER).await;
    let tou: melv_ems::Settings = serde_json::from_str(
        r#"{"mode": "time_of_use",
            "tou": {"weekday": [{"start": "00:00", "end": "24:00", "kind": "charge"}],
                    "weekend": [{"start": "00:00", "end": "24:00", "kind": "charge"}]}}"#,
    )
    .unwrap();
    service::save_settings(state, &owner, site.site_id, &tou)
        .await
        .unwrap();
    let ack = poll_settings(state, site.site_id, gw)
        .await
        .unwrap()
        .expect("v2 answered");
    out.pending.push(ack);
    out.deliver(feed).await.unwrap();
    let v = store.latest_settings(site.site_id).await.unwrap().unwrap();
    assert_eq!((v.version, v.delivery), (2, Delivery::Acked));
    assert_eq!(gw.settings_version(), 2);
    assert_eq!(gw.site().settings(), &tou);
    assert_eq!(out.totals.settings_acks, 2);

    tou
}

#[tokio::test]
async fn the_site_reaches_the_cloud_and_answers_settings_and_a_restart_goes_on() {
    let (store, _dir) = store().await;
    let (state, clock) = state(&store);
    let start = NOON_MS - 2 * 3_600_000;
    let mut gw = gateway_at(start, 1);
    let site = bootstrap::ensure(&state, &scenario(), GATEWAY_ID, &gw.battery_serials())
        .await
        .unwrap();
    let feed = Feed::new(state.clone());
    let mut out = Outbox::new();

    two_hours_of_history(&state, &clock, &store, &site, &mut gw, &feed, &mut out).await;
    let tou = settings_are_answered(&state, &store, &site, &mut gw, &feed, &mut out).await;
    let s = store.site(site.site_id).await.unwrap().unwrap();

    // A restart on this database: it goes on after the newest point with the next number, and
    // restores the settings in force.
    let r = resume(&store).await.unwrap();
    assert_eq!(
        r,
        Resume {
            last_seen_ms: Some(NOON_MS),
            next_seq: gw.next_seq()
        }
    );
    let from = clock::history_from_ms(NOON_MS + 3_600_000, r.last_seen_ms, 1.0);
    assert_eq!(from, NOON_MS, "only the gap is filled");
    let mut gw2 = gateway_at(from, r.next_seq);
    let v = store
        .settings_versions(site.site_id)
        .await
        .unwrap()
        .into_iter()
        .find(|v| v.delivery == Delivery::Acked)
        .unwrap();
    gw2.restore_settings(v.version, &v.settings_json).unwrap();
    assert_eq!(gw2.site().settings(), &tou);
    let p = gw2
        .run_until((NOON_MS + 3_600_000) as f64 / 1000.0, u64::MAX)
        .unwrap();
    out.pending.extend(p.messages);
    // The cloud's clock has moved on with the gap: points dated more than the allowed skew ahead of
    // it are refused (ingest::MAX_FUTURE_SKEW_MS).
    clock.set(NOON_MS + 3_600_000);
    out.deliver(&feed).await.unwrap();
    assert_eq!(out.totals.points_duplicate, 0);
    assert_eq!(out.totals.points_stored, 180);
    assert_eq!(assert_gapless(&store).await, gw2.next_seq() - 1);
    // In TOU with a charging period the battery does not discharge (manual 5.1, TOU mode).
    let hour = service::history(
        &state,
        &s,
        service::Resolution::Hour,
        // After the first run's last point (stamped NOON_MS).
        Some(NOON_MS + 1),
        Some(NOON_MS + 3_600_000 + 1),
    )
    .await
    .unwrap();
    assert_eq!(hour.iter().map(|b| b.points).sum::<i64>(), 60);
    assert_eq!(
        hour.iter().map(|b| b.discharge_wh).sum::<f64>(),
        0.0,
        "{hour:?}"
    );
    assert!(
        hour.iter().map(|b| b.charge_wh).sum::<f64>() > 1000.0,
        "{hour:?}"
    );
}

#[test]
fn database_passwords_are_not_printed() {
    for (url, shown) in [
        (
            "postgres://melv:s3cret@db.example/melv",
            "postgres://melv:***@db.example/melv",
        ),
        (
            "postgres://melv@db.example/melv",
            "postgres://melv@db.example/melv",
        ),
        ("postgres://a:b:c@h/d", "postgres://a:***@h/d"),
        ("postgresql://u:p@h/d", "postgresql://u:***@h/d"),
        ("sqlite:///tmp/a:b@c/demo.db", "sqlite:///tmp/a:b@c/demo.db"),
        ("sqlite://melv-demo.db", "sqlite://melv-demo.db"),
        ("nonsense", "nonsense"),
    ] {
        assert_eq!(redact_password(url), shown, "{url}");
    }
}
