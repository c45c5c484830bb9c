//! The site's values in SunSpec terms: what every served point reads, from one [`SiteSnapshot`].
//!
//! Signs: SunSpec DER models count active power "positive for DER generation and negative for
//! absorption" (model_701.json, `W`), which is our battery convention (ARCHITECTURE.md 3: positive =
//! discharging). 802 `W` and `A` follow the same sign.

use crate::map::{MapError, ModelKey, SunSpecMap};
use crate::model::METERS;
use melv_core::alerts::{Severity, Source};
use melv_core::status::BatteryStatus;
use melv_core::{spec, AlertCode, AlertSet, GridCharging, Lifecycle, Phases};
use melv_ems::{Decision, Reason, SiteInputs};

/// What the device is, fixed at start-up (model 1 and the ratings of 702, 713, 802, 124).
#[derive(Debug, Clone, PartialEq)]
pub struct Nameplate {
    pub manufacturer: String,
    pub model: String,
    pub serial: String,
    pub version: String,
    /// Number of MS-7K-U units on the site.
    pub batteries: usize,
    pub phases: Phases,
    /// Nominal voltage L-N, V (manual 7.1: 220 or 230 V).
    pub nominal_v: f64,
    /// Nominal grid frequency, Hz (the country's, `melv_core::Country::nominal_frequency_hz`).
    pub nominal_hz: f64,
    /// The site's grid-charging policy (manual 5.1 note): a client may not switch it on where it
    /// is forbidden.
    pub grid_charging: GridCharging,
}

impl Nameplate {
    /// Rated continuous discharge (DER output) power of the site, W (manual 7.1: 4.5 kVA per unit).
    pub fn discharge_w(&self) -> f64 {
        self.batteries as f64 * spec::MAX_CONTINUOUS_OUTPUT_VA
    }
    /// Rated continuous charge power of the site, W (manual 7.1: 3.75 kVA per unit).
    pub fn charge_w(&self) -> f64 {
        self.batteries as f64 * spec::MAX_CONTINUOUS_INPUT_VA
    }
}

/// One control cycle's view of the site, filled by the gateway.
#[derive(Debug, Clone, Copy)]
pub struct SiteSnapshot<'a> {
    /// The units' reports in address order (silent units left out).
    pub batteries: &'a [BatteryStatus],
    /// Grid voltage per phase, V L-N (single phase: `[0]`).
    pub grid_v: [f64; 3],
    pub frequency_hz: f64,
    /// The site is islanded: the batteries form the house's grid.
    pub island: bool,
    /// Alerts the gateway raises itself (EMS decision), added to the units' own.
    pub gateway_alerts: AlertSet,
    /// Why the batteries do what they do this cycle (EMS decision).
    pub reason: Reason,
    /// The owner's backup reserve, 0..=1 (shown while no client overrides it).
    pub reserve_soc: f64,
    /// The site's meters (grid connection, PV, load), shown in the three models 203.
    pub meters: Meters,
    /// The owner's settings in force, for the DER curve models (705, 706, 711); `None`: they read
    /// disabled.
    pub settings: Option<&'a melv_ems::Settings>,
}

/// What the gateway measures at the grid connection, of PV and of the load, for the meter models.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Meters {
    /// Grid power per phase, W, positive = importing (ARCHITECTURE.md 3; SunSpec meters count
    /// import positive too, as evcc's grid meter template reads `203:W`). Unwired phases: NaN.
    pub grid_w: [f64; 3],
    /// PV production, W (>= 0); `None` where the site does not measure it.
    pub pv_w: Option<f64>,
    /// House load, W (>= 0); `None` where the site does not measure it.
    pub load_w: Option<f64>,
    /// Energy counters, Wh, cumulative and never decreasing (the gateway's persisted counters);
    /// NaN where not known.
    pub grid_import_wh: f64,
    pub grid_export_wh: f64,
    pub pv_wh: f64,
    pub load_wh: f64,
}

impl Meters {
    /// Nothing measured.
    pub const UNKNOWN: Self = Self {
        grid_w: [f64::NAN; 3],
        pv_w: None,
        load_w: None,
        grid_import_wh: f64::NAN,
        grid_export_wh: f64::NAN,
        pv_wh: f64::NAN,
        load_wh: f64::NAN,
    };

    /// The powers the controller measured this cycle (no energy counters: the caller adds them).
    pub fn from_inputs(inputs: &SiteInputs) -> Self {
        Self {
            grid_w: inputs.grid_power_w,
            pv_w: inputs.pv_w,
            load_w: inputs.load_w,
            ..Self::UNKNOWN
        }
    }
}

