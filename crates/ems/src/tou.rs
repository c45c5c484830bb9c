//! Time-of-use periods (manual 5.1, TOU mode): the owner's settings, their validation, and the
//! compiled schedule the controller asks "which period is it now?".
//!
//! Periods are local clock times of the site (ARCHITECTURE.md 3: UTC inside, local time only for
//! TOU), one list for weekdays (Monday to Friday) and one for weekends. A period may wrap past midnight
//! ("22:00" to "06:00"); it then covers both ends of the same day type's clock, which is how tariff
//! tables (e.g. OpenEI URDB's weekday/weekend 24-hour schedules) describe off-peak nights.
//!
//! Speed: converting a UTC instant to local time costs a search through the zone's transitions. The
//! schedule therefore remembers the period it found and the UTC instant of the next change (the next
//! period boundary, local midnight, or a daylight-saving transition, whichever comes first), so the
//! controller pays for time zones a few times a day, not every step.

use crate::settings::SettingsError;
use chrono::{Offset, TimeZone};
use serde::{Deserialize, Serialize};
use std::fmt;

/// A local clock time, whole minutes after midnight, 00:00 to 24:00 (24:00 only as an end).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClockTime(u16);

impl ClockTime {
    pub const MIDNIGHT: Self = Self(0);
    pub const END_OF_DAY: Self = Self(MINUTES_PER_DAY);

    /// `hours:minutes`; 24:00 is the end of the day.
    pub fn new(hours: u16, minutes: u16) -> Option<Self> {
        let m = hours.checked_mul(60)?.checked_add(minutes)?;
        (minutes < 60 && m <= MINUTES_PER_DAY).then_some(Self(m))
    }
    pub fn minutes(self) -> u16 {
        self.0
    }
}

const MINUTES_PER_DAY: u16 = 24 * 60;

impl fmt::Display for ClockTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.0 / 60, self.0 % 60)
    }
}

impl std::str::FromStr for ClockTime {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("invalid time {s:?}: expected \"HH:MM\" from 00:00 to 24:00");
        let (h, m) = s.split_once(':').ok_or_else(bad)?;
        if h.is_empty() || h.len() > 2 || m.len() != 2 {
            return Err(bad());
        }
        let h: u16 = h.parse().map_err(|_| bad())?;
        let m: u16 = m.parse().map_err(|_| bad())?;
        ClockTime::new(h, m).ok_or_else(bad)
    }
}

impl Serialize for ClockTime {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ClockTime {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// What a TOU period is for (manual 5.1, TOU mode, "Function"). Time outside every period is the
/// manual's "other period".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PeriodKind {
    /// "Prioritise charging the M-ELV battery from the grid and excess solar power generation, with
    /// the M-ELV battery not discharging."
    Charge,
    /// "Excess solar power generation can be used to charge the M-ELV battery, which can supply power
    /// to the load."
    Discharge,
}

/// One period: from `start` (inclusive) to `end` (exclusive), local time. `end` before `start` wraps
/// past midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TouPeriod {
    pub start: ClockTime,
    pub end: ClockTime,
    pub kind: PeriodKind,
}

impl TouPeriod {
    /// The period as one or two non-wrapping minute ranges `[a, b)` of the day.
    fn ranges(&self) -> [(u16, u16); 2] {
        let (s, e) = (self.start.0, self.end.0);
        if e > s {
            [(s, e), (0, 0)]
        } else {
            [(s, MINUTES_PER_DAY), (0, e)]
        }
    }
}

/// The TOU mode's settings (manual 5.1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TouSettings {
    /// Periods of Monday to Friday.
    pub weekday: Vec<TouPeriod>,
    /// Periods of Saturday and Sunday.
    pub weekend: Vec<TouPeriod>,
    /// Charging periods charge from the grid up to this SOC (0..=1]; PV surplus still fills the rest.
    /// Default 1.0: the manual's charging period has no stop short of full.
    pub charge_target_soc: f64,
}

