//! Load and PV profiles: a CSV `timestamp,load_kw,pv_kw` (+ optional `ambient_c`, `grid_v`, `grid_hz`),
//! plain or gzip, on a regular time grid.
//!
//! Conventions (data/README.md): the timestamp is ISO 8601 without offset, in the site's local
//! *standard* time (a fixed UTC offset given in the site TOML, no daylight saving), and marks the start
//! of the interval; powers are the mean over the interval, kW, never negative.
//!
//! The runner asks for the mean power over any interval `[t0, t1)`, whatever the simulation step: a
//! 60 s step on an hourly file holds each hour's mean, a 1 h step on a 1-minute file averages sixty
//! rows. Both come from one formula on the cumulative energy, so the energy of the profile is kept
//! exactly at any step (the PySAM comparison depends on it).

use crate::error::CsvError;
use chrono::NaiveDateTime;
use std::io::Read;

/// A parsed, validated profile.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    /// Unix seconds (UTC) of the first interval's start.
    pub start_utc_s: i64,
    /// Interval length, s (> 0, the same for every row).
    pub step_s: i64,
    /// Mean load per interval, W (>= 0).
    pub load_w: Vec<f64>,
    /// Mean PV AC output per interval, W (>= 0).
    pub pv_w: Vec<f64>,
    /// Ambient temperature at the battery, degC, when the file has the column.
    pub ambient_c: Option<Vec<f64>>,
    /// Grid phase voltage, V, when the file has the column.
    pub grid_v: Option<Vec<f64>>,
    /// Grid frequency, Hz, when the file has the column.
    pub grid_hz: Option<Vec<f64>>,
    /// Cumulative energies at each row start, W*s, `len() + 1` entries (for interval means).
    cum_load: Vec<f64>,
    cum_pv: Vec<f64>,
}

/// True when the bytes start with the gzip magic number (RFC 1952 2.3.1: 0x1f 0x8b).
fn is_gzip(bytes: &[u8]) -> bool {
    bytes.len() >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b
}

/// Largest profile or price series, bytes, on disk and decompressed: a year of 1-minute rows with
/// every column takes about 40 MB, a year at 10 s about 250 MB. Beyond it a file (or a gzip bomb) is
/// refused before memory grows (issue 13 item 7).
pub const MAX_PROFILE_BYTES: u64 = 256 << 20;

/// Bytes of a possibly gzip-compressed file, decompressed (at most [`MAX_PROFILE_BYTES`]).
pub fn decompress(name: &str, bytes: &[u8]) -> Result<Vec<u8>, CsvError> {
    if !is_gzip(bytes) {
        return Ok(bytes.to_vec());
    }
    let mut out = Vec::with_capacity(
        bytes
            .len()
            .saturating_mul(4)
            .min(MAX_PROFILE_BYTES as usize),
    );
    flate2::read::GzDecoder::new(bytes)
        .take(MAX_PROFILE_BYTES + 1)
        .read_to_end(&mut out)
        .map_err(|e| CsvError::new(name, 0, format!("not a valid gzip file: {e}")))?;
    if out.len() as u64 > MAX_PROFILE_BYTES {
        return Err(CsvError::new(
            name,
            0,
            format!("decompresses to more than {MAX_PROFILE_BYTES} bytes"),
        ));
    }
    Ok(out)
}

/// Parse a naive local timestamp (`2019-01-01T00:00:00`, also with a space or without seconds).
pub fn parse_local(s: &str) -> Option<NaiveDateTime> {
    let s = s.trim();
    if let Some(t) = parse_fixed(s.as_bytes()) {
        return Some(t);
    }
    for fmt in [
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, fmt) {
            return Some(t);
        }
    }
    None
}

/// Fast path for the common `YYYY-MM-DDTHH:MM:SS` (a 1-minute year has 525,600 of them; chrono's
/// format parser takes most of the load time otherwise).
fn parse_fixed(b: &[u8]) -> Option<NaiveDateTime> {
    if b.len() != 19
        || b[4] != b'-'
        || b[7] != b'-'
        || !(b[10] == b'T' || b[10] == b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        b[r].iter().try_fold(0u32, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
        })
    };
    chrono::NaiveDate::from_ymd_opt(num(0..4)? as i32, num(5..7)?, num(8..10)?)?.and_hms_opt(
        num(11..13)?,
        num(14..16)?,
        num(17..19)?,
    )
}

