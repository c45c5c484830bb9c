//! `melv simulate --timeseries FILE.parquet|FILE.csv`: the rows of `melv_sim::timeseries` written
//! to a file, Parquet (snappy) or CSV by the extension. Columns (docs/simulator.md, "Time series"):
//! `time_utc`, `time_local`, `interval_s`, `pv_w`, `load_w`, `grid_w`, `battery_w`, then per unit
//! `uN_power_w`, `uN_soc`, `uN_soc_bms`, `uN_cell_v_min`, `uN_cell_v_max`, `uN_temp_min_c`,
//! `uN_temp_max_c` (N from 1), then `reason` and `alerts`.

use arrow_array::{ArrayRef, Float64Array, RecordBatch, StringArray, TimestampMillisecondArray};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use melv_sim::timeseries::{Row, RowSink};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Arc;

/// Rows per Parquet row group (and per Arrow batch): 64 Ki rows is about 45 days at 60 s steps.
const BATCH_ROWS: usize = 1 << 16;

/// Per-unit columns, in order.
const UNIT_COLUMNS: [&str; 7] = [
    "power_w",
    "soc",
    "soc_bms",
    "cell_v_min",
    "cell_v_max",
    "temp_min_c",
    "temp_max_c",
];

/// The float columns after the two time columns, for `units` units.
fn float_columns(units: usize) -> Vec<String> {
    let mut c: Vec<String> = ["interval_s", "pv_w", "load_w", "grid_w", "battery_w"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    for u in 1..=units {
        c.extend(UNIT_COLUMNS.iter().map(|n| format!("u{u}_{n}")));
    }
    c
}

fn floats(r: &Row) -> impl Iterator<Item = f64> + '_ {
    [r.interval_s, r.pv_w, r.load_w, r.grid_w, r.battery_w]
        .into_iter()
        .chain(r.units.iter().flat_map(|u| {
            [
                u.power_w,
                u.soc,
                u.soc_bms,
                u.cell_v_min,
                u.cell_v_max,
                u.temp_min_c,
                u.temp_max_c,
            ]
        }))
}

/// Local civil time with its offset, e.g. `2019-07-01T14:00:00-04:00` (daylight saving shown).
fn local(t_utc_s: i64, tz: chrono_tz::Tz) -> String {
    chrono::DateTime::from_timestamp(t_utc_s, 0)
        .map(|d| {
            d.with_timezone(&tz)
                .format("%Y-%m-%dT%H:%M:%S%:z")
                .to_string()
        })
        .unwrap_or_default()
}

/// The writer for `path`: Parquet for `.parquet`, CSV for `.csv`; anything else is refused.
pub fn open(path: &Path, units: usize, tz: chrono_tz::Tz) -> Result<Writer, String> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let file = || {
        File::create(path).map_err(|e| format!("{}: cannot create the file: {e}", path.display()))
    };
    let cols = float_columns(units);
    match ext.as_deref() {
        Some("parquet") => {
            let mut fields = vec![
                Field::new(
                    "time_utc",
                    // Milliseconds: Parquet's TIMESTAMP type has no seconds unit (a seconds column
                    // is stored as a bare INT64 that pyarrow reads back as a number).
                    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
                    false,
                ),
                Field::new("time_local", DataType::Utf8, false),
            ];
            fields.extend(cols.iter().map(|c| Field::new(c, DataType::Float64, true)));
            fields.push(Field::new("reason", DataType::Utf8, false));
            fields.push(Field::new("alerts", DataType::Utf8, false));
            let schema = Arc::new(Schema::new(fields));
            let props = WriterProperties::builder()
                .set_compression(Compression::SNAPPY)
                .set_max_row_group_row_count(Some(BATCH_ROWS))
                .build();
            let w = ArrowWriter::try_new(file()?, schema.clone(), Some(props))
                .map_err(|e| format!("{}: {e}", path.display()))?;
            Ok(Writer::Parquet(Box::new(ParquetOut {
                w: Some(w),
                schema,
                tz,
                units,
                time: Vec::new(),
                local: Vec::new(),
                cols: vec![Vec::new(); cols.len()],
                reason: Vec::new(),
                alerts: Vec::new(),
                path: path.display().to_string(),
            })))
        }
        Some("csv") => {
            let mut w = BufWriter::new(file()?);
            let header = format!("time_utc,time_local,{},reason,alerts\n", cols.join(","));
            w.write_all(header.as_bytes())
                .map_err(|e| format!("{}: {e}", path.display()))?;
            Ok(Writer::Csv(CsvOut {
                w,
                tz,
                path: path.display().to_string(),
                line: String::new(),
            }))
        }
        _ => Err(format!(
            "{}: the time series is written as .parquet or .csv (by the file's extension)",
            path.display()
        )),
    }
}

