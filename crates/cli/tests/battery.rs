//! `melv alerts` and `melv cycle-test` from the outside: the battery-unit issue's "Done when" commands
//! and their refusals, on the built binary. A refusal exits non-zero with a message, never a panic.

mod common;
use common::{json, melv, refused};

#[test]
fn alerts_json_lists_the_22_codes_with_the_manual_text() {
    let v = json(&["alerts", "--json"]);
    assert_eq!(v["count"], 22);
    let alerts = v["alerts"].as_array().unwrap();
    let codes: Vec<u64> = alerts.iter().map(|a| a["code"].as_u64().unwrap()).collect();
    assert_eq!(
        codes,
        vec![2, 3, 4, 5, 6, 7, 13, 18, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 62, 63, 64]
    );
    for a in alerts {
        assert!(!a["issue"].as_str().unwrap().is_empty());
        assert!(!a["groups"].as_array().unwrap().is_empty());
        for key in ["severity", "latch", "actor", "source"] {
            assert!(a[key].is_string(), "{key} in {a}");
        }
    }
    // Manual 6.3, code 53: three causes under one set of steps.
    let one = json(&["alerts", "53", "--json"]);
    assert_eq!(one["issue"], "Battery Overtemperature");
    assert_eq!(one["groups"][0]["causes"].as_array().unwrap().len(), 3);
    assert_eq!(
        one["groups"][0]["causes"][2],
        "The fan is not working normally."
    );
}

#[test]
fn alerts_text_shows_causes_and_steps() {
    let o = melv(&["alerts", "60"]);
    assert_eq!(o.code, 0);
    assert!(o.stdout.contains("Battery Thermal Runaway"));
    assert!(o.stdout.contains(
        "Please immediately disconnect the battery AC input and stop using the battery."
    ));
    let list = melv(&["alerts"]);
    let rows = list.stdout.lines().filter(|l| {
        let mut words = l.split_whitespace();
        words.next().is_some_and(|w| w.parse::<u8>().is_ok())
            && words
                .next()
                .is_some_and(|w| ["warning", "fault", "critical"].contains(&w))
    });
    assert_eq!(rows.count(), 22, "{}", list.stdout);
}

#[test]
fn alerts_refuses_unknown_codes_and_garbage() {
    refused(&["alerts", "61"], "61 is not an alert code");
    refused(&["alerts", "abc"], "is not a number");
    refused(&["alerts", "-5"], "");
}

#[test]
fn cycle_test_at_25c_meets_the_datasheet() {
    let v = json(&["cycle-test", "--json"]);
    let f = |k: &str| v[k].as_f64().unwrap_or_else(|| panic!("{k} missing: {v}"));
    for key in ["charge_hours", "discharge_hours", "heater_kwh"] {
        assert!(f(key) >= 0.0);
    }
    assert!((6.8..=7.2).contains(&f("usable_energy_kwh")), "{v}");
    assert!(
        (0.955..=0.965).contains(&f("dc_round_trip_efficiency")),
        "{v}"
    );
    assert!(
        (0.89..=0.91).contains(&f("ac_round_trip_efficiency")),
        "{v}"
    );
    assert_eq!(v["alerts"], serde_json::json!([]));
}

#[test]
fn cycle_test_at_minus_10c_waits_for_the_heater_and_raises_nothing() {
    let v = json(&["cycle-test", "--ambient-c", "-10", "--json"]);
    assert_eq!(v["alerts"], serde_json::json!([]), "{v}");
    assert!(v["heater_kwh"].as_f64().unwrap() > 0.05, "{v}");
    assert!(v["charge_wait_hours"].as_f64().unwrap() > 0.1, "{v}");
}

#[test]
fn cycle_test_refuses_bad_input() {
    refused(&["cycle-test", "--power-kw", "9"], "at most 4500 W");
    refused(&["cycle-test", "--power-kw", "-1"], "power must be above 0");
    refused(
        &["cycle-test", "--ambient-c", "70"],
        "outside the operating range",
    );
    refused(&["cycle-test", "--ambient-c", "warm"], "invalid value");
}
