//! Sites, their devices and the commissioning checks recorded before activation.

use crate::{col, conflict, Result, Store, StoreError};
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;

/// A site as deployed. `phases` is 1 or 3, `country` and `timezone` are the names the server parsed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Site {
    pub id: i64,
    pub name: String,
    pub installer_id: i64,
    pub owner_id: Option<i64>,
    pub phases: i64,
    pub country: String,
    pub timezone: String,
    pub created_ms: i64,
    /// Set once by activation (manual 4.11); `None` while the site is being deployed.
    pub activated_ms: Option<i64>,
}

/// What the installer enters to create a site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSite {
    pub name: String,
    pub installer_id: i64,
    pub phases: i64,
    pub country: String,
    pub timezone: String,
}

/// Which sites a listing may include: the server maps the caller's role to one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SiteFilter {
    All,
    Installer(i64),
    Owner(i64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceKind {
    Gateway,
    Battery,
}

impl DeviceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceKind::Gateway => "gateway",
            DeviceKind::Battery => "battery",
        }
    }
    fn parse(s: &str) -> Result<Self> {
        match s {
            "gateway" => Ok(DeviceKind::Gateway),
            "battery" => Ok(DeviceKind::Battery),
            other => Err(StoreError::Corrupt(format!("device kind {other:?}"))),
        }
    }
}

/// A device bound to a site. A gateway has a token hash (its credential for ingest and settings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub serial: String,
    pub site_id: i64,
    pub kind: DeviceKind,
    pub token_hash: Option<String>,
    /// A gateway's broker password hash (Mosquitto password-file form), if it has one.
    pub mqtt_hash: Option<String>,
    pub added_ms: i64,
}

/// A recorded pre-installation check (manual 4.1, via `melv_install::plan`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub id: i64,
    pub site_id: i64,
    pub recorded_by: i64,
    pub recorded_ms: i64,
    /// The request as the installer entered it (JSON).
    pub request_json: String,
    pub installable: bool,
    pub summary: String,
}

const SITE_COLS: &str =
    "id, name, installer_id, owner_id, phases, country, timezone, created_ms, activated_ms";

fn site(r: &AnyRow) -> Result<Site> {
    Ok(Site {
        id: col(r, "id")?,
        name: col(r, "name")?,
        installer_id: col(r, "installer_id")?,
        owner_id: col(r, "owner_id")?,
        phases: col(r, "phases")?,
        country: col(r, "country")?,
        timezone: col(r, "timezone")?,
        created_ms: col(r, "created_ms")?,
        activated_ms: col(r, "activated_ms")?,
    })
}

fn device(r: &AnyRow) -> Result<Device> {
    let kind: String = col(r, "kind")?;
    Ok(Device {
        serial: col(r, "serial")?,
        site_id: col(r, "site_id")?,
        kind: DeviceKind::parse(&kind)?,
        token_hash: col(r, "token_hash")?,
        mqtt_hash: col(r, "mqtt_hash")?,
        added_ms: col(r, "added_ms")?,
    })
}

fn check(r: &AnyRow) -> Result<Check> {
    Ok(Check {
        id: col(r, "id")?,
        site_id: col(r, "site_id")?,
        recorded_by: col(r, "recorded_by")?,
        recorded_ms: col(r, "recorded_ms")?,
        request_json: col(r, "request_json")?,
        installable: col::<i64>(r, "installable")? != 0,
        summary: col(r, "summary")?,
    })
}

impl Store {
    pub async fn create_site(&self, new: &NewSite, now_ms: i64) -> Result<Site> {
        let row = sqlx::query(&self.q(&format!(
            "INSERT INTO sites (name, installer_id, phases, country, timezone, created_ms)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING {SITE_COLS}"
        )))
        .bind(&new.name)
        .bind(new.installer_id)
        .bind(new.phases)
        .bind(&new.country)
        .bind(&new.timezone)
        .bind(now_ms)
        .fetch_one(&self.pool)
        .await?;
        site(&row)
    }

    pub async fn site(&self, id: i64) -> Result<Option<Site>> {
        let row = sqlx::query(&self.q(&format!("SELECT {SITE_COLS} FROM sites WHERE id = $1")))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(site).transpose()
    }

    pub async fn sites(&self, filter: SiteFilter) -> Result<Vec<Site>> {
        let (cond, who) = match filter {
            SiteFilter::All => ("$1 = $1", 0),
            SiteFilter::Installer(id) => ("installer_id = $1", id),
            SiteFilter::Owner(id) => ("owner_id = $1", id),
        };
        let rows = sqlx::query(&self.q(&format!(
            "SELECT {SITE_COLS} FROM sites WHERE {cond} ORDER BY id"
        )))
        .bind(who)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(site).collect()
    }

    /// Marks the site active. Fails with NotFound if it does not exist or is already active.
    pub async fn activate_site(&self, id: i64, now_ms: i64) -> Result<()> {
        let done = sqlx::query(
            &self.q("UPDATE sites SET activated_ms = $2 WHERE id = $1 AND activated_ms IS NULL"),
        )
        .bind(id)
        .bind(now_ms)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 1 {
            Ok(())
        } else {
            Err(StoreError::NotFound(format!(
                "site {id} awaiting activation"
            )))
        }
    }

