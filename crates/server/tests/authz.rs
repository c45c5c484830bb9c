//! The authorization matrix: every API route x every role x own / other tenant.
//!
//! Two tenants: installer A deployed site A and handed it to owner A; installer B and owner B have
//! site B. Each route is called on site A by every actor. Strangers get 404 (site routes) and never
//! see site A's name or serials; anonymous callers get 401; owners get 403 on deployment routes;
//! gateway tokens are not user sessions and user sessions are not gateway tokens.

mod common;

use axum::http::StatusCode;
use common::*;
use melv_server::api::{Access, ROUTES};
use melv_store::Role;
use serde_json::{json, Value};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Actor {
    Anonymous,
    InstallerA,
    OwnerA,
    Admin,
    InstallerB,
    OwnerB,
    GatewayA,
    GatewayB,
}

use Actor::*;
const ACTORS: [Actor; 8] = [
    Anonymous, InstallerA, OwnerA, Admin, InstallerB, OwnerB, GatewayA, GatewayB,
];

#[derive(Debug, PartialEq)]
enum Expect {
    Ok,
    Status(StatusCode),
}

const DEPLOY: [&str; 6] = [
    "/devices",
    "/devices/{serial}",
    "/claim",
    "/checks",
    "/activate",
    "/handover",
];

fn expected(method: &str, path: &str, access: Access, actor: Actor) -> Expect {
    use Expect::*;
    let user = matches!(actor, InstallerA | OwnerA | Admin | InstallerB | OwnerB);
    match access {
        Access::Public => Ok,
        Access::Gateway => match actor {
            GatewayA => Ok,
            _ => Status(StatusCode::UNAUTHORIZED),
        },
        Access::User if !user => Status(StatusCode::UNAUTHORIZED),
        Access::User if path.starts_with("/api/sites/{id}") => match actor {
            InstallerB | OwnerB => Status(StatusCode::NOT_FOUND),
            OwnerA if DEPLOY.iter().any(|d| path.ends_with(d)) => Status(StatusCode::FORBIDDEN),
            _ => Ok,
        },
        Access::User => match (method, path, actor) {
            ("post", "/api/sites", OwnerA | OwnerB) => Status(StatusCode::FORBIDDEN),
            ("post", "/api/accounts", OwnerA | OwnerB) => Status(StatusCode::FORBIDDEN),
            ("get", "/api/ingest/rejects", InstallerA | OwnerA | InstallerB | OwnerB) => {
                Status(StatusCode::FORBIDDEN)
            }
            _ => Ok,
        },
    }
}

fn body(method: &str, path: &str, n: usize) -> Option<Value> {
    Some(match (method, path) {
        ("post", "/api/login") => json!({"email": "ia@example.com", "password": "password123"}),
        ("post", "/api/accounts") => {
            json!({"email": format!("new{n}@example.com"), "name": "N", "password": "password123", "role": "owner"})
        }
        ("post", "/api/sites") => {
            json!({"name": "New", "phases": 3, "country": "DE", "timezone": "UTC"})
        }
        ("post", "/api/sites/{id}/devices") => {
            json!({"serial": format!("BX{n}"), "kind": "battery"})
        }
        // The same code again: a rotation that keeps GatewayA's credential for the routes after it.
        ("post", "/api/sites/{id}/devices/{serial}/claim") => {
            json!({"claim_code": claim_code("GWA")})
        }
        ("post", "/api/sites/{id}/checks") => json!({"grid_voltages_v": [230.0, 230.0, 230.0]}),
        ("post", "/api/sites/{id}/handover") => json!({"owner_email": "oa@example.com"}),
        ("put", "/api/sites/{id}/settings") => {
            json!({"mode": "self_consumption", "reserve_soc": 0.1})
        }
        ("post", "/api/ingest") => {
            json!({"gateway_serial": "GWA", "points": [point(n as i64, T0)]})
        }
        ("post", "/api/gateway/{serial}/settings/ack") => json!({"version": 1, "ok": true}),
        _ => return None,
    })
}

