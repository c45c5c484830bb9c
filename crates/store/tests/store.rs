//! The store's queries against SQLite always, and PostgreSQL when `MELV_TEST_POSTGRES` holds a URL.

mod common;
use common::stores;
use melv_store::*;

fn point(seq: i64, ts_ms: i64, grid_w: f64, battery_w: f64) -> PointRow {
    PointRow {
        seq,
        ts_ms,
        interval_s: 60.0,
        pv_w: 1200.0,
        load_w: 600.0 + grid_w + battery_w,
        grid_w,
        battery_w,
        soc: 0.5,
    }
}

async fn site(s: &Store) -> (User, Site) {
    let u = s
        .create_user("i@example.com", "Ina", Role::Installer, "hash", 1)
        .await
        .unwrap();
    let site = s
        .create_site(
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
        .unwrap();
    (u, site)
}

#[tokio::test]
async fn accounts_sessions_and_conflicts() {
    for s in stores().await {
        let (u, _) = site(&s).await;
        let again = s
            .create_user("i@example.com", "X", Role::Owner, "h", 3)
            .await;
        assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
        assert_eq!(
            s.user_by_email("i@example.com").await.unwrap(),
            Some(u.clone())
        );
        assert_eq!(
            s.user_by_id(u.id).await.unwrap().unwrap().role,
            Role::Installer
        );
        s.create_session("t", u.id, "api", 10, 100).await.unwrap();
        assert_eq!(s.session("t", 50).await.unwrap().unwrap().user, u);
        assert_eq!(s.session("t", 100).await.unwrap(), None, "expired");
        s.delete_session("t").await.unwrap();
        assert_eq!(s.session("t", 50).await.unwrap(), None);
        assert_eq!(s.count_users().await.unwrap(), 1);
    }
}

#[tokio::test]
async fn sites_devices_checks_settings_audit() {
    for s in stores().await {
        let (u, site) = site(&s).await;
        assert_eq!(s.sites(SiteFilter::Installer(u.id)).await.unwrap().len(), 1);
        assert_eq!(s.sites(SiteFilter::Owner(u.id)).await.unwrap().len(), 0);
        assert_eq!(s.sites(SiteFilter::All).await.unwrap().len(), 1);
        s.add_device(site.id, "GW1", DeviceKind::Gateway, Some("th"), 5)
            .await
            .unwrap();
        s.add_device(site.id, "B1", DeviceKind::Battery, None, 6)
            .await
            .unwrap();
        let dup = s
            .add_device(site.id, "B1", DeviceKind::Battery, None, 7)
            .await;
        assert!(matches!(dup, Err(StoreError::Conflict(_))));
        let kinds: Vec<_> = s
            .devices(site.id)
            .await
            .unwrap()
            .iter()
            .map(|d| d.kind)
            .collect();
        assert_eq!(kinds, [DeviceKind::Gateway, DeviceKind::Battery]);
        let c = s
            .record_check(site.id, u.id, 8, "{}", true, "ok")
            .await
            .unwrap();
        assert!(c.installable);
        s.activate_site(site.id, 9).await.unwrap();
        assert!(s.activate_site(site.id, 10).await.is_err(), "only once");
        assert_eq!(
            s.site(site.id).await.unwrap().unwrap().activated_ms,
            Some(9)
        );
        let v1 = s
            .save_settings(site.id, u.id, "{}", "{\"a\":1}", 11)
            .await
            .unwrap();
        let v2 = s
            .save_settings(site.id, u.id, "{\"a\":1}", "{\"a\":2}", 12)
            .await
            .unwrap();
        assert_eq!((v1.version, v2.version), (1, 2));
        assert_eq!(v2.delivery, Delivery::Pending);
        s.mark_delivered(site.id, 2, 13).await.unwrap();
        let acked = s.ack_settings(site.id, 2, true, None, 14).await.unwrap();
        assert_eq!(
            (acked.delivery, acked.delivered_ms),
            (Delivery::Acked, Some(13))
        );
        assert!(matches!(
            s.ack_settings(site.id, 9, true, None, 14).await,
            Err(StoreError::NotFound(_))
        ));
        let log = s.audit_log(site.id).await.unwrap();
        assert_eq!(log[0].old_json.as_deref(), Some("{\"a\":1}"));
        assert_eq!(log[0].user_email.as_deref(), Some("i@example.com"));
    }
}

#[tokio::test]
async fn ingest_is_idempotent_and_aggregates() {
    for s in stores().await {
        let (_, site) = site(&s).await;
        // 130 points one minute apart: three chunks, two 5-minute buckets' worth per 10 points.
        let points: Vec<_> = (0..130)
            .map(|i| {
                point(
                    i,
                    60_000 * (i + 1),
                    if i % 2 == 0 { 500.0 } else { -300.0 },
                    100.0,
                )
            })
            .collect();
        let events = vec![
            EventRow {
                seq: 1,
                ts_ms: 1000,
                device_serial: "B1".into(),
                code: 53,
                active: true,
            },
            EventRow {
                seq: 2,
                ts_ms: 2000,
                device_serial: "B1".into(),
                code: 63,
                active: true,
            },
            EventRow {
                seq: 3,
                ts_ms: 3000,
                device_serial: "B1".into(),
                code: 63,
                active: false,
            },
        ];
        let bat = BatteryRow {
            serial: "B1".into(),
            ts_ms: 5,
            soc: 0.4,
            power_w: 100.0,
            soc_led: "{}".into(),
            status_led: "dim".into(),
            lifecycle: "active".into(),
        };
        let c = s
            .ingest(site.id, "GW1", &points, std::slice::from_ref(&bat), &events)
            .await
            .unwrap();
        assert_eq!(
            (c.points_stored, c.points_duplicate, c.events_stored),
            (130, 0, 3)
        );
        let c = s
            .ingest(site.id, "GW1", &points[100..], &[], &events)
            .await
            .unwrap();
        assert_eq!(
            (c.points_stored, c.points_duplicate, c.events_duplicate),
            (0, 30, 3)
        );
        let alerts = s.active_alerts(site.id).await.unwrap();
        assert_eq!(alerts.iter().map(|a| a.code).collect::<Vec<_>>(), [53]);
        // An older battery report does not overwrite a newer one.
        let old = BatteryRow {
            ts_ms: 1,
            soc: 0.9,
            ..bat
        };
        s.ingest(site.id, "GW1", &[], &[old], &[]).await.unwrap();
        assert_eq!(s.battery_states(site.id).await.unwrap()[0].soc, 0.4);
        assert_eq!(s.last_seen(site.id).await.unwrap(), Some(130 * 60_000));
        let h = s.history(site.id, 3_600_000, 0, i64::MAX).await.unwrap();
        assert_eq!(h.iter().map(|b| b.points).collect::<Vec<_>>(), [59, 60, 11]);
        let total_pv: f64 = h.iter().map(|b| b.pv_wh).sum();
        assert!(
            (total_pv - 130.0 * 1200.0 / 60.0).abs() < 1e-6,
            "{total_pv}"
        );
        let import: f64 = h.iter().map(|b| b.import_wh).sum();
        let export: f64 = h.iter().map(|b| b.export_wh).sum();
        assert!((import - 65.0 * 500.0 / 60.0).abs() < 1e-6);
        assert!((export - 65.0 * 300.0 / 60.0).abs() < 1e-6);
        assert!((h[0].discharge_wh - 59.0 * 100.0 / 60.0).abs() < 1e-9);
        let five = s.history(site.id, 300_000, 0, 600_000).await.unwrap();
        assert_eq!(
            five.iter()
                .map(|b| (b.start_ms, b.points))
                .collect::<Vec<_>>(),
            [(0, 4), (300_000, 5)]
        );
        assert_eq!(s.events(site.id, 2).await.unwrap()[0].seq, 3);
        assert_eq!(s.latest_point(site.id).await.unwrap().unwrap().seq, 129);
    }
}
