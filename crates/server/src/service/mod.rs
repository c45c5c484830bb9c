//! The cloud's rules, shared by the JSON API and the web app: who may see and do what, how a site
//! is deployed and activated, how its status is derived, how settings are validated and versioned.
//!
//! Tenant isolation is decided in one place, [`site_for`]: a site the caller may not see is
//! "not found" (404), so a stranger learns nothing, not even that the id exists. A site the caller
//! sees but may not change in that way is "forbidden" (403) with the reason.

mod history;
mod settings;
mod status;
mod uplink;

pub use history::{history, merge_calendar, Resolution};
pub use settings::{current_settings, save_settings, site_config, SettingsView};
pub use status::{
    alert_view, alerts, derive_status, site_view, AlertView, AlertsView, CauseView, DeviceView,
    PointView, SiteView,
};
pub use uplink::{uplinks, UplinkView};

use crate::auth::{hash_password, new_token, token_hash, Principal};
use crate::error::{ApiError, ApiResult};
use crate::AppState;
use melv_core::{Country, Phases};
use melv_store::{Device, DeviceKind, NewSite, Role, Site, SiteFilter, User};
use serde::{Deserialize, Serialize};

/// Longest name or e-mail accepted: bounds storage and page layout.
pub const MAX_TEXT: usize = 200;
/// Longest e-mail address a sign-in looks up (RFC 5321 4.5.3.1.3: a path is at most 256 octets,
/// an address within it 254).
pub const MAX_EMAIL: usize = 254;

pub fn text(field: &str, v: &str, max: usize) -> ApiResult<String> {
    let v = v.trim();
    if v.is_empty() || v.chars().count() > max || v.chars().any(char::is_control) {
        return Err(ApiError::invalid(format!(
            "{field}: expected 1 to {max} printable characters"
        )));
    }
    Ok(v.to_string())
}

/// Device serials: 1-32 letters, digits, '-' or '_' (the labels of the MS-7K-U and gateway carry
/// alphanumeric serials; the limit keeps URLs and pages sane).
pub fn serial(v: &str) -> ApiResult<String> {
    let v = v.trim();
    let ok = (1..=32).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(v.to_string())
    } else {
        Err(ApiError::invalid(format!(
            "serial {v:?}: expected 1 to 32 letters, digits, '-' or '_'"
        )))
    }
}

pub fn email(v: &str) -> ApiResult<String> {
    let v = text("email", v, MAX_TEXT)?.to_ascii_lowercase();
    match v.split_once('@') {
        Some((a, b)) if !a.is_empty() && !b.is_empty() && !v.contains(' ') => Ok(v),
        _ => Err(ApiError::invalid(format!(
            "email {v:?}: expected an address like name@example.com"
        ))),
    }
}

// ---------------------------------------------------------------- accounts

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewAccount {
    pub email: String,
    pub name: String,
    pub password: String,
    pub role: Role,
}

/// Admins create any account; installers create owner accounts (to hand sites over); owners none.
pub async fn create_account(
    state: &AppState,
    who: Option<&Principal>,
    new: &NewAccount,
) -> ApiResult<User> {
    match who.map(|p| p.role()) {
        Some(Role::Admin) => {}
        Some(Role::Installer) if new.role == Role::Owner => {}
        Some(_) => {
            return Err(ApiError::forbidden(format!(
                "a {} may not create {} accounts",
                who.map(|p| p.role()).unwrap_or(Role::Owner),
                new.role
            )))
        }
        None => return Err(ApiError::unauthorized()),
    }
    let email = email(&new.email)?;
    let name = text("name", &new.name, MAX_TEXT)?;
    let hash = hash_password(&new.password)?;
    state
        .store
        .create_user(&email, &name, new.role, &hash, state.clock.now_ms())
        .await
        // Not "an account with e-mail x exists": the caller (an installer) learns nothing about
        // other people's accounts beyond "not created".
        .map_err(|e| match e {
            melv_store::StoreError::Conflict(_) => ApiError::conflict(
                "email: this address cannot be used for a new account; for an existing owner, \
                 hand the site over to that address",
            ),
            e => e.into(),
        })
}