#[tokio::test]
async fn every_route_every_role_every_tenant() {
    for store in stores().await {
        let w = World::new(store);
        let ia = w.account("ia@example.com", Role::Installer).await;
        let ib = w.account("ib@example.com", Role::Installer).await;
        let oa = w.account("oa@example.com", Role::Owner).await;
        let ob = w.account("ob@example.com", Role::Owner).await;
        let admin = w.account("admin@example.com", Role::Admin).await;
        let (a, gwa) =
            deployed_site(&w, &ia, "Secret Villa A", 3, "DE", &["BA1", "BA2"], "GWA").await;
        let (b, gwb) = deployed_site(&w, &ib, "House B", 1, "DE", &["BB1"], "GWB").await;
        for (site, inst, owner) in [(a, &ia, "oa@example.com"), (b, &ib, "ob@example.com")] {
            let r = w
                .call(
                    "post",
                    &format!("/api/sites/{site}/handover"),
                    Some(inst),
                    Some(json!({"owner_email": owner})),
                )
                .await;
            assert_eq!(r.status, StatusCode::OK);
        }
        // A settings version exists so that acks have something to acknowledge.
        w.call(
            "put",
            &format!("/api/sites/{a}/settings"),
            Some(&oa),
            Some(json!({})),
        )
        .await;
        let token = |actor: Actor| -> Option<String> {
            match actor {
                Anonymous => None,
                InstallerA => Some(ia.clone()),
                OwnerA => Some(oa.clone()),
                Admin => Some(admin.clone()),
                InstallerB => Some(ib.clone()),
                OwnerB => Some(ob.clone()),
                GatewayA => Some(gwa.clone()),
                GatewayB => Some(gwb.clone()),
            }
        };
        let mut n = 0;
        let mut checked = 0;
        for (method, path, access, _) in ROUTES {
            if *path == "/api/logout" {
                continue; // ends the session the rest of the matrix uses; covered below
            }
            for actor in ACTORS {
                n += 1;
                // Unbinding gets a battery of its own each time (so that every allowed actor has
                // one to unbind and the site keeps its devices for the routes after it).
                let serial = if *method == "delete" {
                    let s = format!("DX{n}");
                    w.state
                        .store
                        .add_device(a, &s, melv_store::DeviceKind::Battery, None, T0)
                        .await
                        .unwrap();
                    s
                } else {
                    "GWA".to_string()
                };
                let mut url = path
                    .replace("{id}", &a.to_string())
                    .replace("{serial}", &serial);
                if path.ends_with("/history") {
                    url.push_str("?resolution=hour");
                }
                let r = w
                    .call(method, &url, token(actor).as_deref(), body(method, path, n))
                    .await;
                if *method == "delete" {
                    let _ = w.state.store.remove_device(a, &serial).await;
                }
                let want = expected(method, path, *access, actor);
                let ok = match &want {
                    // Allowed: success, or a rule of the site's state (already active, limits).
                    Expect::Ok => r.status.is_success() || r.status == StatusCode::CONFLICT,
                    Expect::Status(s) => r.status == *s,
                };
                assert!(
                    ok,
                    "{method} {path} as {actor:?}: got {} {}, expected {want:?}",
                    r.status, r.text
                );
                if matches!(actor, InstallerB | OwnerB | GatewayB | Anonymous)
                    && *access != Access::Public
                {
                    for secret in ["Secret Villa A", "BA1", "GWA\"", "oa@example.com"] {
                        assert!(
                            !r.text.contains(secret),
                            "{method} {path} as {actor:?} leaked {secret}: {}",
                            r.text
                        );
                    }
                }
                checked += 1;
            }
        }
        assert_eq!(checked, (ROUTES.len() - 1) * ACTORS.len());
        // Other tenants' lists never include site A.
        for t in [&ib, &ob] {
            let r = w.call("get", "/api/sites", Some(t), None).await;
            assert!(!r.text.contains("Secret Villa A"));
        }
        // Logout ends the session.
        assert_eq!(
            w.call("post", "/api/logout", Some(&ob), None).await.status,
            StatusCode::NO_CONTENT
        );
        assert_eq!(
            w.call("get", "/api/me", Some(&ob), None).await.status,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            w.call("post", "/api/logout", None, None).await.status,
            StatusCode::UNAUTHORIZED
        );
    }
}

