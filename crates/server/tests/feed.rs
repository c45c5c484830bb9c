//! The gateways' message feed (`melv_server::feed`): gateway records as they arrive over MQTT, on
//! SQLite (and PostgreSQL when `MELV_TEST_POSTGRES` is set).

mod common;

use common::*;
use melv_server::feed::{Feed, FeedCounts, Message};
use melv_store::Role;
use serde_json::{json, Value};

const GW: &str = "gw-1";
/// Battery CAN serials as the gateway reports them (decimal in the cloud).
const B1: u32 = 3_665_876_194;
const B2: u32 = 12_345;

fn telemetry(gw: &str, seq: u64, t_utc_s: i64, soc: f64, batteries: &[u32]) -> Message {
    let bats: Vec<Value> = batteries
        .iter()
        .enumerate()
        .map(|(i, s)| {
            json!({"unit": i + 1, "serial": s, "soc": soc, "soh": 1.0, "power_w": 240.7, "alerts": [],
                   "lifecycle": "active", "soc_led": {"state": "solid_blue", "percent": 50},
                   "status_led": "dim", "min_temp_c": 20.0, "max_temp_c": 21.0,
                   "ac_charged_wh": 0.0, "ac_discharged_wh": 3.9})
        })
        .collect();
    let v = json!({
        "schema": "melv.gateway.v2", "gateway": gw, "seq": seq, "kind": "telemetry", "t_utc_s": t_utc_s,
        "interval_s": 60.0,
        "site": {"grid_w": 49.0, "pv_w": 0.0, "load_w": 289.7, "battery_w": 240.7, "soc": soc,
                 "status": "normal", "reason": "self_consumption_discharge", "mode": "self_consumption",
                 "settings_version": 0, "alerts": []},
        "counters": {"grid_import_wh": 5.6, "grid_export_wh": 0.0, "pv_wh": 0.0, "load_wh": 9.7,
                     "battery_charge_wh": 0.0, "battery_discharge_wh": 4.0},
        "batteries": bats});
    Message::new(
        format!("melv/v1/{gw}/telemetry"),
        serde_json::to_vec(&v).unwrap(),
    )
}

fn alert(seq: u64, t_utc_s: i64, serial: Option<u32>, code: u32, raised: bool) -> Message {
    let v = json!({
        "schema": "melv.gateway.v2", "gateway": GW, "seq": seq, "kind": "alert", "t_utc_s": t_utc_s,
        "unit": serial.map(|_| 1), "serial": serial, "code": code, "raised": raised,
        "issue": "whatever the manual says", "severity": "warning"});
    Message::new(
        format!("melv/v1/{GW}/alerts"),
        serde_json::to_vec(&v).unwrap(),
    )
}

const T0_S: i64 = T0 / 1000;

async fn world_with_site(store: melv_store::Store) -> (World, i64) {
    let w = World::new(store);
    let inst = w.account("inst@example.com", Role::Installer).await;
    let b1 = B1.to_string();
    let (id, _) = deployed_site(&w, &inst, "Feed", 1, "DE", &[b1.as_str()], GW).await;
    (w, id)
}

#[tokio::test]
async fn telemetry_is_stored_once_with_battery_leds() {
    for store in stores().await {
        let (w, site) = world_with_site(store).await;
        let feed = Feed::new(w.state.clone());
        let msgs: Vec<Message> = (1..=3)
            .map(|i| telemetry(GW, i, T0_S - 180 + 60 * i as i64, 0.5, &[B1]))
            .collect();
        let c = feed.ingest(&msgs).await.unwrap();
        assert_eq!(
            (c.messages, c.points_stored, c.points_duplicate, c.rejected),
            (3, 3, 0, 0)
        );
        // The broker delivers again (a lost PUBACK): nothing is stored twice.
        let c = feed.ingest(&msgs[1..]).await.unwrap();
        assert_eq!((c.points_stored, c.points_duplicate), (0, 2));
        let seqs = w.state.store.stored_seqs(GW).await.unwrap();
        assert_eq!(
            seqs,
            vec![
                ("point".to_string(), 1),
                ("point".to_string(), 2),
                ("point".to_string(), 3)
            ]
        );
        let p = w.state.store.latest_point(site).await.unwrap().unwrap();
        assert_eq!(p.ts_ms, T0);
        assert!((p.load_w - 289.7).abs() < 1e-9);
        let b = w.state.store.battery_states(site).await.unwrap();
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].serial, B1.to_string());
        assert_eq!(b[0].status_led, "dim");
        assert_eq!(b[0].lifecycle, "active");
        assert!(b[0].soc_led.contains("solid_blue"), "{}", b[0].soc_led);
        // The site is live: the API says Normal.
        let owner = w.account("admin@example.com", Role::Admin).await;
        let r = w
            .call("get", &format!("/api/sites/{site}"), Some(&owner), None)
            .await;
        assert_eq!(r.body["status"], "normal", "{}", r.text);
    }
}

