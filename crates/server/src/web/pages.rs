//! Sign-in, site list, deployment wizard, dashboard, alerts and history pages.

use super::chart;
use super::layout::{error_page, esc, kw, kwh, local_time, page, WebForm, WebUser};
use crate::auth::{COOKIE, SESSION_MS};
use crate::error::ApiError;
use crate::service::{self, CheckInput, DeviceInput, HandoverInput, Resolution, SiteInput};
use crate::AppState;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use melv_core::{SiteStatus, StatusLed};
use melv_store::{DeviceKind, Role, Site};
use serde::Deserialize;

type Page = Result<Response, Response>;

fn fail(user: &WebUser) -> impl Fn(ApiError) -> Response + '_ {
    move |e| error_page(Some(&user.0), e)
}

fn id(raw: &str) -> Result<i64, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::not_found(format!("site {raw:?} not found")))
}

pub fn badge(s: SiteStatus) -> String {
    let (class, text) = match s {
        SiteStatus::Normal => ("normal", "Normal"),
        SiteStatus::Faulty => ("faulty", "Faulty"),
        SiteStatus::Offline => ("offline", "Offline"),
    };
    format!(r#"<span class="badge {class}">{text}</span>"#)
}

// ------------------------------------------------------------------ sign in

pub async fn login_form() -> Response {
    page("Sign in", None, &login_body(None)).into_response()
}

fn login_body(error: Option<&str>) -> String {
    let err = error
        .map(|e| format!(r#"<p class="error" role="alert">{}</p>"#, esc(e)))
        .unwrap_or_default();
    format!(
        r#"{err}<form method="post" action="/login">
<label for="email">E-mail</label><input id="email" name="email" type="email" autocomplete="username" required>
<label for="password">Password</label><input id="password" name="password" type="password" autocomplete="current-password" required>
<p><button type="submit">Sign in</button></p></form>"#
    )
}

#[derive(Deserialize)]
pub struct LoginForm {
    email: String,
    password: String,
}

pub async fn login(State(s): State<AppState>, WebForm(f): WebForm<LoginForm>) -> Response {
    match service::login(&s, &f.email, &f.password, "web").await {
        Ok((_, token)) => {
            let cookie = format!(
                "{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}",
                SESSION_MS / 1000
            );
            ([(header::SET_COOKIE, cookie)], Redirect::to("/")).into_response()
        }
        Err(e) => (
            e.status,
            page("Sign in", None, &login_body(Some(&e.message))),
        )
            .into_response(),
    }
}

pub async fn logout(State(s): State<AppState>, user: WebUser) -> Response {
    let _ = s.store.delete_session(&user.0.token_hash).await;
    let cookie = format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0");
    ([(header::SET_COOKIE, cookie)], Redirect::to("/login")).into_response()
}

// ------------------------------------------------------------------ sites

pub async fn home(State(s): State<AppState>, user: WebUser) -> Page {
    let sites = s
        .store
        .sites(service::filter_for(&user.0))
        .await
        .map_err(|e| fail(&user)(e.into()))?;
    let mut rows = String::new();
    for site in sites {
        let v = service::site_view(&s, site).await.map_err(fail(&user))?;
        let state = if v.active {
            badge(v.status)
        } else {
            "Being deployed".into()
        };
        let link = if v.active {
            format!("/sites/{}", v.site.id)
        } else {
            format!("/sites/{}/deploy", v.site.id)
        };
        rows.push_str(&format!(
            r#"<tr><td><a href="{link}">{}</a></td><td>{state}</td><td>{}</td></tr>"#,
            esc(&v.site.name),
            v.devices
                .iter()
                .filter(|d| d.kind == DeviceKind::Battery)
                .count()
        ));
    }
    let new = if user.0.role() == Role::Owner {
        String::new()
    } else {
        r#"<p><a href="/sites/new">Deploy a new site</a></p>"#.into()
    };
    let body = if rows.is_empty() {
        format!("<p>No sites yet.</p>{new}")
    } else {
        format!(
            r#"{new}<table><caption class="sr">Your sites</caption><thead><tr><th scope="col">Site</th><th scope="col">Status</th><th scope="col">Batteries</th></tr></thead><tbody>{rows}</tbody></table>"#
        )
    };
    Ok(page("Sites", Some(&user.0), &body).into_response())
}

pub async fn new_site_form(user: WebUser) -> Response {
    page("Deploy a new site", Some(&user.0), &new_site_body(None)).into_response()
}

fn new_site_body(error: Option<&str>) -> String {
    let err = error
        .map(|e| format!(r#"<p class="error" role="alert">{}</p>"#, esc(e)))
        .unwrap_or_default();
    format!(
        r#"{err}<p>Step 1 of 4. Manual 4.11: the installer activates the system with the app's deployment guide.</p>
<form method="post" action="/sites/new">
<label for="name">Site name</label><input id="name" name="name" required maxlength="200">
<label for="phases">Grid connection</label><select id="phases" name="phases">
<option value="1">Single phase (1-3 batteries)</option><option value="3">Three phase (1-6 batteries)</option></select>
<label for="country">Country</label><select id="country" name="country">
<option value="generic">Other (manual ranges)</option><option value="AU">Australia</option><option value="DE">Germany</option><option value="IT">Italy</option></select>
<label for="timezone">Time zone</label><input id="timezone" name="timezone" value="Europe/Berlin" required>
<p><button type="submit">Create site</button></p></form>"#
    )
}

pub async fn new_site(
    State(s): State<AppState>,
    user: WebUser,
    WebForm(f): WebForm<SiteInput>,
) -> Response {
    match service::create_site(&s, &user.0, &f).await {
        Ok(site) => Redirect::to(&format!("/sites/{}/deploy", site.id)).into_response(),
        Err(e) if e.status == StatusCode::UNPROCESSABLE_ENTITY => (
            e.status,
            page(
                "Deploy a new site",
                Some(&user.0),
                &new_site_body(Some(&e.message)),
            ),
        )
            .into_response(),
        Err(e) => error_page(Some(&user.0), e),
    }
}

// ------------------------------------------------------------------ deployment wizard

pub async fn deploy(State(s): State<AppState>, user: WebUser, Path(raw): Path<String>) -> Page {
    deploy_page(&s, &user, &raw, None).await
}

async fn deploy_page(
    s: &AppState,
    user: &WebUser,
    raw: &str,
    notice: Option<Result<String, ApiError>>,
) -> Page {
    let site = service::site_for(s, &user.0, id(raw).map_err(fail(user))?)
        .await
        .map_err(fail(user))?;
    let devices = s
        .store
        .devices(site.id)
        .await
        .map_err(|e| fail(user)(e.into()))?;
    let checks = s
        .store
        .checks(site.id)
        .await
        .map_err(|e| fail(user)(e.into()))?;
    // A refused step answers with its API status (422, 403, 409) and the page with the message.
    let status = match &notice {
        Some(Err(e)) => e.status,
        _ => StatusCode::OK,
    };
    let mut body = match notice {
        Some(Ok(n)) => format!(r#"<p class="notice" role="status">{n}</p>"#),
        Some(Err(e)) => format!(r#"<p class="error" role="alert">{}</p>"#, esc(&e.message)),
        None => String::new(),
    };
    let phases = site.phases;
    let max = if phases == 1 { 3 } else { 6 };
    let mut list = String::new();
    for d in &devices {
        list.push_str(&format!(
            "<li>{}: <code>{}</code></li>",
            d.kind.as_str(),
            esc(&d.serial)
        ));
    }
    body.push_str(&format!(
        r#"<h2>Step 2: devices</h2><p>{}-phase site: one gateway and 1 to {max} batteries (manual appendix 1).</p>
<ul>{list}</ul>
<form method="post" action="/sites/{id}/deploy/device">
<label for="serial">Serial number</label><input id="serial" name="serial" required maxlength="32" pattern="[A-Za-z0-9_-]+">
<label for="kind">Device</label><select id="kind" name="kind"><option value="battery">Battery (MS-7K-U)</option><option value="gateway">Gateway</option></select>
<label for="claim_code">Claim code (gateway only: on its label, or <code>melv gateway --print-claim</code>)</label><input id="claim_code" name="claim_code" maxlength="64" autocomplete="off">
<p><button type="submit">Add device</button></p></form>"#,
        if phases == 1 { "Single" } else { "Three" },
        id = site.id
    ));
    let mut volts = String::new();
    for p in 0..phases {
        let name = if phases == 1 {
            "L".to_string()
        } else {
            format!("L{}", p + 1)
        };
        volts.push_str(&format!(
            r#"<label for="v{p}">Measured voltage {name}-N (V)</label><input id="v{p}" name="v{p}" type="number" step="0.1" min="0" max="400" required>"#
        ));
    }
    let last = checks
        .first()
        .map(|c| format!("<p>Last check: <strong>{}</strong></p>", esc(&c.summary)))
        .unwrap_or_default();
    body.push_str(&format!(
        r#"<h2>Step 3: pre-installation checks</h2><p>Manual 4.1.1 and 4.10: measure each phase's voltage to N at the point of connection.</p>{last}
<form method="post" action="/sites/{id}/deploy/check">{volts}<p><button type="submit">Record checks</button></p></form>"#,
        id = site.id
    ));
    if site.activated_ms.is_none() {
        body.push_str(&format!(
            r#"<h2>Step 4: activate</h2><form method="post" action="/sites/{}/deploy/activate"><p><button type="submit">Activate site</button></p></form>"#,
            site.id
        ));
    } else {
        body.push_str(&format!(
            r#"<h2>Step 4: activated</h2><p>Activated {}. <a href="/sites/{}">Open the dashboard</a>.</p>"#,
            local_time(site.activated_ms.unwrap_or(0), &site.timezone),
            site.id
        ));
    }
    body.push_str(&format!(
        r#"<h2>Hand over to the owner</h2><form method="post" action="/sites/{}/deploy/handover">
<label for="owner_email">Owner's e-mail</label><input id="owner_email" name="owner_email" type="email" required>
<label for="owner_name">Owner's name (new account)</label><input id="owner_name" name="owner_name">
<label for="owner_password">Initial password (new account, 8+ characters)</label><input id="owner_password" name="owner_password" type="password" autocomplete="new-password">
<p><button type="submit">Hand over</button></p></form>"#,
        site.id
    ));
    Ok((
        status,
        page(&format!("Deploy {}", site.name), Some(&user.0), &body),
    )
        .into_response())
}

pub async fn deploy_device(
    State(s): State<AppState>,
    user: WebUser,
    Path(raw): Path<String>,
    WebForm(f): WebForm<DeviceInput>,
) -> Page {
    // The form always sends the claim code field; empty means "none" (a battery).
    let mut f = f;
    f.claim_code = f.claim_code.filter(|c| !c.trim().is_empty());
    let r = match id(&raw) {
        Ok(i) => service::add_device(&s, &user.0, i, &f).await,
        Err(e) => Err(e),
    };
    let notice = r.map(|d| match d.kind {
        DeviceKind::Gateway => format!(
            "Gateway <code>{}</code> bound with its claim code; it signs in with that code.",
            esc(&d.serial)
        ),
        DeviceKind::Battery => format!("Battery <code>{}</code> added.", esc(&d.serial)),
    });
    deploy_page(&s, &user, &raw, Some(notice)).await
}

pub async fn deploy_check(
    State(s): State<AppState>,
    user: WebUser,
    Path(raw): Path<String>,
    WebForm(f): WebForm<Vec<(String, String)>>,
) -> Page {
    let mut volts = Vec::new();
    let mut bad = None;
    for (k, v) in &f {
        if k.starts_with('v') {
            match v.trim().parse::<f64>() {
                Ok(x) => volts.push(x),
                Err(_) => bad = Some(ApiError::invalid(format!("{k}: {v:?} is not a number"))),
            }
        }
    }
    let r = match (bad, id(&raw)) {
        (Some(e), _) | (None, Err(e)) => Err(e),
        (None, Ok(i)) => {
            service::record_check(
                &s,
                &user.0,
                i,
                &CheckInput {
                    grid_voltages_v: volts,
                    mount: None,
                },
            )
            .await
        }
    };
    let notice = r.map(|c| {
        if c.check.installable {
            format!("Checks passed: {}", esc(&c.check.summary))
        } else {
            format!("Checks failed: {}", esc(&c.check.summary))
        }
    });
    deploy_page(&s, &user, &raw, Some(notice)).await
}

pub async fn deploy_activate(
    State(s): State<AppState>,
    user: WebUser,
    Path(raw): Path<String>,
) -> Page {
    let r = match id(&raw) {
        Ok(i) => service::activate(&s, &user.0, i).await,
        Err(e) => Err(e),
    };
    let notice =
        r.map(|_| "Site activated (manual 4.11: the SOC LEDs turn solid blue).".to_string());
    deploy_page(&s, &user, &raw, Some(notice)).await
}

#[derive(Deserialize)]
pub struct HandoverForm {
    owner_email: String,
    #[serde(default)]
    owner_name: String,
    #[serde(default)]
    owner_password: String,
}

pub async fn deploy_handover(
    State(s): State<AppState>,
    user: WebUser,
    Path(raw): Path<String>,
    WebForm(f): WebForm<HandoverForm>,
) -> Page {
    let r = async {
        let i = id(&raw)?;
        // The site must be visible before an account is created on its behalf.
        service::site_for(&s, &user.0, i).await?;
        let exists = s
            .store
            .user_by_email(&f.owner_email.trim().to_ascii_lowercase())
            .await?
            .is_some();
        if !exists && !f.owner_password.is_empty() {
            let name = if f.owner_name.trim().is_empty() {
                f.owner_email.clone()
            } else {
                f.owner_name.clone()
            };
            service::create_account(
                &s,
                Some(&user.0),
                &service::NewAccount {
                    email: f.owner_email.clone(),
                    name,
                    password: f.owner_password.clone(),
                    role: Role::Owner,
                },
            )
            .await?;
        }
        service::handover(
            &s,
            &user.0,
            i,
            &HandoverInput {
                owner_email: f.owner_email.clone(),
            },
        )
        .await
    }
    .await;
    let notice = r.map(|_| format!("Handed over to {}.", esc(&f.owner_email)));
    deploy_page(&s, &user, &raw, Some(notice)).await
}

// ------------------------------------------------------------------ dashboard

fn status_led_text(s: &str) -> &'static str {
    // Manual 6.1, battery status LED.
    match serde_json::from_value::<StatusLed>(serde_json::Value::String(s.into())) {
        Ok(StatusLed::Dim) => "Dim: normal operation",
        Ok(StatusLed::QuickFlash) => "Quick flash: abnormal working condition",
        Ok(StatusLed::SolidRed) => "Solid red: internal fault",
        Ok(StatusLed::Off) => "Off",
        Err(_) => "Unknown",
    }
}

fn soc_led_text(json: &str) -> String {
    match serde_json::from_str::<melv_core::SocLed>(json) {
        Ok(melv_core::SocLed::SolidBlue { percent }) => format!("Solid blue, {percent} %"),
        Ok(melv_core::SocLed::Off) => "Off".into(),
        Err(_) => "Unknown".into(),
    }
}

fn site_nav(site: &Site, who: &WebUser) -> String {
    // Owners do not deploy (service::may_deploy), so they are not offered the wizard.
    let deploy = if who.0.role() == Role::Owner {
        String::new()
    } else {
        format!(r#" <a href="/sites/{}/deploy">Deployment</a>"#, site.id)
    };
    format!(
        r#"<nav aria-label="Site"><a href="/sites/{0}">Dashboard</a> <a href="/sites/{0}/alerts">Alerts</a> <a href="/sites/{0}/settings">Settings</a> <a href="/sites/{0}/history">History</a>{deploy}</nav>"#,
        site.id
    )
}

pub async fn dashboard(State(s): State<AppState>, user: WebUser, Path(raw): Path<String>) -> Page {
    let f = fail(&user);
    let site = service::site_for(&s, &user.0, id(&raw).map_err(&f)?)
        .await
        .map_err(&f)?;
    let v = service::site_view(&s, site.clone()).await.map_err(&f)?;
    let mut body = site_nav(&site, &user);
    let seen = v
        .last_seen_ms
        .map(|t| format!("last report {}", local_time(t, &site.timezone)))
        .unwrap_or_else(|| "no report yet".into());
    body.push_str(&format!(
        r#"<p>Status: {} <small>({seen})</small></p>"#,
        badge(v.status)
    ));
    if v.status != SiteStatus::Normal && v.active {
        body.push_str(&format!(
            r#"<p><a href="/sites/{}/alerts">See the alert codes and what to do</a></p>"#,
            site.id
        ));
    }
    if let Some(p) = &v.latest {
        body.push_str("<h2>Power now</h2>");
        body.push_str(&chart::power_flow(
            p.pv_w,
            p.load_w,
            p.grid_w,
            p.battery_w,
            p.soc,
        ));
    }
    // Today's energy in the site's time zone.
    let now = s.clock.now_ms();
    if let Ok(days) = service::history(
        &s,
        &site,
        Resolution::Day,
        Some((now - 86_400_000).max(0)),
        Some(now + 1),
    )
    .await
    {
        if let Some(d) = days.last() {
            body.push_str(&format!(
                r#"<h2>Today</h2><div class="grid"><div class="card">Solar {}</div><div class="card">Home {}</div><div class="card">Grid in {} / out {}</div><div class="card">Battery charged {} / discharged {}</div></div>"#,
                kwh(d.pv_wh), kwh(d.load_wh), kwh(d.import_wh), kwh(d.export_wh), kwh(d.charge_wh), kwh(d.discharge_wh)
            ));
        }
    }
    if let Ok(ups) = service::uplinks(&s, &site).await {
        body.push_str(&uplink_line(&ups));
    }
    body.push_str("<h2>Batteries</h2>");
    if v.batteries.is_empty() {
        body.push_str("<p>No battery report yet.</p>");
    } else {
        body.push_str(r#"<table><thead><tr><th scope="col">Serial</th><th scope="col">SOC</th><th scope="col">Power</th><th scope="col">SOC LED</th><th scope="col">Status LED</th></tr></thead><tbody>"#);
        for b in &v.batteries {
            body.push_str(&format!(
                "<tr><td><code>{}</code></td><td>{:.0} %</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&b.serial),
                b.soc * 100.0,
                kw(b.power_w),
                soc_led_text(&b.soc_led),
                status_led_text(&b.status_led)
            ));
        }
        body.push_str("</tbody></table>");
    }
    Ok(page(&site.name, Some(&user.0), &body).into_response())
}

/// One line per gateway: the records stored in sequence, the gaps, the backlog (docs/cloud.md).
fn uplink_line(ups: &[service::UplinkView]) -> String {
    let mut out = String::new();
    for u in ups {
        let gaps = if u.missing > 0 {
            format!(
                "; {} missing, backlog {:.0} min",
                u.missing,
                u.backlog_age_s / 60.0
            )
        } else {
            String::new()
        };
        let lost = if u.lost > 0 {
            format!("; {} lost at the gateway", u.lost)
        } else {
            String::new()
        };
        out.push_str(&format!(
            "<p><small>Uplink of gateway <code>{}</code>: records 1 to {} stored{gaps}{lost}</small></p>",
            esc(&u.gateway_serial),
            u.stored_through
        ));
    }
    out
}

pub async fn alerts(State(s): State<AppState>, user: WebUser, Path(raw): Path<String>) -> Page {
    let f = fail(&user);
    let site = service::site_for(&s, &user.0, id(&raw).map_err(&f)?)
        .await
        .map_err(&f)?;
    let a = service::alerts(&s, &site).await.map_err(&f)?;
    let mut body = site_nav(&site, &user);
    body.push_str(&format!(
        "<p>Status: {}</p><p>{}</p>",
        badge(a.status),
        esc(&a.note)
    ));
    for al in &a.alerts {
        body.push_str(&format!(
            r#"<section class="card" aria-labelledby="a{code}{dev}"><h2 id="a{code}{dev}">Code {code}: {}</h2><p>Device <code>{}</code>, since {}</p>"#,
            esc(&al.issue),
            esc(&al.device_serial),
            local_time(al.since_ms, &site.timezone),
            code = al.code,
            dev = esc(&al.device_serial)
        ));
        for g in &al.groups {
            body.push_str("<h3>Cause</h3><ul>");
            for c in &g.causes {
                body.push_str(&format!("<li>{}</li>", esc(c)));
            }
            body.push_str("</ul><h3>What to do</h3><ol>");
            for st in &g.solutions {
                body.push_str(&format!("<li>{}</li>", esc(st)));
            }
            body.push_str("</ol>");
        }
        body.push_str("</section>");
    }
    Ok(page(&format!("Alerts · {}", site.name), Some(&user.0), &body).into_response())
}

#[derive(Deserialize)]
pub struct HistoryParams {
    resolution: Option<Resolution>,
}

pub async fn history(
    State(s): State<AppState>,
    user: WebUser,
    Path(raw): Path<String>,
    q: Result<Query<HistoryParams>, axum::extract::rejection::QueryRejection>,
) -> Page {
    let f = fail(&user);
    let site = service::site_for(&s, &user.0, id(&raw).map_err(&f)?)
        .await
        .map_err(&f)?;
    let res = q
        .ok()
        .and_then(|q| q.0.resolution)
        .unwrap_or(Resolution::Hour);
    let buckets = service::history(&s, &site, res, None, None)
        .await
        .map_err(&f)?;
    let mut body = site_nav(&site, &user);
    body.push_str(r#"<form method="get"><label for="resolution">Resolution</label><select id="resolution" name="resolution">"#);
    for (v, label) in [
        (Resolution::FiveMin, "5 minutes (last day)"),
        (Resolution::Hour, "Hour (last day)"),
        (Resolution::Day, "Day (last month)"),
        (Resolution::Month, "Month (last year)"),
    ] {
        let sel = if v == res { " selected" } else { "" };
        let name = serde_json::to_value(v)
            .ok()
            .and_then(|x| x.as_str().map(String::from))
            .unwrap_or_default();
        body.push_str(&format!(r#"<option value="{name}"{sel}>{label}</option>"#));
    }
    body.push_str(r#"</select> <button type="submit">Show</button></form>"#);
    body.push_str(&chart::history(&buckets, &site.timezone, res));
    Ok(page(&format!("History · {}", site.name), Some(&user.0), &body).into_response())
}
