//! Schema migrations: an ordered list of scripts in the shared SQL dialect (see [`crate::Backend`]).
//! A script is never edited once released; a change is a new script at the end of the list.

use crate::{col, Result, Store};

/// (version, statements). Each version runs in one transaction and is recorded with its time.
const MIGRATIONS: &[(i64, &[&str])] = &[
    (
        1,
        &[
            "CREATE TABLE users (
            id {pk},
            email TEXT NOT NULL UNIQUE,
            name TEXT NOT NULL,
            role TEXT NOT NULL,
            password_hash TEXT NOT NULL,
            created_ms BIGINT NOT NULL)",
            // A session is a cookie of the web app or a bearer token of the API; only the SHA-256 of the
            // secret is kept, so a copy of the database cannot be used to sign in.
            "CREATE TABLE sessions (
            token_hash TEXT PRIMARY KEY,
            user_id BIGINT NOT NULL REFERENCES users(id),
            kind TEXT NOT NULL,
            created_ms BIGINT NOT NULL,
            expires_ms BIGINT NOT NULL)",
            "CREATE TABLE sites (
            id {pk},
            name TEXT NOT NULL,
            installer_id BIGINT NOT NULL REFERENCES users(id),
            owner_id BIGINT REFERENCES users(id),
            phases BIGINT NOT NULL,
            country TEXT NOT NULL,
            timezone TEXT NOT NULL,
            created_ms BIGINT NOT NULL,
            activated_ms BIGINT)",
            "CREATE INDEX sites_installer ON sites(installer_id)",
            "CREATE INDEX sites_owner ON sites(owner_id)",
            // A serial belongs to one site at a time (the manual's app binds a device to one site).
            "CREATE TABLE devices (
            serial TEXT PRIMARY KEY,
            site_id BIGINT NOT NULL REFERENCES sites(id),
            kind TEXT NOT NULL,
            token_hash TEXT,
            added_ms BIGINT NOT NULL)",
            "CREATE INDEX devices_site ON devices(site_id)",
            "CREATE TABLE checks (
            id {pk},
            site_id BIGINT NOT NULL REFERENCES sites(id),
            recorded_by BIGINT NOT NULL REFERENCES users(id),
            recorded_ms BIGINT NOT NULL,
            request_json TEXT NOT NULL,
            installable BIGINT NOT NULL,
            summary TEXT NOT NULL)",
            "CREATE TABLE settings_versions (
            site_id BIGINT NOT NULL REFERENCES sites(id),
            version BIGINT NOT NULL,
            settings_json TEXT NOT NULL,
            created_by BIGINT NOT NULL REFERENCES users(id),
            created_ms BIGINT NOT NULL,
            delivery TEXT NOT NULL,
            delivered_ms BIGINT,
            acked_ms BIGINT,
            ack_message TEXT,
            PRIMARY KEY (site_id, version))",
            "CREATE TABLE audit (
            id {pk},
            site_id BIGINT,
            user_id BIGINT,
            at_ms BIGINT NOT NULL,
            action TEXT NOT NULL,
            old_json TEXT,
            new_json TEXT)",
            "CREATE INDEX audit_site ON audit(site_id, at_ms)",
            // Energies per point are computed once at ingest (power x interval), so that history queries
            // are plain sums that both databases run the same way.
            "CREATE TABLE telemetry (
            gateway_serial TEXT NOT NULL,
            seq BIGINT NOT NULL,
            site_id BIGINT NOT NULL REFERENCES sites(id),
            ts_ms BIGINT NOT NULL,
            interval_s DOUBLE PRECISION NOT NULL,
            pv_w DOUBLE PRECISION NOT NULL,
            load_w DOUBLE PRECISION NOT NULL,
            grid_w DOUBLE PRECISION NOT NULL,
            battery_w DOUBLE PRECISION NOT NULL,
            soc DOUBLE PRECISION NOT NULL,
            pv_wh DOUBLE PRECISION NOT NULL,
            load_wh DOUBLE PRECISION NOT NULL,
            import_wh DOUBLE PRECISION NOT NULL,
            export_wh DOUBLE PRECISION NOT NULL,
            charge_wh DOUBLE PRECISION NOT NULL,
            discharge_wh DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (gateway_serial, seq))",
            "CREATE INDEX telemetry_site_ts ON telemetry(site_id, ts_ms)",
            "CREATE TABLE battery_state (
            serial TEXT PRIMARY KEY,
            site_id BIGINT NOT NULL REFERENCES sites(id),
            ts_ms BIGINT NOT NULL,
            soc DOUBLE PRECISION NOT NULL,
            power_w DOUBLE PRECISION NOT NULL,
            soc_led TEXT NOT NULL,
            status_led TEXT NOT NULL,
            lifecycle TEXT NOT NULL)",
            "CREATE TABLE events (
            gateway_serial TEXT NOT NULL,
            seq BIGINT NOT NULL,
            site_id BIGINT NOT NULL REFERENCES sites(id),
            ts_ms BIGINT NOT NULL,
            device_serial TEXT NOT NULL,
            code BIGINT NOT NULL,
            active BIGINT NOT NULL,
            PRIMARY KEY (gateway_serial, seq))",
            "CREATE INDEX events_site_ts ON events(site_id, ts_ms)",
            "CREATE TABLE active_alerts (
            site_id BIGINT NOT NULL REFERENCES sites(id),
            device_serial TEXT NOT NULL,
            code BIGINT NOT NULL,
            since_ms BIGINT NOT NULL,
            PRIMARY KEY (site_id, device_serial, code))",
        ],
    ),
    (
        2,
        &[
            // Messages from the broker that could not be stored as data (malformed, an unknown gateway,
            // out of range): kept with the reason instead of being dropped (docs/cloud.md, MQTT ingest).
            "CREATE TABLE ingest_rejects (
            id {pk},
            received_ms BIGINT NOT NULL,
            source TEXT NOT NULL,
            gateway_serial TEXT,
            seq BIGINT,
            reason TEXT NOT NULL,
            payload TEXT NOT NULL)",
        ],
    ),
    (
        3,
        &[
            // A gateway's broker credential: the Mosquitto password-file hash (PBKDF2-SHA512, `$7$`)
            // of its claim code, made when the installer proved the code; the cloud writes the
            // broker's password file from these (docs/cloud.md, "Threat model").
            "ALTER TABLE devices ADD COLUMN mqtt_hash TEXT",
        ],
    ),
    (
        4,
        &[
            // The end-to-end acknowledgement of each gateway's uplink (crate::uplink, docs/cloud.md):
            // the mark the cloud publishes on melv/v1/{gateway}/ack, and what the web shows.
            "CREATE TABLE uplink (
            gateway_serial TEXT PRIMARY KEY,
            stored_through BIGINT NOT NULL,
            highest BIGINT NOT NULL,
            missing BIGINT NOT NULL,
            lost BIGINT NOT NULL,
            complete_to_ms BIGINT,
            newest_ms BIGINT,
            updated_ms BIGINT NOT NULL)",
            // The mark counts a reject with its number as held: found by (gateway, seq).
            "CREATE INDEX ingest_rejects_gateway_seq ON ingest_rejects(gateway_serial, seq)",
        ],
    ),
];

