//! The schedule of injected events: what happens to the site's grid, environment or hardware, and
//! when. The simulator only changes the world (the grid goes away, a fan stops turning, a cell leaks);
//! the alerts that follow come from the units' firmware and the gateway, never from here.

use crate::error::ConfigError;
pub use melv_site::events::{Event, EventKind};
use serde::{Deserialize, Serialize};

/// One `[[events]]` entry. Times are local standard time like the profile (`profile_utc_offset`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventConfig {
    pub kind: EventKind,
    pub from: String,
    /// End (exclusive); absent means until the end of the run.
    pub to: Option<String>,
    /// Unit index (0-based) for hardware faults; every unit when absent.
    pub battery: Option<usize>,
    pub value: Option<f64>,
    /// Cell (0-based, 0..8) of a micro-short; cell 0 when absent.
    pub cell: Option<usize>,
}

/// Check every entry and convert its times; errors name `events[i].key`.
pub fn compile(
    file: &str,
    cfg: &[EventConfig],
    utc_offset_s: i64,
    batteries: usize,
) -> Result<Vec<Event>, ConfigError> {
    let mut out = Vec::with_capacity(cfg.len());
    for (i, e) in cfg.iter().enumerate() {
        let key = |k: &str| format!("events[{i}].{k}");
        let time = |k: &str, s: &str| {
            crate::profile::parse_local(s)
                .map(|t| t.and_utc().timestamp() - utc_offset_s)
                .ok_or_else(|| {
                    ConfigError::new(
                        file,
                        key(k),
                        format!("{s:?} is not a local time like 2019-07-10T14:00"),
                    )
                })
        };
        let from = time("from", &e.from)?;
        let to = match &e.to {
            Some(s) => time("to", s)?,
            None => i64::MAX,
        };
        if to <= from {
            return Err(ConfigError::new(file, key("to"), "must be after from"));
        }
        let value = match (e.kind.value_range(), e.value) {
            (None, None) => 0.0,
            (None, Some(_)) => {
                return Err(ConfigError::new(
                    file,
                    key("value"),
                    format!("{:?} takes no value", e.kind),
                ))
            }
            (Some((_, _, unit)), None) => {
                return Err(ConfigError::new(
                    file,
                    key("value"),
                    format!("{:?} needs a value in {unit}", e.kind),
                ))
            }
            (Some((lo, hi, unit)), Some(v)) => {
                if !(lo..=hi).contains(&v) {
                    return Err(ConfigError::new(
                        file,
                        key("value"),
                        format!("{v} {unit} is outside {lo}..={hi}"),
                    ));
                }
                v
            }
        };
        if let Some(b) = e.battery {
            if !e.kind.is_unit_fault() {
                return Err(ConfigError::new(
                    file,
                    key("battery"),
                    format!("{:?} concerns the whole site, not one battery", e.kind),
                ));
            }
            if b >= batteries {
                return Err(ConfigError::new(
                    file,
                    key("battery"),
                    format!("unit {b} does not exist (the site has {batteries}, numbered from 0)"),
                ));
            }
        }
        let cell = e.cell.unwrap_or(0);
        if e.cell.is_some() && !e.kind.concerns_a_cell() {
            return Err(ConfigError::new(
                file,
                key("cell"),
                "only a cell fault (micro_short, thermal_runaway, open_sense_wire, cell_voltage_offset, bleed_stuck, stuck_temp_sensor) concerns one cell",
            ));
        }
        if cell >= melv_core::spec::CELLS_IN_SERIES {
            return Err(ConfigError::new(
                file,
                key("cell"),
                format!(
                    "cell {cell} does not exist (8 cells in series, manual 7.1; numbered from 0)"
                ),
            ));
        }
        out.push(Event {
            kind: e.kind,
            from_utc_s: from,
            to_utc_s: to,
            battery: e.battery,
            value,
            cell,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(
        kind: EventKind,
        from: &str,
        to: Option<&str>,
        battery: Option<usize>,
        value: Option<f64>,
    ) -> EventConfig {
        EventConfig {
            kind,
            from: from.into(),
            to: to.map(Into::into),
            battery,
            value,
            cell: None,
        }
    }

    fn check(e: EventConfig, expected: Result<(i64, i64, f64), &str>) {
        match (compile("s.toml", &[e], 0, 2), expected) {
            (Ok(v), Ok((a, b, x))) => {
                assert_eq!((v[0].from_utc_s, v[0].to_utc_s, v[0].value), (a, b, x))
            }
            (Err(err), Err(frag)) => {
                assert!(err.to_string().contains(frag), "{err} lacks {frag:?}")
            }
            (got, want) => panic!("got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn cases() {
        use EventKind::*;
        let t0 = 1_546_300_800; // 2019-01-01T00:00Z
        check(
            ev(
                GridOutage,
                "2019-01-01T00:00",
                Some("2019-01-01T02:00"),
                None,
                None,
            ),
            Ok((t0, t0 + 7200, 0.0)),
        );
        check(
            ev(Voltage, "2019-01-01T00:00", None, None, Some(280.0)),
            Ok((t0, i64::MAX, 280.0)),
        );
        check(
            ev(Voltage, "2019-01-01T00:00", None, None, None),
            Err("events[0].value: Voltage needs a value in V"),
        );
        check(
            ev(Frequency, "2019-01-01T00:00", None, None, Some(80.0)),
            Err("events[0].value: 80 Hz is outside 40..=70"),
        );
        check(
            ev(GridOutage, "2019-01-01T00:00", None, None, Some(1.0)),
            Err("events[0].value: GridOutage takes no value"),
        );
        check(
            ev(
                GridOutage,
                "2019-01-01T02:00",
                Some("2019-01-01T01:00"),
                None,
                None,
            ),
            Err("events[0].to: must be after from"),
        );
        check(
            ev(GridOutage, "yesterday", None, None, None),
            Err("events[0].from: \"yesterday\" is not a local time"),
        );
        check(
            ev(FanFailure, "2019-01-01T00:00", None, Some(2), None),
            Err("events[0].battery: unit 2 does not exist"),
        );
        check(
            ev(Ambient, "2019-01-01T00:00", None, Some(0), Some(5.0)),
            Err("events[0].battery: Ambient concerns the whole site"),
        );
        check(
            ev(MicroShort, "2019-01-01T00:00", None, Some(1), Some(50.0)),
            Ok((t0, i64::MAX, 50.0)),
        );
        let mut bad_cell = ev(MicroShort, "2019-01-01T00:00", None, None, Some(50.0));
        bad_cell.cell = Some(8);
        check(bad_cell, Err("events[0].cell: cell 8 does not exist"));
        let mut cell_on_fan = ev(FanFailure, "2019-01-01T00:00", None, None, None);
        cell_on_fan.cell = Some(1);
        check(cell_on_fan, Err("events[0].cell: only a cell fault"));
    }
}
