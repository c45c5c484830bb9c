//! A site's row depends on the fleet and its index only: not on the number of threads, not on the
//! order the sites run in, not on whether it ran alone. And the drawn values do what they say.

use melv_fleet::output::{column_names, write_csv, write_parquet};
use melv_fleet::run::run_local;
use melv_fleet::{Bundle, Fleet, SiteRow};
use std::collections::BTreeMap;

/// A small fleet on the built-in examples (no files): 8 drawn sites and one explicit, 10 days at 1 h.
const SMALL: &str = r#"
[fleet]
name = "test fleet"
sites = 8
seed = 7
step = "1h"
days = 10

[[template]]
example = "self-consumption"
weight = 2
[template.distributions]
batteries = { values = [1, 2, 3], weights = [3, 2, 1] }
country = { values = ["generic", "DE", "IT"] }

[[template]]
example = "tou-two-batteries"
[template.distributions]
batteries = { values = [1, 4, 6] }
tariff = { values = ["template", "flat"] }

[distributions]
load_scale = { min = 0.5, max = 2.0 }
pv_scale = { min = 0.5, max = 2.0 }
initial_soh = { min = 0.85, max = 1.0 }

[tariffs.flat]
kind = "flat"
currency = "USD"
import_price = 0.15
export_price = 0.05

[[site]]
example = "backup-outages"
"#;

fn fleet(text: &str) -> Fleet {
    Fleet::build(&Bundle {
        file: "small.toml".into(),
        text: text.into(),
        files: BTreeMap::new(),
    })
    .unwrap()
}

fn run(f: &Fleet, sites: &[u64], threads: usize) -> Vec<SiteRow> {
    let mut rows = Vec::new();
    run_local(f, sites, threads, &mut |d| rows.push(d.row)).unwrap();
    rows.sort_by_key(|r| r.site);
    rows
}

#[test]
fn one_thread_or_two_in_order_or_shuffled_give_the_same_rows() {
    let f = fleet(SMALL);
    assert_eq!(f.sites(), 9);
    let order: Vec<u64> = (0..9).collect();
    let one = run(&f, &order, 1);
    let shuffled = [7, 2, 8, 0, 5, 3, 1, 6, 4];
    let two = run(&f, &shuffled, 2);
    assert_eq!(one.len(), 9);
    assert_eq!(one, two);
    // A site run alone, from a fleet built again, gives its row too.
    let again = fleet(SMALL);
    assert_eq!(again.run_site(5).unwrap(), one[5]);
    // The draws differ between sites and follow the distributions.
    assert_eq!(one[0].template, "backup-outages");
    assert!(one[1..].iter().any(|r| r.template == "self-consumption"));
    assert!(one[1..].iter().any(|r| r.template == "tou-two-batteries"));
    for r in &one[1..] {
        assert!((0.5..=2.0).contains(&r.load_scale), "{r:?}");
        assert!((0.85..=1.0).contains(&r.initial_soh), "{r:?}");
        if r.template == "self-consumption" {
            assert!(r.phases == 1 && (1..=3).contains(&r.batteries), "{r:?}");
        } else {
            assert!(r.phases == 3 && [1, 4, 6].contains(&r.batteries), "{r:?}");
        }
        assert!(r.energy_balance_error_kwh.abs() < 1e-6, "{r:?}");
    }
    // Another fleet seed draws other sites.
    let other = fleet(&SMALL.replace("seed = 7", "seed = 8"));
    assert_ne!(other.run_site(3).unwrap().load_scale, one[3].load_scale);
}

#[test]
fn drawn_values_change_the_run_as_they_say() {
    // One template, no spread but the one value under test: the load doubles with load_scale 2,
    // PV with pv_scale, and a unit that starts at 80 % SOH ends below one that starts new.
    let base = "[fleet]\nsites = 1\nstep = \"1h\"\ndays = 5\n[[template]]\nexample = \"self-consumption\"\n[distributions]\n";
    let at = |d: &str| fleet(&format!("{base}{d}")).run_site(0).unwrap();
    let plain = at("");
    let big = at("load_scale = { min = 2, max = 2 }\npv_scale = { min = 3, max = 3 }\n");
    assert!((big.load_kwh - 2.0 * plain.load_kwh).abs() < 1e-9 * plain.load_kwh);
    assert!((big.pv_kwh - 3.0 * plain.pv_kwh).abs() < 1e-9 * plain.pv_kwh);
    let old = at("initial_soh = { min = 0.8, max = 0.8 }\n");
    assert!(
        old.soh_end < plain.soh_end - 0.1,
        "{} vs {}",
        old.soh_end,
        plain.soh_end
    );
    let three = at("batteries = { values = [3] }\n");
    assert_eq!(three.batteries, 3);
    assert!(three.battery_discharge_kwh > plain.battery_discharge_kwh);
}

#[test]
fn a_combination_the_controller_refuses_is_refused_before_any_site_runs() {
    let text = "[fleet]\nsites = 1\n[[template]]\nexample = \"tou-two-batteries\"\n\
                [distributions]\ncountry = { values = [\"generic\", \"IT\"] }\n";
    let e = Fleet::build(&Bundle {
        file: "f.toml".into(),
        text: text.into(),
        files: BTreeMap::new(),
    })
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("f.toml") && e.contains("country IT") && e.contains("settings."),
        "{e}"
    );
    let text = "[fleet]\nsites = 1\n[[template]]\nexample = \"self-consumption\"\n\
                [distributions]\nbatteries = { values = [4] }\n";
    let e = Fleet::build(&Bundle {
        file: "f.toml".into(),
        text: text.into(),
        files: BTreeMap::new(),
    })
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("1 phases, 4 batteries") && e.contains("site.batteries"),
        "{e}"
    );
    let text = "[fleet]\nsites = 1\n[[template]]\nfile = \"nope.toml\"\n";
    let e = Fleet::build(&Bundle {
        file: "dir/f.toml".into(),
        text: text.into(),
        files: BTreeMap::new(),
    })
    .unwrap_err()
    .to_string();
    assert!(e.contains("dir/nope.toml: not in the bundle"), "{e}");
}

#[test]
fn csv_and_parquet_hold_every_row_and_column() {
    let f = fleet(SMALL);
    let rows = run(&f, &[0, 1, 2], 2);
    let mut csv = Vec::new();
    write_csv(&rows, &mut csv).unwrap();
    let text = String::from_utf8(csv).unwrap();
    let header: Vec<&str> = text.lines().next().unwrap().split(',').collect();
    assert_eq!(header, column_names());
    assert_eq!(text.lines().count(), 4);
    let mut pq = Vec::new();
    write_parquet(&rows, &mut pq).unwrap();
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        bytes::Bytes::from(pq),
    )
    .unwrap()
    .build()
    .unwrap();
    let batches: Vec<_> = reader.map(|b| b.unwrap()).collect();
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 3);
    let b = &batches[0];
    assert_eq!(b.num_columns(), column_names().len());
    let savings = b
        .column_by_name("savings")
        .unwrap()
        .as_any()
        .downcast_ref::<arrow_array::Float64Array>()
        .unwrap();
    assert_eq!(savings.value(2), rows[2].savings);
}