impl Default for TouSettings {
    fn default() -> Self {
        Self {
            weekday: Vec::new(),
            weekend: Vec::new(),
            charge_target_soc: 1.0,
        }
    }
}

impl TouSettings {
    /// Structure checks that hold whatever the mode: no empty or overlapping periods, a target in
    /// range. Whether the mode may run at all is [`crate::Settings::validate`]'s business.
    pub fn validate(&self) -> Result<(), SettingsError> {
        for (name, list) in [("weekday", &self.weekday), ("weekend", &self.weekend)] {
            for (i, p) in list.iter().enumerate() {
                if p.start == ClockTime::END_OF_DAY {
                    return Err(SettingsError::new(
                        format!("tou.{name}[{i}].start"),
                        "24:00 is only valid as an end time".into(),
                    ));
                }
                if p.start == p.end {
                    return Err(SettingsError::new(
                        format!("tou.{name}[{i}]"),
                        format!("empty period ({}-{}): start equals end", p.start, p.end),
                    ));
                }
                for (j, q) in list[..i].iter().enumerate() {
                    if overlaps(p, q) {
                        return Err(SettingsError::new(
                            format!("tou.{name}[{i}]"),
                            format!(
                                "{}-{} overlaps period {j} ({}-{})",
                                p.start, p.end, q.start, q.end
                            ),
                        ));
                    }
                }
            }
        }
        if !(self.charge_target_soc > 0.0 && self.charge_target_soc <= 1.0) {
            return Err(SettingsError::new(
                "tou.charge_target_soc".into(),
                format!("{}: expected a fraction in (0, 1]", self.charge_target_soc),
            ));
        }
        Ok(())
    }

    /// At least one charging or discharging period on some day (manual 5.1 note).
    pub fn has_periods(&self) -> bool {
        !(self.weekday.is_empty() && self.weekend.is_empty())
    }

    /// At least one charging period on some day.
    pub fn has_charge_periods(&self) -> bool {
        self.weekday
            .iter()
            .chain(&self.weekend)
            .any(|p| p.kind == PeriodKind::Charge)
    }
}

fn overlaps(p: &TouPeriod, q: &TouPeriod) -> bool {
    p.ranges().iter().any(|&(a, b)| {
        q.ranges()
            .iter()
            .any(|&(c, d)| a < b && c < d && a < d && c < b)
    })
}

/// One day type compiled: the day cut at every boundary, with the period in force after each cut.
#[derive(Debug, Clone, Default)]
struct DayPlan {
    /// Sorted cuts in minutes, starting with 0; the day ends at 1440.
    cuts: Vec<u16>,
    kinds: Vec<Option<PeriodKind>>,
}

impl DayPlan {
    fn compile(periods: &[TouPeriod]) -> Self {
        let mut cuts = vec![0u16];
        for p in periods {
            for (a, b) in p.ranges() {
                if a < b {
                    cuts.push(a);
                    cuts.push(b);
                }
            }
        }
        cuts.retain(|&c| c < MINUTES_PER_DAY);
        cuts.sort_unstable();
        cuts.dedup();
        let kinds = cuts
            .iter()
            .map(|&c| {
                periods
                    .iter()
                    .find(|p| p.ranges().iter().any(|&(a, b)| a <= c && c < b))
                    .map(|p| p.kind)
            })
            .collect();
        Self { cuts, kinds }
    }

    /// The period at `minute` and the next cut after it (1440 at the end of the day).
    fn at(&self, minute: u16) -> (Option<PeriodKind>, u16) {
        let i = self.cuts.partition_point(|&c| c <= minute) - 1;
        let next = self.cuts.get(i + 1).copied().unwrap_or(MINUTES_PER_DAY);
        (self.kinds[i], next)
    }
}

/// The compiled TOU schedule of a site, with its cache of the current period.
#[derive(Debug, Clone)]
pub struct TouSchedule {
    tz: chrono_tz::Tz,
    weekday: DayPlan,
    weekend: DayPlan,
    /// The cached answer holds for UTC instants in `[valid_from, valid_until)`.
    valid_from: i64,
    valid_until: i64,
    kind: Option<PeriodKind>,
}

