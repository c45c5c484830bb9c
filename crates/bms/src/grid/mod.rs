//! Grid protection: the inverter's interface protection (codes 2-7, 13, 18) and reconnection.
//!
//! Thresholds are data: a [`GridProfile`] per country, each row citing its standard. A profile is a
//! list of [`Stage`]s (multi-stage under/over voltage and frequency, each with its own clearing
//! time, optionally on a 10-minute average), DC-injection limits, and the reconnection rule (a window
//! the grid must stay inside for `reconnect_s` before the unit exports again, then a power ramp).
//!
//! Anti-islanding is passive: loss of all configured phase voltages (or of a measurable frequency)
//! is an outage (code 2) and ceases power at once, well within the 2 s of IEC 62116; an island that
//! drifts in voltage or frequency is caught by the stages, whose clearing times are <= 2 s for the
//! fast stages in every profile. When the gateway orders grid-forming (off-grid backup), the
//! voltage the unit measures is its own, so the stages are suspended; the gateway orders it only
//! with the utility absent (the site is islanded), so code 2 is held for as long as the unit forms.
//!
//! Every timer is a time-based debounce counter ([`crate::protect::debounce`]): a violating sample
//! counts its `dt` up, a good one `dt x DOWN_RATIO` down, and the code trips when the count reaches
//! the clearing time. A grid that dips below a stage half the time trips it; a NaN reading on a
//! stage neither counts up nor down.

use melv_core::alerts::{AlertCode, AlertSet};
use melv_core::io::{AcMeasurements, PhaseRotation};
use melv_core::types::Phases;

use crate::protect::debounce;

mod profiles;
pub use profiles::{GridProfile, ProfileError, Quantity, Stage};

/// Most stages a profile may have (the grid state keeps fixed-size arrays: no allocation per step).
pub const MAX_STAGES: usize = 8;

/// A phase below this reads as absent (no supply: code 2 or, for one phase of three, 13), V.
/// Below the lowest under-voltage stage of any profile (CEI 0-21 27.S2: 0.15 Un = 34.5 V), so a
/// collapsed but present grid still reads as under-voltage (3); above the few volts a disconnected
/// terminal picks up capacitively.
pub const PHASE_ABSENT_V: f64 = 20.0;

/// Run-time grid protection.
#[derive(Debug, Clone)]
pub struct GridProtection {
    profile: GridProfile,
    phases: Phases,
    /// Debounce counts, s (see `crate::protect::debounce`).
    stage_n: [f64; MAX_STAGES],
    stage_avg: [f64; MAX_STAGES],
    /// The averages' weights `1 - exp(-2 dt / T)` for the step length `avg_dt`: the firmware runs at
    /// a fixed cycle, so they are computed once per step length instead of once per step (the same
    /// expression, so the same numbers bit for bit).
    avg_dt: f64,
    avg_w: [f64; MAX_STAGES],
    dc_i_n: f64,
    dc_v_n: f64,
    dist_n: f64,
    outage_n: f64,
    /// Codes held now, as `AlertSet` bits (see `crate::codes`).
    alerts: u32,
    bits: GridBits,
    /// Time since which the grid has been inside the reconnection window with no grid code; NaN
    /// while not.
    ok_since: f64,
    connected: bool,
    /// A trip happened since the last connection (the wait to reconnect is then abnormal; the
    /// wait after power-on is not).
    tripped: bool,
    /// Power ramp after connection, 0..=1 of rated.
    ramp: f64,
    last_t: f64,
}

/// Debounce for the outage and distribution checks, s: short enough for anti-islanding (cease
/// within 2 s, IEC 62116), long enough to ride through one cycle's dip.
const OUTAGE_DELAY_S: f64 = 0.2;
const DISTRIBUTION_DELAY_S: f64 = 1.0;