impl<'a> SiteSnapshot<'a> {
    /// The snapshot of one gateway cycle: the units' latest reports, the grid the EMS measured, and
    /// its decision. `reserve_soc` is the owner's reserve (the EMS settings' `reserve_soc`).
    pub fn from_cycle(
        batteries: &'a [BatteryStatus],
        inputs: &SiteInputs,
        decision: &Decision,
        reserve_soc: f64,
    ) -> Self {
        Self {
            batteries,
            grid_v: inputs.grid_v,
            frequency_hz: inputs.frequency_hz,
            island: decision.island,
            gateway_alerts: decision.alerts,
            reason: decision.reason,
            reserve_soc,
            meters: Meters::from_inputs(inputs),
            settings: None,
        }
    }
}

/// Scale factors we publish (powers of ten). Resolution chosen for the values' range: W to 1 W
/// (a site reaches 6 x 5 kVA = 30 kW, inside int16), voltage to 0.1 V, frequency to 0.01 Hz,
/// SOC to 0.1 %, cell voltage to 1 mV (what BMSs resolve), PF to 0.001.
pub(crate) const SCALE_FACTORS: &[(u16, &str, i64)] = &[
    (701, "A_SF", -2),
    (701, "V_SF", -1),
    (701, "Hz_SF", -2),
    (701, "W_SF", 0),
    (701, "PF_SF", -3),
    (701, "VA_SF", 0),
    (701, "Var_SF", 0),
    (701, "TotWh_SF", 0),
    (701, "TotVarh_SF", 0),
    (701, "Tmp_SF", -1),
    (702, "W_SF", 0),
    (702, "PF_SF", -3),
    (702, "VA_SF", 0),
    (702, "Var_SF", 0),
    (702, "V_SF", -1),
    (702, "A_SF", -2),
    (702, "S_SF", 0),
    (704, "PF_SF", -3),
    (704, "WMaxLimPct_SF", 0),
    (704, "WSet_SF", 0),
    (704, "WSetPct_SF", 0),
    (704, "VarSet_SF", 0),
    (704, "VarSetPct_SF", 0),
    (713, "WH_SF", 0),
    (713, "Pct_SF", -1),
    (802, "AHRtg_SF", 0),
    (802, "WHRtg_SF", 0),
    (802, "WChaDisChaMax_SF", 0),
    (802, "DisChaRte_SF", 0),
    (802, "SoC_SF", -1),
    (802, "DoD_SF", -1),
    (802, "SoH_SF", -1),
    (802, "V_SF", -1),
    (802, "CellV_SF", -3),
    (802, "A_SF", -1),
    (802, "AMax_SF", -1),
    (802, "W_SF", 0),
    (124, "WChaMax_SF", 0),
    (124, "WChaDisChaGra_SF", 0),
    (124, "MinRsvPct_SF", 0),
    (124, "ChaState_SF", -1),
    (124, "StorAval_SF", 0),
    (124, "InBatV_SF", -1),
    (124, "InOutWRte_SF", 0),
    // The meters (each instance of 203): W to 1 W, A to 0.01 A, V to 0.1 V, Hz to 0.01 Hz.
    (203, "A_SF", -2),
    (203, "V_SF", -1),
    (203, "Hz_SF", -2),
    (203, "W_SF", 0),
    (203, "TotWh_SF", 0),
    // The DER curves: voltages in 0.1 % of VNom, reactive and active power in 0.1 %, droop
    // dead band in mHz, droop K in 0.001 per unit.
    (705, "V_SF", -1),
    (705, "DeptRef_SF", -1),
    (706, "V_SF", -1),
    (706, "DeptRef_SF", -1),
    (711, "Db_SF", -3),
    (711, "K_SF", -3),
];

