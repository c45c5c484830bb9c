//! Site status (Normal / Faulty / Offline) and the alerts page's content (manual 6.2, 6.3).

use super::*;
use melv_core::{AlertCode, SiteStatus};

#[derive(Debug, Clone, Serialize)]
pub struct AlertView {
    pub code: i64,
    pub device_serial: String,
    pub since_ms: i64,
    pub issue: String,
    /// The manual's causes with their solution steps (6.3), group by group.
    pub groups: Vec<CauseView>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CauseView {
    pub causes: Vec<String>,
    pub solutions: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SiteView {
    pub site: Site,
    pub active: bool,
    pub status: SiteStatus,
    pub last_seen_ms: Option<i64>,
    /// A site is Offline when its newest telemetry is older than this.
    pub offline_after_s: i64,
    pub devices: Vec<DeviceView>,
    pub latest: Option<PointView>,
    pub batteries: Vec<melv_store::BatteryRow>,
    pub active_alerts: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct DeviceView {
    pub serial: String,
    pub kind: DeviceKind,
}

/// Power flow now. Signs: battery_w positive = discharging, grid_w positive = importing.
#[derive(Debug, Clone, Serialize)]
pub struct PointView {
    pub ts_ms: i64,
    pub pv_w: f64,
    pub load_w: f64,
    pub grid_w: f64,
    pub battery_w: f64,
    pub soc: f64,
}

/// Normal / Faulty / Offline: Offline when no telemetry arrived for `offline_after_s` (or never),
/// else Faulty when any alert is active, else Normal.
pub fn derive_status(
    last_seen_ms: Option<i64>,
    now_ms: i64,
    offline_after_s: i64,
    alerts: usize,
) -> SiteStatus {
    match last_seen_ms {
        Some(t) if now_ms - t <= offline_after_s * 1000 => {
            if alerts > 0 {
                SiteStatus::Faulty
            } else {
                SiteStatus::Normal
            }
        }
        _ => SiteStatus::Offline,
    }
}

pub async fn site_view(state: &AppState, site: Site) -> ApiResult<SiteView> {
    let last = state.store.last_seen(site.id).await?;
    let alerts = state.store.active_alerts(site.id).await?;
    let status = derive_status(
        last,
        state.clock.now_ms(),
        state.offline_after_s,
        alerts.len(),
    );
    let devices = state
        .store
        .devices(site.id)
        .await?
        .into_iter()
        .map(|d| DeviceView {
            serial: d.serial,
            kind: d.kind,
        })
        .collect();
    let latest = state.store.latest_point(site.id).await?.map(|p| PointView {
        ts_ms: p.ts_ms,
        pv_w: p.pv_w,
        load_w: p.load_w,
        grid_w: p.grid_w,
        battery_w: p.battery_w,
        soc: p.soc,
    });
    Ok(SiteView {
        active: site.activated_ms.is_some(),
        batteries: state.store.battery_states(site.id).await?,
        site,
        status,
        last_seen_ms: last,
        offline_after_s: state.offline_after_s,
        devices,
        latest,
        active_alerts: alerts.len(),
    })
}

#[derive(Debug, Clone, Serialize)]
pub struct AlertsView {
    pub status: SiteStatus,
    /// False when manual 6.2 does not let the app show codes (site Normal, or not activated).
    pub shown: bool,
    pub note: String,
    pub alerts: Vec<AlertView>,
}

pub fn alert_view(code: i64, device_serial: &str, since_ms: i64) -> AlertView {
    let known = u32::try_from(code)
        .ok()
        .and_then(|c| AlertCode::new(c).ok());
    match known {
        Some(c) => {
            let info = c.info();
            AlertView {
                code,
                device_serial: device_serial.into(),
                since_ms,
                issue: info.issue.into(),
                groups: info
                    .groups
                    .iter()
                    .map(|g| CauseView {
                        causes: g.causes.iter().map(|s| s.to_string()).collect(),
                        solutions: g.solutions.iter().map(|s| s.to_string()).collect(),
                    })
                    .collect(),
            }
        }
        None => AlertView {
            code,
            device_serial: device_serial.into(),
            since_ms,
            issue: "Unknown code".into(),
            groups: vec![],
        },
    }
}

/// The alert codes with the manual's causes and solutions, only when the site is activated and
/// Faulty or Offline (manual 6.2, notes).
pub async fn alerts(state: &AppState, site: &Site) -> ApiResult<AlertsView> {
    let list = state.store.active_alerts(site.id).await?;
    let last = state.store.last_seen(site.id).await?;
    let status = derive_status(
        last,
        state.clock.now_ms(),
        state.offline_after_s,
        list.len(),
    );
    if site.activated_ms.is_none() {
        return Ok(AlertsView {
            status,
            shown: false,
            note:
                "alert codes can be checked only after the system has been activated (manual 6.2)"
                    .into(),
            alerts: vec![],
        });
    }
    if status == SiteStatus::Normal {
        return Ok(AlertsView {
            status,
            shown: false,
            note: "the site is Normal: alert codes are shown only when it is Faulty or Offline (manual 6.2)".into(),
            alerts: vec![],
        });
    }
    let note = if status == SiteStatus::Offline {
        format!(
            "no telemetry for more than {} s: the alerts below are the last the gateway reported",
            state.offline_after_s
        )
    } else {
        "active alerts with the manual's causes and solutions (6.3)".into()
    };
    Ok(AlertsView {
        status,
        shown: true,
        note,
        alerts: list
            .iter()
            .map(|a| alert_view(a.code, &a.device_serial, a.since_ms))
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_status(last: Option<i64>, now: i64, alerts: usize, expected: SiteStatus) {
        assert_eq!(
            derive_status(last, now, 300, alerts),
            expected,
            "{last:?} {now} {alerts}"
        );
    }

    #[test]
    fn status_rules() {
        check_status(None, 0, 0, SiteStatus::Offline);
        check_status(Some(0), 300_000, 0, SiteStatus::Normal);
        check_status(Some(0), 300_001, 0, SiteStatus::Offline);
        check_status(Some(0), 1_000, 1, SiteStatus::Faulty);
        check_status(Some(0), 400_000, 2, SiteStatus::Offline);
    }
}
