//! Electricity tariffs: flat, time-of-use periods in the site's local time, or a price series.
//!
//! A tariff is compiled once, for the simulated span, into a sorted list of UTC segments with a
//! constant import and export price each. The runner walks the list with a cursor, so the hot loop
//! never converts time zones; daylight-saving changes are handled once, here, by chrono-tz.

use crate::error::{ConfigError, CsvError};
use chrono::{Datelike, Duration, NaiveDate, NaiveTime, TimeZone, Weekday};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

/// Which kind of tariff the site has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TariffKind {
    Flat,
    Tou,
    Series,
}

/// Days a TOU period applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DaySet {
    All,
    Weekday,
    Weekend,
}

impl DaySet {
    fn contains(self, d: Weekday) -> bool {
        let weekend = matches!(d, Weekday::Sat | Weekday::Sun);
        match self {
            DaySet::All => true,
            DaySet::Weekday => !weekend,
            DaySet::Weekend => weekend,
        }
    }
}

/// One TOU price period, in local wall-clock time; `end` may be "24:00" and may be before `start`
/// (a period across midnight).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeriodConfig {
    #[serde(default = "all_days")]
    pub days: DaySet,
    pub start: String,
    pub end: String,
    /// Import price in the period, currency per kWh.
    pub import_price: f64,
    /// Export price in the period; the tariff's `export_price` when absent.
    pub export_price: Option<f64>,
}

fn all_days() -> DaySet {
    DaySet::All
}

/// The `[tariff]` table of the site TOML.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TariffConfig {
    pub kind: TariffKind,
    /// Currency label for the report (no conversion is done).
    #[serde(default = "currency")]
    pub currency: String,
    /// Flat import price, or the TOU price outside every period, per kWh.
    pub import_price: Option<f64>,
    /// Price paid for exported energy, per kWh (0 when there is no feed-in payment).
    #[serde(default)]
    pub export_price: f64,
    #[serde(default)]
    pub periods: Vec<PeriodConfig>,
    /// Price series CSV `timestamp,import_price[,export_price]` (local standard time like the profile),
    /// relative to the site TOML.
    pub file: Option<String>,
    /// Which clock the TOU periods' hours are read on (default `civil`; the report prints it).
    #[serde(default)]
    pub clock: TouClock,
}

/// The clock of a TOU tariff's hours (issue 19: the same tariff saved 177.63 or 144.81 depending on
/// which clock its hours were meant in).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TouClock {
    /// The site's local civil time: daylight saving moves the periods with the wall clock.
    #[default]
    Civil,
    /// The site's local standard time all year: in summer the periods start an hour later on the
    /// wall clock (a utility that defines its hours in standard time).
    Standard,
}

impl TouClock {
    /// How the report says it, with the zone.
    pub fn describe(self, tz: Tz) -> String {
        match self {
            TouClock::Civil => format!("local civil time ({tz}, daylight saving applied)"),
            TouClock::Standard => format!("local standard time ({tz}, no daylight saving)"),
        }
    }
}

fn currency() -> String {
    "EUR".to_string()
}

/// A span of constant prices, `[start_utc_s, next segment's start)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Segment {
    pub start_utc_s: i64,
    /// Currency per kWh.
    pub import_price: f64,
    pub export_price: f64,
}

/// Prices over the simulated span, walked with a cursor.
#[derive(Debug, Clone, PartialEq)]
pub struct PriceSchedule {
    segments: Vec<Segment>,
    cursor: usize,
}

/// "HH:MM" to minutes after midnight, "24:00" allowed.
fn parse_hhmm(s: &str) -> Option<u32> {
    let (h, m) = s.split_once(':')?;
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (h <= 24 && m < 60 && (h < 24 || m == 0)).then_some(h * 60 + m)
}

fn check_price(file: &str, key: String, v: f64) -> Result<(), ConfigError> {
    // A negative price is real (some markets pay for consumption at times), but a huge one is a typo.
    if !v.is_finite() || v.abs() > 100.0 {
        return Err(ConfigError::new(
            file,
            key,
            format!("price {v} is not a finite value within -100..=100 per kWh"),
        ));
    }
    Ok(())
}

