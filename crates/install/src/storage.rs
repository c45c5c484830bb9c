//! The storage and recharge planner: manual section 3 ("Storage Requirements").
//!
//! ## The manual's rules
//! * Storage temperature -20 °C to +55 °C (section 3, and 7.1 "Storage temperature").
//! * Recharge after the storage time of the temperature band: -20<t<=25 °C 15 months, 25<t<=35 9,
//!   35<t<=45 6, 45<t<=55 3 ([`BANDS`]). Within the time no recharge is needed; past it, recharge as
//!   soon as possible, to 30 % SOC. At most 3 recharges; beyond that discarding is recommended.
//! * Inspect every three months; after two years or more in storage, inspection and test by qualified
//!   personnel before use.
//!
//! ## Our decisions where the manual is silent
//! * Band edges follow the table's `a<t<=b`: exactly 25 °C is in the 15-month band, exactly 35 °C in
//!   the 9-month band. Exactly -20 °C is inside the storage range ("-20 °C to +55 °C") and goes to the
//!   15-month band. Below -20 °C or above 55 °C is flagged; for the interval it counts in the nearest
//!   band (15 months below, 3 months above), and the flag asks for an inspection before use.
//!   A value below -80 °C or above 100 °C is refused as implausible (a typo or kelvin).
//! * Months are calendar months from the start date (chrono `checked_add_months`): 9 months from
//!   2026-01-01 is 2026-10-01; from 2026-05-31, 9 months is 2027-02-28 (the day is clamped to the
//!   month's last day).
//! * A log whose temperature crosses bands consumes the allowed interval pro rata: each day spent in
//!   band b consumes 1/A_b of it, where A_b is the band's allowance in days, counted as calendar months
//!   from the start of the interval. The recharge is due on the first day on which the consumed
//!   fraction reaches 1. A reading holds from its date until the next reading; after the last reading
//!   its temperature is assumed to continue. With one constant temperature the rule gives exactly the
//!   calendar-month date, so `--temp-c` and `--log` agree. The sum is kept in exact integer
//!   arithmetic (scaled by the least common multiple of the four allowances), so the due day never
//!   depends on rounding.
//! * The interval starts at the last recharge (or, for a battery never recharged, at the start of
//!   storage). The inspection series and the two-year re-test count from the start of storage
//!   (`stored_since`, by default the interval start).

use crate::templog::Reading;
use chrono::{Months, NaiveDate};
use serde::Serialize;
use thiserror::Error;

/// A storage temperature band of manual section 3: `above_c < t <= up_to_c`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Band {
    pub above_c: f64,
    pub up_to_c: f64,
    /// Storage time before a recharge is needed, calendar months.
    pub months: u32,
}

/// Manual section 3, storage time table.
pub const BANDS: [Band; 4] = [
    Band {
        above_c: -20.0,
        up_to_c: 25.0,
        months: 15,
    }, // manual 3: -20<t<=25 °C, 15 months
    Band {
        above_c: 25.0,
        up_to_c: 35.0,
        months: 9,
    }, // manual 3: 25<t<=35 °C, 9 months
    Band {
        above_c: 35.0,
        up_to_c: 45.0,
        months: 6,
    }, // manual 3: 35<t<=45 °C, 6 months
    Band {
        above_c: 45.0,
        up_to_c: 55.0,
        months: 3,
    }, // manual 3: 45<t<=55 °C, 3 months
];
/// Storage temperature range, °C (manual 3 and 7.1: -20 to +55).
pub const STORAGE_RANGE_C: (f64, f64) = melv_core::spec::STORAGE_C;
/// Recharge target, SOC fraction. Manual 3 note: "recharged to 30% SOC".
pub const RECHARGE_TARGET_SOC: f64 = 0.30;
/// Maximum number of recharges. Manual 3 note: "The maximum number of recharging is 3".
pub const MAX_RECHARGES: u32 = 3;
/// Inspection period, months. Manual 3: "once every three months recommended".
pub const INSPECTION_MONTHS: u32 = 3;
/// Storage time after which qualified personnel must inspect and test before use, months.
/// Manual 3: "two years or longer".
pub const RETEST_MONTHS: u32 = 24;
/// Temperatures outside this range are refused as implausible for a warehouse (our choice: the
/// coldest and hottest air temperatures measured on Earth lie inside it; 298 is a kelvin typo).
pub const PLAUSIBLE_C: (f64, f64) = (-80.0, 100.0);

