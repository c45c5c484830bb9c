//! Per-site KPIs as CSV and as Parquet. Both take the rows sorted by site and write them to any
//! `Write`; the files are the caller's (`crate::cli`). Parquet is written in row groups of
//! [`ROW_GROUP`] rows so that the writer's own buffers stay small whatever the fleet's size.

use crate::run::SiteRow;
use arrow_array::{ArrayRef, Float64Array, RecordBatch, StringArray, UInt32Array, UInt64Array};
use arrow_schema::{DataType, Field, Schema};
use std::io::Write;
use std::sync::Arc;

/// An output that could not be written.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("CSV: {0}")]
    Csv(#[from] csv::Error),
    #[error("Parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("Arrow: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
}

/// Writes the rows as CSV with a header (the [`SiteRow`] field names).
pub fn write_csv<W: Write>(rows: &[SiteRow], out: W) -> Result<(), OutputError> {
    let mut w = csv::Writer::from_writer(out);
    for r in rows {
        w.serialize(r)?;
    }
    w.flush().map_err(csv::Error::from)?;
    Ok(())
}

/// Rows per Parquet row group.
pub const ROW_GROUP: usize = 8192;

/// A column: name and how to read it from a row.
enum Col {
    U64(&'static str, fn(&SiteRow) -> u64),
    U32(&'static str, fn(&SiteRow) -> u32),
    F64(&'static str, fn(&SiteRow) -> f64),
    Str(&'static str, fn(&SiteRow) -> &str),
}

/// The Parquet columns, in the CSV's order (a test checks the names against the CSV header).
const COLUMNS: &[Col] = &[
    Col::U64("site", |r| r.site),
    Col::U64("seed", |r| r.seed),
    Col::Str("template", |r| &r.template),
    Col::U32("batteries", |r| r.batteries),
    Col::U32("phases", |r| u32::from(r.phases)),
    Col::Str("country", |r| &r.country),
    Col::Str("mode", |r| &r.mode),
    Col::Str("tariff", |r| &r.tariff),
    Col::F64("load_scale", |r| r.load_scale),
    Col::F64("pv_scale", |r| r.pv_scale),
    Col::F64("initial_soh", |r| r.initial_soh),
    Col::F64("step_s", |r| r.step_s),
    Col::F64("site_years", |r| r.site_years),
    Col::F64("pv_kwh", |r| r.pv_kwh),
    Col::F64("load_kwh", |r| r.load_kwh),
    Col::F64("grid_import_kwh", |r| r.grid_import_kwh),
    Col::F64("grid_export_kwh", |r| r.grid_export_kwh),
    Col::F64("battery_charge_kwh", |r| r.battery_charge_kwh),
    Col::F64("battery_discharge_kwh", |r| r.battery_discharge_kwh),
    Col::F64("self_consumption_ratio", |r| r.self_consumption_ratio),
    Col::F64("self_sufficiency_ratio", |r| r.self_sufficiency_ratio),
    Col::F64("self_sufficiency_without_battery", |r| {
        r.self_sufficiency_without_battery
    }),
    Col::F64("equivalent_full_cycles", |r| r.equivalent_full_cycles),
    Col::F64("soh_end", |r| r.soh_end),
    Col::Str("currency", |r| &r.currency),
    Col::F64("cost_without_battery", |r| r.cost_without_battery),
    Col::F64("cost_with_battery", |r| r.cost_with_battery),
    Col::F64("savings", |r| r.savings),
    Col::U64("alerts", |r| r.alerts),
    Col::Str("alert_codes", |r| &r.alert_codes),
    Col::F64("islanded_hours", |r| r.islanded_hours),
    Col::F64("load_unserved_kwh", |r| r.load_unserved_kwh),
    Col::F64("energy_balance_error_kwh", |r| r.energy_balance_error_kwh),
];

fn schema() -> Arc<Schema> {
    let fields: Vec<Field> = COLUMNS
        .iter()
        .map(|c| match c {
            Col::U64(n, _) => Field::new(*n, DataType::UInt64, false),
            Col::U32(n, _) => Field::new(*n, DataType::UInt32, false),
            Col::F64(n, _) => Field::new(*n, DataType::Float64, false),
            Col::Str(n, _) => Field::new(*n, DataType::Utf8, false),
        })
        .collect();
    Arc::new(Schema::new(fields))
}

fn batch(schema: &Arc<Schema>, rows: &[SiteRow]) -> Result<RecordBatch, OutputError> {
    let arrays: Vec<ArrayRef> = COLUMNS
        .iter()
        .map(|c| -> ArrayRef {
            match c {
                Col::U64(_, f) => Arc::new(UInt64Array::from_iter_values(rows.iter().map(f))),
                Col::U32(_, f) => Arc::new(UInt32Array::from_iter_values(rows.iter().map(f))),
                Col::F64(_, f) => Arc::new(Float64Array::from_iter_values(rows.iter().map(f))),
                Col::Str(_, f) => Arc::new(StringArray::from_iter_values(rows.iter().map(f))),
            }
        })
        .collect();
    Ok(RecordBatch::try_new(schema.clone(), arrays)?)
}

/// Writes the rows as one Parquet file (Snappy-compressed columns, row groups of [`ROW_GROUP`]).
pub fn write_parquet<W: Write + Send>(rows: &[SiteRow], out: W) -> Result<(), OutputError> {
    let schema = schema();
    let props = parquet::file::properties::WriterProperties::builder()
        .set_compression(parquet::basic::Compression::SNAPPY)
        .set_max_row_group_row_count(Some(ROW_GROUP))
        .build();
    let mut w = parquet::arrow::ArrowWriter::try_new(out, schema.clone(), Some(props))?;
    for part in rows.chunks(ROW_GROUP) {
        w.write(&batch(&schema, part)?)?;
    }
    w.close()?;
    Ok(())
}

/// The column names, in order.
pub fn column_names() -> Vec<&'static str> {
    COLUMNS
        .iter()
        .map(|c| match c {
            Col::U64(n, _) | Col::U32(n, _) | Col::F64(n, _) | Col::Str(n, _) => *n,
        })
        .collect()
}