impl TariffConfig {
    /// Check the table and compile it into a schedule from `start_utc_s` to `end_utc_s`.
    /// `series` is the price CSV already read (name and bytes) for `kind = "series"`.
    pub fn compile(
        &self,
        file: &str,
        tz: Tz,
        start_utc_s: i64,
        end_utc_s: i64,
        series: Option<(&str, &[u8], i64)>,
    ) -> Result<PriceSchedule, ConfigError> {
        check_price(file, "tariff.export_price".into(), self.export_price)?;
        if let Some(p) = self.import_price {
            check_price(file, "tariff.import_price".into(), p)?;
        }
        let need = |ok: bool, key: &str, why: &str| {
            if ok {
                Ok(())
            } else {
                Err(ConfigError::new(file, key, why))
            }
        };
        match self.kind {
            TariffKind::Flat => {
                need(
                    self.import_price.is_some(),
                    "tariff.import_price",
                    "a flat tariff needs import_price",
                )?;
                need(
                    self.periods.is_empty(),
                    "tariff.periods",
                    "periods belong to kind = \"tou\"",
                )?;
                need(
                    self.file.is_none(),
                    "tariff.file",
                    "file belongs to kind = \"series\"",
                )?;
                Ok(PriceSchedule::new(vec![Segment {
                    start_utc_s: i64::MIN,
                    import_price: self.import_price.unwrap_or(0.0),
                    export_price: self.export_price,
                }]))
            }
            TariffKind::Tou => {
                need(
                    self.import_price.is_some(),
                    "tariff.import_price",
                    "a TOU tariff needs import_price (the price outside every period)",
                )?;
                need(
                    !self.periods.is_empty(),
                    "tariff.periods",
                    "a TOU tariff needs at least one period",
                )?;
                need(
                    self.file.is_none(),
                    "tariff.file",
                    "file belongs to kind = \"series\"",
                )?;
                self.compile_tou(file, tz, start_utc_s, end_utc_s)
            }
            TariffKind::Series => {
                need(
                    self.periods.is_empty(),
                    "tariff.periods",
                    "periods belong to kind = \"tou\"",
                )?;
                let Some((name, bytes, offset)) = series else {
                    return Err(ConfigError::new(
                        file,
                        "tariff.file",
                        "a series tariff needs file = \"prices.csv\"",
                    ));
                };
                parse_series(name, bytes, offset, self.export_price)
                    .map(PriceSchedule::new)
                    .map_err(|e| ConfigError::new(file, "tariff.file", e.to_string()))
            }
        }
    }

    /// Minutes of each period per day set, split at midnight, checked for overlaps.
    fn compile_tou(
        &self,
        file: &str,
        tz: Tz,
        start_utc_s: i64,
        end_utc_s: i64,
    ) -> Result<PriceSchedule, ConfigError> {
        // (day set, from minute, to minute, import, export, index)
        let mut pieces: Vec<(DaySet, u32, u32, f64, f64, usize)> = Vec::new();
        for (i, p) in self.periods.iter().enumerate() {
            let key = |f: &str| format!("tariff.periods[{i}].{f}");
            let a = parse_hhmm(&p.start).ok_or_else(|| {
                ConfigError::new(
                    file,
                    key("start"),
                    format!("{:?} is not a time HH:MM", p.start),
                )
            })?;
            let b = parse_hhmm(&p.end).ok_or_else(|| {
                ConfigError::new(file, key("end"), format!("{:?} is not a time HH:MM", p.end))
            })?;
            if a == b {
                return Err(ConfigError::new(
                    file,
                    key("end"),
                    "a period must not be empty (start == end)",
                ));
            }
            check_price(file, key("import_price"), p.import_price)?;
            let exp = p.export_price.unwrap_or(self.export_price);
            check_price(file, key("export_price"), exp)?;
            let spans: Vec<(u32, u32)> = if a < b {
                vec![(a, b)]
            } else {
                vec![(a, 1440), (0, b)]
            };
            for (x, y) in spans.into_iter().filter(|(x, y)| x < y) {
                for (j, q) in pieces.iter().enumerate() {
                    let days_meet = q.0 == p.days || q.0 == DaySet::All || p.days == DaySet::All;
                    if days_meet && x < q.2 && q.1 < y {
                        let other = &self.periods[pieces[j].5];
                        return Err(ConfigError::new(
                            file,
                            format!("tariff.periods[{i}]"),
                            format!(
                                "{}-{} overlaps period {} ({}-{})",
                                p.start, p.end, pieces[j].5, other.start, other.end
                            ),
                        ));
                    }
                }
                pieces.push((p.days, x, y, p.import_price, exp, i));
            }
        }
        let default = (self.import_price.unwrap_or(0.0), self.export_price);
        let mut segs: Vec<Segment> = Vec::new();
        let first = tz
            .timestamp_opt(start_utc_s, 0)
            .single()
            .map(|t| t.date_naive())
            .unwrap_or_default();
        let days = (end_utc_s - start_utc_s) / 86_400 + 3;
        for d in -1..days {
            let date = first + Duration::days(d);
            let mut today: Vec<_> = pieces
                .iter()
                .filter(|q| q.0.contains(date.weekday()))
                .collect();
            today.sort_by_key(|q| q.1);
            let mut minute = 0;
            for q in today {
                if q.1 > minute {
                    push_local(&mut segs, tz, self.clock, date, minute, default);
                }
                push_local(&mut segs, tz, self.clock, date, q.1, (q.3, q.4));
                minute = q.2;
            }
            if minute < 1440 {
                push_local(&mut segs, tz, self.clock, date, minute, default);
            }
        }
        Ok(PriceSchedule::new(segs))
    }
}

