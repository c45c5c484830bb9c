//! `melv simulate --timeseries`: the Parquet file reads back with the documented columns, and holds
//! the same values as the CSV of the same run; the JSON over years; bad options refused.

mod common;
use common::{melv, refused};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use std::path::PathBuf;

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("melv-ts-test-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

const UNIT: [&str; 7] = [
    "power_w",
    "soc",
    "soc_bms",
    "cell_v_min",
    "cell_v_max",
    "temp_min_c",
    "temp_max_c",
];

fn documented_columns(units: usize) -> Vec<String> {
    let mut c: Vec<String> = [
        "time_utc",
        "time_local",
        "interval_s",
        "pv_w",
        "load_w",
        "grid_w",
        "battery_w",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for u in 1..=units {
        c.extend(UNIT.iter().map(|n| format!("u{u}_{n}")));
    }
    c.push("reason".into());
    c.push("alerts".into());
    c
}

#[test]
fn parquet_and_csv_hold_the_same_documented_rows() {
    let (pq, csv, js) = (tmp("two.parquet"), tmp("two.csv"), tmp("two.json"));
    for (file, json) in [(&pq, Some(&js)), (&csv, None)] {
        let mut args = vec![
            "simulate".to_string(),
            "--example".into(),
            "tou-two-batteries".into(),
            "--days".into(),
            "3".into(),
            "--step".into(),
            "300s".into(),
            "--timeseries".into(),
            file.display().to_string(),
            "--timeseries-step".into(),
            "1h".into(),
        ];
        if let Some(j) = json {
            args.extend(["--json".into(), j.display().to_string()]);
        }
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = melv(&a);
        assert_eq!(o.code, 0, "{}", o.stderr);
    }
    let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&pq).unwrap())
        .unwrap()
        .build()
        .unwrap();
    let batches: Vec<_> = reader.map(|b| b.unwrap()).collect();
    let schema = batches[0].schema();
    let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    assert_eq!(names, documented_columns(2));
    assert_eq!(
        schema.field(0).data_type(),
        &arrow_schema::DataType::Timestamp(arrow_schema::TimeUnit::Millisecond, Some("UTC".into()))
    );
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows, 72);
    let text = std::fs::read_to_string(&csv).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next().unwrap(), documented_columns(2).join(","));
    let csv_rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(csv_rows.len(), 72);
    // Values agree column by column (the CSV prints full precision).
    let b = &batches[0];
    for (c, name) in names.iter().enumerate().skip(2).take(names.len() - 4) {
        let col = b
            .column(c)
            .as_any()
            .downcast_ref::<arrow_array::Float64Array>()
            .unwrap();
        for (r, row) in csv_rows.iter().enumerate().take(b.num_rows()) {
            let v: f64 = row[c].parse().unwrap();
            assert_eq!(col.value(r), v, "{name} row {r}");
        }
    }
    // The hourly means keep the energy: the PV column sums to the JSON's PV energy.
    let pv = b
        .column(3)
        .as_any()
        .downcast_ref::<arrow_array::Float64Array>()
        .unwrap();
    let pv_kwh: f64 = pv.iter().map(|v| v.unwrap() / 1000.0).sum();
    let k: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&js).unwrap()).unwrap();
    let want = k["pv_kwh"].as_f64().unwrap();
    assert!((pv_kwh - want).abs() < 1e-6 * want, "{pv_kwh} vs {want}");
    // Local time is the site's civil time with its offset; reasons are the gateway's names.
    assert!(csv_rows[0][1].len() == 25 && csv_rows[0][0].ends_with('Z'));
    assert!(csv_rows
        .iter()
        .any(|r| r[names.len() - 2] == "tou_charge_period"));
    let _ = std::fs::remove_dir_all(pq.parent().unwrap());
}

#[test]
fn years_in_the_json_and_bad_options_refused() {
    let o = melv(&[
        "simulate",
        "--example",
        "self-consumption",
        "--years",
        "2",
        "--step",
        "1h",
        "--json",
        "-",
    ]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let k: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    let years = k["years"].as_array().unwrap();
    assert_eq!(years.len(), 2);
    assert!(years[1]["soh_end"].as_f64().unwrap() < years[0]["soh_end"].as_f64().unwrap());
    assert!(k["economics"]["npv"].is_number() && k["economics"]["lcos"].is_number());
    assert!(k["economics"]["defaults_used"].as_bool().unwrap());
    assert!(k["soc_error"]["rms"].as_f64().unwrap() > 0.0);
    refused(
        &["simulate", "--example", "backup-outages", "--years", "0"],
        "--years: 0 years: expected 1..=50",
    );
    refused(
        &[
            "simulate",
            "--example",
            "self-consumption",
            "--days",
            "1",
            "--timeseries",
            "x.txt",
        ],
        "written as .parquet or .csv",
    );
    refused(
        &[
            "simulate",
            "--example",
            "self-consumption",
            "--days",
            "1",
            "--timeseries",
            "x.csv",
            "--timeseries-step",
            "90s",
        ],
        "not a whole multiple of the step",
    );
}