/// Writes the static points: scale factors, model 1, ratings.
pub(crate) fn fill_static(map: &mut SunSpecMap, np: &Nameplate) -> Result<(), MapError> {
    for (m, p, v) in SCALE_FACTORS {
        for k in 0..map.models().iter().filter(|x| x.def.id == *m).count() {
            map.set_int((*m, k), p, *v)?;
        }
    }
    map.set_str(1, "Mn", &np.manufacturer)?;
    map.set_str(1, "Md", &np.model)?;
    map.set_str(1, "Opt", "melv")?;
    map.set_str(1, "Vr", &np.version)?;
    map.set_str(1, "SN", &np.serial)?;
    let n = np.batteries as f64;
    let (dis, cha) = (np.discharge_w(), np.charge_w());
    // At the on-grid power-factor limit (manual 7.1: PF 0.8) the reactive share is 0.6 of S.
    let pf = spec::MIN_POWER_FACTOR_ON_GRID;
    let q = dis * (1.0 - pf * pf).sqrt();
    // Output current: manual 7.1's "Max. output current" for the nominal voltage, per unit.
    let amax = spec::MAX_OUTPUT_CURRENT_A
        .iter()
        .find(|(v, _)| (*v - np.nominal_v).abs() < 1.0)
        .map_or(spec::MAX_OUTPUT_VA / np.nominal_v, |(_, a)| *a);
    let ratings: [(&str, &str, f64); 15] = [
        ("WMaxRtg", "WMax", dis),
        ("WOvrExtRtg", "WMaxOvrExt", dis * pf),
        ("WOvrExtRtgPF", "WOvrExtPF", pf),
        ("WUndExtRtg", "WMaxUndExt", dis * pf),
        ("WUndExtRtgPF", "WUndExtPF", pf),
        ("VAMaxRtg", "VAMax", dis),
        ("VarMaxInjRtg", "VarMaxInj", q),
        ("VarMaxAbsRtg", "VarMaxAbs", q),
        ("WChaRteMaxRtg", "WChaRteMax", cha),
        ("WDisChaRteMaxRtg", "WDisChaRteMax", dis),
        ("VAChaRteMaxRtg", "VAChaRteMax", cha),
        ("VADisChaRteMaxRtg", "VADisChaRteMax", dis),
        ("VNomRtg", "VNom", np.nominal_v),
        ("VMaxRtg", "VMax", spec::GRID_VOLTAGE_MAX_V),
        ("VMinRtg", "VMin", spec::GRID_VOLTAGE_MIN_V),
    ];
    for (rtg, set, v) in ratings {
        map.set_scaled(702, rtg, v)?;
        map.set_scaled(702, set, v)?;
    }
    map.set_scaled(702, "AMaxRtg", n * amax)?;
    map.set_scaled(702, "AMax", n * amax)?;
    for p in ["PFOvrExtRtg", "PFUndExtRtg", "PFOvrExt", "PFUndExt"] {
        map.set_scaled(702, p, pf)?;
    }
    map.set_int(
        701,
        "ACType",
        if np.phases == Phases::Three { 2 } else { 0 },
    )?;
    map.set_scaled(713, "WHRtg", n * spec::RATED_ENERGY_WH)?;
    // The bank (first 802), then each unit (one 802 each, a unit's share of the ratings).
    for k in 0..=np.batteries.min(crate::model::MAX_UNITS) {
        let units = if k == 0 { n } else { 1.0 };
        let m = (802, k);
        map.set_scaled(m, "AHRtg", units * spec::NOMINAL_CAPACITY_AH)?;
        map.set_scaled(m, "WHRtg", units * spec::RATED_ENERGY_WH)?;
        map.set_scaled(m, "WChaRteMax", units * spec::MAX_CONTINUOUS_INPUT_VA)?;
        map.set_scaled(m, "WDisChaRteMax", units * spec::MAX_CONTINUOUS_OUTPUT_VA)?;
        // Manual 7.1: depth of discharge 100 %, so the usable window is 0..100 %.
        map.set_scaled(m, "SoCMax", 100.0)?;
        map.set_scaled(m, "SoCMin", 0.0)?;
        map.set_int(m, "Typ", 4)?; // LITHIUM_ION: LFP cells (manual 7.1).
    }
    map.set_int(802, "AlmRst", 0)?;
    map.set_int(802, "CtrlHb", 0)?;
    map.set_scaled(124, "WChaMax", cha)?;
    // Ramp rates: a unit follows a new setpoint within one control cycle, so 100 % of WChaMax per
    // second is the honest figure.
    map.set_int(124, "WChaGra", 100)?;
    map.set_int(124, "WDisChaGra", 100)?;
    for p in [
        "StorCtl_Mod",
        "InOutWRte_RvrtTms",
        "InOutWRte_WinTms",
        "InOutWRte_RmpTms",
    ] {
        map.set_int(124, p, 0)?;
    }
    map.set_int(124, "OutWRte", 100)?;
    map.set_int(124, "InWRte", 100)?;
    for (p, v) in [
        ("WMaxLimPctEna", 0),
        ("WMaxLimPct", 100),
        ("WMaxLimPctRvrtTms", 0),
    ] {
        map.set_int(704, p, v)?;
    }
    for (p, v) in [
        ("WSetEna", 0),
        ("WSetMod", 1),
        ("WSet", 0),
        ("WSetPct", 0),
        ("WSetRvrtTms", 0),
    ] {
        map.set_int(704, p, v)?;
    }
    Ok(())
}

