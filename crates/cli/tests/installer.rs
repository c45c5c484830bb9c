//! `melv plan` and `melv storage` from the outside: the "Done when" commands and the refusals,
//! run on the built binary. Every refusal must exit non-zero with a message, never a panic.

mod common;
use common::{json, melv, refused};

#[test]
fn done_when_three_phase_four_batteries() {
    let p = json(&["plan", "--phases", "3", "--batteries", "4", "--json"]);
    assert_eq!(p["wire"]["cross_section_mm2"], 6.0);
    assert_eq!(p["wire"]["max_current_a"], 31.9);
    let t = p["can"]["termination"].as_array().unwrap();
    assert_eq!(t.len(), 4);
    let keeps: Vec<u64> = t
        .iter()
        .filter(|b| b["c2"] == "keep")
        .map(|b| b["battery"].as_u64().unwrap())
        .collect();
    assert_eq!(keeps, vec![4], "only the last battery keeps a terminator");
    assert!(t.iter().all(|b| b["c1"] == "remove"));
    assert_eq!(p["can"]["plug_in_bridge"]["required"], false);
}

#[test]
fn done_when_single_phase_four_batteries_is_refused() {
    refused(
        &["plan", "--phases", "1", "--batteries", "4"],
        "more than the 3 the manual allows",
    );
}

#[test]
fn done_when_storage_at_30_c() {
    let s = json(&[
        "storage",
        "--temp-c",
        "30",
        "--since",
        "2026-01-01",
        "--json",
    ]);
    assert_eq!(s["recharge_due"], "2026-10-01");
    assert_eq!(s["action_at_due"]["target_soc"], 0.3);
}

#[test]
fn plan_refusals() {
    refused(
        &["plan", "--phases", "2", "--batteries", "1"],
        "phases: must be 1 (single phase) or 3",
    );
    refused(
        &["plan", "--phases", "3", "--batteries", "7"],
        "more than the 6 the manual allows",
    );
    refused(
        &["plan", "--phases", "3", "--batteries", "-1"],
        "batteries: must be at least 1, not -1",
    );
    refused(
        &["plan", "--phases", "3", "--batteries", "0"],
        "batteries: must be at least 1, not 0",
    );
    refused(
        &[
            "plan",
            "--phases",
            "1",
            "--batteries",
            "1",
            "--grid-voltage",
            "290",
        ],
        "L-N 290 V is above 276 V",
    );
    refused(
        &[
            "plan",
            "--phases",
            "3",
            "--batteries",
            "1",
            "--grid-voltage",
            "230,231",
        ],
        "three phase needs 3 value(s)",
    );
    refused(
        &[
            "plan",
            "--phases",
            "1",
            "--batteries",
            "1",
            "--grid-voltage",
            "abc",
        ],
        "\"abc\" is not a number of volts",
    );
    refused(
        &[
            "plan",
            "--phases",
            "1",
            "--batteries",
            "1",
            "--mount",
            "roof",
        ],
        "mount must be floor or wall",
    );
    refused(
        &["plan", "--phases", "x", "--batteries", "1"],
        "invalid value 'x'",
    );
}

#[test]
fn plan_edges_and_grid() {
    // Exactly 3 batteries on single phase is allowed (appendix 1a, last row).
    let p = json(&["plan", "--phases", "1", "--batteries", "3", "--json"]);
    assert_eq!(
        (
            p["wire"]["cross_section_mm2"].as_f64(),
            p["wire"]["max_current_a"].as_f64()
        ),
        (Some(10.0), Some(50.0))
    );
    assert_eq!(p["can"]["plug_in_bridge"]["required"], true);
    let p = json(&[
        "plan",
        "--phases",
        "3",
        "--batteries",
        "2",
        "--grid-voltage",
        "176,230,276",
        "--mount",
        "wall",
        "--json",
    ]);
    assert_eq!(p["grid"]["pass"], true);
    assert_eq!(p["installable"], true);
    assert_eq!(p["mounting"][0]["wall_load_kg_total"], 150.0);
    // A failing phase: the plan is still printed (per-phase result), then refused.
    let o = melv(&[
        "plan",
        "--phases",
        "3",
        "--batteries",
        "2",
        "--grid-voltage",
        "230,175,230",
    ]);
    assert_ne!(o.code, 0);
    assert!(o.stdout.contains("L1     230 V  PASS"), "{}", o.stdout);
    assert!(o.stdout.contains("L2     175 V  FAIL"), "{}", o.stdout);
    assert!(
        o.stderr
            .contains("installation refused: L2-N 175 V is below 176 V"),
        "{}",
        o.stderr
    );
}

