//! The end-to-end acknowledgement of each gateway's uplink (docs/cloud.md, "The uplink mark"):
//! the highest sequence number up to which the cloud holds every record of a gateway, the gaps above
//! it, and how far its complete history lags behind the newest record it has.
//!
//! A record counts as held when it is a telemetry point, an event, or a reject row with its number
//! (the cloud committed it, with the reason it could not be data: sending it again would only add
//! another reject). Records the gateway's bounded queue discarded before the cloud had them
//! (`dropped_through` in the record envelope) will never come; the mark steps over them and counts
//! them as `lost`, so that a full queue cannot stall the mark for good.
//!
//! The mark is computed from committed rows only, so it never claims a record the store does not
//! hold; two workers that advance it at once may leave it behind the truth for a moment (each
//! missed the other's uncommitted rows), and the next advance, or the gateway sending again, puts
//! it right. Every column only moves forward (the upsert keeps the larger value).

use crate::{col, Result, Store};
use serde::Serialize;

/// One gateway's uplink as the cloud sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct UplinkRow {
    /// Every record numbered 1 to this is held (or was lost at the gateway, see `lost`).
    pub stored_through: i64,
    /// The highest number held.
    pub highest: i64,
    /// Numbers between `stored_through` and `highest` not held: the open gaps.
    pub missing: i64,
    /// Records the gateway's bounded queue discarded before the cloud had them.
    pub lost: i64,
    /// Gateway time (ms) of the record at `stored_through` (the newest one at or below it that is
    /// data); `None` before any.
    pub complete_to_ms: Option<i64>,
    /// Gateway time (ms) of the newest record held.
    pub newest_ms: Option<i64>,
    /// Cloud time (ms) of the last advance.
    pub updated_ms: i64,
}

impl UplinkRow {
    /// How far the complete history lags behind the newest record, in the gateway's time, s: the
    /// age of the backlog still to come in (0 when nothing is missing).
    pub fn backlog_age_s(&self) -> f64 {
        match (self.complete_to_ms, self.newest_ms) {
            (Some(c), Some(n)) if self.missing > 0 => (n - c).max(0) as f64 / 1000.0,
            (None, Some(_)) if self.missing > 0 => f64::NAN,
            _ => 0.0,
        }
    }
}

/// Numbers walked per query while advancing the mark.
const WALK: i64 = 5000;

/// The numbers a gateway's records hold in the cloud: data and rejects.
const HELD: &str = "SELECT seq FROM telemetry WHERE gateway_serial = $1 AND seq > $2
     UNION SELECT seq FROM events WHERE gateway_serial = $1 AND seq > $2
     UNION SELECT seq FROM ingest_rejects WHERE gateway_serial = $1 AND seq > $2";