/// Sums and extremes over the reporting units.
struct Bank {
    soc: f64,
    soh: f64,
    ac_w: f64,
    var: f64,
    dc_w: f64,
    current_a: f64,
    pack_v: f64,
    charged_wh: f64,
    discharged_wh: f64,
    max_charge_w: f64,
    max_discharge_w: f64,
    alerts: AlertSet,
    active: usize,
    faulted: bool,
    standby: bool,
}

fn bank(b: &[BatteryStatus], gateway_alerts: AlertSet) -> Bank {
    let n = b.len().max(1) as f64;
    let sum = |f: fn(&BatteryStatus) -> f64| b.iter().map(f).filter(|v| v.is_finite()).sum::<f64>();
    // SOC weighted by each unit's capacity (its SOH), as a bank's SOC is energy over capacity.
    let cap: f64 = sum(|s| s.soh);
    let soc = if cap > 0.0 {
        sum(|s| s.soc * s.soh) / cap
    } else {
        f64::NAN
    };
    Bank {
        soc,
        soh: if b.is_empty() { f64::NAN } else { cap / n },
        ac_w: sum(|s| s.ac_power_w),
        var: sum(|s| s.reactive_power_var),
        dc_w: sum(|s| s.pack_v * s.pack_current_a),
        current_a: sum(|s| s.pack_current_a),
        pack_v: if b.is_empty() {
            f64::NAN
        } else {
            sum(|s| s.pack_v) / n
        },
        charged_wh: sum(|s| s.ac_charged_wh),
        discharged_wh: sum(|s| s.ac_discharged_wh),
        max_charge_w: sum(|s| s.max_charge_w),
        max_discharge_w: sum(|s| s.max_discharge_w),
        alerts: b.iter().fold(gateway_alerts, |a, s| a.union(s.alerts)),
        active: b
            .iter()
            .filter(|s| s.lifecycle == Lifecycle::Active)
            .count(),
        faulted: b
            .iter()
            .any(|s| matches!(s.lifecycle, Lifecycle::Fault | Lifecycle::LatchedFault)),
        standby: b.iter().any(|s| s.lifecycle == Lifecycle::Standby),
    }
}

/// 701 `Alrm` bits for the manual's alert codes (bit numbers from model_701.json's symbols).
fn der_alarms(a: AlertSet) -> i64 {
    let map: [(AlertCode, u32); 8] = [
        (AlertCode::GRID_POWER_OUTAGE, 4),        // GRID_DISCONNECT
        (AlertCode::GRID_UNDERVOLTAGE, 11),       // AC_UNDER_VOLT
        (AlertCode::GRID_OVERVOLTAGE, 10),        // AC_OVER_VOLT
        (AlertCode::GRID_UNDERFREQUENCY, 9),      // UNDER_FREQUENCY
        (AlertCode::GRID_OVERFREQUENCY, 8),       // OVER_FREQUENCY
        (AlertCode::BATTERY_OVERTEMPERATURE, 7),  // OVER_TEMP
        (AlertCode::THERMAL_RUNAWAY, 7),          // OVER_TEMP
        (AlertCode::LOW_BATTERY_TEMPERATURE, 13), // UNDER_TEMP
    ];
    let mut bits = 0i64;
    for c in a.iter() {
        // Anything without a standard bit is a MANUFACTURER_ALRM (16), detailed in MnAlrmInfo.
        bits |= 1 << map.iter().find(|(k, _)| *k == c).map_or(16, |(_, b)| *b);
    }
    bits
}

