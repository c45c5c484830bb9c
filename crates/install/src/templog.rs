//! Reading a storage temperature log: CSV `date,temp_c`, one reading per date, dates increasing.
//!
//! The text is passed in (the CLI reads the file; the web app receives an upload), so this module does
//! no IO. A first line `date,temp_c` is taken as a header; blank lines and lines starting with `#` are
//! skipped. Every error names the 1-based line of the file and the reason. Dates are ISO 8601
//! (`2026-01-31`); temperatures are °C with a decimal point.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// One reading of the log. The temperature holds from this date until the next reading's date.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Reading {
    /// 1-based line in the file, when the reading came from a file.
    #[serde(default)]
    pub line: Option<u64>,
    pub date: NaiveDate,
    pub temp_c: f64,
}

/// Why a log cannot be read.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum LogError {
    #[error("line {line}: {reason}")]
    Line { line: u64, reason: String },
    #[error("the temperature log has no readings")]
    Empty,
}

fn at(line: u64, reason: impl Into<String>) -> LogError {
    LogError::Line {
        line,
        reason: reason.into(),
    }
}

/// Parse the CSV text of a temperature log.
pub fn parse_log(text: &str) -> Result<Vec<Reading>, LogError> {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .comment(Some(b'#'))
        .from_reader(text.as_bytes());
    let mut readings: Vec<Reading> = Vec::new();
    for (i, rec) in rdr.records().enumerate() {
        let rec = rec.map_err(|e| {
            let line = e.position().map_or(0, |p| p.line());
            at(line, format!("not valid CSV: {e}"))
        })?;
        let line = rec.position().map_or(i as u64 + 1, |p| p.line());
        if rec.iter().all(str::is_empty) {
            continue;
        }
        if readings.is_empty()
            && i == 0
            && rec.get(0).is_some_and(|f| f.eq_ignore_ascii_case("date"))
        {
            continue;
        }
        if rec.len() != 2 {
            return Err(at(
                line,
                format!("expected 2 fields `date,temp_c`, found {}", rec.len()),
            ));
        }
        let date = NaiveDate::parse_from_str(&rec[0], "%Y-%m-%d")
            .map_err(|e| at(line, format!("date {:?} is not YYYY-MM-DD ({e})", &rec[0])))?;
        let temp_c: f64 = rec[1]
            .parse()
            .ok()
            .filter(|t: &f64| t.is_finite())
            .ok_or_else(|| {
                at(
                    line,
                    format!("temperature {:?} is not a number of °C", &rec[1]),
                )
            })?;
        if let Some(prev) = readings.last() {
            if date <= prev.date {
                return Err(at(
                    line,
                    format!(
                        "date {date} is not after {} (line {}): readings must be sorted, one per date",
                        prev.date,
                        prev.line.unwrap_or(0)
                    ),
                ));
            }
        }
        readings.push(Reading {
            line: Some(line),
            date,
            temp_c,
        });
    }
    if readings.is_empty() {
        return Err(LogError::Empty);
    }
    Ok(readings)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ok: (count, first date, last temperature); Err: the message.
    fn check(text: &str, expected: Result<(usize, &str, f64), &str>) {
        match (parse_log(text), expected) {
            (Ok(r), Ok((n, first, last_t))) => {
                assert_eq!(r.len(), n, "{text:?}");
                assert_eq!(r[0].date.to_string(), first);
                assert_eq!(r[n - 1].temp_c, last_t);
            }
            (Err(e), Err(want)) => assert_eq!(e.to_string(), want, "{text:?}"),
            (got, want) => panic!("{text:?}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn good_logs() {
        check("2026-01-01,20\n", Ok((1, "2026-01-01", 20.0)));
        check(
            "date,temp_c\n2026-01-01,20\n2026-02-01,30.5\n",
            Ok((2, "2026-01-01", 30.5)),
        );
        check(
            "# warehouse A\n\n2026-01-01 , -5\n2026-01-09,12\n",
            Ok((2, "2026-01-01", 12.0)),
        );
        check(
            "DATE,TEMP_C\r\n2026-01-01,20\r\n",
            Ok((1, "2026-01-01", 20.0)),
        );
    }

    #[test]
    fn bad_logs_name_the_line() {
        check("", Err("the temperature log has no readings"));
        check("date,temp_c\n", Err("the temperature log has no readings"));
        check(
            "2026-01-01,20\n2026-13-01,20\n",
            Err("line 2: date \"2026-13-01\" is not YYYY-MM-DD (input is out of range)"),
        );
        check(
            "2026-01-01,20\n2026-01-02,warm\n",
            Err("line 2: temperature \"warm\" is not a number of °C"),
        );
        check(
            "2026-01-01,NaN\n",
            Err("line 1: temperature \"NaN\" is not a number of °C"),
        );
        check(
            "2026-01-01,20,x\n",
            Err("line 1: expected 2 fields `date,temp_c`, found 3"),
        );
        check(
            "2026-01-01\n",
            Err("line 1: expected 2 fields `date,temp_c`, found 1"),
        );
        check(
            "date,temp_c\n2026-02-01,20\n2026-01-01,20\n",
            Err("line 3: date 2026-01-01 is not after 2026-02-01 (line 2): readings must be sorted, one per date"),
        );
        check(
            "2026-02-01,20\n2026-02-01,21\n",
            Err("line 2: date 2026-02-01 is not after 2026-02-01 (line 1): readings must be sorted, one per date"),
        );
        check(
            "01/02/2026,20\n",
            Err(
                "line 1: date \"01/02/2026\" is not YYYY-MM-DD (input contains invalid characters)",
            ),
        );
    }
}
