//! Each gateway's uplink as the cloud sees it (docs/cloud.md, "The uplink mark"): what
//! `/api/sites/{id}/uplink` returns and the dashboard's one line per gateway.

use crate::error::ApiResult;
use crate::AppState;
use melv_store::{DeviceKind, Site, UplinkRow};
use serde::Serialize;

/// One gateway of a site.
#[derive(Debug, Clone, Serialize)]
pub struct UplinkView {
    pub gateway_serial: String,
    /// Every record numbered 1 to this is stored (0: none yet).
    pub stored_through: i64,
    /// Highest record number stored.
    pub highest: i64,
    /// Record numbers between the two not stored yet: the open gaps the gateway is asked to fill.
    pub missing: i64,
    /// Records the gateway's bounded queue discarded before the cloud had them.
    pub lost: i64,
    /// How far the complete history lags behind the newest record, s of gateway time (0: none).
    pub backlog_age_s: f64,
    /// Gateway time (ms) up to which the history is complete, and of the newest record.
    pub complete_to_ms: Option<i64>,
    pub newest_ms: Option<i64>,
    /// Cloud time (ms) of the last record that moved these numbers; `None`: no record yet.
    pub updated_ms: Option<i64>,
}

/// The uplink of every gateway of `site`.
pub async fn uplinks(state: &AppState, site: &Site) -> ApiResult<Vec<UplinkView>> {
    let mut out = Vec::new();
    for d in state.store.devices(site.id).await? {
        if d.kind != DeviceKind::Gateway {
            continue;
        }
        let u = state.store.uplink(&d.serial).await?;
        let r = u.unwrap_or_default();
        let age = r.backlog_age_s();
        out.push(UplinkView {
            gateway_serial: d.serial,
            stored_through: r.stored_through,
            highest: r.highest,
            missing: r.missing,
            lost: r.lost,
            // Unknown (the record at the mark is not data): reported as 0 rather than NaN in JSON.
            backlog_age_s: if age.is_finite() { age } else { 0.0 },
            complete_to_ms: r.complete_to_ms,
            newest_ms: r.newest_ms,
            updated_ms: u.map(|u: UplinkRow| u.updated_ms),
        });
    }
    Ok(out)
}