/// Append a segment starting at local `date` + `minute`; in a spring-forward gap the local time does
/// not exist and the segment starts at the first instant after the gap (an hour later).
/// On the standard clock the local time is the zone's standard offset all year.
fn push_local(
    segs: &mut Vec<Segment>,
    tz: Tz,
    clock: TouClock,
    date: NaiveDate,
    minute: u32,
    price: (f64, f64),
) {
    let naive = date.and_time(NaiveTime::MIN) + Duration::minutes(minute as i64);
    if clock == TouClock::Standard {
        use chrono_tz::OffsetComponents;
        let base = tz
            .offset_from_utc_datetime(&naive)
            .base_utc_offset()
            .num_seconds();
        let start = naive.and_utc().timestamp() - base;
        push_segment(segs, start, price);
        return;
    }
    let mut t = tz.from_local_datetime(&naive).earliest();
    let mut shift = 0;
    while t.is_none() && shift < 180 {
        shift += 15;
        t = tz
            .from_local_datetime(&(naive + Duration::minutes(shift)))
            .earliest();
    }
    let Some(t) = t else { return };
    push_segment(segs, t.timestamp(), price);
}

fn push_segment(segs: &mut Vec<Segment>, start: i64, price: (f64, f64)) {
    // Drop a segment that a later one starts at or before (a fall-back repeat or an empty piece).
    while segs.last().is_some_and(|s| s.start_utc_s >= start) {
        segs.pop();
    }
    if segs
        .last()
        .is_some_and(|s| s.import_price == price.0 && s.export_price == price.1)
    {
        return;
    }
    segs.push(Segment {
        start_utc_s: start,
        import_price: price.0,
        export_price: price.1,
    });
}