/// Signs in: a new session token (the caller stores it as cookie or bearer).
pub async fn login(
    state: &AppState,
    email: &str,
    password: &str,
    kind: &str,
) -> ApiResult<(User, String)> {
    let wrong = || {
        ApiError::new(
            axum::http::StatusCode::UNAUTHORIZED,
            "wrong e-mail or password",
        )
    };
    // Checked before it reaches SQL or the throttle table: PostgreSQL refuses a NUL byte in text
    // (a 503 before), and the table keys stay small.
    let email = email.trim().to_ascii_lowercase();
    if email.is_empty() || email.len() > MAX_EMAIL || email.chars().any(char::is_control) {
        return Err(ApiError::bad(format!(
            "email: expected 1 to {MAX_EMAIL} bytes without control characters"
        )));
    }
    let now = state.clock.now_ms();
    if let Err(wait_ms) = state.logins.check(&email, now) {
        return Err(ApiError::new(
            axum::http::StatusCode::TOO_MANY_REQUESTS,
            format!(
                "too many failed sign-ins for this address; try again in {} minutes",
                wait_ms / 60_000 + 1
            ),
        ));
    }
    let user = state.store.user_by_email(&email).await?;
    let user = match user {
        Some(u) if crate::auth::verify_password(password, &u.password_hash) => u,
        Some(_) => {
            state.logins.failed(&email, now);
            return Err(wrong());
        }
        None => {
            // The same Argon2 work as for an existing account, so that the answer's time does not
            // tell which addresses have accounts (issue 16 item 5: 75.6 ms against 4.8 ms before).
            crate::auth::verify_password(password, crate::auth::dummy_hash());
            state.logins.failed(&email, now);
            return Err(wrong());
        }
    };
    state.logins.succeeded(&email);
    let token = new_token();
    state
        .store
        .create_session(
            &token_hash(&token),
            user.id,
            kind,
            now,
            now + crate::auth::SESSION_MS,
        )
        .await?;
    Ok((user, token))
}

// ---------------------------------------------------------------- sites and access

/// The site if the caller may see it; otherwise 404 (never 403, never data).
pub async fn site_for(state: &AppState, who: &Principal, id: i64) -> ApiResult<Site> {
    let hidden = || ApiError::not_found(format!("site {id} not found"));
    let site = state.store.site(id).await?.ok_or_else(hidden)?;
    let visible = match who.role() {
        Role::Admin => true,
        Role::Installer => site.installer_id == who.user.id,
        Role::Owner => site.owner_id == Some(who.user.id),
    };
    if visible {
        Ok(site)
    } else {
        Err(hidden())
    }
}

pub fn filter_for(who: &Principal) -> SiteFilter {
    match who.role() {
        Role::Admin => SiteFilter::All,
        Role::Installer => SiteFilter::Installer(who.user.id),
        Role::Owner => SiteFilter::Owner(who.user.id),
    }
}

