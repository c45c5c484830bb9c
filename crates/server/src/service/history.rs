//! Energy history per 5 min, hour, local day and local month.

use super::*;
use chrono::{Datelike, TimeZone};
use melv_store::Bucket;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub enum Resolution {
    #[serde(rename = "5min")]
    FiveMin,
    #[serde(rename = "hour")]
    Hour,
    #[serde(rename = "day")]
    Day,
    #[serde(rename = "month")]
    Month,
}

impl Resolution {
    /// Default span shown when the caller gives no range.
    pub fn default_span_ms(self) -> i64 {
        const H: i64 = 3_600_000;
        match self {
            Resolution::FiveMin | Resolution::Hour => 24 * H,
            Resolution::Day => 31 * 24 * H,
            Resolution::Month => 366 * 24 * H,
        }
    }
    /// Longest span accepted: bounds one query's work (about 9,000 five-minute buckets).
    pub fn max_span_ms(self) -> i64 {
        const D: i64 = 86_400_000;
        match self {
            Resolution::FiveMin => 31 * D,
            Resolution::Hour => 366 * D,
            Resolution::Day | Resolution::Month => 10 * 366 * D,
        }
    }
}

/// Buckets of a site's energies. 5 min and hour are UTC-aligned in SQL; day and month are calendar
/// days and months of the site's time zone, merged here from hourly buckets (a zone whose offset is
/// not a whole hour, such as Asia/Kolkata, gets the hour that starts in the day).
pub async fn history(
    state: &AppState,
    site: &Site,
    res: Resolution,
    from_ms: Option<i64>,
    to_ms: Option<i64>,
) -> ApiResult<Vec<Bucket>> {
    let to = to_ms.unwrap_or_else(|| state.clock.now_ms().saturating_add(1));
    let from = from_ms.unwrap_or(to.saturating_sub(res.default_span_ms()));
    if !(0..=i64::MAX / 2).contains(&from) || to < from {
        return Err(ApiError::invalid(format!(
            "from_ms {from}, to_ms {to}: expected 0 <= from_ms <= to_ms"
        )));
    }
    if to - from > res.max_span_ms() {
        return Err(ApiError::invalid(format!(
            "range of {} days is too long for this resolution (at most {} days)",
            (to - from) / 86_400_000,
            res.max_span_ms() / 86_400_000
        )));
    }
    match res {
        Resolution::FiveMin => Ok(state.store.history(site.id, 300_000, from, to).await?),
        Resolution::Hour => Ok(state.store.history(site.id, 3_600_000, from, to).await?),
        Resolution::Day | Resolution::Month => {
            let tz = parse_tz(&site.timezone)?;
            let hours = state.store.history(site.id, 3_600_000, from, to).await?;
            Ok(merge_calendar(&hours, tz, res == Resolution::Month))
        }
    }
}

/// Merges hourly buckets into local days or months; `start_ms` is the local midnight that starts it.
pub fn merge_calendar(hours: &[Bucket], tz: chrono_tz::Tz, month: bool) -> Vec<Bucket> {
    let mut out: Vec<Bucket> = Vec::new();
    for h in hours {
        let Some(local) = tz.timestamp_millis_opt(h.start_ms).earliest() else {
            continue;
        };
        let date = local.date_naive();
        let date = if month {
            date.with_day(1).unwrap_or(date)
        } else {
            date
        };
        let start = tz
            .from_local_datetime(&date.and_hms_opt(0, 0, 0).unwrap_or_default())
            .earliest()
            .map(|d| d.timestamp_millis())
            .unwrap_or(h.start_ms);
        match out.last_mut() {
            Some(b) if b.start_ms == start => {
                let n = (b.points + h.points) as f64;
                b.soc_avg = if n > 0.0 {
                    (b.soc_avg * b.points as f64 + h.soc_avg * h.points as f64) / n
                } else {
                    0.0
                };
                b.points += h.points;
                b.pv_wh += h.pv_wh;
                b.load_wh += h.load_wh;
                b.import_wh += h.import_wh;
                b.export_wh += h.export_wh;
                b.charge_wh += h.charge_wh;
                b.discharge_wh += h.discharge_wh;
            }
            _ => out.push(Bucket {
                start_ms: start,
                ..*h
            }),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(start_ms: i64, pv_wh: f64, soc: f64, points: i64) -> Bucket {
        Bucket {
            start_ms,
            pv_wh,
            load_wh: 0.0,
            import_wh: 0.0,
            export_wh: 0.0,
            charge_wh: 0.0,
            discharge_wh: 0.0,
            soc_avg: soc,
            points,
        }
    }

    #[test]
    fn calendar_buckets_follow_the_site_zone() {
        const H: i64 = 3_600_000;
        // 2026-01-01T23:00Z is already 2 January in Berlin (UTC+1); 21:00Z and 22:00Z are not.
        let base = 1_767_225_600_000; // 2026-01-01T00:00:00Z
        let hours = [
            b(base + 22 * H, 1.0, 0.2, 1),
            b(base + 23 * H, 2.0, 0.4, 3),
            b(base + 21 * H, 4.0, 0.5, 1),
        ];
        let mut sorted = hours.to_vec();
        sorted.sort_by_key(|x| x.start_ms);
        let days = merge_calendar(&sorted, chrono_tz::Europe::Berlin, false);
        assert_eq!(days.len(), 2);
        assert_eq!(
            days[0].start_ms,
            base - H,
            "local midnight of 1 Jan is 23:00Z the day before"
        );
        assert_eq!(days[1].start_ms, base + 23 * H);
        assert_eq!((days[0].pv_wh, days[1].pv_wh), (5.0, 2.0));
        assert!((days[0].soc_avg - 0.35).abs() < 1e-12);
        let months = merge_calendar(&sorted, chrono_tz::UTC, true);
        assert_eq!(
            (months.len(), months[0].start_ms, months[0].pv_wh),
            (1, base, 7.0)
        );
    }
}
