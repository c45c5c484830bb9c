//! Test world: an app on a fresh database (SQLite always, PostgreSQL when `MELV_TEST_POSTGRES` is
//! set), a manual clock, and signed-in accounts of every role in two tenants.

#![allow(dead_code)]

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use melv_server::{app, AppState, ManualClock};
use melv_store::{Role, Store};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tower::ServiceExt;

static N: AtomicUsize = AtomicUsize::new(0);

/// 2027-01-01T00:00:00Z: the tests' "now".
pub const T0: i64 = 1_798_761_600_000;

pub async fn stores() -> Vec<Store> {
    let n = N.fetch_add(1, Ordering::SeqCst);
    let pid = std::process::id();
    let path = std::env::temp_dir().join(format!("melv-server-{pid}-{n}.db"));
    let _ = std::fs::remove_file(&path);
    let mut out = vec![Store::open(&format!("sqlite://{}", path.display()))
        .await
        .unwrap()];
    if let Ok(base) = std::env::var("MELV_TEST_POSTGRES") {
        let url = melv_store::scratch_postgres(&base, &format!("melv_server_{pid}_{n}"))
            .await
            .unwrap();
        out.push(Store::open(&url).await.unwrap());
    }
    out
}

pub struct World {
    pub state: AppState,
    pub clock: Arc<ManualClock>,
}

pub struct Reply {
    pub status: StatusCode,
    pub body: Value,
    pub text: String,
    pub headers: axum::http::HeaderMap,
}

impl World {
    pub fn new(store: Store) -> Self {
        let clock = Arc::new(ManualClock::default());
        clock.set(T0);
        World {
            state: AppState::new(store, clock.clone(), 300),
            clock,
        }
    }

    pub async fn raw(&self, req: Request<Body>) -> Reply {
        let res = app(self.state.clone()).oneshot(req).await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&bytes).to_string();
        Reply {
            status,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
            text,
            headers,
        }
    }

    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut b = Request::builder()
            .method(Method::from_bytes(method.to_uppercase().as_bytes()).unwrap())
            .uri(path);
        if let Some(t) = token {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        let req = match body {
            Some(v) => b
                .header("content-type", "application/json")
                .body(Body::from(v.to_string()))
                .unwrap(),
            None => b.body(Body::empty()).unwrap(),
        };
        self.raw(req).await
    }

    /// Creates an account directly in the store and signs it in; returns its token.
    pub async fn account(&self, email: &str, role: Role) -> String {
        let hash = melv_server::auth::hash_password("password123").unwrap();
        self.state
            .store
            .create_user(email, email, role, &hash, T0)
            .await
            .unwrap();
        let r = self
            .call(
                "post",
                "/api/login",
                None,
                Some(json!({"email": email, "password": "password123"})),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        r.body["token"].as_str().unwrap().to_string()
    }
}

/// The claim code of test gateway `serial`: fixed per serial (as a label is), canonical form.
pub fn claim_code(serial: &str) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(serial.as_bytes());
    let mut b = [0u8; 13];
    b.copy_from_slice(&d[..13]);
    melv_wire::claim::encode(&b)
}

/// A deployed, activated site: returns (site id, gateway token).
pub async fn deployed_site(
    w: &World,
    installer: &str,
    name: &str,
    phases: i64,
    country: &str,
    batteries: &[&str],
    gw: &str,
) -> (i64, String) {
    let r = w
        .call("post", "/api/sites", Some(installer), Some(json!({"name": name, "phases": phases, "country": country, "timezone": "Europe/Berlin"})))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let id = r.body["id"].as_i64().unwrap();
    let r = w
        .call(
            "post",
            &format!("/api/sites/{id}/devices"),
            Some(installer),
            Some(json!({"serial": gw, "kind": "gateway", "claim_code": claim_code(gw)})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    // The gateway signs in with its claim code.
    let token = claim_code(gw);
    for b in batteries {
        let r = w
            .call(
                "post",
                &format!("/api/sites/{id}/devices"),
                Some(installer),
                Some(json!({"serial": b, "kind": "battery"})),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    }
    let volts: Vec<f64> = (0..phases).map(|_| 230.0).collect();
    let r = w
        .call(
            "post",
            &format!("/api/sites/{id}/checks"),
            Some(installer),
            Some(json!({"grid_voltages_v": volts})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let r = w
        .call(
            "post",
            &format!("/api/sites/{id}/activate"),
            Some(installer),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    (id, token)
}

pub fn point(seq: i64, ts_ms: i64) -> Value {
    json!({"seq": seq, "ts_ms": ts_ms, "interval_s": 60.0, "pv_w": 2000.0, "load_w": 800.0,
           "grid_w": -700.0, "battery_w": -500.0, "soc": 0.6})
}