/// Deployment (devices, checks, activation, hand-over) is the installer's job (manual 4.11: the
/// installer activates through the app's deployment guide) or an admin's.
fn may_deploy(who: &Principal) -> ApiResult<()> {
    match who.role() {
        Role::Installer | Role::Admin => Ok(()),
        Role::Owner => Err(ApiError::forbidden(
            "only the site's installer deploys devices, records checks, activates and hands over",
        )),
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SiteInput {
    pub name: String,
    /// 1 or 3 (manual 4.1.1).
    pub phases: i64,
    /// generic, AU, DE or IT.
    pub country: String,
    /// IANA name, e.g. Europe/Berlin.
    pub timezone: String,
}

pub fn parse_country(s: &str) -> ApiResult<Country> {
    s.parse()
        .map_err(|e: String| ApiError::invalid(format!("country: {e}")))
}

pub fn country_name(c: Country) -> String {
    serde_json::to_value(c)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| "generic".into())
}

pub fn parse_tz(s: &str) -> ApiResult<chrono_tz::Tz> {
    s.trim().parse().map_err(|_| {
        ApiError::invalid(format!(
            "timezone {s:?}: expected an IANA name such as Europe/Berlin"
        ))
    })
}

pub async fn create_site(state: &AppState, who: &Principal, input: &SiteInput) -> ApiResult<Site> {
    may_deploy(who)?;
    let name = text("name", &input.name, MAX_TEXT)?;
    Phases::from_count(input.phases).map_err(|e| ApiError::invalid(format!("phases: {e}")))?;
    let country = parse_country(&input.country)?;
    let tz = parse_tz(&input.timezone)?;
    let site = state
        .store
        .create_site(
            &NewSite {
                name,
                installer_id: who.user.id,
                phases: input.phases,
                country: country_name(country),
                timezone: tz.name().to_string(),
            },
            state.clock.now_ms(),
        )
        .await?;
    audit(state, who, site.id, "site created", None, Some(&site)).await?;
    Ok(site)
}

async fn audit<T: Serialize>(
    state: &AppState,
    who: &Principal,
    site_id: i64,
    action: &str,
    old: Option<&T>,
    new: Option<&T>,
) -> ApiResult<()> {
    let j = |v: Option<&T>| v.and_then(|v| serde_json::to_string(v).ok());
    state
        .store
        .audit(
            Some(site_id),
            Some(who.user.id),
            action,
            j(old).as_deref(),
            j(new).as_deref(),
            state.clock.now_ms(),
        )
        .await?;
    Ok(())
}

pub fn phases_of(site: &Site) -> ApiResult<Phases> {
    Phases::from_count(site.phases).map_err(|e| ApiError::invalid(format!("stored site: {e}")))
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceInput {
    pub serial: String,
    pub kind: DeviceKind,
    /// A gateway's claim code (its label, or `melv gateway --print-claim`): required for a gateway,
    /// refused for a battery. It proves that the installer has the gateway in hand.
    #[serde(default)]
    pub claim_code: Option<String>,
}

/// A device added. A gateway authenticates with its claim code from now on (MQTT password and
/// HTTP bearer token); the cloud keeps only its hashes and never shows it.
#[derive(Debug, Clone, Serialize)]
pub struct AddedDevice {
    pub serial: String,
    pub kind: DeviceKind,
}

/// The canonical claim code, or 422 naming the field.
pub fn claim_code(raw: Option<&str>) -> ApiResult<String> {
    let raw = raw.ok_or_else(|| {
        ApiError::invalid(
            "claim_code: a gateway is bound with the claim code on its label (or shown by \
             `melv gateway --print-claim`)",
        )
    })?;
    melv_wire::claim::normalize(raw).map_err(ApiError::invalid)
}

/// (bearer token hash, broker password hash) of a claim code.
fn credentials(code: &str) -> (String, String) {
    (token_hash(code), crate::broker_auth::mosquitto_hash(code))
}

/// Rewrites the broker's password file after a change of gateway credentials, when the service
/// keeps one (`melv serve --mosquitto-passwd`).
async fn sync_broker(state: &AppState) -> ApiResult<()> {
    if let Some(b) = &state.broker {
        crate::broker_auth::write_passwd(&state.store, b).await?;
    }
    Ok(())
}

/// Adds a gateway (one per site, with its claim code) or a battery (manual appendix 1: 1-3 on a
/// single-phase site, 1-6 on a three-phase site).
pub async fn add_device(
    state: &AppState,
    who: &Principal,
    site_id: i64,
    input: &DeviceInput,
) -> ApiResult<AddedDevice> {
    let site = site_for(state, who, site_id).await?;
    may_deploy(who)?;
    let serial = serial(&input.serial)?;
    let devices = state.store.devices(site.id).await?;
    let count = |k| devices.iter().filter(|d| d.kind == k).count();
    let phases = phases_of(&site)?;
    match input.kind {
        DeviceKind::Gateway if count(DeviceKind::Gateway) >= 1 => {
            return Err(ApiError::invalid(
                "kind: the site already has its gateway (one gateway runs the site; unbind it to replace it)",
            ))
        }
        DeviceKind::Battery if input.claim_code.is_some() => {
            return Err(ApiError::invalid(
                "claim_code: only a gateway is bound with a claim code",
            ))
        }
        DeviceKind::Battery if count(DeviceKind::Battery) >= phases.max_batteries() => {
            return Err(ApiError::invalid(format!(
                "kind: a {} site takes at most {} batteries (manual appendix 1 {})",
                if phases == Phases::Single {
                    "single-phase"
                } else {
                    "three-phase"
                },
                phases.max_batteries(),
                if phases == Phases::Single { "a" } else { "b" }
            )))
        }
        _ => {}
    }
    let creds = match input.kind {
        DeviceKind::Gateway => Some(credentials(&claim_code(input.claim_code.as_deref())?)),
        DeviceKind::Battery => None,
    };
    let d = state
        .store
        .add_device(
            site.id,
            &serial,
            input.kind,
            creds.as_ref().map(|c| c.0.as_str()),
            state.clock.now_ms(),
        )
        .await
        // Never "GW-1 is bound to site 7": a serial taken says nothing about whose it is.
        .map_err(|e| match e {
            melv_store::StoreError::Conflict(_) => ApiError::conflict(format!(
                "serial {serial:?} is already bound to a site; if the device is yours, have it \
                 unbound there (or by an admin) first"
            )),
            e => e.into(),
        })?;
    if let Some((token, mqtt)) = &creds {
        state
            .store
            .set_gateway_credential(site.id, &d.serial, token, mqtt)
            .await?;
        sync_broker(state).await?;
    }
    audit(
        state,
        who,
        site.id,
        &format!("{} {} added", d.kind.as_str(), d.serial),
        None::<&()>,
        None,
    )
    .await?;
    Ok(AddedDevice {
        serial: d.serial,
        kind: d.kind,
    })
}

/// Unbinds a device from the site (to replace it): its credentials stop working at once (HTTP) and
/// at the broker's next reload of the password file (MQTT).
pub async fn remove_device(
    state: &AppState,
    who: &Principal,
    site_id: i64,
    raw_serial: &str,
) -> ApiResult<()> {
    let site = site_for(state, who, site_id).await?;
    may_deploy(who)?;
    let serial = serial(raw_serial)?;
    let d = state.store.remove_device(site.id, &serial).await?;
    if d.kind == DeviceKind::Gateway {
        sync_broker(state).await?;
    }
    audit(
        state,
        who,
        site.id,
        &format!("{} {} unbound", d.kind.as_str(), d.serial),
        None::<&()>,
        None,
    )
    .await
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimInput {
    /// The gateway's new claim code (`melv gateway --new-claim` made it).
    pub claim_code: String,
}

/// Rotates a gateway's credential: the new claim code replaces the old one, which stops working.
pub async fn rotate_claim(
    state: &AppState,
    who: &Principal,
    site_id: i64,
    raw_serial: &str,
    input: &ClaimInput,
) -> ApiResult<()> {
    let site = site_for(state, who, site_id).await?;
    may_deploy(who)?;
    let serial = serial(raw_serial)?;
    let (token, mqtt) = credentials(&claim_code(Some(&input.claim_code))?);
    state
        .store
        .set_gateway_credential(site.id, &serial, &token, &mqtt)
        .await?;
    sync_broker(state).await?;
    audit(
        state,
        who,
        site.id,
        &format!("gateway {serial} credential rotated"),
        None::<&()>,
        None,
    )
    .await
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckInput {
    /// Measured L-N voltages at the point of connection, one per phase (manual 4.1.1).
    pub grid_voltages_v: Vec<f64>,
    #[serde(default)]
    pub mount: Option<melv_install::Mount>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CheckResult {
    pub check: melv_store::Check,
    pub plan: melv_install::Plan,
}

/// Runs the installer's plan (the same `melv_install::plan` as `melv plan`) for the site's wiring and
/// current battery count with the measured voltages, and records the result.
pub async fn record_check(
    state: &AppState,
    who: &Principal,
    site_id: i64,
    input: &CheckInput,
) -> ApiResult<CheckResult> {
    let site = site_for(state, who, site_id).await?;
    may_deploy(who)?;
    let batteries = state
        .store
        .devices(site.id)
        .await?
        .iter()
        .filter(|d| d.kind == DeviceKind::Battery)
        .count() as i64;
    if batteries == 0 {
        return Err(ApiError::invalid(
            "batteries: add the batteries by serial before the checks (the plan depends on their number)",
        ));
    }
    if input.grid_voltages_v.is_empty() {
        return Err(ApiError::invalid(
            "grid_voltages_v: measure the voltage of each phase to N at the point of connection \
             (manual 4.1.1, 4.10); activation needs a measured check",
        ));
    }
    let req = melv_install::PlanRequest {
        phases: site.phases,
        batteries,
        grid_voltages_v: input.grid_voltages_v.clone(),
        mount: input.mount,
    };
    let plan = melv_install::plan(&req).map_err(|e| ApiError::invalid(e.to_string()))?;
    let summary = if plan.installable {
        format!(
            "installable: {} x MS-7K-U, {} mm2 wire, grid voltages within range",
            plan.batteries, plan.wire.cross_section_mm2
        )
    } else {
        plan.refusals.join("; ")
    };
    let check = state
        .store
        .record_check(
            site.id,
            who.user.id,
            state.clock.now_ms(),
            &serde_json::to_string(&req).unwrap_or_default(),
            plan.installable,
            &summary,
        )
        .await?;
    Ok(CheckResult { check, plan })
}

/// Activation (manual 4.11): a gateway, 1..=max batteries, and a passing check recorded for the
/// current number of batteries.
pub async fn activate(state: &AppState, who: &Principal, site_id: i64) -> ApiResult<Site> {
    let site = site_for(state, who, site_id).await?;
    may_deploy(who)?;
    if site.activated_ms.is_some() {
        return Err(ApiError::conflict(format!(
            "site {site_id} is already active"
        )));
    }
    let devices = state.store.devices(site.id).await?;
    let n = |k| devices.iter().filter(|d: &&Device| d.kind == k).count();
    if n(DeviceKind::Gateway) != 1 {
        return Err(ApiError::invalid(
            "activate: add the site's gateway by serial first",
        ));
    }
    if n(DeviceKind::Battery) == 0 {
        return Err(ApiError::invalid(
            "activate: add at least one battery by serial first",
        ));
    }
    let checks = state.store.checks(site.id).await?;
    let Some(last) = checks.first() else {
        return Err(ApiError::invalid(
            "activate: record the pre-installation checks first (manual 4.1.1: grid voltage per phase)",
        ));
    };
    if !last.installable {
        return Err(ApiError::invalid(format!(
            "activate: the last check failed: {}",
            last.summary
        )));
    }
    let req: melv_install::PlanRequest = serde_json::from_str(&last.request_json)
        .map_err(|e| ApiError::invalid(format!("activate: stored check unreadable: {e}")))?;
    if req.batteries != n(DeviceKind::Battery) as i64 {
        return Err(ApiError::invalid(format!(
            "activate: the last check was for {} batteries but the site has {}; record the checks again",
            req.batteries,
            n(DeviceKind::Battery)
        )));
    }
    state
        .store
        .activate_site(site.id, state.clock.now_ms())
        .await?;
    let after = state
        .store
        .site(site.id)
        .await?
        .ok_or_else(|| ApiError::not_found("site"))?;
    audit(
        state,
        who,
        site.id,
        "site activated",
        Some(&site),
        Some(&after),
    )
    .await?;
    Ok(after)
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HandoverInput {
    pub owner_email: String,
}

/// Hands the site to an existing owner account.
pub async fn handover(
    state: &AppState,
    who: &Principal,
    site_id: i64,
    input: &HandoverInput,
) -> ApiResult<Site> {
    let site = site_for(state, who, site_id).await?;
    may_deploy(who)?;
    let email = email(&input.owner_email)?;
    let owner = state
        .store
        .user_by_email(&email)
        .await?
        .filter(|u| u.role == Role::Owner)
        .ok_or_else(|| {
            ApiError::invalid(format!(
                "owner_email: no owner account {email:?}; create it first (POST /api/accounts)"
            ))
        })?;
    state.store.set_owner(site.id, owner.id).await?;
    let after = state
        .store
        .site(site.id)
        .await?
        .ok_or_else(|| ApiError::not_found("site"))?;
    audit(
        state,
        who,
        site.id,
        "site handed over",
        Some(&site),
        Some(&after),
    )
    .await?;
    Ok(after)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_text(f: fn(&str) -> ApiResult<String>, input: &str, expected: Result<&str, &str>) {
        match (f(input), expected) {
            (Ok(v), Ok(w)) => assert_eq!(v, w),
            (Err(e), Err(w)) => assert!(e.message.starts_with(w), "{} vs {w}", e.message),
            (got, want) => panic!("{input:?}: got {got:?}, expected {want:?}"),
        }
    }

    #[test]
    fn inputs() {
        check_text(serial, " MS7K-0001 ", Ok("MS7K-0001"));
        check_text(serial, "", Err("serial \"\""));
        check_text(serial, "a/b", Err("serial \"a/b\""));
        check_text(serial, &"x".repeat(33), Err("serial"));
        check_text(email, "Ann@Example.com", Ok("ann@example.com"));
        check_text(email, "ann", Err("email \"ann\""));
        check_text(email, "@x", Err("email"));
    }
}
