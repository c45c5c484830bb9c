//! JSON handlers. Each is a thin adapter: read the request, call [`crate::service`] or
//! [`crate::ingest`], answer JSON. [`ROUTES`] lists every API route once; the router, the OpenAPI
//! document and the authorization matrix test are all checked against it.

use crate::auth::{GatewayToken, Principal};
use crate::error::{ApiError, ApiResult};
use crate::ingest::{self, Ack, Batch};
use crate::service::{
    self, CheckInput, DeviceInput, HandoverInput, NewAccount, Resolution, SiteInput,
};
use crate::AppState;
use axum::extract::{DefaultBodyLimit, FromRequest, Path, Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// Who may call a route, for the OpenAPI document and the authorization matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Public,
    /// Any signed-in account; site routes are further limited to the site's tenants.
    User,
    Gateway,
}

/// (method, path, access, summary) of every API route.
pub const ROUTES: &[(&str, &str, Access, &str)] = &[
    (
        "get",
        "/api/health",
        Access::Public,
        "Liveness and database check",
    ),
    ("get", "/api/openapi.json", Access::Public, "This document"),
    (
        "post",
        "/api/login",
        Access::Public,
        "Sign in; returns a bearer token",
    ),
    ("post", "/api/logout", Access::User, "End this session"),
    ("get", "/api/me", Access::User, "The signed-in account"),
    (
        "post",
        "/api/accounts",
        Access::User,
        "Create an account (admin: any role; installer: owners)",
    ),
    (
        "get",
        "/api/alert-codes",
        Access::Public,
        "The alert catalogue of manual 6.3",
    ),
    (
        "get",
        "/api/sites",
        Access::User,
        "Sites the caller may see",
    ),
    (
        "post",
        "/api/sites",
        Access::User,
        "Create a site (installer, admin)",
    ),
    (
        "get",
        "/api/sites/{id}",
        Access::User,
        "Site status, devices, power flow, batteries",
    ),
    (
        "get",
        "/api/ingest/rejects",
        Access::User,
        "Gateway messages the ingest could not store, newest first, with the reason (admin)",
    ),
    (
        "post",
        "/api/sites/{id}/devices",
        Access::User,
        "Add the gateway or a battery by serial",
    ),
    (
        "delete",
        "/api/sites/{id}/devices/{serial}",
        Access::User,
        "Unbind a device from the site (to replace it)",
    ),
    (
        "post",
        "/api/sites/{id}/devices/{serial}/claim",
        Access::User,
        "Rotate the gateway's credential: bind its new claim code",
    ),
    (
        "post",
        "/api/sites/{id}/checks",
        Access::User,
        "Record the pre-installation checks",
    ),
    (
        "post",
        "/api/sites/{id}/activate",
        Access::User,
        "Activate the site (manual 4.11)",
    ),
    (
        "post",
        "/api/sites/{id}/handover",
        Access::User,
        "Hand the site to an owner",
    ),
    (
        "get",
        "/api/sites/{id}/settings",
        Access::User,
        "Current working-mode settings",
    ),
    (
        "put",
        "/api/sites/{id}/settings",
        Access::User,
        "Save new working-mode settings (a new version)",
    ),
    (
        "get",
        "/api/sites/{id}/settings/versions",
        Access::User,
        "All settings versions with delivery state",
    ),
    (
        "get",
        "/api/sites/{id}/audit",
        Access::User,
        "Audit trail (who, when, old, new)",
    ),
    (
        "get",
        "/api/sites/{id}/alerts",
        Access::User,
        "Alert codes with causes and solutions (manual 6.2)",
    ),
    (
        "get",
        "/api/sites/{id}/events",
        Access::User,
        "Newest alert events",
    ),
    (
        "get",
        "/api/sites/{id}/uplink",
        Access::User,
        "Per gateway: last record stored in sequence, open gaps, records lost, backlog age",
    ),
    (
        "get",
        "/api/sites/{id}/history",
        Access::User,
        "Energy history per 5min, hour, day or month",
    ),
    (
        "post",
        "/api/ingest",
        Access::Gateway,
        "Telemetry and alert events from a gateway",
    ),
    (
        "get",
        "/api/gateway/{serial}/settings",
        Access::Gateway,
        "Settings for the gateway to run",
    ),
    (
        "post",
        "/api/gateway/{serial}/settings/ack",
        Access::Gateway,
        "The gateway's answer to a settings version",
    ),
];