impl Store {
    /// The uplink of `gateway`, if any record of it was ever stored.
    pub async fn uplink(&self, gateway: &str) -> Result<Option<UplinkRow>> {
        let row = sqlx::query(&self.q(
            "SELECT stored_through, highest, missing, lost, complete_to_ms, newest_ms, updated_ms
             FROM uplink WHERE gateway_serial = $1",
        ))
        .bind(gateway)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(UplinkRow {
                stored_through: col(&r, "stored_through")?,
                highest: col(&r, "highest")?,
                missing: col(&r, "missing")?,
                lost: col(&r, "lost")?,
                complete_to_ms: col(&r, "complete_to_ms")?,
                newest_ms: col(&r, "newest_ms")?,
                updated_ms: col(&r, "updated_ms")?,
            })
        })
        .transpose()
    }

    /// Advances `gateway`'s mark over what is committed now, stepping over what its queue
    /// discarded (`dropped_through`, the highest such mark of the records just ingested; 0: none).
    pub async fn advance_uplink(
        &self,
        gateway: &str,
        dropped_through: i64,
        now_ms: i64,
    ) -> Result<UplinkRow> {
        let old = self.uplink(gateway).await?.unwrap_or_default();
        let mut row = old;
        if dropped_through > row.stored_through {
            let held = self
                .count_held(gateway, row.stored_through, dropped_through)
                .await?;
            row.lost += (dropped_through - row.stored_through) - held;
            row.stored_through = dropped_through;
        }
        row.stored_through = self.walk(gateway, row.stored_through).await?;
        let above = self
            .count_held(gateway, row.stored_through, i64::MAX)
            .await?;
        let top = sqlx::query(&self.q(&format!("SELECT MAX(seq) AS m FROM ({HELD}) h")))
            .bind(gateway)
            .bind(0i64)
            .fetch_one(&self.pool)
            .await?;
        row.highest = row
            .highest
            .max(col::<Option<i64>>(&top, "m")?.unwrap_or(0))
            .max(row.stored_through);
        row.missing = row.highest - row.stored_through - above;
        row.complete_to_ms = self
            .record_ts(gateway, row.stored_through)
            .await?
            .or(old.complete_to_ms);
        row.newest_ms = self
            .record_ts(gateway, row.highest)
            .await?
            .or(old.newest_ms);
        row.updated_ms = now_ms;
        self.save_uplink(gateway, &row).await?;
        Ok(self.uplink(gateway).await?.unwrap_or(row))
    }

    /// The first number above `from` that is not held, minus one.
    async fn walk(&self, gateway: &str, from: i64) -> Result<i64> {
        let mut mark = from;
        loop {
            let rows = sqlx::query(&self.q(&format!("{HELD} ORDER BY seq LIMIT {WALK}")))
                .bind(gateway)
                .bind(mark)
                .fetch_all(&self.pool)
                .await?;
            let n = rows.len() as i64;
            for r in &rows {
                if col::<i64>(r, "seq")? != mark + 1 {
                    return Ok(mark);
                }
                mark += 1;
            }
            if n < WALK {
                return Ok(mark);
            }
        }
    }

    /// How many numbers in `(above, upto]` are held.
    async fn count_held(&self, gateway: &str, above: i64, upto: i64) -> Result<i64> {
        let row = sqlx::query(&self.q(&format!(
            "SELECT COUNT(*) AS n FROM ({HELD}) h WHERE seq <= $3"
        )))
        .bind(gateway)
        .bind(above)
        .bind(upto)
        .fetch_one(&self.pool)
        .await?;
        col(&row, "n")
    }

    /// Gateway time of record `seq`, when it is data.
    async fn record_ts(&self, gateway: &str, seq: i64) -> Result<Option<i64>> {
        if seq <= 0 {
            return Ok(None);
        }
        let row = sqlx::query(&self.q("SELECT MAX(ts_ms) AS t FROM (
                 SELECT ts_ms FROM telemetry WHERE gateway_serial = $1 AND seq = $2
                 UNION ALL SELECT ts_ms FROM events WHERE gateway_serial = $1 AND seq = $2) r"))
        .bind(gateway)
        .bind(seq)
        .fetch_one(&self.pool)
        .await?;
        col(&row, "t")
    }

    /// Upsert keeping the larger mark (another worker may have advanced it meanwhile).
    async fn save_uplink(&self, gateway: &str, r: &UplinkRow) -> Result<()> {
        sqlx::query(&self.q(
            "INSERT INTO uplink (gateway_serial, stored_through, highest, missing, lost,
                 complete_to_ms, newest_ms, updated_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (gateway_serial) DO UPDATE SET
                 missing = CASE WHEN excluded.stored_through >= uplink.stored_through
                     THEN excluded.missing ELSE uplink.missing END,
                 complete_to_ms = CASE WHEN excluded.stored_through >= uplink.stored_through
                     THEN excluded.complete_to_ms ELSE uplink.complete_to_ms END,
                 stored_through = CASE WHEN excluded.stored_through > uplink.stored_through
                     THEN excluded.stored_through ELSE uplink.stored_through END,
                 highest = CASE WHEN excluded.highest > uplink.highest
                     THEN excluded.highest ELSE uplink.highest END,
                 newest_ms = CASE WHEN excluded.highest >= uplink.highest
                     THEN excluded.newest_ms ELSE uplink.newest_ms END,
                 lost = CASE WHEN excluded.lost > uplink.lost
                     THEN excluded.lost ELSE uplink.lost END,
                 updated_ms = excluded.updated_ms",
        ))
        .bind(gateway)
        .bind(r.stored_through)
        .bind(r.highest)
        .bind(r.missing)
        .bind(r.lost)
        .bind(r.complete_to_ms)
        .bind(r.newest_ms)
        .bind(r.updated_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
