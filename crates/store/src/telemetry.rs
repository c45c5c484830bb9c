//! Telemetry points, battery states, alert events, and the history aggregation.

use crate::{col, Result, Store};
use serde::Serialize;
use sqlx::any::AnyRow;

/// One site-level sample from a gateway. Signs (ARCHITECTURE.md 3): `battery_w` positive = discharging,
/// `grid_w` positive = importing; `pv_w` and `load_w` are >= 0. The sample stands for the `interval_s`
/// seconds that end at `ts_ms` (the gateway's averaging period), which is how energies are derived.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PointRow {
    pub seq: i64,
    pub ts_ms: i64,
    pub interval_s: f64,
    pub pv_w: f64,
    pub load_w: f64,
    pub grid_w: f64,
    pub battery_w: f64,
    pub soc: f64,
}

/// The latest report of one battery (what the dashboard shows per unit).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BatteryRow {
    pub serial: String,
    pub ts_ms: i64,
    pub soc: f64,
    /// AC power, W, positive = discharging.
    pub power_w: f64,
    /// `melv_core::SocLed` as JSON, e.g. `{"state":"solid_blue","percent":55}`.
    pub soc_led: String,
    /// `melv_core::StatusLed` name, e.g. `dim`.
    pub status_led: String,
    /// `melv_core::Lifecycle` name, e.g. `active`.
    pub lifecycle: String,
}

/// An alert raised (`active`) or cleared on a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRow {
    pub seq: i64,
    pub ts_ms: i64,
    pub device_serial: String,
    pub code: i64,
    pub active: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredEvent {
    pub gateway_serial: String,
    pub seq: i64,
    pub ts_ms: i64,
    pub device_serial: String,
    pub code: i64,
    pub active: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ActiveAlert {
    pub device_serial: String,
    pub code: i64,
    pub since_ms: i64,
}

/// A message the ingest could not store as data, kept with the reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RejectRow {
    /// Wall time of the cloud when it was received.
    pub received_ms: i64,
    /// Where it came from, e.g. the MQTT topic.
    pub source: String,
    /// The gateway it claims to be from, when that could be read.
    pub gateway_serial: Option<String>,
    pub seq: Option<i64>,
    pub reason: String,
    /// The message as received (lossy UTF-8 for binary junk).
    pub payload: String,
}

/// One gateway's share of a multi-gateway ingest ([`Store::ingest_many`]).
#[derive(Debug, Clone, Copy)]
pub struct IngestPart<'a> {
    pub site_id: i64,
    pub gateway_serial: &'a str,
    pub points: &'a [PointRow],
    pub batteries: &'a [BatteryRow],
    pub events: &'a [EventRow],
}

/// What an ingest stored and what it recognised as already stored (a retried batch).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct IngestCounts {
    pub points_stored: u64,
    pub points_duplicate: u64,
    pub events_stored: u64,
    pub events_duplicate: u64,
}

/// Energies of one history bucket, Wh, and the mean SOC of its samples.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Bucket {
    pub start_ms: i64,
    pub pv_wh: f64,
    pub load_wh: f64,
    pub import_wh: f64,
    pub export_wh: f64,
    pub charge_wh: f64,
    pub discharge_wh: f64,
    pub soc_avg: f64,
    pub points: i64,
}

/// Rows per multi-row INSERT: 50 x 16 parameters stays far below SQLite's 32766 and PostgreSQL's
/// 65535 bind limits, and amortises the round trip (measured in docs/cloud.md).
const CHUNK: usize = 50;
const POINT_COLS: usize = 16;

impl Store {
    /// Stores a batch in one transaction. Points and events already stored under the same
    /// (gateway, seq) are skipped and counted as duplicates; an event changes the active alerts only
    /// when it is new. Battery states only move forward in time.
    pub async fn ingest(
        &self,
        site_id: i64,
        gateway_serial: &str,
        points: &[PointRow],
        batteries: &[BatteryRow],
        events: &[EventRow],
    ) -> Result<IngestCounts> {
        let mut tx = self.pool.begin().await?;
        let counts = self
            .ingest_in(&mut tx, site_id, gateway_serial, points, batteries, events)
            .await?;
        tx.commit().await?;
        Ok(counts)
    }