    pub async fn set_owner(&self, id: i64, owner_id: i64) -> Result<()> {
        sqlx::query(&self.q("UPDATE sites SET owner_id = $2 WHERE id = $1"))
            .bind(id)
            .bind(owner_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Binds a device to a site; a serial can be bound once ([`StoreError::Conflict`]).
    pub async fn add_device(
        &self,
        site_id: i64,
        serial: &str,
        kind: DeviceKind,
        token_hash: Option<&str>,
        now_ms: i64,
    ) -> Result<Device> {
        let row = sqlx::query(&self.q(
            "INSERT INTO devices (serial, site_id, kind, token_hash, added_ms)
             VALUES ($1, $2, $3, $4, $5) RETURNING serial, site_id, kind, token_hash, mqtt_hash, added_ms",
        ))
        .bind(serial)
        .bind(site_id)
        .bind(kind.as_str())
        .bind(token_hash)
        .bind(now_ms)
        .fetch_one(&self.pool)
        .await
        .map_err(|e| conflict(e, format!("device serial {serial:?}")))?;
        device(&row)
    }

    /// Sets a gateway's credentials (binding, or rotating its claim code): the hash of its bearer
    /// token and its broker password hash. NotFound unless `serial` is a gateway of `site_id`.
    pub async fn set_gateway_credential(
        &self,
        site_id: i64,
        serial: &str,
        token_hash: &str,
        mqtt_hash: &str,
    ) -> Result<()> {
        let done = sqlx::query(&self.q("UPDATE devices SET token_hash = $3, mqtt_hash = $4
             WHERE serial = $1 AND site_id = $2 AND kind = 'gateway'"))
        .bind(serial)
        .bind(site_id)
        .bind(token_hash)
        .bind(mqtt_hash)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 1 {
            Ok(())
        } else {
            Err(StoreError::NotFound(format!(
                "gateway {serial:?} of site {site_id}"
            )))
        }
    }

    /// Unbinds a device from its site (to replace it, or to let another site claim it): the device
    /// row, the battery's latest report and the device's active alerts go, in one transaction; the
    /// site's telemetry and event history stay. NotFound unless `serial` is bound to `site_id`.
    pub async fn remove_device(&self, site_id: i64, serial: &str) -> Result<Device> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(
            &self.q("DELETE FROM devices WHERE serial = $1 AND site_id = $2
             RETURNING serial, site_id, kind, token_hash, mqtt_hash, added_ms"),
        )
        .bind(serial)
        .bind(site_id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("device {serial:?} of site {site_id}")))?;
        for sql in [
            "DELETE FROM battery_state WHERE serial = $1 AND site_id = $2",
            "DELETE FROM active_alerts WHERE device_serial = $1 AND site_id = $2",
        ] {
            sqlx::query(&self.q(sql))
                .bind(serial)
                .bind(site_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        device(&row)
    }

    /// Every gateway with a broker credential: `(serial, password hash)`, by serial; what the
    /// broker's password file holds.
    pub async fn gateway_mqtt_hashes(&self) -> Result<Vec<(String, String)>> {
        let rows = sqlx::query(&self.q("SELECT serial, mqtt_hash FROM devices
             WHERE kind = 'gateway' AND mqtt_hash IS NOT NULL ORDER BY serial"))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((col(r, "serial")?, col(r, "mqtt_hash")?)))
            .collect()
    }

    pub async fn devices(&self, site_id: i64) -> Result<Vec<Device>> {
        let rows = sqlx::query(&self.q(
            "SELECT serial, site_id, kind, token_hash, mqtt_hash, added_ms FROM devices
             WHERE site_id = $1 ORDER BY kind DESC, added_ms, serial",
        ))
        .bind(site_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(device).collect()
    }

    pub async fn device(&self, serial: &str) -> Result<Option<Device>> {
        let row = sqlx::query(&self.q(
            "SELECT serial, site_id, kind, token_hash, mqtt_hash, added_ms FROM devices WHERE serial = $1",
        ))
        .bind(serial)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(device).transpose()
    }

    pub async fn record_check(
        &self,
        site_id: i64,
        recorded_by: i64,
        now_ms: i64,
        request_json: &str,
        installable: bool,
        summary: &str,
    ) -> Result<Check> {
        let row = sqlx::query(&self.q(
            "INSERT INTO checks (site_id, recorded_by, recorded_ms, request_json, installable, summary)
             VALUES ($1, $2, $3, $4, $5, $6)
             RETURNING id, site_id, recorded_by, recorded_ms, request_json, installable, summary",
        ))
        .bind(site_id)
        .bind(recorded_by)
        .bind(now_ms)
        .bind(request_json)
        .bind(installable as i64)
        .bind(summary)
        .fetch_one(&self.pool)
        .await?;
        check(&row)
    }

    /// Checks of a site, newest first.
    pub async fn checks(&self, site_id: i64) -> Result<Vec<Check>> {
        let rows = sqlx::query(&self.q(
            "SELECT id, site_id, recorded_by, recorded_ms, request_json, installable, summary
             FROM checks WHERE site_id = $1 ORDER BY id DESC",
        ))
        .bind(site_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(check).collect()
    }
}