#[tokio::test]
async fn backlog_behind_live_data_does_not_roll_state_back() {
    for store in stores().await {
        let (w, site) = world_with_site(store).await;
        let feed = Feed::new(w.state.clone());
        // Live record first (newest), then the backlog.
        feed.ingest(&[telemetry(GW, 10, T0_S, 0.8, &[B1])])
            .await
            .unwrap();
        feed.ingest(&[telemetry(GW, 2, T0_S - 3600, 0.2, &[B1])])
            .await
            .unwrap();
        let b = w.state.store.battery_states(site).await.unwrap();
        assert!(
            (b[0].soc - 0.8).abs() < 1e-9,
            "older report overwrote newer"
        );
        let p = w.state.store.latest_point(site).await.unwrap().unwrap();
        assert_eq!(p.seq, 10);
        // An alert raised and cleared, the clear delivered first (live), the raise later (backlog):
        // the alert is not active.
        let c = feed
            .ingest(&[alert(12, T0_S - 60, Some(B1), 53, false)])
            .await
            .unwrap();
        assert_eq!(c.events_stored, 1);
        feed.ingest(&[alert(11, T0_S - 120, Some(B1), 53, true)])
            .await
            .unwrap();
        assert!(w.state.store.active_alerts(site).await.unwrap().is_empty());
        // In order: raised then cleared, and a gateway alert raised and still active.
        feed.ingest(&[
            alert(13, T0_S - 50, Some(B1), 55, true),
            alert(14, T0_S - 40, Some(B1), 55, false),
            alert(15, T0_S - 30, None, 63, true),
        ])
        .await
        .unwrap();
        let active = w.state.store.active_alerts(site).await.unwrap();
        assert_eq!(active.len(), 1, "{active:?}");
        assert_eq!(active[0].device_serial, GW);
        assert_eq!(active[0].code, 63);
    }
}