/// Why a storage request cannot be planned.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum StorageError {
    #[error("recharges: must be 0 or more, not {0}")]
    Recharges(i64),
    #[error("{place}: {value} °C is not a plausible storage temperature (expected {} to {} °C; kelvin?)", PLAUSIBLE_C.0, PLAUSIBLE_C.1)]
    Implausible { place: String, value: f64 },
    #[error("stored-since {stored_since} is after the start of the interval {start}")]
    StoredSinceAfterStart {
        stored_since: NaiveDate,
        start: NaiveDate,
    },
    #[error("the temperature log has no readings")]
    EmptyLog,
    #[error("{place}: date {date} is not after {previous}: readings must be sorted, one per date")]
    Unsorted {
        place: String,
        date: NaiveDate,
        previous: NaiveDate,
    },
    #[error("date arithmetic overflows after {0}")]
    DateRange(NaiveDate),
}

/// Which band a temperature falls in, and whether it is outside the storage range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BandOf {
    /// Index into [`BANDS`].
    pub band: usize,
    pub outside_range: bool,
}

/// The band of a temperature (edges as in the module doc). `place` names the value in errors.
pub fn band_of(temp_c: f64, place: &str) -> Result<BandOf, StorageError> {
    if !(PLAUSIBLE_C.0..=PLAUSIBLE_C.1).contains(&temp_c) {
        return Err(StorageError::Implausible {
            place: place.to_string(),
            value: temp_c,
        });
    }
    let outside_range = temp_c < STORAGE_RANGE_C.0 || temp_c > STORAGE_RANGE_C.1;
    let band = BANDS
        .iter()
        .position(|b| temp_c <= b.up_to_c)
        .unwrap_or(BANDS.len() - 1);
    Ok(BandOf {
        band,
        outside_range,
    })
}

/// `date` plus `months` calendar months (day clamped to the month's end).
pub fn add_months(date: NaiveDate, months: u32) -> Result<NaiveDate, StorageError> {
    date.checked_add_months(Months::new(months))
        .ok_or(StorageError::DateRange(date))
}

fn add_days(date: NaiveDate, days: u64) -> Result<NaiveDate, StorageError> {
    date.checked_add_days(chrono::Days::new(days))
        .ok_or(StorageError::DateRange(date))
}

fn gcd(a: u128, b: u128) -> u128 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// A stretch of constant temperature: `days` days from `start` in band `band`. The last segment of a
/// log is open-ended (`days == None`).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Segment {
    start: NaiveDate,
    days: Option<u64>,
    temp_c: f64,
    band: usize,
}

/// Time spent in one band until the due date.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BandUsage {
    pub band: Band,
    /// The band's allowance in days from the interval start.
    pub allowance_days: u64,
    /// Days spent in the band between the interval start and the due date.
    pub days: u64,
    /// `days / allowance_days`; the fractions add up to 1 at the due date.
    pub fraction: f64,
}

/// A temperature outside the storage range.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Flag {
    pub date: NaiveDate,
    pub line: Option<u64>,
    pub temp_c: f64,
    pub reason: String,
}

/// The recharge interval worked out from a temperature history.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Interval {
    pub start: NaiveDate,
    pub due: NaiveDate,
    pub usage: Vec<BandUsage>,
    pub flags: Vec<Flag>,
    /// (days, temperature) stretches from the start to the due date, for the twin's SOC estimate.
    pub stretches: Vec<(u64, f64)>,
    /// Allowance in days of each of [`BANDS`], counted from `start`.
    pub allowance_days: [u64; 4],
    #[serde(skip)]
    segments: Vec<Segment>,
}