    /// Several gateways' batches in ONE transaction (the MQTT ingest's batch spans gateways; one
    /// commit instead of one per gateway). Same rules as [`Store::ingest`]; the counts are per part.
    pub async fn ingest_many(&self, parts: &[IngestPart<'_>]) -> Result<Vec<IngestCounts>> {
        let mut tx = self.pool.begin().await?;
        let mut out = Vec::with_capacity(parts.len());
        for p in parts {
            out.push(
                self.ingest_in(
                    &mut tx,
                    p.site_id,
                    p.gateway_serial,
                    p.points,
                    p.batteries,
                    p.events,
                )
                .await?,
            );
        }
        tx.commit().await?;
        Ok(out)
    }

    async fn ingest_in(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        site_id: i64,
        gateway_serial: &str,
        points: &[PointRow],
        batteries: &[BatteryRow],
        events: &[EventRow],
    ) -> Result<IngestCounts> {
        let mut counts = IngestCounts::default();
        self.insert_points(tx, site_id, gateway_serial, points, &mut counts)
            .await?;
        self.upsert_batteries(tx, site_id, batteries).await?;
        self.insert_events(tx, site_id, gateway_serial, events, &mut counts)
            .await?;
        Ok(counts)
    }

    /// The site's points, in chunks of one multi-row INSERT; a known `(gateway, seq)` is a duplicate.
    async fn insert_points(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        site_id: i64,
        gateway_serial: &str,
        points: &[PointRow],
        counts: &mut IngestCounts,
    ) -> Result<()> {
        for chunk in points.chunks(CHUNK) {
            let mut sql = String::from(
                "INSERT INTO telemetry (gateway_serial, seq, site_id, ts_ms, interval_s, pv_w, load_w, \
                 grid_w, battery_w, soc, pv_wh, load_wh, import_wh, export_wh, charge_wh, discharge_wh) VALUES ",
            );
            for i in 0..chunk.len() {
                if i > 0 {
                    sql.push(',');
                }
                sql.push('(');
                for c in 0..POINT_COLS {
                    if c > 0 {
                        sql.push(',');
                    }
                    sql.push_str(&format!("${}", i * POINT_COLS + c + 1));
                }
                sql.push(')');
            }
            sql.push_str(" ON CONFLICT (gateway_serial, seq) DO NOTHING");
            let sql = self.q(&sql);
            let mut q = sqlx::query(&sql);
            for p in chunk {
                let wh = |w: f64| w * p.interval_s / 3600.0;
                q = q
                    .bind(gateway_serial)
                    .bind(p.seq)
                    .bind(site_id)
                    .bind(p.ts_ms)
                    .bind(p.interval_s)
                    .bind(p.pv_w)
                    .bind(p.load_w)
                    .bind(p.grid_w)
                    .bind(p.battery_w)
                    .bind(p.soc)
                    .bind(wh(p.pv_w))
                    .bind(wh(p.load_w))
                    .bind(wh(p.grid_w.max(0.0)))
                    .bind(wh((-p.grid_w).max(0.0)))
                    .bind(wh((-p.battery_w).max(0.0)))
                    .bind(wh(p.battery_w.max(0.0)));
            }
            let stored = q.execute(&mut **tx).await?.rows_affected();
            counts.points_stored += stored;
            counts.points_duplicate += chunk.len() as u64 - stored;
        }
        Ok(())
    }

    /// The batteries' latest state: a report replaces an older one only.
    async fn upsert_batteries(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        site_id: i64,
        batteries: &[BatteryRow],
    ) -> Result<()> {
        for b in batteries {
            sqlx::query(&self.q(
                "INSERT INTO battery_state (serial, site_id, ts_ms, soc, power_w, soc_led, status_led, lifecycle)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                 ON CONFLICT (serial) DO UPDATE SET site_id = excluded.site_id, ts_ms = excluded.ts_ms,
                   soc = excluded.soc, power_w = excluded.power_w, soc_led = excluded.soc_led,
                   status_led = excluded.status_led, lifecycle = excluded.lifecycle
                 WHERE battery_state.ts_ms <= excluded.ts_ms",
            ))
            .bind(&b.serial)
            .bind(site_id)
            .bind(b.ts_ms)
            .bind(b.soc)
            .bind(b.power_w)
            .bind(&b.soc_led)
            .bind(&b.status_led)
            .bind(&b.lifecycle)
            .execute(&mut **tx)
            .await?;
        }
        Ok(())
    }

    /// The events in time order, each new one settling its alert's active state.
    async fn insert_events(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        site_id: i64,
        gateway_serial: &str,
        events: &[EventRow],
        counts: &mut IngestCounts,
    ) -> Result<()> {
        let mut ordered: Vec<&EventRow> = events.iter().collect();
        ordered.sort_by_key(|e| (e.ts_ms, e.seq));
        for e in ordered {
            let new = sqlx::query(&self.q(
                "INSERT INTO events (gateway_serial, seq, site_id, ts_ms, device_serial, code, active)
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (gateway_serial, seq) DO NOTHING",
            ))
            .bind(gateway_serial)
            .bind(e.seq)
            .bind(site_id)
            .bind(e.ts_ms)
            .bind(&e.device_serial)
            .bind(e.code)
            .bind(e.active as i64)
            .execute(&mut **tx)
            .await?
            .rows_affected();
            if new == 0 {
                counts.events_duplicate += 1;
                continue;
            }
            counts.events_stored += 1;
            self.settle_alert(tx, site_id, gateway_serial, e).await?;
        }
        Ok(())
    }

    /// A newly stored event `e` raises or clears its alert if it is the newest of its
    /// (device, code).
    async fn settle_alert(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        site_id: i64,
        gateway_serial: &str,
        e: &EventRow,
    ) -> Result<()> {
        // Events can arrive out of order (a gateway sends its backlog behind live data), so the
        // newest event of this (device, code) decides, not the one that arrived last: an old
        // "raised" delivered after a newer "cleared" must not bring the alert back.
        let newest = sqlx::query(&self.q("SELECT ts_ms, seq, gateway_serial FROM events
             WHERE site_id = $1 AND device_serial = $2 AND code = $3
             ORDER BY ts_ms DESC, seq DESC LIMIT 1"))
        .bind(site_id)
        .bind(&e.device_serial)
        .bind(e.code)
        .fetch_one(&mut **tx)
        .await?;
        let newest_ts: i64 = col(&newest, "ts_ms")?;
        let newest_seq: i64 = col(&newest, "seq")?;
        let newest_gw: String = col(&newest, "gateway_serial")?;
        if (newest_ts, newest_seq) != (e.ts_ms, e.seq) || newest_gw != gateway_serial {
            return Ok(());
        }
        let sql = if e.active {
            "INSERT INTO active_alerts (site_id, device_serial, code, since_ms) VALUES ($1, $2, $3, $4)
             ON CONFLICT (site_id, device_serial, code) DO NOTHING"
        } else {
            "DELETE FROM active_alerts WHERE site_id = $1 AND device_serial = $2 AND code = $3 AND $4 >= since_ms"
        };
        sqlx::query(&self.q(sql))
            .bind(site_id)
            .bind(&e.device_serial)
            .bind(e.code)
            .bind(e.ts_ms)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// Keeps a message that could not be ingested (malformed, unknown gateway, a value out of range)
    /// with the reason, so that nothing a gateway sent is lost without a trace; the ingest worker
    /// acknowledges the message to the broker only after this (or the data) is committed.
    pub async fn reject(&self, r: &RejectRow) -> Result<()> {
        sqlx::query(&self.q(
            "INSERT INTO ingest_rejects (received_ms, source, gateway_serial, seq, reason, payload)
             VALUES ($1, $2, $3, $4, $5, $6)",
        ))
        .bind(r.received_ms)
        .bind(&r.source)
        .bind(&r.gateway_serial)
        .bind(r.seq)
        .bind(&r.reason)
        .bind(&r.payload)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The newest rejected messages, newest first, at most `limit`.
    pub async fn rejects(&self, limit: i64) -> Result<Vec<RejectRow>> {
        let rows = sqlx::query(&self.q(
            "SELECT received_ms, source, gateway_serial, seq, reason, payload FROM ingest_rejects
             ORDER BY id DESC LIMIT $1",
        ))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(RejectRow {
                    received_ms: col(r, "received_ms")?,
                    source: col(r, "source")?,
                    gateway_serial: col(r, "gateway_serial")?,
                    seq: col(r, "seq")?,
                    reason: col(r, "reason")?,
                    payload: col(r, "payload")?,
                })
            })
            .collect()
    }

    /// How many messages were rejected in all.
    pub async fn count_rejects(&self) -> Result<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM ingest_rejects")
            .fetch_one(&self.pool)
            .await?;
        col(&row, "n")
    }

    /// Sequence numbers of a gateway's stored points and events (ascending), for audits and tests
    /// that prove delivery complete: `(kind, seq)` with kind `"point"` or `"event"`.
    pub async fn stored_seqs(&self, gateway_serial: &str) -> Result<Vec<(String, i64)>> {
        let rows = sqlx::query(&self.q(
            "SELECT 'point' AS kind, seq FROM telemetry WHERE gateway_serial = $1
             UNION ALL SELECT 'event' AS kind, seq FROM events WHERE gateway_serial = $1
             ORDER BY seq",
        ))
        .bind(gateway_serial)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((col(r, "kind")?, col(r, "seq")?)))
            .collect()
    }

    /// Time of the newest telemetry point of a site.
    pub async fn last_seen(&self, site_id: i64) -> Result<Option<i64>> {
        let row = sqlx::query(&self.q("SELECT MAX(ts_ms) AS t FROM telemetry WHERE site_id = $1"))
            .bind(site_id)
            .fetch_one(&self.pool)
            .await?;
        col(&row, "t")
    }

    /// The newest point of a site (the dashboard's power flow).
    pub async fn latest_point(&self, site_id: i64) -> Result<Option<PointRow>> {
        let row = sqlx::query(&self.q(
            "SELECT seq, ts_ms, interval_s, pv_w, load_w, grid_w, battery_w, soc FROM telemetry
             WHERE site_id = $1 ORDER BY ts_ms DESC, seq DESC LIMIT 1",
        ))
        .bind(site_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(PointRow {
                seq: col(&r, "seq")?,
                ts_ms: col(&r, "ts_ms")?,
                interval_s: col(&r, "interval_s")?,
                pv_w: col(&r, "pv_w")?,
                load_w: col(&r, "load_w")?,
                grid_w: col(&r, "grid_w")?,
                battery_w: col(&r, "battery_w")?,
                soc: col(&r, "soc")?,
            })
        })
        .transpose()
    }