impl GridProtection {
    /// Panics when the profile has more than [`MAX_STAGES`] stages (the state's arrays hold one
    /// entry per stage; [`GridProfile::validate`] refuses such a profile, and the firmware validates
    /// the installer's profile at boot).
    pub fn new(profile: GridProfile, phases: Phases) -> Self {
        assert!(
            profile.stages.len() <= MAX_STAGES,
            "grid profile stages fit the stage table: {} stages, at most {MAX_STAGES}",
            profile.stages.len()
        );
        Self {
            stage_avg: [f64::NAN; MAX_STAGES],
            avg_dt: f64::NAN,
            avg_w: [0.0; MAX_STAGES],
            profile,
            phases,
            stage_n: [0.0; MAX_STAGES],
            dc_i_n: 0.0,
            dc_v_n: 0.0,
            dist_n: 0.0,
            outage_n: 0.0,
            alerts: 0,
            bits: GridBits::new(),
            ok_since: f64::NAN,
            connected: false,
            tripped: false,
            ramp: 0.0,
            last_t: f64::NAN,
        }
    }

    pub fn profile(&self) -> &GridProfile {
        &self.profile
    }

    /// Grid codes held now (2-7, 13, 18).
    pub fn alerts(&self) -> AlertSet {
        AlertSet::from_bits(self.alerts)
    }

    /// Whether the unit may follow the grid now.
    pub fn connected(&self) -> bool {
        self.connected
    }

    /// Waiting to reconnect after a trip (an abnormal working condition for the status LED).
    pub fn reconnect_pending(&self) -> bool {
        !self.connected && self.alerts == 0 && self.tripped
    }

    /// Fraction of rated power allowed by the post-connection ramp.
    pub fn ramp(&self) -> f64 {
        self.ramp
    }

    /// One evaluation. `grid_forming`: the unit sets the voltage itself (stages suspended).
    pub fn step(&mut self, now_s: f64, ac: &AcMeasurements, grid_forming: bool) {
        let dt = if self.last_t.is_finite() {
            (now_s - self.last_t).max(0.0)
        } else {
            0.0
        };
        self.last_t = now_s;
        if grid_forming {
            // The unit is the grid: its own voltage proves nothing about the utility, and the
            // gateway orders forming only with the utility gone (the site is islanded). Hold code 2
            // (the manual's "grid power outage", a warning that does not stop the unit), drop the
            // others (they were about a grid we no longer follow), disconnect.
            self.alerts = self.bits.outage;
            self.outage_n = OUTAGE_DELAY_S;
            self.tripped = true;
            self.disconnect();
            return;
        }
        let n = self.phases.count();
        let lv = PhaseLevels::of(&ac.phase_v[..n], ac.frequency_hz);
        let b = self.bits;
        let mut trips = 0u32;

        // Outage (code 2): passive anti-islanding.
        if debounce(&mut self.outage_n, Some(lv.outage), dt, OUTAGE_DELAY_S) {
            trips |= b.outage;
        }
        // Distribution errors (code 13), manual 6.3's five causes.
        let dist = self.distribution_error(ac, lv.present);
        if debounce(&mut self.dist_n, Some(dist), dt, DISTRIBUTION_DELAY_S) {
            trips |= b.dist;
        }
        trips |= self.dc_trips(dt, ac);
        trips |= self.stage_trips(dt, &lv);

        // A trip holds its code until the quantity is back in the reconnection window; 2, 7, 13
        // and 18 clear as soon as their cause is gone (all AutoClear in the catalogue).
        let p = &self.profile;
        let in_window = !lv.outage
            && !dist
            && lv.present == n
            && lv.v_lo >= p.reconnect_v.0
            && lv.v_hi <= p.reconnect_v.1
            && lv.f >= p.reconnect_hz.0
            && lv.f <= p.reconnect_hz.1;
        let mut held = self.alerts;
        if in_window {
            held &= !(b.uv | b.ov | b.uf | b.of);
        }
        if !lv.outage {
            held &= !b.outage;
        }
        if !dist {
            held &= !b.dist;
        }
        if ac.dc_current_component_a.abs() <= 0.5 * p.dc_current_a {
            held &= !b.dc_i;
        }
        if ac.dc_voltage_component_v.abs() <= 0.5 * p.dc_voltage_v {
            held &= !b.dc_v;
        }
        self.alerts = held | trips;
        self.tripped |= trips != 0;
        self.reconnect(now_s, dt, in_window);
    }