/// `axum::Json` whose rejections are [`ApiError`]s (4xx with a JSON message).
pub struct Json<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> ApiResult<Self> {
        let axum::Json(v) = axum::Json::<T>::from_request(req, state).await?;
        Ok(Json(v))
    }
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// A path id that is not a number is a 404 with a message, not axum's plain-text 400.
fn id(raw: &str) -> ApiResult<i64> {
    raw.parse()
        .map_err(|_| ApiError::not_found(format!("site {raw:?} not found")))
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/health", get(health))
        .route("/api/openapi.json", get(openapi))
        // A sign-in is two short strings: its body is bounded far below MAX_BODY, so that
        // unauthenticated requests cannot make the server buffer megabytes.
        .route(
            "/api/login",
            post(login).layer(DefaultBodyLimit::max(crate::MAX_LOGIN_BODY)),
        )
        .route("/api/logout", post(logout))
        .route("/api/me", get(me))
        .route("/api/accounts", post(create_account))
        .route("/api/alert-codes", get(alert_codes))
        .route("/api/sites", get(list_sites).post(create_site))
        .route("/api/sites/{id}", get(site))
        .route("/api/sites/{id}/devices", post(add_device))
        .route(
            "/api/sites/{id}/devices/{serial}",
            axum::routing::delete(remove_device),
        )
        .route("/api/sites/{id}/devices/{serial}/claim", post(rotate_claim))
        .route("/api/sites/{id}/checks", post(record_check))
        .route("/api/sites/{id}/activate", post(activate))
        .route("/api/sites/{id}/handover", post(handover))
        .route(
            "/api/sites/{id}/settings",
            get(get_settings).put(put_settings),
        )
        .route("/api/sites/{id}/settings/versions", get(settings_versions))
        .route("/api/sites/{id}/audit", get(audit))
        .route("/api/sites/{id}/alerts", get(alerts))
        .route("/api/sites/{id}/events", get(events))
        .route("/api/sites/{id}/uplink", get(uplink))
        .route("/api/sites/{id}/history", get(history))
        .route("/api/ingest", post(ingest_batch))
        .route("/api/ingest/rejects", get(ingest_rejects))
        .route("/api/gateway/{serial}/settings", get(gateway_settings))
        .route("/api/gateway/{serial}/settings/ack", post(gateway_ack))
}

async fn health(State(s): State<AppState>) -> ApiResult<Json<serde_json::Value>> {
    s.store.count_users().await?;
    Ok(Json(json!({"status": "ok"})))
}