impl TouSchedule {
    pub fn new(settings: &TouSettings, tz: chrono_tz::Tz) -> Self {
        Self {
            tz,
            weekday: DayPlan::compile(&settings.weekday),
            weekend: DayPlan::compile(&settings.weekend),
            valid_from: i64::MAX,
            valid_until: i64::MIN,
            kind: None,
        }
    }

    /// The period in force at `now_s` (unix seconds, UTC); `None` is the manual's "other period".
    #[inline]
    pub fn period_at(&mut self, now_s: i64) -> Option<PeriodKind> {
        if now_s >= self.valid_from && now_s < self.valid_until {
            return self.kind;
        }
        self.refresh(now_s);
        self.kind
    }

    /// The UTC instant until which the current answer holds (for tests and diagnostics).
    pub fn valid_until(&self) -> i64 {
        self.valid_until
    }

    #[cold]
    fn refresh(&mut self, now_s: i64) {
        let offset = self.offset_s(now_s);
        let local = now_s + offset;
        let day = local.div_euclid(86_400);
        let second_of_day = local.rem_euclid(86_400);
        // 1970-01-01 was a Thursday: (day + 3) mod 7 counts from Monday = 0.
        let weekend = (day + 3).rem_euclid(7) >= 5;
        let plan = if weekend {
            &self.weekend
        } else {
            &self.weekday
        };
        let (kind, next_cut) = plan.at((second_of_day / 60) as u16);
        // The next cut in UTC, if the offset stays as it is now.
        let candidate = now_s + i64::from(next_cut) * 60 - second_of_day;
        // Daylight saving: if the offset differs at the candidate, a transition lies between, and the
        // local clock jumps there. Stop the cache at the transition; the next refresh starts afresh
        // with the new offset. Transitions are months apart, so at most one lies within a day.
        let until = if self.offset_s(candidate) == offset {
            candidate
        } else {
            self.first_offset_change(now_s, candidate, offset)
        };
        self.valid_from = now_s;
        self.valid_until = until.max(now_s + 1);
        self.kind = kind;
    }

    fn offset_s(&self, utc_s: i64) -> i64 {
        match chrono::DateTime::from_timestamp(utc_s, 0) {
            Some(t) => i64::from(
                self.tz
                    .offset_from_utc_datetime(&t.naive_utc())
                    .fix()
                    .local_minus_utc(),
            ),
            None => 0,
        }
    }