/// Columns a profile may have; the first three are required.
const REQUIRED: [&str; 3] = ["timestamp", "load_kw", "pv_kw"];
const OPTIONAL: [&str; 3] = ["ambient_c", "grid_v", "grid_hz"];

/// Where a file's columns are: the required ones (timestamp, load, PV) and the optional ones.
struct Columns {
    required: [usize; 3],
    optional: [Option<usize>; 3],
}

impl Columns {
    /// The columns of a header; an error for a missing required or an unknown column.
    fn of(name: &str, headers: &csv::StringRecord) -> Result<Self, CsvError> {
        let col = |c: &str| headers.iter().position(|h| h == c);
        let mut required = [0usize; 3];
        for (i, c) in REQUIRED.iter().enumerate() {
            required[i] = col(c).ok_or_else(|| {
                CsvError::new(
                    name,
                    1,
                    format!(
                        "missing column {c:?} (header has {:?}; expected timestamp,load_kw,pv_kw)",
                        headers.iter().collect::<Vec<_>>()
                    ),
                )
            })?;
        }
        for h in headers.iter() {
            if !REQUIRED.contains(&h) && !OPTIONAL.contains(&h) {
                return Err(CsvError::new(
                    name,
                    1,
                    format!("unknown column {h:?} (allowed: timestamp, load_kw, pv_kw, ambient_c, grid_v, grid_hz)"),
                ));
            }
        }
        Ok(Self {
            required,
            optional: OPTIONAL.map(col),
        })
    }
}

/// The number in field `s` (column `what`) of row `line`, finite and within `min..=max`.
fn number(name: &str, line: u64, s: &str, what: &str, min: f64, max: f64) -> Result<f64, CsvError> {
    let v: f64 = s
        .parse()
        .map_err(|_| CsvError::new(name, line, format!("{what} {s:?} is not a number")))?;
    if !v.is_finite() {
        return Err(CsvError::new(
            name,
            line,
            format!("{what} is {v} (NaN or infinite)"),
        ));
    }
    if v < min || v > max {
        return Err(CsvError::new(
            name,
            line,
            format!("{what} = {v} is outside {min}..={max}"),
        ));
    }
    Ok(v)
}

impl Profile {
    /// Parse a profile from the bytes of a file (plain or gzip). `name` is used in error messages;
    /// `utc_offset_s` is the fixed offset of the file's local standard time (UTC-5 is -18000).
    pub fn parse(name: &str, bytes: &[u8], utc_offset_s: i64) -> Result<Self, CsvError> {
        let text = decompress(name, bytes)?;
        let mut rdr = csv::ReaderBuilder::new()
            .has_headers(true)
            .trim(csv::Trim::All)
            .from_reader(text.as_slice());
        let headers = rdr
            .headers()
            .map_err(|e| CsvError::new(name, 1, format!("cannot read the header: {e}")))?
            .clone();
        let cols = Columns::of(name, &headers)?;
        let mut p = Profile {
            start_utc_s: 0,
            step_s: 0,
            load_w: Vec::new(),
            pv_w: Vec::new(),
            ambient_c: cols.optional[0].map(|_| Vec::new()),
            grid_v: cols.optional[1].map(|_| Vec::new()),
            grid_hz: cols.optional[2].map(|_| Vec::new()),
            cum_load: Vec::new(),
            cum_pv: Vec::new(),
        };
        let mut prev: Option<i64> = None;
        for (row, rec) in rdr.records().enumerate() {
            let line = row as u64 + 2;
            let rec = rec.map_err(|e| CsvError::new(name, line, format!("bad CSV record: {e}")))?;
            let field = |i: usize| rec.get(i).unwrap_or("");
            let ts = parse_local(field(cols.required[0])).ok_or_else(|| {
                CsvError::new(
                    name,
                    line,
                    format!(
                        "timestamp {:?} is not ISO 8601 local time like 2019-01-01T00:00:00",
                        field(cols.required[0])
                    ),
                )
            })?;
            let t = ts.and_utc().timestamp() - utc_offset_s;
            match prev {
                None => p.start_utc_s = t,
                Some(pt) => p.check_step(name, line, ts, t - pt)?,
            }
            prev = Some(t);
            p.push_values(name, line, &rec, &cols)?;
        }
        if p.load_w.len() < 2 {
            return Err(CsvError::new(
                name,
                0,
                "a profile needs at least two rows to know its step",
            ));
        }
        p.cum_load = cumulative(&p.load_w, p.step_s);
        p.cum_pv = cumulative(&p.pv_w, p.step_s);
        Ok(p)
    }