    /// Distribution errors (code 13), manual 6.3's five causes: a voltage on a phase a single-phase
    /// unit does not use, a lost phase, negative rotation, wiring that disagrees with the
    /// configuration, an AC short circuit. `present`: configured phases with a voltage.
    #[inline(always)] // one call site: the step it was split from stays one function
    fn distribution_error(&self, ac: &AcMeasurements, present: usize) -> bool {
        let stray_phase = self.phases == Phases::Single
            && ac.phase_v[1..]
                .iter()
                .any(|v| v.is_finite() && *v >= PHASE_ABSENT_V);
        let phase_loss = self.phases == Phases::Three && present > 0 && present < 3;
        let reversed =
            self.phases == Phases::Three && present == 3 && ac.rotation == PhaseRotation::Negative;
        let mismatch = ac.wired_phases != self.phases;
        stray_phase || phase_loss || reversed || mismatch || ac.ac_short_circuit
    }

    /// DC components (codes 7 and 18): the trips of this evaluation, as bits.
    #[inline(always)] // one call site: the step it was split from stays one function
    fn dc_trips(&mut self, dt: f64, ac: &AcMeasurements) -> u32 {
        let p = &self.profile;
        let mut trips = 0;
        let over = |x: f64, lim: f64| (!x.is_nan()).then_some(x.abs() > lim);
        if debounce(
            &mut self.dc_i_n,
            over(ac.dc_current_component_a, p.dc_current_a),
            dt,
            p.dc_current_clear_s,
        ) {
            trips |= self.bits.dc_i;
        }
        if debounce(
            &mut self.dc_v_n,
            over(ac.dc_voltage_component_v, p.dc_voltage_v),
            dt,
            p.dc_voltage_clear_s,
        ) {
            trips |= self.bits.dc_v;
        }
        trips
    }

    /// Voltage and frequency stages (codes 3-6; not meaningful during an outage): the trips of
    /// this evaluation, as bits.
    #[inline(always)] // one call site: the step it was split from stays one function
    fn stage_trips(&mut self, dt: f64, lv: &PhaseLevels) -> u32 {
        let p = &self.profile;
        let b = self.bits;
        if dt != self.avg_dt {
            self.avg_dt = dt;
            for (w, s) in self.avg_w.iter_mut().zip(&p.stages) {
                if let Some(tau) = s.average_s {
                    *w = 1.0 - (-2.0 * dt / tau).exp();
                }
            }
        }
        let mut trips = 0;
        for (i, s) in p.stages.iter().enumerate().take(MAX_STAGES) {
            let instant = match s.quantity {
                Quantity::VoltageHigh => lv.v_hi,
                Quantity::VoltageLow => lv.v_lo,
                Quantity::Frequency => lv.f,
            };
            let value = match s.average_s {
                Some(_) => {
                    // Exponential average, exact for any dt, with time constant T/2: the same
                    // mean age of the data as a T-long moving window (no buffer, no allocation).
                    // The weight 1 - exp(-2 dt / T) is cached per step length (`avg_w`).
                    let a = &mut self.stage_avg[i];
                    if !a.is_finite() || lv.outage {
                        *a = instant;
                    } else {
                        *a += (instant - *a) * self.avg_w[i];
                    }
                    *a
                }
                None => instant,
            };
            // Not meaningful during an outage (counts down); a NaN average holds the count.
            let cond = if lv.outage {
                Some(false)
            } else if value.is_nan() {
                None
            } else if s.above {
                Some(value > s.threshold)
            } else {
                Some(value < s.threshold)
            };
            if debounce(&mut self.stage_n[i], cond, dt, s.clear_s) {
                trips |= match (s.quantity, s.above) {
                    (Quantity::Frequency, true) => b.of,
                    (Quantity::Frequency, false) => b.uf,
                    (_, true) => b.ov,
                    (_, false) => b.uv,
                };
            }
        }
        trips
    }

    /// Ceasing is immediate on any grid code; reconnection needs the window held for reconnect_s
    /// (also at power-on: a unit never exports before it has seen a stable grid); then the ramp.
    #[inline(always)] // one call site: the step it was split from stays one function
    fn reconnect(&mut self, now_s: f64, dt: f64, in_window: bool) {
        if self.alerts != 0 || !in_window {
            if self.alerts != 0 {
                self.connected = false;
                self.ramp = 0.0;
            }
            self.ok_since = f64::NAN;
            if !in_window && !self.connected {
                return;
            }
        } else if self.ok_since.is_nan() {
            self.ok_since = now_s;
        }
        let p = &self.profile;
        if !self.connected && self.ok_since.is_finite() && now_s - self.ok_since >= p.reconnect_s {
            self.connected = true;
            self.tripped = false;
        }
        if self.connected {
            self.ramp = (self.ramp + p.ramp_per_s * dt).min(1.0);
        }
    }