/// The newest schema version this build knows.
pub fn latest() -> i64 {
    MIGRATIONS.last().map(|m| m.0).unwrap_or(0)
}

pub(crate) async fn apply(store: &Store) -> Result<()> {
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS melv_migrations (version BIGINT PRIMARY KEY, applied_ms BIGINT NOT NULL)",
    )
    .execute(&store.pool)
    .await?;
    let rows = sqlx::query("SELECT version FROM melv_migrations")
        .fetch_all(&store.pool)
        .await?;
    let mut done = Vec::new();
    for r in &rows {
        done.push(col::<i64>(r, "version")?);
    }
    if let Some(newer) = done.iter().find(|v| **v > latest()) {
        return Err(crate::StoreError::Corrupt(format!(
            "the database has schema version {newer}, newer than this build's {}",
            latest()
        )));
    }
    for (version, statements) in MIGRATIONS {
        if done.contains(version) {
            continue;
        }
        let mut tx = store.pool.begin().await?;
        for s in *statements {
            sqlx::query(&store.q(s)).execute(&mut *tx).await?;
        }
        // The migration's time is not part of any logic; 0 keeps the store free of a clock.
        sqlx::query(&store.q("INSERT INTO melv_migrations (version, applied_ms) VALUES ($1, 0)"))
            .bind(*version)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
    }
    Ok(())
}
