//! Every shipped example loads and passes every check (its own, and the controller's).

use melv_sim::scenario::{Overrides, Scenario};
use std::path::Path;

fn load(name: &str) -> Scenario {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(name);
    Scenario::load(&p, Overrides::default()).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn examples_load() {
    let sc = load("self-consumption.toml");
    assert_eq!(
        (sc.site.batteries, sc.steps(), sc.profile.len()),
        (1, 525_600, 8760)
    );
    let tou = load("tou-two-batteries.toml");
    assert_eq!(tou.site.batteries, 2);
    let b = load("backup-outages.toml");
    assert_eq!((b.events.len(), b.steps()), (5, 60 * 1440));
}

const PROFILE: &str = "timestamp,load_kw,pv_kw\n2019-01-01T00:00:00,0.5,0\n2019-01-01T01:00:00,0.5,1\n2019-01-01T02:00:00,0.5,2\n";

/// A minimal valid site; `edit` replaces one line (or appends text) to break it.
fn site(edit: (&str, &str)) -> String {
    let base = "[site]\nphases = 1\ntimezone = \"Europe/Berlin\"\nbatteries = 1\nprofile = \"p.csv\"\nprofile_utc_offset = \"+01:00\"\n\
[settings]\nmode = \"self_consumption\"\n\
[tariff]\nkind = \"flat\"\nimport_price = 0.3\n\
[simulation]\nstep = \"60s\"\n";
    if edit.0.is_empty() {
        format!("{base}{}", edit.1)
    } else {
        assert!(base.contains(edit.0), "{}", edit.0);
        base.replace(edit.0, edit.1)
    }
}

/// Load the edited site and compare: Ok(steps) or an error containing the fragment.
fn check(edit: (&str, &str), expected: Result<u64, &str>) {
    let text = site(edit);
    match (
        Scenario::from_text(
            "site.toml",
            &text,
            ("p.csv", PROFILE.as_bytes()),
            None,
            Overrides::default(),
        ),
        expected,
    ) {
        (Ok(s), Ok(n)) => assert_eq!(s.steps(), n, "{edit:?}"),
        (Err(e), Err(frag)) => {
            assert!(e.to_string().contains(frag), "{edit:?}: {e} lacks {frag:?}")
        }
        (Ok(_), Err(frag)) => panic!("{edit:?}: accepted, wanted error {frag:?}"),
        (Err(e), Ok(_)) => panic!("{edit:?}: {e}"),
    }
}

#[test]
fn bad_sites_name_the_key() {
    check(("", ""), Ok(180));
    check(("step = \"60s\"", "step = \"1h\""), Ok(3));
    check(("", "bogus = 1\n"), Err("unknown field `bogus`"));
    check(
        ("mode = \"self_consumption\"", "mode = \"turbo\""),
        Err("unknown variant `turbo`"),
    );
    check(
        (
            "mode = \"self_consumption\"",
            "mode = \"self_consumption\"\nreserve = 0.2",
        ),
        Err("line 9, column 1"),
    );
    check(("batteries = 1", "batteries = 4"), Err("site.batteries"));
    check(
        ("phases = 1", "phases = 2"),
        Err("site.phases: phases must be 1 (single phase) or 3"),
    );
    check(
        ("step = \"60s\"", "step = \"2h\""),
        Err("simulation.step: \"2h\" must be a whole number of seconds from 1 s to 1 h"),
    );
    check(
        ("step = \"60s\"", "step = \"soon\""),
        Err("simulation.step: \"soon\" is not a duration"),
    );
    check(
        ("", "days = 2\n"),
        Err("simulation.days: 2 days: the profile p.csv covers 0.12 days"),
    );
    check(
        (
            "timezone = \"Europe/Berlin\"",
            "timezone = \"Mars/Olympus\"",
        ),
        Err("site.timezone"),
    );
    check(
        (
            "profile_utc_offset = \"+01:00\"",
            "profile_utc_offset = \"CET\"",
        ),
        Err("site.profile_utc_offset"),
    );
    check(
        ("kind = \"flat\"", "kind = \"tou\""),
        Err("tariff.periods: a TOU tariff needs at least one period"),
    );
    check(
        ("mode = \"self_consumption\"", "mode = \"time_of_use\""),
        Err("settings.tou"),
    );
    check(
        ("mode = \"self_consumption\"", "mode = \"time_of_use\"\n[[settings.tou.weekday]]\nstart = \"06:00\"\nend = \"09:00\"\nkind = \"charge\"\n[[settings.tou.weekday]]\nstart = \"08:00\"\nend = \"10:00\"\nkind = \"discharge\""),
        Err("settings.tou.weekday[1]"),
    );
    check(("phases = 1", "phases = 1\ncountry = \"IT\""), Ok(180));
    check(("mode = \"self_consumption\"", "mode = \"time_of_use\"\n[[settings.tou.weekday]]\nstart = \"06:00\"\nend = \"09:00\"\nkind = \"charge\""), Ok(180));
    check(("[settings]\nmode = \"self_consumption\"", "country = \"IT\"\n[settings]\nmode = \"time_of_use\"\n[[settings.tou.weekday]]\nstart = \"06:00\"\nend = \"09:00\"\nkind = \"charge\""), Err("settings.mode: time_of_use is not available: grid charging of storage is forbidden"));
    check(
        (
            "",
            "[[events]]\nkind = \"fan_failure\"\nfrom = \"2019-01-01T01:00\"\nbattery = 1\n",
        ),
        Err("events[0].battery: unit 1 does not exist"),
    );
    check(
        (
            "",
            "[[events]]\nkind = \"meteor\"\nfrom = \"2019-01-01T01:00\"\n",
        ),
        Err("unknown variant `meteor`"),
    );
}