async fn openapi() -> Json<serde_json::Value> {
    Json(crate::openapi::document())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Login {
    email: String,
    password: String,
}

async fn login(
    State(s): State<AppState>,
    Json(l): Json<Login>,
) -> ApiResult<Json<serde_json::Value>> {
    let (user, token) = service::login(&s, &l.email, &l.password, "api").await?;
    Ok(Json(
        json!({"token": token, "role": user.role, "user_id": user.id}),
    ))
}

async fn logout(State(s): State<AppState>, who: Principal) -> ApiResult<StatusCode> {
    s.store.delete_session(&who.token_hash).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn user_json(u: &melv_store::User) -> serde_json::Value {
    json!({"id": u.id, "email": u.email, "name": u.name, "role": u.role})
}

async fn me(who: Principal) -> Json<serde_json::Value> {
    Json(user_json(&who.user))
}

async fn create_account(
    State(s): State<AppState>,
    who: Principal,
    Json(a): Json<NewAccount>,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    let u = service::create_account(&s, Some(&who), &a).await?;
    Ok((StatusCode::CREATED, Json(user_json(&u))))
}

async fn alert_codes() -> Json<serde_json::Value> {
    let all: Vec<_> = melv_core::AlertCode::all()
        .map(|c| service::alert_view(c.get() as i64, "", 0))
        .map(|a| json!({"code": a.code, "issue": a.issue, "groups": a.groups}))
        .collect();
    Json(json!(all))
}

async fn list_sites(
    State(s): State<AppState>,
    who: Principal,
) -> ApiResult<Json<serde_json::Value>> {
    let sites = s.store.sites(service::filter_for(&who)).await?;
    let mut out = Vec::new();
    for site in sites {
        let v = service::site_view(&s, site).await?;
        out.push(json!({"site": v.site, "active": v.active, "status": v.status, "last_seen_ms": v.last_seen_ms}));
    }
    Ok(Json(json!(out)))
}

async fn create_site(
    State(s): State<AppState>,
    who: Principal,
    Json(i): Json<SiteInput>,
) -> ApiResult<(StatusCode, Json<melv_store::Site>)> {
    Ok((
        StatusCode::CREATED,
        Json(service::create_site(&s, &who, &i).await?),
    ))
}

async fn site(
    State(s): State<AppState>,
    who: Principal,
    Path(raw): Path<String>,
) -> ApiResult<Json<service::SiteView>> {
    let site = service::site_for(&s, &who, id(&raw)?).await?;
    Ok(Json(service::site_view(&s, site).await?))
}

async fn add_device(
    State(s): State<AppState>,
    who: Principal,
    Path(raw): Path<String>,
    Json(i): Json<DeviceInput>,
) -> ApiResult<(StatusCode, Json<service::AddedDevice>)> {
    Ok((
        StatusCode::CREATED,
        Json(service::add_device(&s, &who, id(&raw)?, &i).await?),
    ))
}

async fn remove_device(
    State(s): State<AppState>,
    who: Principal,
    Path((raw, serial)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    service::remove_device(&s, &who, id(&raw)?, &serial).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn rotate_claim(
    State(s): State<AppState>,
    who: Principal,
    Path((raw, serial)): Path<(String, String)>,
    Json(i): Json<service::ClaimInput>,
) -> ApiResult<StatusCode> {
    service::rotate_claim(&s, &who, id(&raw)?, &serial, &i).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn record_check(
    State(s): State<AppState>,
    who: Principal,
    Path(raw): Path<String>,
    Json(i): Json<CheckInput>,
) -> ApiResult<(StatusCode, Json<service::CheckResult>)> {
    Ok((
        StatusCode::CREATED,
        Json(service::record_check(&s, &who, id(&raw)?, &i).await?),
    ))
}

async fn activate(
    State(s): State<AppState>,
    who: Principal,
    Path(raw): Path<String>,
) -> ApiResult<Json<melv_store::Site>> {
    Ok(Json(service::activate(&s, &who, id(&raw)?).await?))
}

async fn handover(
    State(s): State<AppState>,
    who: Principal,
    Path(raw): Path<String>,
    Json(i): Json<HandoverInput>,
) -> ApiResult<Json<melv_store::Site>> {
    Ok(Json(service::handover(&s, &who, id(&raw)?, &i).await?))
}

async fn get_settings(
    State(s): State<AppState>,
    who: Principal,
    Path(raw): Path<String>,
) -> ApiResult<Json<service::SettingsView>> {
    let site = service::site_for(&s, &who, id(&raw)?).await?;
    Ok(Json(service::current_settings(&s, &site).await?))
}

async fn put_settings(
    State(s): State<AppState>,
    who: Principal,
    Path(raw): Path<String>,
    Json(new): Json<serde_json::Value>,
) -> ApiResult<Json<service::SettingsView>> {
    // serde reads a struct from a JSON array too: `[]` would save all defaults (issue 16 item 8).
    if !new.is_object() {
        return Err(ApiError::invalid(
            "settings: expected a JSON object of melv_ems::Settings fields",
        ));
    }
    let new: melv_ems::Settings = serde_json::from_value(new)
        .map_err(|e| ApiError::invalid(format!("request body: settings: {e}")))?;
    Ok(Json(
        service::save_settings(&s, &who, id(&raw)?, &new).await?,
    ))
}

async fn settings_versions(
    State(s): State<AppState>,
    who: Principal,
    Path(raw): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    let site = service::site_for(&s, &who, id(&raw)?).await?;
    Ok(Json(json!(s.store.settings_versions(site.id).await?)))
}

async fn audit(
    State(s): State<AppState>,
    who: Principal,
    Path(raw): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    let site = service::site_for(&s, &who, id(&raw)?).await?;
    Ok(Json(json!(s.store.audit_log(site.id).await?)))
}

async fn alerts(
    State(s): State<AppState>,
    who: Principal,
    Path(raw): Path<String>,
) -> ApiResult<Json<service::AlertsView>> {
    let site = service::site_for(&s, &who, id(&raw)?).await?;
    Ok(Json(service::alerts(&s, &site).await?))
}

async fn events(
    State(s): State<AppState>,
    who: Principal,
    Path(raw): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    let site = service::site_for(&s, &who, id(&raw)?).await?;
    Ok(Json(json!(s.store.events(site.id, 200).await?)))
}

async fn uplink(
    State(s): State<AppState>,
    who: Principal,
    Path(raw): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    let site = service::site_for(&s, &who, id(&raw)?).await?;
    Ok(Json(
        json!({"gateways": service::uplinks(&s, &site).await?}),
    ))
}

/// What the MQTT ingest kept instead of storing (`melv_server::feed`): an operator's view, so a
/// gateway that sends what the cloud cannot read is noticed rather than silently lost.
async fn ingest_rejects(
    State(s): State<AppState>,
    who: Principal,
) -> ApiResult<Json<serde_json::Value>> {
    if who.role() != melv_store::Role::Admin {
        return Err(ApiError::forbidden(
            "only an admin sees the ingest's rejected messages (they may name any site's gateway)",
        ));
    }
    let total = s.store.count_rejects().await?;
    let newest = s.store.rejects(200).await?;
    Ok(Json(json!({"total": total, "newest": newest})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    pub resolution: Resolution,
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
}

async fn history(
    State(s): State<AppState>,
    who: Principal,
    Path(raw): Path<String>,
    q: Result<Query<HistoryQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<serde_json::Value>> {
    let Query(q) = q?;
    let site = service::site_for(&s, &who, id(&raw)?).await?;
    let b = service::history(&s, &site, q.resolution, q.from_ms, q.to_ms).await?;
    Ok(Json(json!({"resolution": q.resolution, "buckets": b})))
}

async fn ingest_batch(
    State(s): State<AppState>,
    token: GatewayToken,
    Json(b): Json<Batch>,
) -> ApiResult<Json<melv_store::IngestCounts>> {
    Ok(Json(ingest::ingest(&s, &token, &b).await?))
}

async fn gateway_settings(
    State(s): State<AppState>,
    token: GatewayToken,
    Path(serial): Path<String>,
) -> ApiResult<Json<service::SettingsView>> {
    Ok(Json(ingest::gateway_settings(&s, &token, &serial).await?))
}

async fn gateway_ack(
    State(s): State<AppState>,
    token: GatewayToken,
    Path(serial): Path<String>,
    Json(a): Json<Ack>,
) -> ApiResult<Json<melv_store::SettingsVersion>> {
    Ok(Json(ingest::ack(&s, &token, &serial, &a).await?))
}
