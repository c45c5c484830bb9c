//! Runs over several years on a profile of one year: calendar time mapped onto the profile.
//!
//! Run year `y` (0-based) starts at the profile start's `y`-th anniversary in the profile's local
//! standard time, so it lasts 365 or 366 days. The profile's own year is its first anniversary span
//! (365 or 366 days, which it must cover). Within a run year the calendar date maps onto the same
//! date of the profile year; where the two differ by a leap day:
//! * a run year with 29 February and a profile year without: 29 February replays 28 February, and the
//!   rest of the year follows one day later in the profile (the same calendar date);
//! * a profile year with 29 February and a run year without: the profile's 29 February is skipped.
//!
//! Weekdays are the run's own (the controller and the tariff see calendar time); only the weather
//! and the house's consumption repeat. Optional yearly factors grow the load and degrade the PV
//! (year 1 as in the file).

use chrono::{Datelike, Months, NaiveDate, NaiveDateTime};

const DAY_S: i64 = 86_400;

/// Most years a run may cover: a battery's life with room (50 years of 1 h steps is 438,000 steps).
pub const MAX_YEARS: u32 = 50;

/// The map from run time to profile time, and the per-year factors.
#[derive(Debug, Clone, PartialEq)]
pub struct Calendar {
    /// UTC s of each run year's start, `years + 1` entries (the last is the run's end).
    pub year_starts: Vec<i64>,
    /// Per run year: from this many seconds into the year, the profile time is shifted by the
    /// second value (s; -1 day, 0 or +1 day) (the leap-day fold, module doc).
    fold: Vec<(i64, i64)>,
    /// Load multiplier per run year: `(1 + load_growth)^y`.
    pub load_factor: Vec<f64>,
    /// PV multiplier per run year: `(1 - pv_degradation)^y`.
    pub pv_factor: Vec<f64>,
    /// UTC s of the profile year's start and length, s.
    profile_start: i64,
    profile_year_s: i64,
}

fn local(utc_s: i64, offset_s: i64) -> NaiveDateTime {
    chrono::DateTime::from_timestamp(utc_s + offset_s, 0)
        .map(|d| d.naive_utc())
        .unwrap_or_default()
}

/// The 29 February within local `[a, b)`, as seconds after `a`.
fn leap_day_in(a: NaiveDateTime, b: NaiveDateTime) -> Option<i64> {
    (a.year()..=b.year())
        .filter_map(|y| NaiveDate::from_ymd_opt(y, 2, 29))
        .map(|d| d.and_hms_opt(0, 0, 0).unwrap_or_default())
        .find(|d| *d >= a && *d < b)
        .map(|d| (d - a).num_seconds())
}

impl Calendar {
    /// The calendar of `years` run years on a profile starting at `profile_start_utc` and ending at
    /// `profile_end_utc`, in a local standard time `offset_s` east of UTC. An error says why the
    /// profile cannot repeat (it must cover one whole year from its start).
    pub fn new(
        profile_start_utc: i64,
        profile_end_utc: i64,
        offset_s: i64,
        years: u32,
        load_growth: f64,
        pv_degradation: f64,
    ) -> Result<Self, String> {
        if years == 0 || years > MAX_YEARS {
            return Err(format!("{years} years: expected 1..={MAX_YEARS}"));
        }
        let start = local(profile_start_utc, offset_s);
        let anniversary = |y: u32| {
            start
                .checked_add_months(Months::new(12 * y))
                .ok_or_else(|| format!("year {y} is beyond the calendar"))
        };
        let p1 = anniversary(1)?;
        let profile_year_s = (p1 - start).num_seconds();
        let covered = profile_end_utc - profile_start_utc;
        if covered < profile_year_s {
            return Err(format!(
                "a run over years repeats the profile's first year ({start} to {p1}, {} days), \
                 but the profile covers {:.2} days",
                profile_year_s / DAY_S,
                covered as f64 / DAY_S as f64
            ));
        }
        let profile_leap = leap_day_in(start, p1);
        let mut year_starts = Vec::with_capacity(years as usize + 1);
        let mut fold = Vec::with_capacity(years as usize);
        for y in 0..years {
            let (a, b) = (anniversary(y)?, anniversary(y + 1)?);
            year_starts.push((a - start).num_seconds() + profile_start_utc);
            let run_leap = leap_day_in(a, b);
            fold.push(match (run_leap, profile_leap) {
                (Some(f), None) => (f, -DAY_S),
                (None, Some(f)) => (f, DAY_S),
                _ => (i64::MAX, 0),
            });
        }
        year_starts.push((anniversary(years)? - start).num_seconds() + profile_start_utc);
        Ok(Self {
            year_starts,
            fold,
            load_factor: (0..years)
                .map(|y| (1.0 + load_growth).powi(y as i32))
                .collect(),
            pv_factor: (0..years)
                .map(|y| (1.0 - pv_degradation).powi(y as i32))
                .collect(),
            profile_start: profile_start_utc,
            profile_year_s,
        })
    }