    /// Checks that row `line` at `ts` comes `d` seconds after the previous one, on the file's step
    /// (the first difference sets it).
    fn check_step(
        &mut self,
        name: &str,
        line: u64,
        ts: NaiveDateTime,
        d: i64,
    ) -> Result<(), CsvError> {
        if d == 0 {
            return Err(CsvError::new(
                name,
                line,
                format!("duplicate timestamp {ts}"),
            ));
        }
        if d < 0 {
            return Err(CsvError::new(
                name,
                line,
                format!("timestamp {ts} is earlier than the previous row (rows must be sorted)"),
            ));
        }
        if self.step_s == 0 {
            self.step_s = d;
        } else if d != self.step_s {
            return Err(CsvError::new(
                name,
                line,
                format!(
                    "gap or irregular step: {d} s after the previous row, the file's step is {} s",
                    self.step_s
                ),
            ));
        }
        Ok(())
    }

    /// Appends the values of one record, each checked against its bounds.
    fn push_values(
        &mut self,
        name: &str,
        line: u64,
        rec: &csv::StringRecord,
        cols: &Columns,
    ) -> Result<(), CsvError> {
        let num = |i: usize, what: &str, min: f64, max: f64| {
            number(name, line, rec.get(i).unwrap_or(""), what, min, max)
        };
        let (idx, opt_idx) = (&cols.required, &cols.optional);
        // Bounds: powers never negative (ARCHITECTURE.md 3); 1 MW is far beyond any home and catches
        // W-vs-kW mistakes. Ambient -50..70 degC spans every inhabited climate; grid voltage and
        // frequency only reject nonsense, the firmware judges what is out of range.
        self.load_w
            .push(num(idx[1], "load_kw", 0.0, 1000.0)? * 1000.0);
        self.pv_w.push(num(idx[2], "pv_kw", 0.0, 1000.0)? * 1000.0);
        if let (Some(i), Some(v)) = (opt_idx[0], self.ambient_c.as_mut()) {
            v.push(num(i, "ambient_c", -50.0, 70.0)?);
        }
        if let (Some(i), Some(v)) = (opt_idx[1], self.grid_v.as_mut()) {
            v.push(num(i, "grid_v", 0.0, 400.0)?);
        }
        if let (Some(i), Some(v)) = (opt_idx[2], self.grid_hz.as_mut()) {
            v.push(num(i, "grid_hz", 0.0, 70.0)?);
        }
        Ok(())
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.load_w.len()
    }

    pub fn is_empty(&self) -> bool {
        self.load_w.is_empty()
    }

    /// Unix seconds (UTC) just after the last interval.
    pub fn end_utc_s(&self) -> i64 {
        self.start_utc_s + self.step_s * self.len() as i64
    }

    /// Row holding the instant `t` (clamped to the file).
    #[inline]
    pub fn row(&self, t_utc_s: f64) -> usize {
        let k = ((t_utc_s - self.start_utc_s as f64) / self.step_s as f64).floor();
        (k.max(0.0) as usize).min(self.len() - 1)
    }

    /// Mean load and PV power over `[t0, t1)`, W. The interval must lie inside the file.
    #[inline]
    pub fn mean_w(&self, t0_utc_s: f64, t1_utc_s: f64) -> (f64, f64) {
        let (k0, k1) = (self.row(t0_utc_s), self.row(t1_utc_s - 1e-6));
        if k0 == k1 {
            return (self.load_w[k0], self.pv_w[k0]);
        }
        let dt = t1_utc_s - t0_utc_s;
        let load = (self.energy(&self.cum_load, &self.load_w, t1_utc_s)
            - self.energy(&self.cum_load, &self.load_w, t0_utc_s))
            / dt;
        let pv = (self.energy(&self.cum_pv, &self.pv_w, t1_utc_s)
            - self.energy(&self.cum_pv, &self.pv_w, t0_utc_s))
            / dt;
        (load, pv)
    }