/// 802 `Evt1` bits (model_802.json's symbols).
fn battery_events(a: AlertSet) -> i64 {
    let map: [(AlertCode, &[u32]); 8] = [
        (AlertCode::COMMUNICATION_LOST, &[0]), // COMMUNICATION_ERROR
        (AlertCode::BATTERY_OVERTEMPERATURE, &[1]), // OVER_TEMP_ALARM
        (AlertCode::LOW_BATTERY_TEMPERATURE, &[3]), // UNDER_TEMP_ALARM
        (AlertCode::BATTERY_OVERCURRENT, &[5, 7]), // OVER_(DIS)CHARGE_CURRENT_ALARM
        (AlertCode::BATTERY_OVERVOLTAGE, &[9]), // OVER_VOLT_ALARM
        (AlertCode::BATTERY_UNDERVOLTAGE, &[11]), // UNDER_VOLT_ALARM
        (AlertCode::CELL_VOLTAGE_DIFFERENCE, &[17]), // VOLTAGE_IMBALANCE_WARNING
        (AlertCode::CELL_TEMPERATURE_DIFFERENCE, &[18]), // TEMPERATURE_IMBALANCE_ALARM
    ];
    let mut bits = 0i64;
    // Grid-protection codes (manual 6.3, codes 2-7, 13, 18) are the inverter's, shown in 701.
    for c in a
        .iter()
        .filter(|c| c.info().source != Source::GridProtection)
    {
        match map.iter().find(|(k, _)| *k == c) {
            Some((_, bs)) => bs.iter().for_each(|b| bits |= 1 << b),
            // OTHER_ALARM (25) or OTHER_WARNING (26) by the code's severity.
            None if c.info().severity == Severity::Warning => bits |= 1 << 26,
            None => bits |= 1 << 25,
        }
    }
    bits
}

/// 701 `ThrotSrc` bit for a reason that limits the power (model_701.json's symbols).
fn throttle_source(r: Reason) -> i64 {
    match r {
        Reason::VoltWatt => 1 << 10,
        Reason::FrequencyWatt | Reason::FrequencyDroop => 1 << 5,
        Reason::ExternalDispatch => 1 << 1, // FIXED_W
        Reason::ExportLimit | Reason::ImportLimit | Reason::PhaseLimit => 1, // MAX_W
        Reason::BatteryLimit | Reason::ReserveReached | Reason::GridChargingForbidden => 1 << 14, // DERATED
        _ => 0,
    }
}

/// The EMS reason as a number (its position in [`Reason::ALL`]), published in 802 `StateVnd`.
pub fn reason_code(r: Reason) -> i64 {
    Reason::ALL
        .iter()
        .position(|x| *x == r)
        .map_or(0xFFFF, |i| i as i64)
}

/// 802/124 `ChaSt` (OFF 1, EMPTY 2, DISCHARGING 3, CHARGING 4, FULL 5, HOLDING 6).
fn charge_status(b: &Bank) -> i64 {
    // 1 W: a meter's resolution, as the EMS's idle threshold.
    if b.active == 0 {
        1
    } else if b.ac_w > 1.0 {
        3
    } else if b.ac_w < -1.0 {
        4
    } else if b.soc >= 0.99 {
        5
    } else if b.soc <= 0.01 {
        2
    } else {
        6
    }
}

/// Current for power `w` at voltage `v`, A; unknown (NaN) without a voltage.
fn amps(w: f64, v: f64) -> f64 {
    if v > 1.0 {
        w / v
    } else {
        f64::NAN
    }
}

/// Writes the measured points of one cycle.
pub(crate) fn fill_dynamic(
    map: &mut SunSpecMap,
    np: &Nameplate,
    s: &SiteSnapshot,
) -> Result<(), MapError> {
    let b = bank(s.batteries, s.gateway_alerts);
    fill_inverter(map, np, s, &b)?;
    fill_storage_713(map, np, &b)?;
    fill_battery(map, (802, 0).into(), s.batteries, s.reason, &b)?;
    for (k, unit) in s.batteries.iter().enumerate().take(np.batteries) {
        let one = std::slice::from_ref(unit);
        let ub = bank(one, AlertSet::EMPTY);
        fill_battery(map, (802, k + 1).into(), one, s.reason, &ub)?;
    }
    fill_storage_124(map, np, s, &b)?;
    fill_meters(map, np, s)?;
    fill_der_curves(map, np, s.settings)
}

