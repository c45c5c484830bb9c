//! Versioned working-mode settings with their delivery state, and the audit trail.
//!
//! Every save creates a new version (never an update in place) and an audit row with the old and
//! new JSON, in one transaction: either both exist or neither does. The gateway fetches the newest
//! version (`delivered`) and acknowledges it (`acked`, or `rejected` with its message).

use crate::{col, Result, Store, StoreError};
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;

/// Where a settings version is on its way to the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Delivery {
    /// Saved in the cloud, not yet fetched by the gateway.
    Pending,
    /// Fetched by the gateway, not yet acknowledged.
    Delivered,
    /// The gateway applied it.
    Acked,
    /// The gateway refused it (its message says why).
    Rejected,
}

impl Delivery {
    pub fn as_str(self) -> &'static str {
        match self {
            Delivery::Pending => "pending",
            Delivery::Delivered => "delivered",
            Delivery::Acked => "acked",
            Delivery::Rejected => "rejected",
        }
    }
    fn parse(s: &str) -> Result<Self> {
        match s {
            "pending" => Ok(Delivery::Pending),
            "delivered" => Ok(Delivery::Delivered),
            "acked" => Ok(Delivery::Acked),
            "rejected" => Ok(Delivery::Rejected),
            other => Err(StoreError::Corrupt(format!("delivery {other:?}"))),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SettingsVersion {
    pub site_id: i64,
    pub version: i64,
    pub settings_json: String,
    pub created_by: i64,
    pub created_ms: i64,
    pub delivery: Delivery,
    pub delivered_ms: Option<i64>,
    pub acked_ms: Option<i64>,
    pub ack_message: Option<String>,
}

/// One audited action: who did what to which site, when, with the values before and after.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    pub id: i64,
    pub site_id: Option<i64>,
    pub user_id: Option<i64>,
    pub user_email: Option<String>,
    pub at_ms: i64,
    pub action: String,
    pub old_json: Option<String>,
    pub new_json: Option<String>,
}

const VERSION_COLS: &str = "site_id, version, settings_json, created_by, created_ms, delivery, \
                            delivered_ms, acked_ms, ack_message";

fn version_of(r: &AnyRow) -> Result<SettingsVersion> {
    let delivery: String = col(r, "delivery")?;
    Ok(SettingsVersion {
        site_id: col(r, "site_id")?,
        version: col(r, "version")?,
        settings_json: col(r, "settings_json")?,
        created_by: col(r, "created_by")?,
        created_ms: col(r, "created_ms")?,
        delivery: Delivery::parse(&delivery)?,
        delivered_ms: col(r, "delivered_ms")?,
        acked_ms: col(r, "acked_ms")?,
        ack_message: col(r, "ack_message")?,
    })
}

impl Store {
    /// The newest settings version of a site.
    pub async fn latest_settings(&self, site_id: i64) -> Result<Option<SettingsVersion>> {
        let row = sqlx::query(&self.q(&format!(
            "SELECT {VERSION_COLS} FROM settings_versions WHERE site_id = $1
             ORDER BY version DESC LIMIT 1"
        )))
        .bind(site_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(version_of).transpose()
    }

    /// All versions of a site, newest first.
    pub async fn settings_versions(&self, site_id: i64) -> Result<Vec<SettingsVersion>> {
        let rows = sqlx::query(&self.q(&format!(
            "SELECT {VERSION_COLS} FROM settings_versions WHERE site_id = $1 ORDER BY version DESC"
        )))
        .bind(site_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(version_of).collect()
    }

    /// Saves a new version and its audit row in one transaction. `old_json` is what the caller
    /// showed as the current settings (the defaults when none were saved yet).
    pub async fn save_settings(
        &self,
        site_id: i64,
        user_id: i64,
        old_json: &str,
        new_json: &str,
        now_ms: i64,
    ) -> Result<SettingsVersion> {
        let mut tx = self.pool.begin().await?;
        let row =
            sqlx::query(&self.q(
                "SELECT COALESCE(MAX(version), 0) AS v FROM settings_versions WHERE site_id = $1",
            ))
            .bind(site_id)
            .fetch_one(&mut *tx)
            .await?;
        let next = col::<i64>(&row, "v")? + 1;
        let row = sqlx::query(&self.q(&format!(
            "INSERT INTO settings_versions (site_id, version, settings_json, created_by, created_ms, delivery)
             VALUES ($1, $2, $3, $4, $5, 'pending') RETURNING {VERSION_COLS}"
        )))
        .bind(site_id)
        .bind(next)
        .bind(new_json)
        .bind(user_id)
        .bind(now_ms)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| crate::conflict(e, format!("settings version {next} of site {site_id}")))?;
        let saved = version_of(&row)?;
        sqlx::query(&self.q(
            "INSERT INTO audit (site_id, user_id, at_ms, action, old_json, new_json)
             VALUES ($1, $2, $3, $4, $5, $6)",
        ))
        .bind(site_id)
        .bind(user_id)
        .bind(now_ms)
        .bind(format!("settings v{next}"))
        .bind(old_json)
        .bind(new_json)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(saved)
    }

    /// The gateway fetched this version: pending becomes delivered (later states are kept).
    pub async fn mark_delivered(&self, site_id: i64, version: i64, now_ms: i64) -> Result<()> {
        sqlx::query(&self.q(
            "UPDATE settings_versions SET delivery = 'delivered', delivered_ms = $3
             WHERE site_id = $1 AND version = $2 AND delivery = 'pending'",
        ))
        .bind(site_id)
        .bind(version)
        .bind(now_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// What the MQTT ingest worker still has to deliver: for every site whose newest settings
    /// version is neither acknowledged nor rejected, each of its gateways with that version, as
    /// `(gateway_serial, site_id, version, settings_json)`, ordered by site and gateway. An older
    /// version is never returned: the newest one supersedes it (the gateway applies the newest only).
    pub async fn unacked_settings(&self) -> Result<Vec<(String, i64, i64, String)>> {
        let rows = sqlx::query(&self.q(
            "SELECT d.serial AS gateway_serial, v.site_id, v.version, v.settings_json
             FROM settings_versions v
             JOIN devices d ON d.site_id = v.site_id AND d.kind = 'gateway'
             WHERE v.delivery IN ('pending', 'delivered')
               AND v.version = (SELECT MAX(w.version) FROM settings_versions w WHERE w.site_id = v.site_id)
             ORDER BY v.site_id, d.serial",
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    col(r, "gateway_serial")?,
                    col(r, "site_id")?,
                    col(r, "version")?,
                    col(r, "settings_json")?,
                ))
            })
            .collect()
    }

    /// The gateway's answer for a version. Repeating the same answer is harmless.
    pub async fn ack_settings(
        &self,
        site_id: i64,
        version: i64,
        ok: bool,
        message: Option<&str>,
        now_ms: i64,
    ) -> Result<SettingsVersion> {
        let state = if ok {
            Delivery::Acked
        } else {
            Delivery::Rejected
        };
        let row = sqlx::query(&self.q(&format!(
            "UPDATE settings_versions SET delivery = $3, acked_ms = $4, ack_message = $5,
                 delivered_ms = COALESCE(delivered_ms, $4)
             WHERE site_id = $1 AND version = $2 RETURNING {VERSION_COLS}"
        )))
        .bind(site_id)
        .bind(version)
        .bind(state.as_str())
        .bind(now_ms)
        .bind(message)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(r) => version_of(&r),
            None => Err(StoreError::NotFound(format!(
                "settings version {version} of site {site_id}"
            ))),
        }
    }

    /// Records an action that is not a settings change (activation, hand-over, devices).
    pub async fn audit(
        &self,
        site_id: Option<i64>,
        user_id: Option<i64>,
        action: &str,
        old_json: Option<&str>,
        new_json: Option<&str>,
        now_ms: i64,
    ) -> Result<()> {
        sqlx::query(&self.q(
            "INSERT INTO audit (site_id, user_id, at_ms, action, old_json, new_json)
             VALUES ($1, $2, $3, $4, $5, $6)",
        ))
        .bind(site_id)
        .bind(user_id)
        .bind(now_ms)
        .bind(action)
        .bind(old_json)
        .bind(new_json)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The audit trail of a site, newest first.
    pub async fn audit_log(&self, site_id: i64) -> Result<Vec<AuditEntry>> {
        let rows = sqlx::query(&self.q(
            "SELECT a.id, a.site_id, a.user_id, u.email AS user_email, a.at_ms, a.action, a.old_json, a.new_json
             FROM audit a LEFT JOIN users u ON u.id = a.user_id
             WHERE a.site_id = $1 ORDER BY a.id DESC",
        ))
        .bind(site_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AuditEntry {
                    id: col(r, "id")?,
                    site_id: col(r, "site_id")?,
                    user_id: col(r, "user_id")?,
                    user_email: col(r, "user_email")?,
                    at_ms: col(r, "at_ms")?,
                    action: col(r, "action")?,
                    old_json: col(r, "old_json")?,
                    new_json: col(r, "new_json")?,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use crate::{DeviceKind, NewSite, Role, Store};

    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

    /// A fresh SQLite file, and a scratch PostgreSQL database when `MELV_TEST_POSTGRES` is set
    /// (named like the store's other test databases, `melv_store_PID_N`, which
    /// scripts/cloud-tests.sh drops).
    async fn stores() -> Vec<Store> {
        let pid = std::process::id();
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let path = std::env::temp_dir().join(format!("melv-store-settings-{pid}-{n}.db"));
        let _ = std::fs::remove_file(&path);
        let mut out = vec![Store::open(&format!("sqlite://{}", path.display()))
            .await
            .unwrap()];
        if let Ok(base) = std::env::var("MELV_TEST_POSTGRES") {
            let url = crate::scratch_postgres(&base, &format!("melv_store_{pid}_{n}"))
                .await
                .unwrap();
            out.push(Store::open(&url).await.unwrap());
        }
        out
    }

    #[tokio::test]
    async fn unacked_settings_are_the_newest_unanswered_version_per_gateway() {
        for s in stores().await {
            let u = s
                .create_user("i@example.com", "Ina", Role::Installer, "hash", 1)
                .await
                .unwrap();
            let mut sites = Vec::new();
            for name in ["A", "B", "C"] {
                let site = s
                    .create_site(
                        &NewSite {
                            name: name.into(),
                            installer_id: u.id,
                            phases: 1,
                            country: "DE".into(),
                            timezone: "Europe/Berlin".into(),
                        },
                        2,
                    )
                    .await
                    .unwrap();
                sites.push(site.id);
            }
            let (a, b, c) = (sites[0], sites[1], sites[2]);
            s.add_device(a, "gw-a", DeviceKind::Gateway, None, 3)
                .await
                .unwrap();
            s.add_device(a, "123", DeviceKind::Battery, None, 3)
                .await
                .unwrap();
            s.add_device(b, "gw-b", DeviceKind::Gateway, None, 3)
                .await
                .unwrap();
            // Site C has settings but no gateway yet: nothing to deliver to.
            s.save_settings(c, u.id, "{}", r#"{"c":1}"#, 4)
                .await
                .unwrap();
            assert_eq!(s.unacked_settings().await.unwrap(), vec![]);

            // A: v1 then v2, both pending: only v2 (it supersedes v1).
            s.save_settings(a, u.id, "{}", r#"{"a":1}"#, 5)
                .await
                .unwrap();
            s.save_settings(a, u.id, r#"{"a":1}"#, r#"{"a":2}"#, 6)
                .await
                .unwrap();
            // B: v1 delivered (published, not yet answered): still to deliver.
            s.save_settings(b, u.id, "{}", r#"{"b":1}"#, 7)
                .await
                .unwrap();
            s.mark_delivered(b, 1, 8).await.unwrap();
            assert_eq!(
                s.unacked_settings().await.unwrap(),
                vec![
                    ("gw-a".to_string(), a, 2, r#"{"a":2}"#.to_string()),
                    ("gw-b".to_string(), b, 1, r#"{"b":1}"#.to_string()),
                ]
            );
            // An answer ends the retries, accepted or not; an ack of the older version does not.
            s.ack_settings(a, 1, true, None, 9).await.unwrap();
            s.ack_settings(b, 1, false, Some("reserve_soc: 1.5"), 9)
                .await
                .unwrap();
            assert_eq!(
                s.unacked_settings().await.unwrap(),
                vec![("gw-a".to_string(), a, 2, r#"{"a":2}"#.to_string())]
            );
            s.ack_settings(a, 2, true, None, 10).await.unwrap();
            assert_eq!(s.unacked_settings().await.unwrap(), vec![]);
            // A newer version after a rejected one is delivered again.
            s.save_settings(b, u.id, r#"{"b":1}"#, r#"{"b":2}"#, 11)
                .await
                .unwrap();
            assert_eq!(
                s.unacked_settings().await.unwrap(),
                vec![("gw-b".to_string(), b, 2, r#"{"b":2}"#.to_string())]
            );
            s.close().await;
        }
    }
}
