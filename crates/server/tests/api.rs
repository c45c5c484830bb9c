//! End-to-end API flows on SQLite (and PostgreSQL when `MELV_TEST_POSTGRES` is set): deployment and
//! activation, ingest and status, alerts with remediation, settings versions and acks, history, and
//! bad input.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::*;
use melv_store::Role;
use serde_json::json;

#[tokio::test]
async fn deploy_ingest_status_alerts_settings() {
    for store in stores().await {
        let w = World::new(store);
        let inst = w.account("inst@example.com", Role::Installer).await;
        let owner = w.account("own@example.com", Role::Owner).await;
        // Activation is refused until the deployment is complete.
        let r = w.call("post", "/api/sites", Some(&inst), Some(json!({"name": "Casa", "phases": 1, "country": "DE", "timezone": "Europe/Berlin"}))).await;
        let id = r.body["id"].as_i64().unwrap();
        let act_path = format!("/api/sites/{id}/activate");
        let act = || w.call("post", &act_path, Some(&inst), None);
        let r = act().await;
        assert_eq!(
            (r.status, r.body["error"].as_str().unwrap()),
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                "activate: add the site's gateway by serial first"
            )
        );
        let r = w
            .call(
                "post",
                &format!("/api/sites/{id}/devices"),
                Some(&inst),
                Some(
                    json!({"serial": "GW-1", "kind": "gateway", "claim_code": claim_code("GW-1")}),
                ),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        let gw = claim_code("GW-1");
        for b in ["B-1", "B-2"] {
            let r = w
                .call(
                    "post",
                    &format!("/api/sites/{id}/devices"),
                    Some(&inst),
                    Some(json!({"serial": b, "kind": "battery"})),
                )
                .await;
            assert_eq!(r.status, StatusCode::CREATED);
        }
        let r = w
            .call(
                "post",
                &format!("/api/sites/{id}/devices"),
                Some(&inst),
                Some(json!({"serial": "B-1", "kind": "battery"})),
            )
            .await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
        let r = w
            .call(
                "post",
                &format!("/api/sites/{id}/devices"),
                Some(&inst),
                Some(json!({"serial": "B-3", "kind": "battery"})),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
        let r = w
            .call(
                "post",
                &format!("/api/sites/{id}/devices"),
                Some(&inst),
                Some(json!({"serial": "B-4", "kind": "battery"})),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            r.body["error"]
                .as_str()
                .unwrap()
                .contains("at most 3 batteries (manual appendix 1 a)"),
            "{}",
            r.text
        );
        let r = act().await;
        assert!(
            r.body["error"]
                .as_str()
                .unwrap()
                .contains("record the pre-installation checks"),
            "{}",
            r.text
        );
        // Checks need measured voltages, one per phase.
        for (volts, msg) in [
            (json!([]), "grid_voltages_v: measure"),
            (json!([230.0, 230.0, 230.0]), ""),
        ] {
            let r = w
                .call(
                    "post",
                    &format!("/api/sites/{id}/checks"),
                    Some(&inst),
                    Some(json!({"grid_voltages_v": volts})),
                )
                .await;
            assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
            assert!(
                r.body["error"].as_str().unwrap().starts_with(msg),
                "{}",
                r.text
            );
        }
        // A failing grid check blocks activation (manual 4.1.1: 176-276 V L-N).
        let r = w
            .call(
                "post",
                &format!("/api/sites/{id}/checks"),
                Some(&inst),
                Some(json!({"grid_voltages_v": [290.0]})),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
        assert_eq!(r.body["check"]["installable"], false);
        let r = act().await;
        assert!(
            r.body["error"]
                .as_str()
                .unwrap()
                .starts_with("activate: the last check failed"),
            "{}",
            r.text
        );
        let r = w
            .call(
                "post",
                &format!("/api/sites/{id}/checks"),
                Some(&inst),
                Some(json!({"grid_voltages_v": [231.0]})),
            )
            .await;
        assert_eq!(r.body["check"]["installable"], true, "{}", r.text);
        assert_eq!(act().await.status, StatusCode::OK);
        assert_eq!(act().await.status, StatusCode::CONFLICT);
        // Hand-over: the owner sees the site.
        let r = w
            .call(
                "post",
                &format!("/api/sites/{id}/handover"),
                Some(&inst),
                Some(json!({"owner_email": "own@example.com"})),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let r = w.call("get", "/api/sites", Some(&owner), None).await;
        assert_eq!(r.body.as_array().unwrap().len(), 1);
        // No telemetry yet: Offline.
        let r = w
            .call("get", &format!("/api/sites/{id}"), Some(&owner), None)
            .await;
        assert_eq!(r.body["status"], "offline");
        // Ingest; a retry stores nothing twice.
        let batch = json!({"gateway_serial": "GW-1",
            "points": [point(1, T0 - 60_000), point(2, T0)],
            "batteries": [{"serial": "B-1", "ts_ms": T0, "soc": 0.6, "power_w": -500.0,
                           "soc_led": {"state": "solid_blue", "percent": 60}, "status_led": "dim", "lifecycle": "active"}]});
        let r = w
            .call("post", "/api/ingest", Some(&gw), Some(batch.clone()))
            .await;
        assert_eq!(
            (r.status, r.body["points_stored"].as_i64()),
            (StatusCode::OK, Some(2)),
            "{}",
            r.text
        );
        let r = w.call("post", "/api/ingest", Some(&gw), Some(batch)).await;
        assert_eq!(
            (
                r.body["points_stored"].as_i64(),
                r.body["points_duplicate"].as_i64()
            ),
            (Some(0), Some(2))
        );
        let r = w
            .call("get", &format!("/api/sites/{id}"), Some(&owner), None)
            .await;
        assert_eq!(r.body["status"], "normal", "{}", r.text);
        assert_eq!(r.body["batteries"][0]["status_led"], "dim");
        let r = w
            .call(
                "get",
                &format!("/api/sites/{id}/alerts"),
                Some(&owner),
                None,
            )
            .await;
        assert_eq!(
            (
                r.body["shown"].as_bool(),
                r.body["alerts"].as_array().unwrap().len()
            ),
            (Some(false), 0)
        );
        // A fault: Faulty, and the alert comes with the manual's causes and solutions.
        let ev = json!({"gateway_serial": "GW-1", "events": [{"seq": 1, "ts_ms": T0, "device_serial": "B-2", "code": 53, "active": true}]});
        assert_eq!(
            w.call("post", "/api/ingest", Some(&gw), Some(ev))
                .await
                .status,
            StatusCode::OK
        );
        let r = w
            .call(
                "get",
                &format!("/api/sites/{id}/alerts"),
                Some(&owner),
                None,
            )
            .await;
        assert_eq!(
            (r.body["status"].as_str(), r.body["shown"].as_bool()),
            (Some("faulty"), Some(true)),
            "{}",
            r.text
        );
        let a = &r.body["alerts"][0];
        assert_eq!(
            (
                a["code"].as_i64(),
                a["issue"].as_str(),
                a["device_serial"].as_str()
            ),
            (Some(53), Some("Battery Overtemperature"), Some("B-2"))
        );
        assert!(!a["groups"][0]["solutions"].as_array().unwrap().is_empty());
        // Ten minutes of silence: Offline, alerts still shown (manual 6.2).
        w.clock.set(T0 + 600_000);
        let r = w
            .call(
                "get",
                &format!("/api/sites/{id}/alerts"),
                Some(&owner),
                None,
            )
            .await;
        assert_eq!(
            (r.body["status"].as_str(), r.body["shown"].as_bool()),
            (Some("offline"), Some(true))
        );
        // Settings: validated by melv-ems, versioned, delivered, acknowledged, audited.
        let tou = json!({"mode": "time_of_use", "reserve_soc": 0.2, "tou": {"weekday": [{"start": "22:00", "end": "06:00", "kind": "charge"}]}});
        let r = w
            .call(
                "put",
                &format!("/api/sites/{id}/settings"),
                Some(&owner),
                Some(tou),
            )
            .await;
        assert_eq!(
            (r.status, r.body["version"].as_i64()),
            (StatusCode::OK, Some(1)),
            "{}",
            r.text
        );
        let r = w
            .call(
                "put",
                &format!("/api/sites/{id}/settings"),
                Some(&owner),
                Some(json!({"mode": "time_of_use"})),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(r.body["error"], "settings.tou: time_of_use needs at least one charging or discharging period (manual 5.1 note)");
        let r = w
            .call("get", "/api/gateway/GW-1/settings", Some(&gw), None)
            .await;
        assert_eq!(
            (
                r.body["version"].as_i64(),
                r.body["settings"]["mode"].as_str()
            ),
            (Some(1), Some("time_of_use"))
        );
        let r = w
            .call(
                "get",
                &format!("/api/sites/{id}/settings"),
                Some(&owner),
                None,
            )
            .await;
        assert_eq!(r.body["delivery"], "delivered");
        let r = w
            .call(
                "post",
                "/api/gateway/GW-1/settings/ack",
                Some(&gw),
                Some(json!({"version": 1, "ok": true})),
            )
            .await;
        assert_eq!(
            (r.status, r.body["delivery"].as_str()),
            (StatusCode::OK, Some("acked")),
            "{}",
            r.text
        );
        let r = w
            .call(
                "post",
                "/api/gateway/GW-1/settings/ack",
                Some(&gw),
                Some(json!({"version": 7, "ok": true})),
            )
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        let r = w
            .call("get", &format!("/api/sites/{id}/audit"), Some(&owner), None)
            .await;
        let top = &r.body[0];
        assert_eq!(
            (top["action"].as_str(), top["user_email"].as_str()),
            (Some("settings v1"), Some("own@example.com"))
        );
        assert!(top["old_json"]
            .as_str()
            .unwrap()
            .contains("self_consumption"));
        assert!(top["new_json"].as_str().unwrap().contains("time_of_use"));
        // History: two one-minute points of 2 kW PV in one hour bucket.
        let r = w
            .call(
                "get",
                &format!(
                    "/api/sites/{id}/history?resolution=hour&from_ms={}&to_ms={}",
                    T0 - 3_600_000,
                    T0 + 1
                ),
                Some(&owner),
                None,
            )
            .await;
        let b = &r.body["buckets"];
        assert_eq!(b.as_array().unwrap().len(), 2, "{}", r.text);
        let pv: f64 = b
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["pv_wh"].as_f64().unwrap())
            .sum();
        assert!((pv - 2.0 * 2000.0 / 60.0).abs() < 1e-9);
        let r = w
            .call(
                "get",
                &format!("/api/sites/{id}/history?resolution=month"),
                Some(&owner),
                None,
            )
            .await;
        assert_eq!(r.body["buckets"].as_array().unwrap().len(), 1, "{}", r.text);
    }
}

#[tokio::test]
async fn grid_charging_forbidden_refuses_tou() {
    for store in stores().await {
        let w = World::new(store);
        let inst = w.account("i@example.com", Role::Installer).await;
        let (id, _) = deployed_site(&w, &inst, "Villa", 3, "IT", &["B1"], "GW1").await;
        let tou = json!({"mode": "time_of_use", "tou": {"weekday": [{"start": "01:00", "end": "05:00", "kind": "charge"}]}});
        let r = w
            .call(
                "put",
                &format!("/api/sites/{id}/settings"),
                Some(&inst),
                Some(tou),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            r.body["error"]
                .as_str()
                .unwrap()
                .starts_with("settings.mode: time_of_use is not available"),
            "{}",
            r.text
        );
        // Nothing was stored.
        let r = w
            .call(
                "get",
                &format!("/api/sites/{id}/settings/versions"),
                Some(&inst),
                None,
            )
            .await;
        assert_eq!(r.body.as_array().unwrap().len(), 0);
    }
}

/// (body, content type, expected status, expected start of the message)
fn bad_inputs() -> Vec<(String, &'static str, StatusCode, &'static str)> {
    let j = "application/json";
    vec![
        ("{\"mode\":".into(), j, StatusCode::BAD_REQUEST, "request body: Failed to parse"),
        ("{\"mode\": 5}".into(), j, StatusCode::UNPROCESSABLE_ENTITY, "request body: settings: invalid type"),
        ("{\"reserve_soc\": \"high\"}".into(), j, StatusCode::UNPROCESSABLE_ENTITY, "request body: settings: invalid type"),
        ("{\"mode\": \"self_consumption\", \"turbo\": 1}".into(), j, StatusCode::UNPROCESSABLE_ENTITY, "request body: settings: unknown field `turbo`"),
        ("{\"reserve_soc\": 1.5}".into(), j, StatusCode::UNPROCESSABLE_ENTITY, "settings.reserve_soc: 1.5"),
        ("{\"tou\": {\"weekday\": [{\"start\": \"25:00\", \"end\": \"06:00\", \"kind\": \"charge\"}]}}".into(), j, StatusCode::UNPROCESSABLE_ENTITY, "request body: settings: "),
        ("{}".into(), "text/plain", StatusCode::UNSUPPORTED_MEDIA_TYPE, "request body: Expected request with `Content-Type: application/json`"),
        (format!("{{\"x\": \"{}\"}}", "a".repeat(3 * 1024 * 1024)), j, StatusCode::PAYLOAD_TOO_LARGE, "request body: Failed to buffer"),
    ]
}

#[tokio::test]
async fn bad_input_is_a_4xx_with_a_message() {
    for store in stores().await {
        let w = World::new(store);
        let inst = w.account("i@example.com", Role::Installer).await;
        let (id, gw) = deployed_site(&w, &inst, "S", 1, "DE", &["B1"], "GW1").await;
        for (body, ctype, status, msg) in bad_inputs() {
            let req = Request::put(format!("/api/sites/{id}/settings"))
                .header("authorization", format!("Bearer {inst}"))
                .header("content-type", ctype)
                .body(Body::from(body.clone()))
                .unwrap();
            let r = w.raw(req).await;
            let shown: String = body.chars().take(60).collect();
            assert_eq!(r.status, status, "{shown}: {}", r.text);
            let m = r.body["error"].as_str().unwrap_or_default();
            assert!(
                m.starts_with(msg),
                "{shown}: {m:?} does not start with {msg:?}"
            );
        }
        // A bad point refuses the whole batch: the good point before it is not stored.
        let mut bad = point(2, T0);
        bad["soc"] = json!(2.0);
        let r = w
            .call(
                "post",
                "/api/ingest",
                Some(&gw),
                Some(json!({"gateway_serial": "GW1", "points": [point(1, T0), bad]})),
            )
            .await;
        assert_eq!(
            (r.status, r.body["error"].as_str()),
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                Some("points[1].soc: 2: expected 0 to 1")
            )
        );
        assert_eq!(w.state.store.last_seen(id).await.unwrap(), None);
        // Odd ids, unknown routes, bad query strings.
        for (path, status) in [
            ("/api/sites/abc", StatusCode::NOT_FOUND),
            ("/api/sites/99999999999999999999", StatusCode::NOT_FOUND),
            ("/api/nothing", StatusCode::NOT_FOUND),
            (
                &format!("/api/sites/{id}/history?resolution=week") as &str,
                StatusCode::BAD_REQUEST,
            ),
            (
                &format!("/api/sites/{id}/history?resolution=5min&from_ms=0&to_ms={T0}"),
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            (
                &format!("/api/sites/{id}/history?resolution=hour&to_ms={}", i64::MIN),
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            (
                &format!(
                    "/api/sites/{id}/history?resolution=hour&from_ms={}",
                    i64::MAX
                ),
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
        ] {
            let r = w.call("get", path, Some(&inst), None).await;
            assert_eq!(r.status, status, "{path}: {}", r.text);
            assert!(r.body["error"].is_string(), "{path}: {}", r.text);
        }
        // Accounts: short passwords and bad e-mails are refused with the field.
        let admin = w.account("root@example.com", Role::Admin).await;
        for (body, msg) in [
            (
                json!({"email": "x@example.com", "name": "X", "password": "short", "role": "owner"}),
                "password: 5 characters",
            ),
            (
                json!({"email": "nope", "name": "X", "password": "longenough", "role": "owner"}),
                "email \"nope\"",
            ),
            (
                json!({"email": "i@example.com", "name": "X", "password": "longenough", "role": "owner"}),
                "email: this address cannot be used for a new account",
            ),
        ] {
            let r = w
                .call("post", "/api/accounts", Some(&admin), Some(body))
                .await;
            assert!(r.status.is_client_error(), "{}", r.text);
            assert!(
                r.body["error"].as_str().unwrap().starts_with(msg),
                "{}",
                r.text
            );
        }
        // Ten wrong passwords lock the address for 15 minutes, even for the right password.
        let wrong = json!({"email": "i@example.com", "password": "wrongwrong"});
        for _ in 0..10 {
            let r = w
                .call("post", "/api/login", None, Some(wrong.clone()))
                .await;
            assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        }
        let right = json!({"email": "i@example.com", "password": "password123"});
        let r = w
            .call("post", "/api/login", None, Some(right.clone()))
            .await;
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text);
        w.clock.set(T0 + 15 * 60 * 1000);
        let r = w.call("post", "/api/login", None, Some(right)).await;
        assert_eq!(r.status, StatusCode::OK);
    }
}

#[test]
fn openapi_matches_the_routes() {
    let doc = melv_server::openapi::document();
    let mut documented = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            documented.push(format!("{method} {path}"));
        }
    }
    let mut routes: Vec<String> = melv_server::api::ROUTES
        .iter()
        .map(|(m, p, _, _)| format!("{m} {p}"))
        .collect();
    documented.sort();
    routes.sort();
    assert_eq!(documented, routes);
}

/// Every route of the table exists in the router: an anonymous call never gets the fallback's
/// "no such page" 404 or a 405.
#[tokio::test]
async fn every_listed_route_is_routed() {
    let store = stores().await.remove(0);
    let w = World::new(store);
    for (method, path, _, _) in melv_server::api::ROUTES {
        let p = path.replace("{id}", "1").replace("{serial}", "GW1");
        let r = w.call(method, &p, None, Some(json!({}))).await;
        assert_ne!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        assert_ne!(
            r.body["error"].as_str(),
            Some("no such page or API route"),
            "{method} {path}"
        );
    }
}