#[tokio::test]
async fn what_cannot_be_stored_is_kept_with_its_reason() {
    for store in stores().await {
        let (w, site) = world_with_site(store).await;
        let feed = Feed::new(w.state.clone());
        let mut wrong_schema: Value =
            serde_json::from_slice(&telemetry(GW, 1, T0_S, 0.5, &[B1]).payload).unwrap();
        wrong_schema["schema"] = json!("melv.gateway.v9");
        let mut bad_soc: Value =
            serde_json::from_slice(&telemetry(GW, 2, T0_S, 0.5, &[B1]).payload).unwrap();
        bad_soc["site"]["soc"] = json!(1.7);
        let cases: Vec<(Message, &str)> = vec![
            (
                Message::new("melv/v1/gw-1/telemetry", b"{not json".to_vec()),
                "record envelope",
            ),
            (
                Message::new(
                    "melv/v1/gw-1/telemetry",
                    serde_json::to_vec(&wrong_schema).unwrap(),
                ),
                "schema \"melv.gateway.v9\"",
            ),
            (
                Message::new(
                    "melv/v1/gw-1/telemetry",
                    serde_json::to_vec(&bad_soc).unwrap(),
                ),
                "points[0].soc: 1.7",
            ),
            (
                telemetry("gw-2", 1, T0_S, 0.5, &[B1]),
                "\"gw-2\" is not a gateway of any site",
            ),
            (
                Message::new(
                    "melv/v1/gw-2/telemetry",
                    telemetry(GW, 3, T0_S, 0.5, &[B1]).payload,
                ),
                "gateway \"gw-1\" published on the topic of \"gw-2\"",
            ),
            (
                alert(4, T0_S, Some(B2), 53, true),
                "\"12345\" is not a device of this site",
            ),
            (alert(5, T0_S, Some(B1), 1, true), "1 is not an alert code"),
            (
                Message::new("melv/v1/gw-1/whatever", b"{}".to_vec()),
                "topic \"melv/v1/gw-1/whatever\"",
            ),
            (
                Message::new(
                    "melv/v1/gw-1/alerts",
                    telemetry(GW, 6, T0_S, 0.5, &[B1]).payload,
                ),
                "kind \"telemetry\" on the alert topic",
            ),
        ];
        let msgs: Vec<Message> = cases.iter().map(|c| c.0.clone()).collect();
        let c = feed.ingest(&msgs).await.unwrap();
        assert_eq!(c.rejected, cases.len() as u64, "{c:?}");
        assert_eq!(c.points_stored + c.events_stored, 0);
        let rejects = w.state.store.rejects(100).await.unwrap();
        assert_eq!(rejects.len(), cases.len());
        // Newest first: reverse to match the cases.
        for (r, (m, why)) in rejects.iter().rev().zip(&cases) {
            assert!(r.reason.contains(why), "{:?} lacks {why:?}", r.reason);
            assert_eq!(r.source, m.topic);
            assert_eq!(r.payload.as_bytes(), &m.payload[..]);
        }
        assert_eq!(rejects.last().unwrap().gateway_serial.as_deref(), Some(GW));
        assert_eq!(w.state.store.count_rejects().await.unwrap(), 9);
        // Operators see them over the API; an installer does not.
        let admin = w.account("admin@example.com", Role::Admin).await;
        let r = w
            .call("get", "/api/ingest/rejects", Some(&admin), None)
            .await;
        assert_eq!(r.body["total"], 9, "{}", r.text);
        assert_eq!(r.body["newest"].as_array().unwrap().len(), 9);
        assert!(r.body["newest"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("alert topic"));
        let inst = w.account("inst2@example.com", Role::Installer).await;
        let r = w
            .call("get", "/api/ingest/rejects", Some(&inst), None)
            .await;
        assert_eq!(r.status, axum::http::StatusCode::FORBIDDEN);
        assert!(w.state.store.latest_point(site).await.unwrap().is_none());
    }
}

#[tokio::test]
async fn a_battery_the_site_does_not_list_keeps_the_point() {
    for store in stores().await {
        let (w, site) = world_with_site(store).await;
        let feed = Feed::new(w.state.clone());
        let c = feed
            .ingest(&[telemetry(GW, 1, T0_S, 0.5, &[B1, B2])])
            .await
            .unwrap();
        assert_eq!(
            c,
            FeedCounts {
                messages: 1,
                points_stored: 1,
                batteries_unknown: 1,
                ..Default::default()
            }
        );
        let b = w.state.store.battery_states(site).await.unwrap();
        assert_eq!(b.len(), 1);
    }
}

#[tokio::test]
async fn settings_acks_reach_the_settings_version() {
    for store in stores().await {
        let (w, site) = world_with_site(store).await;
        let admin = w.account("admin@example.com", Role::Admin).await;
        let r = w
            .call(
                "get",
                &format!("/api/sites/{site}/settings"),
                Some(&admin),
                None,
            )
            .await;
        let mut s = r.body["settings"].clone();
        s["reserve_soc"] = json!(0.3);
        let r = w
            .call(
                "put",
                &format!("/api/sites/{site}/settings"),
                Some(&admin),
                Some(s.clone()),
            )
            .await;
        assert!(r.status.is_success(), "{}", r.text);
        let version = r.body["version"].as_i64().unwrap();
        let ack = |v: i64, ok: bool, reason: Option<&str>| {
            Message::new(
                format!("melv/v1/{GW}/settings/ack"),
                serde_json::to_vec(
                    &json!({"schema": "melv.gateway.v2", "gateway": GW, "version": v,
                    "accepted": ok, "reason": reason, "applied_version": if ok { v } else { 0 }}),
                )
                .unwrap(),
            )
        };
        let c = feed_of(&w)
            .ingest(&[ack(version, true, None)])
            .await
            .unwrap();
        assert_eq!(c.settings_acks, 1);
        let r = w
            .call(
                "get",
                &format!("/api/sites/{site}/settings"),
                Some(&admin),
                None,
            )
            .await;
        assert_eq!(r.body["delivery"], "acked", "{}", r.text);
        // A second version, refused by the gateway with its reason.
        s["reserve_soc"] = json!(0.35);
        let r = w
            .call(
                "put",
                &format!("/api/sites/{site}/settings"),
                Some(&admin),
                Some(s),
            )
            .await;
        let v2 = r.body["version"].as_i64().unwrap();
        feed_of(&w)
            .ingest(&[ack(v2, false, Some("reserve_soc: out of range"))])
            .await
            .unwrap();
        let r = w
            .call(
                "get",
                &format!("/api/sites/{site}/settings"),
                Some(&admin),
                None,
            )
            .await;
        assert_eq!(r.body["delivery"], "rejected", "{}", r.text);
        // An ack of a version that does not exist is kept as a reject.
        let c = feed_of(&w).ingest(&[ack(99, true, None)]).await.unwrap();
        assert_eq!((c.settings_acks, c.rejected), (0, 1));
    }
}

fn feed_of(w: &World) -> Feed {
    Feed::new(w.state.clone())
}

/// The end-to-end acknowledgement: each batch answers with the gateway's contiguous mark, a gap
/// holds it back (and shows as missing), a numbered record kept as a reject counts as committed, a
/// drop mark from the gateway steps over what will never come, and the site's uplink route and
/// dashboard show the numbers.
#[tokio::test]
async fn every_batch_answers_with_the_contiguous_mark() {
    for store in stores().await {
        let (w, site) = world_with_site(store).await;
        let feed = Feed::new(w.state.clone());
        let t = |seq: u64| telemetry(GW, seq, T0_S - 3600 + 60 * seq as i64, 0.5, &[B1]);
        let marks = |acks: &[melv_wire::UplinkAck]| {
            acks.iter()
                .map(|a| (a.gateway.clone(), a.stored_through, a.highest, a.missing))
                .collect::<Vec<_>>()
        };
        let (_, acks) = feed.ingest_marked(&[t(1), t(2), t(4)]).await.unwrap();
        assert_eq!(marks(&acks), [(GW.to_string(), 2, 4, 1)]);
        // Record 3 is sent again: the mark jumps over 4.
        let (_, acks) = feed.ingest_marked(&[t(3)]).await.unwrap();
        assert_eq!(marks(&acks), [(GW.to_string(), 4, 4, 0)]);
        // Record 5 cannot be data (SOC 1.5): a reject, committed; the mark moves over it.
        let bad = telemetry(GW, 5, T0_S - 3600 + 300, 1.5, &[B1]);
        let (c, acks) = feed.ingest_marked(&[bad, t(7)]).await.unwrap();
        assert_eq!(c.rejected, 1);
        assert_eq!(marks(&acks), [(GW.to_string(), 5, 7, 1)]);
        // The gateway's queue discarded 6 (its bound): record 8 says so; 6 is lost.
        let mut v: Value = serde_json::from_slice(&t(8).payload).unwrap();
        v["dropped_through"] = json!(6);
        let m8 = Message::new(t(8).topic, serde_json::to_vec(&v).unwrap());
        let (_, acks) = feed.ingest_marked(&[m8]).await.unwrap();
        assert_eq!(marks(&acks), [(GW.to_string(), 8, 8, 0)]);
        // A batch without numbered records of a gateway answers nothing for it.
        let (_, acks) = feed.ingest_marked(&[]).await.unwrap();
        assert!(acks.is_empty());
        let admin = w.account("admin@example.com", Role::Admin).await;
        let r = w
            .call(
                "get",
                &format!("/api/sites/{site}/uplink"),
                Some(&admin),
                None,
            )
            .await;
        let g = &r.body["gateways"][0];
        assert_eq!(g["gateway_serial"], GW, "{}", r.text);
        assert_eq!(
            (g["stored_through"].as_i64(), g["lost"].as_i64()),
            (Some(8), Some(1))
        );
        assert_eq!(g["missing"], 0, "{}", r.text);
    }
}