/// Work out the due date of a history (readings sorted by strictly increasing date; a `--temp-c`
/// request is a history of one reading).
pub fn interval(readings: &[Reading]) -> Result<Interval, StorageError> {
    let first = readings.first().ok_or(StorageError::EmptyLog)?;
    let start = first.date;
    let mut segments = Vec::with_capacity(readings.len());
    let mut flags = Vec::new();
    for (i, r) in readings.iter().enumerate() {
        let place = match r.line {
            Some(l) => format!("line {l}"),
            None => "temp-c".to_string(),
        };
        if let Some(prev) = i.checked_sub(1).map(|p| readings[p].date) {
            // `parse_log` already refuses this; a request built in code (the web app) may not have
            // gone through it.
            if r.date <= prev {
                return Err(StorageError::Unsorted {
                    place,
                    date: r.date,
                    previous: prev,
                });
            }
        }
        let b = band_of(r.temp_c, &place)?;
        if b.outside_range {
            flags.push(Flag {
                date: r.date,
                line: r.line,
                temp_c: r.temp_c,
                reason: format!(
                    "{} °C is outside the storage range {} to {} °C (manual 3): inspect before use; counted in the {}-month band",
                    r.temp_c, STORAGE_RANGE_C.0, STORAGE_RANGE_C.1, BANDS[b.band].months
                ),
            });
        }
        let days = readings
            .get(i + 1)
            .map(|n| (n.date - r.date).num_days().max(0) as u64);
        segments.push(Segment {
            start: r.date,
            days,
            temp_c: r.temp_c,
            band: b.band,
        });
    }
    let mut allowance_days = [0u64; 4];
    for (a, band) in allowance_days.iter_mut().zip(BANDS) {
        *a = (add_months(start, band.months)? - start).num_days() as u64;
    }
    // Exact pro-rata sum: a day in band b weighs lcm / A_b; the interval is used up at lcm.
    let lcm = allowance_days
        .iter()
        .fold(1u128, |l, &a| l / gcd(l, a as u128) * a as u128);
    let weight = allowance_days.map(|a| lcm / a as u128);
    let mut used: u128 = 0;
    let mut days_in = [0u64; 4];
    let mut stretches = Vec::new();
    let mut due = None;
    for s in &segments {
        let w = weight[s.band];
        let need = (lcm - used).div_ceil(w) as u64;
        match s.days {
            Some(d) if d < need => {
                used += d as u128 * w;
                days_in[s.band] += d;
                if d > 0 {
                    stretches.push((d, s.temp_c));
                }
            }
            _ => {
                days_in[s.band] += need;
                stretches.push((need, s.temp_c));
                due = Some(add_days(s.start, need)?);
                break;
            }
        }
    }
    // The last segment is open-ended, so the loop always sets `due`.
    let due = due.ok_or(StorageError::EmptyLog)?;
    let usage = (0..BANDS.len())
        .filter(|&b| days_in[b] > 0)
        .map(|b| BandUsage {
            band: BANDS[b],
            allowance_days: allowance_days[b],
            days: days_in[b],
            fraction: days_in[b] as f64 / allowance_days[b] as f64,
        })
        .collect();
    Ok(Interval {
        start,
        due,
        usage,
        flags,
        stretches,
        allowance_days,
        segments,
    })
}

