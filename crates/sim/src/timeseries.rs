//! The run's time series, step by step or aggregated into fixed intervals, for `--timeseries`.
//!
//! The runner hands every step to a [`StepSink`]; [`Aggregator`] folds steps into rows of
//! `interval_s` (a whole multiple of the step) and hands each row to a [`RowSink`] (the CLI writes
//! them to Parquet or CSV; this crate touches no file). Column meanings are in docs/simulator.md
//! ("Time series"): powers are interval means, SOCs are the values at the interval's end, cell
//! voltages and temperatures the extremes within the interval, the reason the one that held longest,
//! the alerts every code active at some point of the interval.

use melv_ems::Reason;

/// One unit at the end of a step.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct UnitSample {
    /// AC power, W, positive = discharging.
    pub power_w: f64,
    /// True pack SOC (capacity-weighted mean of the cells) and the firmware's estimate.
    pub soc: f64,
    pub soc_bms: f64,
    /// True cell terminal voltages, V, and cell temperatures, degC: lowest and highest cell.
    pub cell_v_min: f64,
    pub cell_v_max: f64,
    pub temp_min_c: f64,
    pub temp_max_c: f64,
}

/// One step as the runner saw it.
#[derive(Debug, Clone, Copy)]
pub struct StepSample<'a> {
    /// The step's start, UTC s, and length, s.
    pub t_utc_s: f64,
    pub dt_s: f64,
    pub pv_w: f64,
    pub load_w: f64,
    /// Positive = import.
    pub grid_w: f64,
    /// Positive = discharge.
    pub battery_w: f64,
    pub units: &'a [UnitSample],
    pub reason: Reason,
    /// Alert codes active at the step's end (any unit or the gateway), ascending, no repeats.
    pub alerts: &'a [u8],
}

/// Takes the run's steps; `finish` is called once after the last.
pub trait StepSink {
    fn step(&mut self, s: &StepSample<'_>) -> Result<(), String>;
    fn finish(&mut self) -> Result<(), String>;
}

/// A sink that keeps nothing (a run without `--timeseries`).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoSink;

impl StepSink for NoSink {
    #[inline]
    fn step(&mut self, _: &StepSample<'_>) -> Result<(), String> {
        Ok(())
    }
    fn finish(&mut self) -> Result<(), String> {
        Ok(())
    }
}

/// One interval of the time series.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Row {
    /// The interval's start, UTC s, and its length, s.
    pub t_utc_s: i64,
    pub interval_s: f64,
    pub pv_w: f64,
    pub load_w: f64,
    pub grid_w: f64,
    pub battery_w: f64,
    pub units: Vec<UnitSample>,
    pub reason: &'static str,
    /// Codes joined by spaces ("" when none).
    pub alerts: String,
}

/// Where rows go (the CLI's Parquet or CSV writer).
pub trait RowSink {
    fn row(&mut self, r: &Row) -> Result<(), String>;
    fn finish(&mut self) -> Result<(), String>;
}

/// Folds steps into rows of a fixed interval, aligned to the run's start.
#[derive(Debug)]
pub struct Aggregator<S: RowSink> {
    sink: S,
    start_utc_s: f64,
    interval_s: f64,
    bin: Option<u64>,
    row: Row,
    weight_s: f64,
    reason_s: [f64; Reason::ALL.len()],
    alerts: [bool; 256],
}

impl<S: RowSink> Aggregator<S> {
    /// Rows of `interval_s` from `start_utc_s`.
    pub fn new(sink: S, start_utc_s: f64, interval_s: f64) -> Self {
        Self {
            sink,
            start_utc_s,
            interval_s,
            bin: None,
            row: Row::default(),
            weight_s: 0.0,
            reason_s: [0.0; Reason::ALL.len()],
            alerts: [false; 256],
        }
    }

    /// The sink, when the run is over.
    pub fn into_sink(self) -> S {
        self.sink
    }

    fn flush(&mut self) -> Result<(), String> {
        let Some(bin) = self.bin else {
            return Ok(());
        };
        let w = self.weight_s.max(f64::MIN_POSITIVE);
        let r = &mut self.row;
        r.t_utc_s = (self.start_utc_s + bin as f64 * self.interval_s) as i64;
        r.interval_s = self.weight_s;
        r.pv_w /= w;
        r.load_w /= w;
        r.grid_w /= w;
        r.battery_w /= w;
        for u in &mut r.units {
            u.power_w /= w;
        }
        // The longest-held reason; on a tie the first in `Reason::ALL` order.
        let mut best = 0;
        for (i, s) in self.reason_s.iter().enumerate() {
            if *s > self.reason_s[best] {
                best = i;
            }
        }
        r.reason = Reason::ALL[best].as_str();
        r.alerts.clear();
        for (code, on) in self.alerts.iter().enumerate() {
            if *on {
                if !r.alerts.is_empty() {
                    r.alerts.push(' ');
                }
                r.alerts.push_str(&code.to_string());
            }
        }
        self.sink.row(&self.row)?;
        self.weight_s = 0.0;
        self.reason_s = [0.0; Reason::ALL.len()];
        self.alerts = [false; 256];
        Ok(())
    }
}