    /// The first second in `(lo, hi]` whose offset differs from `offset` (bisection, at most 17 steps
    /// for a day).
    fn first_offset_change(&self, mut lo: i64, mut hi: i64, offset: i64) -> i64 {
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if self.offset_s(mid) == offset {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        hi
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn t(s: &str) -> ClockTime {
        s.parse().unwrap()
    }
    fn p(start: &str, end: &str, kind: PeriodKind) -> TouPeriod {
        TouPeriod {
            start: t(start),
            end: t(end),
            kind,
        }
    }
    use PeriodKind::{Charge as C, Discharge as D};

    #[test]
    fn clock_times_parse_strictly() {
        let cases = [
            ("00:00", Some(0)),
            ("06:30", Some(390)),
            ("6:30", Some(390)),
            ("24:00", Some(1440)),
            ("24:01", None),
            ("12:60", None),
            ("1230", None),
            ("12:3", None),
            ("-1:00", None),
            ("", None),
        ];
        for (s, want) in cases {
            assert_eq!(s.parse::<ClockTime>().ok().map(|c| c.0), want, "{s}");
        }
        assert_eq!(t("07:05").to_string(), "07:05");
    }

    fn check_validate(weekday: Vec<TouPeriod>, expected: Result<(), &str>) {
        let s = TouSettings {
            weekday,
            ..Default::default()
        };
        match (s.validate(), expected) {
            (Ok(()), Ok(())) => {}
            (Err(e), Err(want)) => assert_eq!(e.to_string(), want),
            (got, want) => panic!("got {got:?}, expected {want:?}"),
        }
    }

    #[test]
    fn overlaps_and_empty_periods_are_refused() {
        check_validate(vec![p("06:00", "09:00", C), p("09:00", "12:00", D)], Ok(()));
        check_validate(vec![p("22:00", "06:00", C), p("06:00", "22:00", D)], Ok(()));
        check_validate(
            vec![
                p("00:00", "01:00", D),
                p("06:00", "09:00", C),
                p("08:00", "10:00", D),
            ],
            Err("tou.weekday[2]: 08:00-10:00 overlaps period 1 (06:00-09:00)"),
        );
        check_validate(
            vec![p("22:00", "06:00", C), p("05:00", "07:00", D)],
            Err("tou.weekday[1]: 05:00-07:00 overlaps period 0 (22:00-06:00)"),
        );
        check_validate(
            vec![p("07:00", "07:00", C)],
            Err("tou.weekday[0]: empty period (07:00-07:00): start equals end"),
        );
        check_validate(
            vec![p("24:00", "06:00", C)],
            Err("tou.weekday[0].start: 24:00 is only valid as an end time"),
        );
        check_validate(vec![p("00:00", "24:00", C)], Ok(()));
    }

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> i64 {
        NaiveDate::from_ymd_opt(y, mo, d)
            .unwrap()
            .and_hms_opt(h, mi, 0)
            .unwrap()
            .and_utc()
            .timestamp()
    }

    /// (UTC instant, expected period) for a schedule, evaluated in order through one cache, then
    /// each again from a cold cache: both must agree with the expectation.
    fn check_schedule(tz: chrono_tz::Tz, s: &TouSettings, cases: &[(i64, Option<PeriodKind>)]) {
        let mut warm = TouSchedule::new(s, tz);
        for &(now, want) in cases {
            assert_eq!(warm.period_at(now), want, "warm at {now}");
            assert_eq!(
                TouSchedule::new(s, tz).period_at(now),
                want,
                "cold at {now}"
            );
        }
    }

    #[test]
    fn weekday_and_weekend_sets_in_local_time() {
        let s = TouSettings {
            weekday: vec![p("22:00", "06:00", C), p("17:00", "21:00", D)],
            weekend: vec![p("10:00", "14:00", C)],
            ..Default::default()
        };
        // Australia/Sydney in June: UTC+10, no DST. 2024-06-07 is a Friday.
        let tz = chrono_tz::Australia::Sydney;
        check_schedule(
            tz,
            &s,
            &[
                (utc(2024, 6, 6, 19, 0), Some(C)),  // Fri 05:00: night charge
                (utc(2024, 6, 6, 19, 59), Some(C)), // Fri 05:59
                (utc(2024, 6, 6, 20, 0), None),     // Fri 06:00: other
                (utc(2024, 6, 7, 7, 0), Some(D)),   // Fri 17:00
                (utc(2024, 6, 7, 10, 59), Some(D)), // Fri 20:59
                (utc(2024, 6, 7, 11, 0), None),     // Fri 21:00
                (utc(2024, 6, 7, 12, 0), Some(C)),  // Fri 22:00
                // Sat 00:00: the weekend set governs Saturday's clock, so Friday's night period does
                // not run on into it.
                (utc(2024, 6, 7, 14, 0), None),
                (utc(2024, 6, 8, 0, 0), Some(C)),  // Sat 10:00
                (utc(2024, 6, 9, 3, 59), Some(C)), // Sun 13:59
                (utc(2024, 6, 9, 14, 0), Some(C)), // Mon 00:00: weekday night charge
            ],
        );
    }

    #[test]
    fn correct_across_daylight_saving_changes() {
        let s = TouSettings {
            weekday: vec![p("02:30", "03:30", C), p("07:00", "08:00", D)],
            weekend: vec![p("02:30", "03:30", C), p("07:00", "08:00", D)],
            ..Default::default()
        };
        let tz = chrono_tz::Europe::Berlin;
        check_schedule(
            tz,
            &s,
            &[
                // 2024-03-31 (Sunday) spring forward at 01:00 UTC: 02:00 CET becomes 03:00 CEST,
                // so 02:30 never happens and the charge period runs from 03:00 to 03:30.
                (utc(2024, 3, 31, 0, 59), None),    // 01:59 CET
                (utc(2024, 3, 31, 1, 0), Some(C)),  // 03:00 CEST
                (utc(2024, 3, 31, 1, 29), Some(C)), // 03:29 CEST
                (utc(2024, 3, 31, 1, 30), None),    // 03:30 CEST
                (utc(2024, 3, 31, 5, 0), Some(D)),  // 07:00 CEST
                (utc(2024, 3, 31, 6, 0), None),     // 08:00 CEST
                (utc(2024, 4, 1, 4, 59), None),     // Mon 06:59 CEST
                (utc(2024, 4, 1, 5, 0), Some(D)),   // Mon 07:00 CEST
            ],
        );
        // 2024-10-27 fall back at 01:00 UTC: 03:00 CEST becomes 02:00 CET; 02:30 happens twice.
        check_schedule(
            tz,
            &s,
            &[
                (utc(2024, 10, 27, 0, 29), None),    // 02:29 CEST
                (utc(2024, 10, 27, 0, 30), Some(C)), // 02:30 CEST
                (utc(2024, 10, 27, 0, 59), Some(C)), // 02:59 CEST
                (utc(2024, 10, 27, 1, 0), None),     // 02:00 CET (clock went back)
                (utc(2024, 10, 27, 1, 30), Some(C)), // 02:30 CET, second time
                (utc(2024, 10, 27, 2, 30), None),    // 03:30 CET
                (utc(2024, 10, 27, 6, 0), Some(D)),  // 07:00 CET
            ],
        );
    }

    #[test]
    fn warm_cache_agrees_with_cold_lookups_for_a_whole_year() {
        // Every 7 minutes through 2024 (a step that walks across every minute of the hour), in zones
        // with a one-hour DST shift, a half-hour offset, and a half-hour DST shift.
        let s = TouSettings {
            weekday: vec![p("22:30", "06:15", C), p("17:00", "21:00", D)],
            weekend: vec![p("01:45", "02:45", D), p("11:00", "14:00", C)],
            ..Default::default()
        };
        for tz in [
            chrono_tz::Europe::Berlin,
            chrono_tz::America::St_Johns,
            chrono_tz::Australia::Lord_Howe,
        ] {
            let mut warm = TouSchedule::new(&s, tz);
            let start = utc(2024, 1, 1, 0, 0);
            let mut refreshes = 0;
            let mut until = i64::MIN;
            for k in 0..(366 * 24 * 60 / 7) {
                let now = start + k * 7 * 60;
                let got = warm.period_at(now);
                if warm.valid_until() != until {
                    refreshes += 1;
                    until = warm.valid_until();
                }
                assert_eq!(
                    got,
                    TouSchedule::new(&s, tz).period_at(now),
                    "{tz} at {now}"
                );
            }
            // About five changes a day (cuts and midnight), not one per step.
            assert!(refreshes < 366 * 8, "{tz}: {refreshes} refreshes");
        }
    }

    #[test]
    fn cache_stops_at_the_next_change() {
        let s = TouSettings {
            weekday: vec![p("17:00", "21:00", D)],
            weekend: vec![p("17:00", "21:00", D)],
            ..Default::default()
        };
        let mut sch = TouSchedule::new(&s, chrono_tz::UTC);
        assert_eq!(sch.period_at(utc(2024, 1, 2, 12, 0)), None);
        assert_eq!(sch.valid_until(), utc(2024, 1, 2, 17, 0));
        assert_eq!(sch.period_at(utc(2024, 1, 2, 17, 0)), Some(D));
        assert_eq!(sch.valid_until(), utc(2024, 1, 2, 21, 0));
        // Time going backwards (a replayed log) is answered correctly too.
        assert_eq!(sch.period_at(utc(2024, 1, 2, 16, 59)), None);
    }
}