/// A time-series file being written.
pub enum Writer {
    Parquet(Box<ParquetOut>),
    Csv(CsvOut),
}

impl RowSink for Writer {
    fn row(&mut self, r: &Row) -> Result<(), String> {
        match self {
            Writer::Parquet(p) => p.row(r),
            Writer::Csv(c) => c.row(r),
        }
    }
    fn finish(&mut self) -> Result<(), String> {
        match self {
            Writer::Parquet(p) => p.finish(),
            Writer::Csv(c) => c.finish(),
        }
    }
}

pub struct ParquetOut {
    w: Option<ArrowWriter<File>>,
    schema: Arc<Schema>,
    tz: chrono_tz::Tz,
    units: usize,
    time: Vec<i64>,
    local: Vec<String>,
    cols: Vec<Vec<f64>>,
    reason: Vec<&'static str>,
    alerts: Vec<String>,
    path: String,
}

impl ParquetOut {
    fn row(&mut self, r: &Row) -> Result<(), String> {
        if r.units.len() != self.units {
            return Err(format!(
                "{}: a row has {} units, the file {}",
                self.path,
                r.units.len(),
                self.units
            ));
        }
        self.time.push(r.t_utc_s * 1000);
        self.local.push(local(r.t_utc_s, self.tz));
        for (c, v) in self.cols.iter_mut().zip(floats(r)) {
            c.push(v);
        }
        self.reason.push(r.reason);
        self.alerts.push(r.alerts.clone());
        if self.time.len() >= BATCH_ROWS {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), String> {
        if self.time.is_empty() {
            return Ok(());
        }
        let mut arrays: Vec<ArrayRef> = vec![
            Arc::new(
                TimestampMillisecondArray::from(std::mem::take(&mut self.time))
                    .with_timezone("UTC"),
            ),
            Arc::new(StringArray::from(std::mem::take(&mut self.local))),
        ];
        for c in &mut self.cols {
            arrays.push(Arc::new(Float64Array::from(std::mem::take(c))));
        }
        arrays.push(Arc::new(StringArray::from(std::mem::take(
            &mut self.reason,
        ))));
        arrays.push(Arc::new(StringArray::from(std::mem::take(
            &mut self.alerts,
        ))));
        let batch = RecordBatch::try_new(self.schema.clone(), arrays)
            .map_err(|e| format!("{}: {e}", self.path))?;
        self.w
            .as_mut()
            .ok_or_else(|| format!("{}: written after its end", self.path))?
            .write(&batch)
            .map_err(|e| format!("{}: {e}", self.path))
    }

    fn finish(&mut self) -> Result<(), String> {
        self.flush()?;
        if let Some(w) = self.w.take() {
            w.close().map_err(|e| format!("{}: {e}", self.path))?;
        }
        Ok(())
    }
}

pub struct CsvOut {
    w: BufWriter<File>,
    tz: chrono_tz::Tz,
    path: String,
    line: String,
}

impl CsvOut {
    fn row(&mut self, r: &Row) -> Result<(), String> {
        use std::fmt::Write as _;
        self.line.clear();
        let utc = chrono::DateTime::from_timestamp(r.t_utc_s, 0)
            .map(|d| d.format("%Y-%m-%dT%H:%M:%SZ").to_string())
            .unwrap_or_default();
        let _ = write!(self.line, "{utc},{}", local(r.t_utc_s, self.tz));
        for v in floats(r) {
            // NaN (a dark unit's estimate) is an empty field; values at full precision.
            if v.is_finite() {
                let _ = write!(self.line, ",{v}");
            } else {
                self.line.push(',');
            }
        }
        let _ = writeln!(self.line, ",{},{}", r.reason, r.alerts);
        self.w
            .write_all(self.line.as_bytes())
            .map_err(|e| format!("{}: {e}", self.path))
    }

    fn finish(&mut self) -> Result<(), String> {
        self.w.flush().map_err(|e| format!("{}: {e}", self.path))
    }
}