    pub async fn battery_states(&self, site_id: i64) -> Result<Vec<BatteryRow>> {
        let rows = sqlx::query(&self.q(
            "SELECT serial, ts_ms, soc, power_w, soc_led, status_led, lifecycle FROM battery_state
             WHERE site_id = $1 ORDER BY serial",
        ))
        .bind(site_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(BatteryRow {
                    serial: col(r, "serial")?,
                    ts_ms: col(r, "ts_ms")?,
                    soc: col(r, "soc")?,
                    power_w: col(r, "power_w")?,
                    soc_led: col(r, "soc_led")?,
                    status_led: col(r, "status_led")?,
                    lifecycle: col(r, "lifecycle")?,
                })
            })
            .collect()
    }

    pub async fn active_alerts(&self, site_id: i64) -> Result<Vec<ActiveAlert>> {
        let rows = sqlx::query(&self.q(
            "SELECT device_serial, code, since_ms FROM active_alerts WHERE site_id = $1
             ORDER BY code, device_serial",
        ))
        .bind(site_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ActiveAlert {
                    device_serial: col(r, "device_serial")?,
                    code: col(r, "code")?,
                    since_ms: col(r, "since_ms")?,
                })
            })
            .collect()
    }

    /// The newest events of a site, newest first, at most `limit`.
    pub async fn events(&self, site_id: i64, limit: i64) -> Result<Vec<StoredEvent>> {
        let rows = sqlx::query(&self.q(
            "SELECT gateway_serial, seq, ts_ms, device_serial, code, active FROM events
             WHERE site_id = $1 ORDER BY ts_ms DESC, seq DESC LIMIT $2",
        ))
        .bind(site_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(StoredEvent {
                    gateway_serial: col(r, "gateway_serial")?,
                    seq: col(r, "seq")?,
                    ts_ms: col(r, "ts_ms")?,
                    device_serial: col(r, "device_serial")?,
                    code: col(r, "code")?,
                    active: col::<i64>(r, "active")? != 0,
                })
            })
            .collect()
    }

    /// Sums of a site's points in buckets of `width_ms` (UTC-aligned), for `from_ms <= ts < to_ms`.
    /// Empty buckets are absent.
    pub async fn history(
        &self,
        site_id: i64,
        width_ms: i64,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<Bucket>> {
        let rows = sqlx::query(&self.q(
            "SELECT (ts_ms / $2) * $2 AS b, SUM(pv_wh) AS pv, SUM(load_wh) AS ld,
                    SUM(import_wh) AS imp, SUM(export_wh) AS exp, SUM(charge_wh) AS chg,
                    SUM(discharge_wh) AS dis, AVG(soc) AS soc, COUNT(*) AS n
             FROM telemetry WHERE site_id = $1 AND ts_ms >= $3 AND ts_ms < $4
             GROUP BY b ORDER BY b",
        ))
        .bind(site_id)
        .bind(width_ms.max(1))
        .bind(from_ms)
        .bind(to_ms)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(bucket).collect()
    }
}

fn bucket(r: &AnyRow) -> Result<Bucket> {
    Ok(Bucket {
        start_ms: col(r, "b")?,
        pv_wh: col(r, "pv")?,
        load_wh: col(r, "ld")?,
        import_wh: col(r, "imp")?,
        export_wh: col(r, "exp")?,
        charge_wh: col(r, "chg")?,
        discharge_wh: col(r, "dis")?,
        soc_avg: col(r, "soc")?,
        points: col(r, "n")?,
    })
}