/// Parse a price series CSV `timestamp,import_price[,export_price]`; each row holds until the next.
pub fn parse_series(
    name: &str,
    bytes: &[u8],
    utc_offset_s: i64,
    default_export: f64,
) -> Result<Vec<Segment>, CsvError> {
    let text = crate::profile::decompress(name, bytes)?;
    let mut rdr = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(text.as_slice());
    let h = rdr
        .headers()
        .map_err(|e| CsvError::new(name, 1, e.to_string()))?
        .clone();
    let (Some(ti), Some(ii)) = (
        h.iter().position(|c| c == "timestamp"),
        h.iter().position(|c| c == "import_price"),
    ) else {
        return Err(CsvError::new(
            name,
            1,
            "missing column: the header must have timestamp,import_price[,export_price]",
        ));
    };
    let ei = h.iter().position(|c| c == "export_price");
    let mut out: Vec<Segment> = Vec::new();
    for (row, rec) in rdr.records().enumerate() {
        let line = row as u64 + 2;
        let rec = rec.map_err(|e| CsvError::new(name, line, e.to_string()))?;
        let ts = crate::profile::parse_local(rec.get(ti).unwrap_or(""))
            .ok_or_else(|| CsvError::new(name, line, "timestamp is not ISO 8601 local time"))?;
        let t = ts.and_utc().timestamp() - utc_offset_s;
        if out.last().is_some_and(|s| s.start_utc_s >= t) {
            return Err(CsvError::new(
                name,
                line,
                format!("timestamp {ts} is not after the previous row (duplicate or unsorted)"),
            ));
        }
        let num = |i: usize| -> Result<f64, CsvError> {
            let s = rec.get(i).unwrap_or("");
            let v: f64 = s
                .parse()
                .map_err(|_| CsvError::new(name, line, format!("price {s:?} is not a number")))?;
            if !v.is_finite() || v.abs() > 100.0 {
                return Err(CsvError::new(
                    name,
                    line,
                    format!("price {v} is not within -100..=100 per kWh"),
                ));
            }
            Ok(v)
        };
        let import_price = num(ii)?;
        let export_price = match ei {
            Some(i) => num(i)?,
            None => default_export,
        };
        out.push(Segment {
            start_utc_s: t,
            import_price,
            export_price,
        });
    }
    if out.is_empty() {
        return Err(CsvError::new(name, 0, "the price series has no rows"));
    }
    Ok(out)
}

impl PriceSchedule {
    pub fn new(segments: Vec<Segment>) -> Self {
        Self {
            segments,
            cursor: 0,
        }
    }

    /// Import and export price at `t` (before the first segment: the first segment's prices).
    /// Amortised O(1) for increasing `t`; a backwards jump restarts the walk.
    #[inline]
    pub fn at(&mut self, t_utc_s: i64) -> (f64, f64) {
        if self.segments[self.cursor].start_utc_s > t_utc_s {
            self.cursor = 0;
        }
        while self.cursor + 1 < self.segments.len()
            && self.segments[self.cursor + 1].start_utc_s <= t_utc_s
        {
            self.cursor += 1;
        }
        let s = self.segments[self.cursor];
        (s.import_price, s.export_price)
    }

    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tou(periods: &[(&str, &str, &str, f64)]) -> TariffConfig {
        TariffConfig {
            kind: TariffKind::Tou,
            currency: "EUR".into(),
            import_price: Some(0.30),
            export_price: 0.08,
            periods: periods
                .iter()
                .map(|(d, s, e, p)| PeriodConfig {
                    days: match *d {
                        "weekday" => DaySet::Weekday,
                        "weekend" => DaySet::Weekend,
                        _ => DaySet::All,
                    },
                    start: s.to_string(),
                    end: e.to_string(),
                    import_price: *p,
                    export_price: None,
                })
                .collect(),
            file: None,
            clock: TouClock::Civil,
        }
    }