    /// Energy from the file's start to `t`, W*s.
    fn energy(&self, cum: &[f64], p: &[f64], t: f64) -> f64 {
        let x = t - self.start_utc_s as f64;
        let k = ((x / self.step_s as f64).floor().max(0.0) as usize).min(self.len());
        if k == self.len() {
            return cum[k];
        }
        cum[k] + p[k] * (x - (k as i64 * self.step_s) as f64)
    }
}

impl Profile {
    /// The same profile with every load row times `load` and every PV row times `pv` (a fleet's
    /// bigger or smaller house and PV array on the same weather and habits). Both factors must be
    /// finite and >= 0; the caller checks them (a negative power is no profile).
    pub fn scaled(&self, load: f64, pv: f64) -> Profile {
        let mut p = self.clone();
        p.load_w.iter_mut().for_each(|v| *v *= load);
        p.pv_w.iter_mut().for_each(|v| *v *= pv);
        p.cum_load = cumulative(&p.load_w, p.step_s);
        p.cum_pv = cumulative(&p.pv_w, p.step_s);
        p
    }
}

fn cumulative(p: &[f64], step_s: i64) -> Vec<f64> {
    let mut out = Vec::with_capacity(p.len() + 1);
    let mut acc = 0.0;
    out.push(0.0);
    for v in p {
        acc += v * step_s as f64;
        out.push(acc);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gzip_bomb_is_refused_at_the_bound() {
        use std::io::Write;
        // 256 MiB + 1 of zeros compress to about 250 KB.
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let chunk = vec![b'0'; 1 << 20];
        for _ in 0..256 {
            gz.write_all(&chunk).unwrap();
        }
        gz.write_all(b"0").unwrap();
        let bomb = gz.finish().unwrap();
        let e = decompress("bomb.csv.gz", &bomb).unwrap_err().to_string();
        assert_eq!(
            e,
            format!("bomb.csv.gz:0: decompresses to more than {MAX_PROFILE_BYTES} bytes")
        );
    }

    /// Parse `text` as a UTC profile and compare the outcome with `expected` (Ok: rows and step;
    /// Err: a fragment of the message).
    fn check(text: &str, expected: Result<(usize, i64), &str>) {
        match (Profile::parse("p.csv", text.as_bytes(), 0), expected) {
            (Ok(p), Ok((rows, step))) => assert_eq!((p.len(), p.step_s), (rows, step), "{text}"),
            (Err(e), Err(frag)) => {
                assert!(
                    e.to_string().contains(frag),
                    "{e} does not contain {frag:?}"
                )
            }
            (got, want) => panic!("{text}: got {got:?}, want {want:?}"),
        }
    }

    const H: &str = "timestamp,load_kw,pv_kw\n";

    #[test]
    fn validation_cases() {
        check(
            &format!("{H}2019-01-01T00:00:00,1,0\n2019-01-01T01:00:00,1,2\n"),
            Ok((2, 3600)),
        );
        check(
            "timestamp,load_kw,pv_kw,ambient_c\n2019-01-01 00:00,1,0,5\n2019-01-01 00:01,1,0,5\n",
            Ok((2, 60)),
        );
        check(
            "timestamp,load_kw\n2019-01-01T00:00:00,1\n",
            Err("p.csv:1: missing column \"pv_kw\""),
        );
        check(
            "timestamp,load_kw,pv_kw,wind\n",
            Err("p.csv:1: unknown column \"wind\""),
        );
        check(
            &format!("{H}2019-01-01T00:00:00,1,0\n2019-01-01T00:00:00,1,0\n"),
            Err("p.csv:3: duplicate timestamp"),
        );
        check(
            &format!("{H}2019-01-01T01:00:00,1,0\n2019-01-01T00:00:00,1,0\n"),
            Err("p.csv:3: timestamp 2019-01-01 00:00:00 is earlier"),
        );
        check(
            &format!(
                "{H}2019-01-01T00:00:00,1,0\n2019-01-01T01:00:00,1,0\n2019-01-01T03:00:00,1,0\n"
            ),
            Err("p.csv:4: gap or irregular step: 7200 s"),
        );
        check(
            &format!("{H}2019-01-01T00:00:00,NaN,0\n"),
            Err("p.csv:2: load_kw is NaN"),
        );
        check(
            &format!("{H}2019-01-01T00:00:00,1,-0.1\n"),
            Err("p.csv:2: pv_kw = -0.1 is outside"),
        );
        check(
            &format!("{H}2019-01-01T00:00:00,abc,0\n"),
            Err("p.csv:2: load_kw \"abc\" is not a number"),
        );
        check(
            &format!("{H}01/01/2019 00:00,1,0\n"),
            Err("p.csv:2: timestamp \"01/01/2019 00:00\" is not ISO"),
        );
        check(
            &format!("{H}2019-01-01T00:00:00,1,0\n"),
            Err("at least two rows"),
        );
    }

    #[test]
    fn offset_and_interval_means() {
        let text = format!("{H}2019-01-01T00:00:00,1,0\n2019-01-01T01:00:00,3,2\n");
        let p = Profile::parse("p.csv", text.as_bytes(), -5 * 3600).unwrap();
        // 00:00 at UTC-5 is 05:00 UTC.
        assert_eq!(p.start_utc_s, 1_546_318_800);
        let t = p.start_utc_s as f64;
        let cases = [
            ((0.0, 60.0), (1000.0, 0.0)), // inside the first hour: that hour's mean
            ((3600.0, 3660.0), (3000.0, 2000.0)), // inside the second
            ((0.0, 7200.0), (2000.0, 1000.0)), // both hours: energy-weighted mean
            ((1800.0, 5400.0), (2000.0, 1000.0)), // straddling the boundary
            ((2700.0, 3700.0), (1200.0, 200.0)), // 900 s at 1 kW + 100 s at 3 kW
        ];
        for ((a, b), want) in cases {
            let got = p.mean_w(t + a, t + b);
            assert!(
                (got.0 - want.0).abs() < 1e-9 && (got.1 - want.1).abs() < 1e-9,
                "{a}..{b}: {got:?}"
            );
        }
    }

    #[test]
    fn gzip_is_detected() {
        use flate2::write::GzEncoder;
        use std::io::Write;
        let text = format!("{H}2019-01-01T00:00:00,1,0\n2019-01-01T00:15:00,1,0\n");
        let mut enc = GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(text.as_bytes()).unwrap();
        let p = Profile::parse("p.csv.gz", &enc.finish().unwrap(), 0).unwrap();
        assert_eq!(p.step_s, 900);
        check_err_gz();
    }

    fn check_err_gz() {
        let bad = [0x1f, 0x8b, 1, 2, 3];
        let e = Profile::parse("x.gz", &bad, 0).unwrap_err();
        assert!(e.to_string().contains("not a valid gzip"), "{e}");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        /// Any simulation step keeps the profile's energy: the step means times the step add up to
        /// the file's energy over the same span.
        #[test]
        fn any_step_keeps_energy(
            rows in proptest::collection::vec(0.0f64..5.0, 2..60),
            file_step in proptest::sample::select(vec![60i64, 900, 3600]),
            sim_step in 1u32..4000,
        ) {
            let mut text = String::from(H);
            for (i, v) in rows.iter().enumerate() {
                let t = chrono::DateTime::from_timestamp(1_546_300_800 + i as i64 * file_step, 0).unwrap().naive_utc();
                text.push_str(&format!("{},{v},{}\n", t.format("%Y-%m-%dT%H:%M:%S"), v / 2.0));
            }
            let p = Profile::parse("p.csv", text.as_bytes(), 0).unwrap();
            let span = p.end_utc_s() - p.start_utc_s;
            let dt = sim_step as f64;
            let n = (span as f64 / dt).floor() as usize;
            let t0 = p.start_utc_s as f64;
            let got: f64 = (0..n).map(|k| p.mean_w(t0 + k as f64 * dt, t0 + (k + 1) as f64 * dt).0 * dt).sum();
            let want = p.energy(&p.cum_load, &p.load_w, t0 + n as f64 * dt);
            proptest::prop_assert!((got - want).abs() <= 1e-6 * want.max(1.0), "{} vs {}", got, want);
        }
    }
}