    /// Number of run years.
    pub fn years(&self) -> usize {
        self.fold.len()
    }

    /// The run's end, UTC s.
    pub fn end_utc_s(&self) -> i64 {
        self.year_starts[self.years()]
    }

    /// The run year (0-based) holding `t` (clamped to the run).
    #[inline]
    pub fn year_of(&self, t_utc_s: f64) -> usize {
        let k = self.year_starts[1..self.years()].partition_point(|s| (*s as f64) <= t_utc_s);
        k.min(self.years() - 1)
    }

    /// The profile instant that run instant `t` replays, and its run year.
    #[inline]
    pub fn profile_time(&self, t_utc_s: f64) -> (f64, usize) {
        let y = self.year_of(t_utc_s);
        let d = t_utc_s - self.year_starts[y] as f64;
        let (at, shift) = self.fold[y];
        let d = if d >= at as f64 { d + shift as f64 } else { d };
        let d = d.clamp(0.0, (self.profile_year_s - 1) as f64);
        (self.profile_start as f64 + d, y)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(y: i32, m: u32, d: u32) -> i64 {
        NaiveDate::from_ymd_opt(y, m, d)
            .unwrap()
            .and_hms_opt(0, 0, 0)
            .unwrap()
            .and_utc()
            .timestamp()
    }

    #[test]
    fn years_follow_the_calendar_and_leap_days_replay_28_february() {
        // A 2019 profile (no leap day) run for 3 years: 2019, 2020 (leap), 2021.
        let c = Calendar::new(utc(2019, 1, 1), utc(2020, 1, 1), 0, 3, 0.0, 0.0).unwrap();
        assert_eq!(
            c.year_starts,
            vec![
                utc(2019, 1, 1),
                utc(2020, 1, 1),
                utc(2021, 1, 1),
                utc(2022, 1, 1)
            ]
        );
        let pt = |t: i64| c.profile_time(t as f64);
        // Same date in the profile before the leap day, and on 28 February.
        assert_eq!(
            pt(utc(2020, 2, 28) + 3600),
            ((utc(2019, 2, 28) + 3600) as f64, 1)
        );
        // 29 February replays 28 February; 1 March is 1 March again.
        assert_eq!(
            pt(utc(2020, 2, 29) + 7200),
            ((utc(2019, 2, 28) + 7200) as f64, 1)
        );
        assert_eq!(pt(utc(2020, 3, 1)), (utc(2019, 3, 1) as f64, 1));
        assert_eq!(
            pt(utc(2020, 12, 31) + 82_800).0,
            (utc(2019, 12, 31) + 82_800) as f64
        );
        assert_eq!(pt(utc(2021, 7, 4)), (utc(2019, 7, 4) as f64, 2));
    }

    #[test]
    fn a_leap_profile_skips_its_29_february_in_common_years() {
        let c = Calendar::new(utc(2020, 1, 1), utc(2021, 1, 1), 0, 2, 0.0, 0.0).unwrap();
        assert_eq!(c.end_utc_s(), utc(2022, 1, 1));
        assert_eq!(
            c.profile_time(utc(2021, 2, 28) as f64).0,
            utc(2020, 2, 28) as f64
        );
        assert_eq!(
            c.profile_time(utc(2021, 3, 1) as f64).0,
            utc(2020, 3, 1) as f64
        );
    }

    #[test]
    fn local_standard_time_and_factors() {
        // Profile in UTC-5 from local midnight 1 January 2019; year 2 starts at local midnight.
        let off = -5 * 3600;
        let s = utc(2019, 1, 1) - off;
        let c = Calendar::new(s, s + 365 * DAY_S, off, 2, 0.02, 0.005).unwrap();
        assert_eq!(c.year_starts[1], utc(2020, 1, 1) - off);
        assert_eq!(c.year_of((c.year_starts[1] - 1) as f64), 0);
        assert_eq!(c.year_of(c.year_starts[1] as f64), 1);
        assert_eq!(c.load_factor, vec![1.0, 1.02]);
        assert_eq!(c.pv_factor, vec![1.0, 0.995]);
    }

    #[test]
    fn a_short_profile_cannot_repeat() {
        let e = Calendar::new(utc(2019, 1, 1), utc(2019, 3, 2), 0, 2, 0.0, 0.0).unwrap_err();
        assert!(
            e.contains("covers 60.00 days") && e.contains("365 days"),
            "{e}"
        );
        assert!(Calendar::new(utc(2019, 1, 1), utc(2020, 1, 1), 0, 0, 0.0, 0.0).is_err());
        assert!(Calendar::new(utc(2019, 1, 1), utc(2020, 1, 1), 0, 51, 0.0, 0.0).is_err());
    }
}