#[test]
fn storage_bands_and_status() {
    for (t, due) in [
        ("25", "2027-04-01"),
        ("35", "2026-10-01"),
        ("45", "2026-07-01"),
        ("55", "2026-04-01"),
        ("-20", "2027-04-01"),
    ] {
        let s = json(&[
            "storage",
            "--temp-c",
            t,
            "--since",
            "2026-01-01",
            "--today",
            "2026-02-01",
            "--json",
        ]);
        assert_eq!(s["recharge_due"], due, "{t} °C");
        assert_eq!(s["status"]["state"], "within_storage_time");
        assert_eq!(s["flags"].as_array().unwrap().len(), 0, "{t} °C");
    }
    let s = json(&[
        "storage",
        "--temp-c",
        "60",
        "--since",
        "2026-01-01",
        "--recharges",
        "3",
        "--today",
        "2026-05-01",
        "--json",
    ]);
    assert_eq!(s["recharge_due"], "2026-04-01");
    assert_eq!(s["status"]["state"], "discard_recommended");
    assert_eq!(s["action_at_due"]["action"], "discard");
    assert_eq!(s["flags"].as_array().unwrap().len(), 1);
}

fn write_log(name: &str, text: &str) -> String {
    let dir = std::env::temp_dir().join(format!("melv-installer-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

#[test]
fn storage_log() {
    let path = write_log("cross.csv", "date,temp_c\n2026-01-01,20\n2026-07-02,30\n");
    let s = json(&["storage", "--log", &path, "--json"]);
    // 182 days at 20 °C use 182/455 = 0.4; 0.6 x 273 = 163.8 -> 164 days at 30 °C.
    assert_eq!(s["recharge_due"], "2026-12-13");
    assert_eq!(s["as_of"], "2026-07-02");
    assert_eq!(s["band_usage"].as_array().unwrap().len(), 2);
}

#[test]
fn storage_refusals() {
    let unsorted = write_log("unsorted.csv", "2026-02-01,20\n2026-01-01,20\n");
    refused(
        &["storage", "--log", &unsorted],
        "line 2: date 2026-01-01 is not after 2026-02-01",
    );
    let word = write_log("word.csv", "date,temp_c\n2026-01-01,cold\n");
    refused(
        &["storage", "--log", &word],
        "line 2: temperature \"cold\" is not a number",
    );
    let bad_date = write_log("date.csv", "2026-01-01,20\n2026-02-30,20\n");
    refused(
        &["storage", "--log", &bad_date],
        "line 2: date \"2026-02-30\" is not YYYY-MM-DD",
    );
    let empty = write_log("empty.csv", "date,temp_c\n");
    refused(&["storage", "--log", &empty], "no readings");
    refused(
        &["storage", "--log", "/nonexistent/melv/temps.csv"],
        "cannot read",
    );
    refused(
        &["storage", "--temp-c", "30", "--since", "2026-13-01"],
        "--since: \"2026-13-01\" is not a date",
    );
    refused(
        &[
            "storage",
            "--temp-c",
            "30",
            "--since",
            "2026-01-01",
            "--recharges",
            "-1",
        ],
        "recharges: must be 0 or more",
    );
    refused(
        &["storage", "--temp-c", "298", "--since", "2026-01-01"],
        "not a plausible storage temperature",
    );
    refused(
        &["storage", "--temp-c", "warm", "--since", "2026-01-01"],
        "invalid value 'warm'",
    );
    refused(
        &["storage"],
        "give either --temp-c T --since YYYY-MM-DD, or --log TEMPS.csv",
    );
    refused(&["storage", "--temp-c", "30"], "--since");
}