/// The web app's pages apply the same isolation: a stranger's cookie gets a 404 page without the
/// site's data, an anonymous visitor is sent to the sign-in page, the tenants get the page.
#[tokio::test]
async fn web_pages_are_isolated_too() {
    use axum::body::Body;
    use axum::http::Request;
    let store = stores().await.remove(0);
    let w = World::new(store);
    let ia = w.account("ia@example.com", Role::Installer).await;
    let ib = w.account("ib@example.com", Role::Installer).await;
    let oa = w.account("oa@example.com", Role::Owner).await;
    let (a, _) = deployed_site(&w, &ia, "Secret Villa A", 1, "DE", &["BA1"], "GWA").await;
    w.call(
        "post",
        &format!("/api/sites/{a}/handover"),
        Some(&ia),
        Some(json!({"owner_email": "oa@example.com"})),
    )
    .await;
    let pages = ["", "/deploy", "/alerts", "/settings", "/history"];
    let posts = [
        "/deploy/device",
        "/deploy/check",
        "/deploy/activate",
        "/deploy/handover",
        "/settings",
    ];
    let req = |method: &str, path: String, cookie: Option<&str>| {
        let mut b = Request::builder().method(method).uri(path.as_str());
        if let Some(c) = cookie {
            b = b.header("cookie", format!("melv_session={c}"));
        }
        if method == "POST" {
            b = b.header("content-type", "application/x-www-form-urlencoded");
            let form = match path.rsplit('/').next() {
                Some("device") => "serial=X1&kind=battery",
                Some("check") => "v0=230",
                Some("handover") => "owner_email=x%40example.com",
                Some("settings") => "mode=self_consumption",
                _ => "",
            };
            // Each actor's own valid CSRF token: what is left to refuse is the tenant rule.
            let csrf = cookie
                .map(|c| melv_server::web::csrf::token(&melv_server::auth::token_hash(c)))
                .unwrap_or_default();
            return b.body(Body::from(format!("{form}&csrf={csrf}"))).unwrap();
        }
        b.body(Body::empty()).unwrap()
    };
    for p in pages {
        let path = format!("/sites/{a}{p}");
        let r = w.raw(req("GET", path.clone(), Some(&ib))).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
        assert!(
            !r.text.contains("Secret Villa A") && !r.text.contains("BA1"),
            "{path} leaked"
        );
        let r = w.raw(req("GET", path.clone(), None)).await;
        assert_eq!(
            (
                r.status,
                r.headers.get("location").map(|v| v.to_str().unwrap())
            ),
            (StatusCode::SEE_OTHER, Some("/login")),
            "{path}"
        );
        let r = w.raw(req("GET", path.clone(), Some(&ia))).await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
        assert!(r.text.contains("Secret Villa A"), "{path}");
    }
    for p in posts {
        let path = format!("/sites/{a}{p}");
        let r = w.raw(req("POST", path.clone(), Some(&ib))).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}: {}", r.text);
        assert!(!r.text.contains("Secret Villa A"), "{path} leaked");
    }
    // The owner sees the dashboard but may not deploy.
    let r = w.raw(req("GET", format!("/sites/{a}"), Some(&oa))).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = w
        .raw(req("POST", format!("/sites/{a}/deploy/device"), Some(&oa)))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(
        r.text
            .contains("only the site&#39;s installer deploys devices"),
        "{}",
        r.text
    );
    // Nothing was added by the refused posts.
    assert_eq!(w.state.store.devices(a).await.unwrap().len(), 2);
}