/// 705 volt-var, 706 volt-watt, 711 frequency droop: the curves of the owner's grid-services
/// settings, read-only (`ReadOnly` = R; writes answer 02), enabled while the site runs in
/// grid-services mode with that function configured. Voltages are % of the nominal voltage
/// (`VNomPct`); volt-var's reactive power is % of rated apparent power (`DeptRef` VA_MAX_PCT, as
/// `melv_ems::GridServicesSettings::volt_var` defines it), volt-watt's power % of rated output
/// (W_MAX_PCT, its discharge curve). Droop K is the per-unit frequency change for a per-unit power
/// change (model_711.json), so `full_deviation_hz / nominal_hz`.
fn fill_der_curves(
    map: &mut SunSpecMap,
    np: &Nameplate,
    settings: Option<&melv_ems::Settings>,
) -> Result<(), MapError> {
    let gs = settings.map(|s| {
        (
            s.mode == melv_core::WorkingMode::GridServices,
            &s.grid_services,
        )
    });
    let pct_v = |v: f64| v / np.nominal_v * 100.0;
    let curves: [(u16, &str, Option<&melv_ems::Curve>, i64, usize); 2] = [
        (705, "Var", gs.and_then(|(_, g)| g.volt_var.as_ref()), 3, 4),
        (
            706,
            "W",
            gs.and_then(|(_, g)| g.volt_watt.as_ref().map(|vw| &vw.discharge)),
            0,
            2,
        ),
    ];
    for (m, y, curve, dept_ref, npt) in curves {
        let on = gs.is_some_and(|(mode, _)| mode) && curve.is_some();
        map.set_int(m, "Ena", on as i64)?;
        map.set_int(m, "NCrv", 1)?;
        map.set_int(m, "NPt", npt as i64)?;
        map.set_int(m, "Crv.ReadOnly", 1)?;
        map.set_int(m, "Crv.DeptRef", dept_ref)?;
        let pts = curve.map_or(&[][..], |c| &c.0[..]);
        map.set_int(m, "Crv.ActPt", pts.len().min(npt) as i64)?;
        for k in 0..npt {
            let (v, f) = pts.get(k).copied().unwrap_or((f64::NAN, f64::NAN));
            map.set_scaled(m, &format!("Crv.Pt[{k}].V"), pct_v(v))?;
            map.set_scaled(m, &format!("Crv.Pt[{k}].{y}"), f * 100.0)?;
        }
    }
    if map.model(705).is_some() {
        map.set_int(705, "Crv.Pri", 1)?; // REACTIVE
    }
    let droop = gs.and_then(|(_, g)| g.droop);
    map.set_int(
        711,
        "Ena",
        (gs.is_some_and(|(mode, _)| mode) && droop.is_some()) as i64,
    )?;
    map.set_int(711, "NCtl", 1)?;
    map.set_int(711, "Ctl.ReadOnly", 1)?;
    let nominal_hz = np.nominal_hz;
    let (db, k) = droop.map_or((f64::NAN, f64::NAN), |d| {
        (d.deadband_hz, d.full_deviation_hz / nominal_hz)
    });
    for p in ["Ctl.DbOf", "Ctl.DbUf"] {
        map.set_scaled(711, p, db)?;
    }
    for p in ["Ctl.KOf", "Ctl.KUf"] {
        map.set_scaled(711, p, k)?;
    }
    Ok(())
}

/// The three meters (model 203): the grid connection (import positive), PV (production positive,
/// its energy in `TotWhExp`) and the load (consumption positive, its energy in `TotWhImp`).
fn fill_meters(map: &mut SunSpecMap, np: &Nameplate, s: &SiteSnapshot) -> Result<(), MapError> {
    let m = &s.meters;
    let nph = np.phases.count();
    let v_ln: f64 = s.grid_v[..nph].iter().sum::<f64>() / nph as f64;
    let grid_total: f64 = m.grid_w[..nph].iter().sum();
    let pv = m.pv_w.unwrap_or(f64::NAN);
    let load = m.load_w.unwrap_or(f64::NAN);
    let meters: [(f64, [f64; 3], f64, f64); 3] = [
        (grid_total, m.grid_w, m.grid_import_wh, m.grid_export_wh),
        // PV and load are measured as totals: no per-phase split.
        (pv, [f64::NAN; 3], f64::NAN, m.pv_wh),
        (load, [f64::NAN; 3], m.load_wh, f64::NAN),
    ];
    debug_assert_eq!(meters.len(), METERS.len());
    let grid_lost = s.island || s.grid_v[0].is_nan() || s.grid_v[0] <= 1.0;
    for (k, (w, per_phase, imp_wh, exp_wh)) in meters.into_iter().enumerate() {
        let key: ModelKey = (203, k).into();
        map.set_scaled(key, "W", w)?;
        map.set_scaled(key, "A", amps(w.abs(), v_ln))?;
        map.set_scaled(key, "PhV", v_ln)?;
        map.set_scaled(key, "Hz", s.frequency_hz)?;
        for (i, ph) in ["A", "B", "C"].iter().enumerate() {
            let wired = i < nph;
            let pw = if wired { per_phase[i] } else { f64::NAN };
            let v = if wired { s.grid_v[i] } else { f64::NAN };
            map.set_scaled(key, &format!("Wph{ph}"), pw)?;
            map.set_scaled(key, &format!("Aph{ph}"), amps(pw.abs(), v))?;
            map.set_scaled(key, &format!("PhVph{ph}"), v)?;
        }
        map.set_scaled(key, "TotWhImp", imp_wh)?;
        map.set_scaled(key, "TotWhExp", exp_wh)?;
        // M_EVENT_Power_Failure (bit 2) at the grid meter while the grid is gone.
        map.set_int(key, "Evt", if k == 0 && grid_lost { 1 << 2 } else { 0 })?;
    }
    Ok(())
}