impl Interval {
    /// Fraction of the allowed interval consumed by the end of `date` minus one day, i.e. over the
    /// days from the start up to (not including) `date`. May exceed 1 past the due date.
    pub fn consumed_by(&self, date: NaiveDate) -> f64 {
        let mut total = 0.0;
        for s in &self.segments {
            if date <= s.start {
                break;
            }
            let available = (date - s.start).num_days() as u64;
            let d = s.days.map_or(available, |d| d.min(available));
            total += d as f64 / self.allowance_days[s.band] as f64;
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn log(entries: &[(&str, f64)]) -> Vec<Reading> {
        entries
            .iter()
            .enumerate()
            .map(|(i, &(d, t))| Reading {
                line: Some(i as u64 + 1),
                date: date(d),
                temp_c: t,
            })
            .collect()
    }

    /// Ok: (months of the band, flagged); Err: start of the message.
    fn check_band(t: f64, expected: Result<(u32, bool), &str>) {
        match (band_of(t, "temp-c"), expected) {
            (Ok(b), Ok((months, flagged))) => {
                assert_eq!(
                    (BANDS[b.band].months, b.outside_range),
                    (months, flagged),
                    "{t}"
                )
            }
            (Err(e), Err(want)) => assert!(e.to_string().starts_with(want), "{e}"),
            (got, want) => panic!("{t}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn every_band_with_its_edges() {
        check_band(-20.0, Ok((15, false)));
        check_band(-19.9, Ok((15, false)));
        check_band(0.0, Ok((15, false)));
        check_band(25.0, Ok((15, false)));
        check_band(25.01, Ok((9, false)));
        check_band(30.0, Ok((9, false)));
        check_band(35.0, Ok((9, false)));
        check_band(35.5, Ok((6, false)));
        check_band(45.0, Ok((6, false)));
        check_band(45.1, Ok((3, false)));
        check_band(55.0, Ok((3, false)));
        check_band(55.1, Ok((3, true)));
        check_band(-20.5, Ok((15, true)));
        check_band(-80.0, Ok((15, true)));
        check_band(100.0, Ok((3, true)));
        check_band(-80.1, Err("temp-c: -80.1 °C is not a plausible"));
        check_band(298.0, Err("temp-c: 298 °C is not a plausible"));
        check_band(f64::NAN, Err("temp-c: NaN °C"));
    }

    fn check_due(entries: &[(&str, f64)], expected_due: &str) {
        let i = interval(&log(entries)).unwrap();
        assert_eq!(i.due, date(expected_due), "{entries:?}");
        let total: f64 = i.usage.iter().map(|u| u.fraction).sum();
        assert!(
            (total - 1.0).abs() < 0.01,
            "{entries:?}: fractions add to {total}"
        );
        let days: u64 = i.stretches.iter().map(|s| s.0).sum();
        assert_eq!(days as i64, (i.due - i.start).num_days());
    }

    #[test]
    fn constant_temperature_is_calendar_months() {
        check_due(&[("2026-01-01", 30.0)], "2026-10-01");
        check_due(&[("2026-01-01", 25.0)], "2027-04-01");
        check_due(&[("2026-01-01", 20.0)], "2027-04-01");
        check_due(&[("2026-01-01", 40.0)], "2026-07-01");
        check_due(&[("2026-01-01", 50.0)], "2026-04-01");
        check_due(&[("2026-05-31", 30.0)], "2027-02-28");
        check_due(&[("2027-05-31", 30.0)], "2028-02-29");
        check_due(&[("2026-01-01", -25.0)], "2027-04-01");
        check_due(&[("2026-01-01", 60.0)], "2026-04-01");
    }

    #[test]
    fn constant_log_agrees_with_single_reading() {
        // Many readings of one temperature give the same date as one reading.
        check_due(
            &[
                ("2026-01-01", 30.0),
                ("2026-02-01", 30.0),
                ("2026-03-15", 30.0),
            ],
            "2026-10-01",
        );
        check_due(
            &[
                ("2026-01-01", 50.0),
                ("2026-01-02", 50.0),
                ("2026-01-03", 46.0),
            ],
            "2026-04-01",
        );
    }

    #[test]
    fn crossing_bands_is_pro_rata() {
        // 2026-01-01 start: allowances 455 d (15 mo), 273 d (9 mo), 181 d (6 mo), 90 d (3 mo).
        // Half the 15-month allowance cold would be 227.5 days; here 182 days at 20 °C use 182/455 =
        // 0.4, leaving 0.6 x 273 = 163.8 -> 164 days at 30 °C: due 2026-07-02 + 164 d = 2026-12-13.
        check_due(&[("2026-01-01", 20.0), ("2026-07-02", 30.0)], "2026-12-13");
        // 45 days at 50 °C use 45/90 = 0.5; the rest at 20 °C needs 0.5 x 455 = 227.5 -> 228 days.
        check_due(&[("2026-01-01", 50.0), ("2026-02-15", 20.0)], "2026-10-01");
        // The due date falls inside the log: a later cooler reading does not postpone it.
        check_due(&[("2026-01-01", 50.0), ("2026-06-01", 10.0)], "2026-04-01");
        // Hot then cold then hot: 31/181 + 181/455 = 0.569; 0.431 x 90 = 38.8 -> 39 days at 50 °C.
        check_due(
            &[
                ("2026-01-01", 40.0),
                ("2026-02-01", 0.0),
                ("2026-08-01", 50.0),
            ],
            "2026-09-09",
        );
    }

    #[test]
    fn consumed_fraction_by_date() {
        let i = interval(&log(&[("2026-01-01", 50.0), ("2026-02-15", 20.0)])).unwrap();
        assert_eq!(i.consumed_by(date("2026-01-01")), 0.0);
        assert!((i.consumed_by(date("2026-02-15")) - 0.5).abs() < 1e-12);
        assert!(i.consumed_by(i.due) >= 1.0);
        assert!(i.consumed_by(date("2025-01-01")) == 0.0);
    }

    #[test]
    fn flags_name_the_line() {
        let i = interval(&log(&[("2026-01-01", 20.0), ("2026-02-01", 58.0)])).unwrap();
        assert_eq!(i.flags.len(), 1);
        assert_eq!(i.flags[0].line, Some(2));
        assert!(i.flags[0]
            .reason
            .starts_with("58 °C is outside the storage range -20 to 55 °C"));
        let e = interval(&log(&[("2026-01-01", 20.0), ("2026-02-01", 580.0)])).unwrap_err();
        assert!(e.to_string().starts_with("line 2: 580 °C"), "{e}");
        let e = interval(&log(&[("2026-01-01", 20.0), ("2026-01-01", 21.0)])).unwrap_err();
        assert_eq!(e.to_string(), "line 2: date 2026-01-01 is not after 2026-01-01: readings must be sorted, one per date");
    }
}

#[cfg(test)]
mod properties {
    //! Properties of the pro-rata rule over random logs, 128 cases each. On failure proptest prints
    //! the shrunk log, which is then added to the table-driven tests above.
    use super::*;
    use proptest::prelude::*;

    fn start() -> impl Strategy<Value = NaiveDate> {
        // Any day of 2024-2031, leap years and month ends included.
        (0u64..8 * 366)
            .prop_map(|d| NaiveDate::from_ymd_opt(2024, 1, 1).unwrap() + chrono::Days::new(d))
    }

    /// A log: a start date, then (gap in days >= 1, temperature) steps.
    fn log() -> impl Strategy<Value = Vec<Reading>> {
        (
            start(),
            -30.0f64..65.0,
            prop::collection::vec((1u64..120, -30.0f64..65.0), 0..12),
        )
            .prop_map(|(d0, t0, steps)| {
                let mut out = vec![Reading {
                    line: Some(1),
                    date: d0,
                    temp_c: t0,
                }];
                for (i, (gap, t)) in steps.into_iter().enumerate() {
                    let date = out[i].date + chrono::Days::new(gap);
                    out.push(Reading {
                        line: Some(i as u64 + 2),
                        date,
                        temp_c: t,
                    });
                }
                out
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn due_is_the_first_day_the_interval_is_used_up(readings in log()) {
            let iv = interval(&readings).unwrap();
            prop_assert!(iv.consumed_by(iv.due) >= 1.0 - 1e-9);
            prop_assert!(iv.consumed_by(iv.due.pred_opt().unwrap()) < 1.0 + 1e-9);
            // Never later than the coldest band allows, never earlier than the hottest.
            prop_assert!(iv.due <= add_months(iv.start, 15).unwrap());
            prop_assert!(iv.due >= add_months(iv.start, 3).unwrap());
        }

        #[test]
        fn splitting_a_constant_log_changes_nothing(d0 in start(), t in -20.0f64..55.0, gaps in prop::collection::vec(1u64..90, 0..6)) {
            let single = interval(&[Reading { line: None, date: d0, temp_c: t }]).unwrap();
            let mut readings = vec![Reading { line: None, date: d0, temp_c: t }];
            for g in gaps {
                let date = readings.last().unwrap().date + chrono::Days::new(g);
                readings.push(Reading { line: None, date, temp_c: t });
            }
            prop_assert_eq!(interval(&readings).unwrap().due, single.due);
            let band = band_of(t, "t").unwrap().band;
            prop_assert_eq!(single.due, add_months(d0, BANDS[band].months).unwrap());
        }

        #[test]
        fn warmer_is_never_later(readings in log(), warmer_by in 0.0f64..20.0) {
            let warm: Vec<Reading> = readings
                .iter()
                .map(|r| Reading { temp_c: (r.temp_c + warmer_by).min(PLAUSIBLE_C.1), ..*r })
                .collect();
            prop_assert!(interval(&warm).unwrap().due <= interval(&readings).unwrap().due);
        }
    }
}