    /// Compile `cfg` in `tz` over 2019 and check the import price at each local time (or the error).
    fn check(cfg: &TariffConfig, tz: Tz, expected: Result<&[(&str, f64)], &str>) {
        let (a, b) = (1_546_300_800, 1_577_836_800); // 2019 in UTC
        match (cfg.compile("site.toml", tz, a, b, None), expected) {
            (Ok(mut s), Ok(cases)) => {
                for (local, want) in cases {
                    let naive = crate::profile::parse_local(local).unwrap();
                    let t = tz
                        .from_local_datetime(&naive)
                        .earliest()
                        .unwrap()
                        .timestamp();
                    assert_eq!(s.at(t).0, *want, "{local}");
                }
            }
            (Err(e), Err(frag)) => assert!(e.to_string().contains(frag), "{e} lacks {frag:?}"),
            (got, want) => panic!("got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn tou_prices_in_local_time() {
        let evening = tou(&[
            ("weekday", "17:00", "21:00", 0.50),
            ("all", "23:00", "06:00", 0.15),
        ]);
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        check(
            &evening,
            berlin,
            Ok(&[
                ("2019-03-05T16:59:00", 0.30), // Tuesday, just before the peak
                ("2019-03-05T17:00:00", 0.50),
                ("2019-03-09T18:00:00", 0.30), // Saturday: the weekday peak does not apply
                ("2019-03-09T23:30:00", 0.15), // across midnight
                ("2019-03-10T05:59:00", 0.15),
                ("2019-03-10T06:00:00", 0.30),
                // After the spring-forward change (2019-03-31) the peak stays at 17:00 local.
                ("2019-04-02T17:00:00", 0.50),
                ("2019-04-02T16:59:00", 0.30),
                ("2019-10-29T20:59:00", 0.50), // after fall-back
                ("2019-10-29T21:00:00", 0.30),
            ]),
        );
    }

    /// The same periods on the standard clock: in summer they start an hour later on the wall
    /// clock (issue 19: the tariff must say which clock its hours use).
    #[test]
    fn tou_hours_on_the_standard_clock() {
        let mut evening = tou(&[("weekday", "17:00", "21:00", 0.50)]);
        evening.clock = TouClock::Standard;
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        check(
            &evening,
            berlin,
            Ok(&[
                // Winter: standard time is the wall clock.
                ("2019-03-05T16:59:00", 0.30),
                ("2019-03-05T17:00:00", 0.50),
                // Summer (CEST): 17:00 standard is 18:00 on the wall clock.
                ("2019-07-02T17:30:00", 0.30),
                ("2019-07-02T18:00:00", 0.50),
                ("2019-07-02T21:59:00", 0.50),
                ("2019-07-02T22:00:00", 0.30),
            ]),
        );
        assert!(TouClock::Standard
            .describe(berlin)
            .contains("standard time"));
    }

    #[test]
    fn tou_errors_name_the_key() {
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        check(
            &tou(&[
                ("all", "06:00", "09:00", 0.4),
                ("weekday", "08:00", "10:00", 0.5),
            ]),
            berlin,
            Err("tariff.periods[1]: 08:00-10:00 overlaps period 0 (06:00-09:00)"),
        );
        check(
            &tou(&[
                ("weekday", "06:00", "09:00", 0.4),
                ("weekend", "08:00", "10:00", 0.5),
            ]),
            berlin,
            Ok(&[]),
        );
        check(
            &tou(&[("all", "6h", "09:00", 0.4)]),
            berlin,
            Err("tariff.periods[0].start: \"6h\" is not a time"),
        );
        check(
            &tou(&[("all", "09:00", "09:00", 0.4)]),
            berlin,
            Err("tariff.periods[0].end: a period must not be empty"),
        );
        check(
            &tou(&[
                ("all", "22:00", "02:00", 0.4),
                ("all", "01:00", "03:00", 0.1),
            ]),
            berlin,
            Err("overlaps period 0"),
        );
        check(
            &tou(&[]),
            berlin,
            Err("tariff.periods: a TOU tariff needs at least one period"),
        );
        check(
            &tou(&[("all", "01:00", "03:00", f64::NAN)]),
            berlin,
            Err("tariff.periods[0].import_price"),
        );
    }

    #[test]
    fn flat_and_series() {
        let mut flat = tou(&[]);
        flat.kind = TariffKind::Flat;
        let mut s = flat.compile("s.toml", Tz::UTC, 0, 86_400, None).unwrap();
        assert_eq!(s.at(5_000), (0.30, 0.08));
        flat.import_price = None;
        assert!(flat
            .compile("s.toml", Tz::UTC, 0, 1, None)
            .unwrap_err()
            .to_string()
            .contains("tariff.import_price: a flat tariff needs"));

        let csv = "timestamp,import_price\n2019-01-01T00:00,0.2\n2019-01-01T01:00,0.4\n";
        let mut series = tou(&[]);
        series.kind = TariffKind::Series;
        let mut s = series
            .compile("s.toml", Tz::UTC, 0, 1, Some(("p.csv", csv.as_bytes(), 0)))
            .unwrap();
        assert_eq!(s.at(1_546_300_800 + 3599), (0.2, 0.08));
        assert_eq!(s.at(1_546_300_800 + 3600), (0.4, 0.08));
        let bad = "timestamp,import_price\n2019-01-01T01:00,0.2\n2019-01-01T01:00,0.4\n";
        let e = series
            .compile("s.toml", Tz::UTC, 0, 1, Some(("p.csv", bad.as_bytes(), 0)))
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("p.csv:3: timestamp 2019-01-01 01:00:00 is not after"),
            "{e}"
        );
    }
}