/// 701, the DER AC measurements: the bank as one inverter, per phase as equal shares.
fn fill_inverter(
    map: &mut SunSpecMap,
    np: &Nameplate,
    s: &SiteSnapshot,
    b: &Bank,
) -> Result<(), MapError> {
    let nph = np.phases.count();
    let v_ln: f64 = s.grid_v[..nph].iter().sum::<f64>() / nph as f64;
    let va = (b.ac_w * b.ac_w + b.var * b.var).sqrt();
    // PF = |P| / S, 1 at standstill (no displacement without current).
    let pf = if va > 1.0 { b.ac_w.abs() / va } else { 1.0 };
    let on = b.active > 0;
    map.set_int(701, "St", on as i64)?;
    let inv = if b.faulted {
        6
    } else if !on {
        0
    } else if throttle_source(s.reason) != 0 {
        4
    } else if b.ac_w.abs() > 1.0 {
        3
    } else {
        7
    };
    map.set_int(701, "InvSt", inv)?;
    map.set_int(701, "ConnSt", (!s.island && s.grid_v[0] > 1.0) as i64)?;
    map.set_int(701, "Alrm", der_alarms(b.alerts))?;
    map.set_int(701, "DERMode", if s.island { 2 } else { 1 })?;
    map.set_scaled(701, "W", b.ac_w)?;
    map.set_scaled(701, "VA", va)?;
    map.set_scaled(701, "Var", b.var)?;
    map.set_scaled(701, "PF", pf)?;
    map.set_scaled(701, "A", amps(va, v_ln))?;
    map.set_scaled(701, "LNV", v_ln)?;
    let llv = if nph == 3 {
        v_ln * 3f64.sqrt()
    } else {
        f64::NAN
    };
    map.set_scaled(701, "LLV", llv)?;
    map.set_scaled(701, "Hz", s.frequency_hz)?;
    map.set_scaled(701, "TotWhInj", b.discharged_wh)?;
    map.set_scaled(701, "TotWhAbs", b.charged_wh)?;
    let tmax = s
        .batteries
        .iter()
        .map(|x| x.max_temp_c)
        .fold(f64::NAN, f64::max);
    map.set_scaled(701, "TmpCab", tmax)?;
    for (k, ph) in ["L1", "L2", "L3"].iter().enumerate() {
        let wired = k < nph;
        let share = |x: f64| if wired { x / nph as f64 } else { f64::NAN };
        let v = if wired { s.grid_v[k] } else { f64::NAN };
        map.set_scaled(701, &format!("W{ph}"), share(b.ac_w))?;
        map.set_scaled(701, &format!("VA{ph}"), share(va))?;
        map.set_scaled(701, &format!("Var{ph}"), share(b.var))?;
        map.set_scaled(701, &format!("PF{ph}"), if wired { pf } else { f64::NAN })?;
        map.set_scaled(701, &format!("A{ph}"), amps(share(va), v))?;
        map.set_scaled(701, &format!("V{ph}"), v)?;
        map.set_scaled(701, &format!("TotWhInj{ph}"), share(b.discharged_wh))?;
        map.set_scaled(701, &format!("TotWhAbs{ph}"), share(b.charged_wh))?;
    }
    if nph == 3 {
        for p in ["VL1L2", "VL2L3", "VL3L1"] {
            map.set_scaled(701, p, llv)?;
        }
    }
    map.set_int(701, "ThrotSrc", throttle_source(s.reason))?;
    let codes: Vec<String> = b.alerts.iter().map(|c| c.get().to_string()).collect();
    map.set_str(701, "MnAlrmInfo", &codes.join(","))?;

    Ok(())
}

/// 713, DER storage capacity.
fn fill_storage_713(map: &mut SunSpecMap, np: &Nameplate, b: &Bank) -> Result<(), MapError> {
    let rated_wh = np.batteries as f64 * spec::RATED_ENERGY_WH;
    map.set_scaled(713, "WHAvail", b.soc * b.soh * rated_wh)?;
    map.set_scaled(713, "SoC", b.soc * 100.0)?;
    map.set_scaled(713, "SoH", b.soh * 100.0)?;
    let sta = match b.alerts.worst() {
        None => 0,
        Some(Severity::Warning) => 1,
        Some(_) => 2,
    };
    map.set_int(713, "Sta", sta)?;
    Ok(())
}