    fn disconnect(&mut self) {
        self.connected = false;
        self.ramp = 0.0;
        self.ok_since = f64::NAN;
    }
}

/// What the configured phases and the frequency read in one evaluation.
#[derive(Debug, Clone, Copy)]
struct PhaseLevels {
    /// Highest phase voltage (a non-finite reading counts as 0), V.
    v_hi: f64,
    /// Lowest present phase voltage (infinite when none is present), V.
    v_lo: f64,
    /// Phases with a voltage (at least `PHASE_ABSENT_V`).
    present: usize,
    f: f64,
    /// No phase present, or no measurable frequency.
    outage: bool,
}

impl PhaseLevels {
    #[inline(always)] // one call site: the step it was split from stays one function
    fn of(phase_v: &[f64], f: f64) -> Self {
        let mut v_hi = 0.0f64;
        let mut v_lo = f64::INFINITY;
        let mut present = 0;
        for &v in phase_v {
            if v.is_finite() && v >= PHASE_ABSENT_V {
                present += 1;
                v_lo = v_lo.min(v);
            }
            v_hi = v_hi.max(if v.is_finite() { v } else { 0.0 });
        }
        let outage = present == 0 || !(f.is_finite() && f > 1.0);
        Self {
            v_hi,
            v_lo,
            present,
            f,
            outage,
        }
    }
}

/// The grid codes' bits, computed once.
#[derive(Debug, Clone, Copy)]
struct GridBits {
    outage: u32,
    uv: u32,
    ov: u32,
    uf: u32,
    of: u32,
    dc_i: u32,
    dist: u32,
    dc_v: u32,
}