impl<S: RowSink> StepSink for Aggregator<S> {
    fn step(&mut self, s: &StepSample<'_>) -> Result<(), String> {
        let bin = ((s.t_utc_s - self.start_utc_s) / self.interval_s + 1e-9).floor() as u64;
        if self.bin != Some(bin) {
            self.flush()?;
            self.bin = Some(bin);
            let r = &mut self.row;
            (r.pv_w, r.load_w, r.grid_w, r.battery_w) = (0.0, 0.0, 0.0, 0.0);
            r.units.clear();
            r.units.extend(s.units.iter().map(|u| UnitSample {
                power_w: 0.0,
                cell_v_min: f64::INFINITY,
                cell_v_max: f64::NEG_INFINITY,
                temp_min_c: f64::INFINITY,
                temp_max_c: f64::NEG_INFINITY,
                ..*u
            }));
        }
        let w = s.dt_s;
        self.weight_s += w;
        let r = &mut self.row;
        r.pv_w += s.pv_w * w;
        r.load_w += s.load_w * w;
        r.grid_w += s.grid_w * w;
        r.battery_w += s.battery_w * w;
        for (a, u) in r.units.iter_mut().zip(s.units) {
            a.power_w += u.power_w * w;
            a.soc = u.soc;
            a.soc_bms = u.soc_bms;
            a.cell_v_min = a.cell_v_min.min(u.cell_v_min);
            a.cell_v_max = a.cell_v_max.max(u.cell_v_max);
            a.temp_min_c = a.temp_min_c.min(u.temp_min_c);
            a.temp_max_c = a.temp_max_c.max(u.temp_max_c);
        }
        self.reason_s[s.reason.index()] += w;
        for c in s.alerts {
            self.alerts[*c as usize] = true;
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), String> {
        self.flush()?;
        self.bin = None;
        self.sink.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Keep(Vec<Row>, bool);
    impl RowSink for Keep {
        fn row(&mut self, r: &Row) -> Result<(), String> {
            self.0.push(r.clone());
            Ok(())
        }
        fn finish(&mut self) -> Result<(), String> {
            self.1 = true;
            Ok(())
        }
    }

    #[test]
    fn rows_are_means_extremes_last_values_longest_reason_and_alert_union() {
        let mut a = Aggregator::new(Keep::default(), 1000.0, 3600.0);
        for k in 0..4 {
            let u = [UnitSample {
                power_w: 100.0 * k as f64,
                soc: 0.1 * k as f64,
                soc_bms: 0.1 * k as f64 + 0.01,
                cell_v_min: 3.2 - 0.01 * k as f64,
                cell_v_max: 3.3 + 0.01 * k as f64,
                temp_min_c: 20.0,
                temp_max_c: 21.0 + k as f64,
            }];
            let alerts: &[u8] = if k == 1 { &[54, 63] } else { &[] };
            a.step(&StepSample {
                t_utc_s: 1000.0 + 1800.0 * k as f64,
                dt_s: 1800.0,
                pv_w: 1000.0 * k as f64,
                load_w: 500.0,
                grid_w: -100.0,
                battery_w: 0.0,
                units: &u,
                reason: if k == 0 {
                    Reason::Idle
                } else {
                    Reason::BatteryFull
                },
                alerts,
            })
            .unwrap();
        }
        a.finish().unwrap();
        let Keep(rows, finished) = a.into_sink();
        assert!(finished);
        assert_eq!(rows.len(), 2);
        let (r0, r1) = (&rows[0], &rows[1]);
        assert_eq!((r0.t_utc_s, r1.t_utc_s), (1000, 4600));
        assert_eq!((r0.pv_w, r1.pv_w), (500.0, 2500.0));
        assert_eq!(r0.units[0].power_w, 50.0);
        assert_eq!(r0.units[0].soc, 0.1); // the value at the interval's end
        assert_eq!(r1.units[0].cell_v_min, 3.2 - 0.03);
        assert_eq!(r1.units[0].temp_max_c, 24.0);
        assert_eq!(r0.alerts, "54 63");
        assert_eq!(r1.alerts, "");
        // Half an hour each of idle and battery_full: the first in Reason::ALL order wins a tie.
        assert_eq!(r0.reason, "idle");
        assert_eq!(r1.reason, "battery_full");
    }
}