/// 802, the battery base model: state, events, voltages, currents and limits, of the bank (the
/// first 802, `batteries` all units) or of one unit (`batteries` that unit alone).
fn fill_battery(
    map: &mut SunSpecMap,
    m: ModelKey,
    batteries: &[BatteryStatus],
    reason: Reason,
    b: &Bank,
) -> Result<(), MapError> {
    let on = b.active > 0;
    map.set_scaled(m, "SoC", b.soc * 100.0)?;
    map.set_scaled(m, "SoH", b.soh * 100.0)?;
    map.set_int(m, "ChaSt", charge_status(b))?;
    let hb = map.get_int(m, "Hb")?.unwrap_or(0);
    // "Incremented every second with periodic resets to zero" (model_802.json): one per cycle.
    map.set_int(m, "Hb", (hb + 1) % 0xFFFF)?;
    let state = if b.faulted {
        99
    } else if on {
        if matches!(reason, Reason::ReserveReached | Reason::BatteryEmpty) {
            5 // SOC PROTECTION
        } else {
            3 // CONNECTED
        }
    } else if b.standby {
        4
    } else {
        1
    };
    map.set_int(m, "State", state)?;
    map.set_int(m, "StateVnd", reason_code(reason))?;
    map.set_int(m, "Evt1", battery_events(b.alerts))?;
    map.set_int(m, "Evt2", 0)?;
    map.set_int(m, "EvtVnd1", b.alerts.bits() as i64)?;
    map.set_int(m, "EvtVnd2", 0)?;
    map.set_scaled(m, "V", b.pack_v)?;
    let packs = || batteries.iter().map(|x| x.pack_v);
    map.set_scaled(m, "VMax", packs().fold(f64::NAN, f64::max))?;
    map.set_scaled(m, "VMin", packs().fold(f64::NAN, f64::min))?;
    fill_cell_extremes(map, m, batteries)?;
    map.set_scaled(m, "A", b.current_a)?;
    map.set_scaled(m, "AChaMax", amps(b.max_charge_w, b.pack_v))?;
    map.set_scaled(m, "ADisChaMax", amps(b.max_discharge_w, b.pack_v))?;
    map.set_scaled(m, "W", b.dc_w)?;

    Ok(())
}

/// 802's highest and lowest cell voltage and where they are, unimplemented without a reading.
fn fill_cell_extremes(
    map: &mut SunSpecMap,
    m: ModelKey,
    batteries: &[BatteryStatus],
) -> Result<(), MapError> {
    // The bank names the unit (1-based address) with the extreme; a unit's own 802 names itself.
    let unit_base = m.instance.saturating_sub(1);
    let extreme = |f: fn(&BatteryStatus) -> f64, max: bool| {
        batteries
            .iter()
            .enumerate()
            .map(|(i, x)| (i, f(x)))
            .filter(|(_, v)| v.is_finite())
            .reduce(|a, c| if (c.1 > a.1) == max { c } else { a })
    };
    for (max, v, module, string) in [
        (true, "CellVMax", "CellVMaxMod", "CellVMaxStr"),
        (false, "CellVMin", "CellVMinMod", "CellVMinStr"),
    ] {
        let f: fn(&BatteryStatus) -> f64 = if max {
            |x| x.max_cell_v
        } else {
            |x| x.min_cell_v
        };
        match extreme(f, max) {
            // Module = the unit's address (1-based); each unit is one string of 8 cells.
            Some((i, val)) => {
                map.set_scaled(m, v, val)?;
                map.set_int(m, module, (unit_base + i) as i64 + 1)?;
                map.set_int(m, string, 1)?;
            }
            None => {
                for p in [v, module, string] {
                    map.set_unimplemented(m, p)?;
                }
            }
        }
    }
    Ok(())
}

/// 124, basic storage controls (the readable points).
fn fill_storage_124(
    map: &mut SunSpecMap,
    np: &Nameplate,
    s: &SiteSnapshot,
    b: &Bank,
) -> Result<(), MapError> {
    map.set_scaled(124, "ChaState", b.soc * 100.0)?;
    let usable = (b.soc - s.reserve_soc).max(0.0);
    map.set_scaled(
        124,
        "StorAval",
        usable * b.soh * np.batteries as f64 * spec::NOMINAL_CAPACITY_AH,
    )?;
    map.set_scaled(124, "InBatV", b.pack_v)?;
    map.set_int(124, "ChaSt", charge_status(b))?;
    Ok(())
}