impl GridBits {
    fn new() -> Self {
        use crate::codes::bit;
        Self {
            outage: bit(AlertCode::GRID_POWER_OUTAGE),
            uv: bit(AlertCode::GRID_UNDERVOLTAGE),
            ov: bit(AlertCode::GRID_OVERVOLTAGE),
            uf: bit(AlertCode::GRID_UNDERFREQUENCY),
            of: bit(AlertCode::GRID_OVERFREQUENCY),
            dc_i: bit(AlertCode::DC_CURRENT_COMPONENT),
            dist: bit(AlertCode::DISTRIBUTION_ERROR),
            dc_v: bit(AlertCode::DC_VOLTAGE_COMPONENT),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use melv_core::types::Country;

    fn nominal(phases: Phases) -> AcMeasurements {
        AcMeasurements {
            phase_v: match phases {
                Phases::Single => [230.0, 0.0, 0.0],
                Phases::Three => [230.0; 3],
            },
            frequency_hz: 50.0,
            rotation: PhaseRotation::Positive,
            wired_phases: phases,
            dc_current_component_a: 0.0,
            dc_voltage_component_v: 0.0,
            ac_power_w: 0.0,
            ac_short_circuit: false,
        }
    }

    /// Holds the perturbed grid for `secs` at 0.1 s after a minute of nominal grid; returns the
    /// codes and whether the unit is still connected.
    fn check(phases: Phases, f: fn(&mut AcMeasurements), secs: f64, codes: &[u8], connected: bool) {
        let mut g = GridProtection::new(GridProfile::generic(50.0), phases);
        let ok = nominal(phases);
        for k in 0..=600 {
            g.step(f64::from(k) * 0.1, &ok, false);
        }
        assert!(g.connected());
        let mut bad = ok;
        f(&mut bad);
        let n = (secs * 10.0).round() as u32;
        for k in 1..=n {
            g.step(60.0 + f64::from(k) * 0.1, &bad, false);
        }
        let got: Vec<u8> = g.alerts().iter().map(|c| c.get()).collect();
        assert_eq!(
            (got.as_slice(), g.connected()),
            (codes, connected),
            "after {secs} s"
        );
    }

    #[test]
    #[should_panic(expected = "grid profile stages fit the stage table")]
    fn a_profile_with_too_many_stages_is_refused() {
        let mut p = GridProfile::generic(50.0);
        let s = p.stages[0];
        p.stages.resize(MAX_STAGES + 1, s);
        assert!(p.validate().is_err());
        let _ = GridProtection::new(p, Phases::Single);
    }

    #[test]
    fn stages_and_causes() {
        // The first perturbed sample starts each timer, so a trip shows one 0.1 s step after the
        // clearing time (counted from the last healthy sample).
        use Phases::{Single as S, Three as T};
        check(S, |_| {}, 10.0, &[], true);
        check(S, |m| m.phase_v[0] = 250.0, 10.0, &[], true); // inside 176..276
        check(S, |m| m.phase_v[0] = 170.0, 1.9, &[], true);
        check(S, |m| m.phase_v[0] = 170.0, 2.1, &[3], false);
        check(S, |m| m.phase_v[0] = 290.0, 2.1, &[4], false);
        check(S, |m| m.phase_v[0] = 320.0, 0.2, &[4], false); // > 135 %: 0.05 s
        check(S, |m| m.frequency_hz = 44.0, 0.3, &[5], false);
        check(S, |m| m.frequency_hz = 56.0, 0.3, &[6], false);
        check(S, |m| m.phase_v = [0.0; 3], 0.3, &[2], false);
        check(S, |m| m.frequency_hz = 0.0, 0.3, &[2], false);
        check(S, |m| m.dc_current_component_a = -0.3, 0.3, &[7], false);
        check(S, |m| m.dc_voltage_component_v = 1.5, 1.1, &[18], false);
        check(T, |m| m.phase_v[1] = 0.0, 1.1, &[13], false);
        check(
            T,
            |m| m.rotation = PhaseRotation::Negative,
            1.1,
            &[13],
            false,
        );
        check(S, |m| m.wired_phases = Phases::Three, 1.1, &[13], false);
        check(S, |m| m.ac_short_circuit = true, 1.1, &[13], false);
        check(S, |m| m.phase_v[2] = 230.0, 1.1, &[13], false);
        // A NaN reading is not a grid: it never passes the reconnection window either.
        check(S, |m| m.phase_v[0] = f64::NAN, 0.3, &[2], false);
    }

    #[test]
    fn alternating_undervoltage_trips() {
        // 170 V (below the 2 s stage at 176 V) on every other 0.1 s sample: the old timer restarted
        // on every good sample and never tripped.
        let mut g = GridProtection::new(GridProfile::generic(50.0), Phases::Single);
        let ok = nominal(Phases::Single);
        let mut low = ok;
        low.phase_v[0] = 170.0;
        let mut tripped_at = None;
        for k in 0..=600 {
            let t = f64::from(k) * 0.1;
            g.step(t, if k % 2 == 0 { &low } else { &ok }, false);
            if tripped_at.is_none() && g.alerts().iter().any(|c| c.get() == 3) {
                tripped_at = Some(t);
            }
        }
        assert!(tripped_at.is_some_and(|t| t <= 10.0), "3 at {tripped_at:?}");
    }

    #[test]
    fn forming_an_island_holds_code_2_from_the_first_step() {
        // At a 1 h step the unit never sees the outage before it is told to form: the order itself
        // says the utility is gone.
        let mut g = GridProtection::new(GridProfile::generic(50.0), Phases::Single);
        let ok = nominal(Phases::Single);
        g.step(0.0, &ok, false);
        g.step(3600.0, &ok, false);
        assert!(g.alerts().is_empty());
        g.step(7200.0, &ok, true); // its own 230 V
        assert_eq!(
            g.alerts().iter().map(|c| c.get()).collect::<Vec<_>>(),
            vec![2]
        );
        g.step(10_800.0, &ok, false); // the utility is back
        assert!(g.alerts().is_empty());
    }

    #[test]
    fn grid_forming_suspends_the_stages() {
        let mut g = GridProtection::new(GridProfile::for_country(Country::Germany), Phases::Single);
        let mut dead = nominal(Phases::Single);
        dead.phase_v = [0.0; 3];
        dead.frequency_hz = 0.0;
        g.step(0.0, &dead, false);
        g.step(1.0, &dead, false);
        assert_eq!(
            g.alerts().iter().map(|c| c.get()).collect::<Vec<_>>(),
            vec![2]
        );
        for k in 2..100 {
            g.step(f64::from(k), &dead, true);
        }
        assert_eq!(
            g.alerts().iter().map(|c| c.get()).collect::<Vec<_>>(),
            vec![2]
        );
        assert!(!g.connected());
    }
}
