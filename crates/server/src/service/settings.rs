//! Working-mode settings: validated with `melv_ems::Settings::validate`, saved as versions.

use super::*;
use melv_ems::{Settings, SiteConfig};

/// The gateway's view of the site, for settings validation (the same `Settings::validate`).
pub async fn site_config(state: &AppState, site: &Site) -> ApiResult<SiteConfig> {
    let batteries = state
        .store
        .devices(site.id)
        .await?
        .iter()
        .filter(|d| d.kind == DeviceKind::Battery)
        .count();
    Ok(SiteConfig::new(
        phases_of(site)?,
        parse_country(&site.country)?,
        batteries.max(1),
        parse_tz(&site.timezone)?,
    ))
}

#[derive(Debug, Clone, Serialize)]
pub struct SettingsView {
    /// 0 when nothing was saved yet (the defaults are shown).
    pub version: i64,
    pub delivery: Option<melv_store::Delivery>,
    pub settings: Settings,
}

pub async fn current_settings(state: &AppState, site: &Site) -> ApiResult<SettingsView> {
    match state.store.latest_settings(site.id).await? {
        None => Ok(SettingsView {
            version: 0,
            delivery: None,
            settings: Settings::default(),
        }),
        Some(v) => Ok(SettingsView {
            version: v.version,
            delivery: Some(v.delivery),
            settings: serde_json::from_str(&v.settings_json)
                .map_err(|e| ApiError::invalid(format!("stored settings unreadable: {e}")))?,
        }),
    }
}

/// Validates with `melv_ems::Settings::validate` and saves a new version with its audit row.
pub async fn save_settings(
    state: &AppState,
    who: &Principal,
    site_id: i64,
    new: &Settings,
) -> ApiResult<SettingsView> {
    let site = site_for(state, who, site_id).await?;
    let cfg = site_config(state, &site).await?;
    new.validate(&cfg)
        .map_err(|e| ApiError::invalid(format!("settings.{e}")))?;
    let old = current_settings(state, &site).await?;
    let old_json = serde_json::to_string(&old.settings).unwrap_or_default();
    let new_json = serde_json::to_string(new).unwrap_or_default();
    let v = state
        .store
        .save_settings(
            site.id,
            who.user.id,
            &old_json,
            &new_json,
            state.clock.now_ms(),
        )
        .await?;
    Ok(SettingsView {
        version: v.version,
        delivery: Some(v.delivery),
        settings: new.clone(),
    })
}
