//! Tests of the device: what writes are accepted, what they become, and what the site reads as.

use crate::control::{ExternalCommand, WatchdogConfig};
use crate::device::SunSpecDevice;
use crate::values::{reason_code, Nameplate, SiteSnapshot};
use melv_core::status::BatteryStatus;
use melv_core::{AlertCode, AlertSet, GridCharging, Lifecycle, Phases, SocLed, StatusLed};
use melv_ems::Reason;

fn nameplate(grid_charging: GridCharging) -> Nameplate {
    Nameplate {
        manufacturer: "ATMOCE".into(),
        model: "M-ELV MS-7K-U".into(),
        serial: "T1".into(),
        version: "0.1.0".into(),
        batteries: 1,
        phases: Phases::Single,
        nominal_v: 230.0,
        nominal_hz: 50.0,
        grid_charging,
    }
}

fn device() -> SunSpecDevice {
    SunSpecDevice::new(
        nameplate(GridCharging::Permitted),
        WatchdogConfig {
            comm_timeout_s: 60.0,
        },
    )
    .unwrap()
}

fn addr(d: &SunSpecDevice, model: u16, point: &str) -> u16 {
    let m = d.map().model(model).unwrap();
    m.start + m.def.point(point).unwrap().offset
}

/// Writes `values` at `model.point` on a fresh device; the commands it produced, or the exception.
fn check(model: u16, point: &str, values: &[u16], expected: Result<Vec<ExternalCommand>, u8>) {
    check_on(device(), model, point, values, expected)
}

fn check_on(
    mut d: SunSpecDevice,
    model: u16,
    point: &str,
    values: &[u16],
    expected: Result<Vec<ExternalCommand>, u8>,
) {
    let a = addr(&d, model, point);
    d.take_events();
    let got = d
        .write(10.0, a, values)
        .map(|()| {
            d.take_events()
                .into_iter()
                .map(|(_, c)| c)
                .collect::<Vec<_>>()
        })
        .map_err(|e| e.exception());
    assert_eq!(got, expected, "{model}.{point} <- {values:?}");
}

fn rates(charge: Option<f64>, discharge: Option<f64>, revert: Option<f64>) -> ExternalCommand {
    ExternalCommand::StorageRates {
        charge_limit_w: charge,
        discharge_limit_w: discharge,
        revert_after_s: revert,
    }
}

#[test]
fn writes_become_commands() {
    // 124: StorCtl_Mod, VAChaMax, MinRsvPct ... write the mode alone: InWRte reads 100 % at start.
    check(
        124,
        "StorCtl_Mod",
        &[1],
        Ok(vec![rates(Some(3750.0), None, None)]),
    );
    check(
        124,
        "StorCtl_Mod",
        &[2],
        Ok(vec![rates(None, Some(4500.0), None)]),
    );
    check(124, "StorCtl_Mod", &[0], Ok(vec![rates(None, None, None)]));
    // OutWRte, InWRte, WinTms... are contiguous: OutWRte -20 % and InWRte 20 % in one write.
    let mut d = device();
    d.write(0.0, addr(&d, 124, "StorCtl_Mod"), &[3]).unwrap();
    check_on(
        d,
        124,
        "OutWRte",
        &[(-20i16) as u16, 20],
        Ok(vec![rates(Some(750.0), Some(-900.0), None)]),
    );
    check(
        124,
        "InOutWRte_RvrtTms",
        &[30],
        Ok(vec![rates(None, None, Some(30.0))]),
    );
    check(
        124,
        "MinRsvPct",
        &[30],
        Ok(vec![ExternalCommand::Reserve { soc: 0.3 }]),
    );
    check(
        802,
        "SoCRsvMin",
        &[250],
        Ok(vec![ExternalCommand::Reserve { soc: 0.25 }]),
    );
    check(
        124,
        "ChaGriSet",
        &[0],
        Ok(vec![ExternalCommand::GridCharging { allowed: false }]),
    );
    check(
        124,
        "ChaGriSet",
        &[1],
        Ok(vec![ExternalCommand::GridCharging { allowed: true }]),
    );
    check(802, "AlmRst", &[1], Ok(vec![ExternalCommand::ResetAlarms]));
    check(802, "AlmRst", &[0], Ok(vec![]));
    check(802, "CtrlHb", &[7], Ok(vec![ExternalCommand::Heartbeat]));
    // 704: WSetEna, WSetMod, WSet (int32) in one write: -1500 W (charging).
    let w = (-1500i32) as u32;
    check(
        704,
        "WSetEna",
        &[1, 1, (w >> 16) as u16, w as u16],
        Ok(vec![ExternalCommand::Setpoint {
            power_w: Some(-1500.0),
            revert_after_s: None,
        }]),
    );
    check(
        704,
        "WMaxLimPctEna",
        &[1, 40],
        Ok(vec![ExternalCommand::OutputLimit {
            max_w: Some(1800.0),
            revert_after_s: None,
        }]),
    );
}

#[test]
fn the_controller_heartbeat_takes_every_value_and_802_stops_the_battery() {
    use crate::control::InverterState;
    // A client counting CtrlHb up passes 65535 and wraps to 0 (issue 15: 65535 was refused).
    for v in [0u16, 1, 0x7FFF, 0x8000, 0xFFFE, 0xFFFF] {
        check(802, "CtrlHb", &[v], Ok(vec![ExternalCommand::Heartbeat]));
    }
    check(
        802,
        "SetInvState",
        &[1],
        Ok(vec![ExternalCommand::SetInverterState {
            state: InverterState::Stopped,
        }]),
    );
    check(
        802,
        "SetOp",
        &[2],
        Ok(vec![ExternalCommand::SetOperation { connect: false }]),
    );
    // A stop holds the bank at zero power and reads back; STARTED lets it run again.
    let mut d = device();
    let inv = addr(&d, 802, "SetInvState");
    d.write(0.0, inv, &[1]).unwrap();
    let c = d.control();
    assert!(c.stopped && c.min_w == 0.0 && c.max_w == 0.0, "{c:?}");
    assert_eq!(d.map().get_int(802, "SetInvState").unwrap(), Some(1));
    assert_eq!(d.map().get_int(802, "LocRemCtl").unwrap(), Some(0)); // REMOTE
    d.write(1.0, inv, &[3]).unwrap();
    assert!(!d.control().is_active());
    assert_eq!(d.map().get_int(802, "SetInvState").unwrap(), Some(3));
    let op = addr(&d, 802, "SetOp");
    d.write(2.0, op, &[2]).unwrap();
    assert!(d.control().stopped);
    assert_eq!(d.map().get_int(802, "SetOp").unwrap(), Some(2));
    // The per-unit 802s are read-only.
    let unit1 = d.map().instance(802, 1).unwrap();
    let a = unit1.start + unit1.def.point("SetOp").unwrap().offset;
    assert_eq!(d.write(3.0, a, &[1]).map_err(|e| e.exception()), Err(2));
}

#[test]
fn one_client_owns_the_controls_until_its_watchdog_expires() {
    use crate::control::ClientId;
    let ha = ClientId::Peer("192.168.1.10".parse().unwrap());
    let evcc = ClientId::Peer("192.168.1.11".parse().unwrap());
    let mut d = device(); // watchdog 60 s
    let b = [battery(0.5, 0.0, AlertSet::EMPTY)];
    let mode = addr(&d, 124, "StorCtl_Mod");
    let hb = addr(&d, 802, "CtrlHb");
    let exc = |r: Result<(), crate::map::MapError>| r.map_err(|e| e.exception());
    // HA limits charging and so owns the controls; evcc is refused, also its heartbeat.
    assert_eq!(exc(d.write_from(ha, 0.0, mode, &[1])), Ok(()));
    assert_eq!(d.owner(), Some(ha));
    assert_eq!(exc(d.write_from(evcc, 1.0, mode, &[2])), Err(6));
    assert_eq!(exc(d.write_from(evcc, 1.0, hb, &[1])), Err(6));
    // Invalid requests keep their own exception.
    assert_eq!(exc(d.write_from(evcc, 1.0, mode, &[9])), Err(3));
    assert_eq!(d.map().get_int(124, "StorCtl_Mod").unwrap(), Some(1));
    // HA's heartbeat keeps its claim past the first 60 s.
    assert_eq!(exc(d.write_from(ha, 50.0, hb, &[1])), Ok(()));
    d.update(100.0, &snapshot(&b, Reason::Idle)).unwrap();
    assert_eq!(exc(d.write_from(evcc, 100.0, mode, &[2])), Err(6));
    // 60 s after HA's last write its watchdog expires: evcc takes over.
    assert_eq!(exc(d.write_from(evcc, 110.0, mode, &[2])), Ok(()));
    assert_eq!(d.owner(), Some(evcc));
    assert_eq!(exc(d.write_from(ha, 111.0, mode, &[1])), Err(6));
    // evcc hands the site back (nothing in force): the controls are free at once.
    assert_eq!(exc(d.write_from(evcc, 112.0, mode, &[0])), Ok(()));
    assert_eq!(d.owner(), None);
    assert_eq!(exc(d.write_from(ha, 113.0, mode, &[1])), Ok(()));
    assert_eq!(d.owner(), Some(ha));
}

#[test]
fn meters_and_units_read_in_sunspec_units() {
    let mut d = SunSpecDevice::new(
        Nameplate {
            batteries: 2,
            ..nameplate(GridCharging::Permitted)
        },
        WatchdogConfig::default(),
    )
    .unwrap();
    let mut hot = battery(0.7, 1000.0, AlertSet::EMPTY);
    hot.max_cell_v = 3.35;
    let b = [battery(0.5, -500.0, AlertSet::EMPTY), hot];
    let mut snap = snapshot(&b, Reason::Idle);
    snap.meters = crate::values::Meters {
        grid_w: [-1150.0, f64::NAN, f64::NAN],
        pv_w: Some(2000.0),
        load_w: Some(1350.0),
        grid_import_wh: 100.0,
        grid_export_wh: 200.0,
        pv_wh: 300.0,
        load_wh: 400.0,
    };
    d.update(1.0, &snap).unwrap();
    let get = |m: (u16, usize), p: &str| d.map().get_scaled(m, p).unwrap();
    // Grid: export is negative (import positive, as evcc's 203:W reads it).
    assert_eq!(get((203, 0), "W"), Some(-1150.0));
    assert_eq!(get((203, 0), "WphA"), Some(-1150.0));
    assert_eq!(get((203, 0), "WphB"), None); // single phase
    assert_eq!(get((203, 0), "PhV"), Some(230.0));
    assert_eq!(get((203, 0), "Hz"), Some(50.0));
    assert_eq!(get((203, 0), "A"), Some(5.0));
    assert_eq!(get((203, 0), "TotWhImp"), Some(100.0));
    assert_eq!(get((203, 0), "TotWhExp"), Some(200.0));
    assert_eq!(get((203, 1), "W"), Some(2000.0));
    assert_eq!(get((203, 1), "TotWhExp"), Some(300.0));
    assert_eq!(get((203, 2), "W"), Some(1350.0));
    assert_eq!(get((203, 2), "TotWhImp"), Some(400.0));
    // One 802 per unit after the bank's.
    assert_eq!(get((802, 0), "SoC"), Some(60.0));
    assert_eq!(get((802, 1), "SoC"), Some(50.0));
    assert_eq!(get((802, 2), "SoC"), Some(70.0));
    assert_eq!(get((802, 2), "CellVMaxMod"), Some(2.0));
    assert_eq!(get((802, 1), "WHRtg"), Some(7000.0));
    assert_eq!(get((802, 0), "WHRtg"), Some(14000.0));
    assert!(d.map().instance(802, 3).is_none());
    // Unmeasured PV reads "not implemented".
    snap.meters.pv_w = None;
    d.update(2.0, &snap).unwrap();
    assert_eq!(d.map().get_scaled((203, 1), "W").unwrap(), None);
}

#[test]
fn der_curves_show_the_grid_services_settings() {
    let mut d = device();
    let b = [battery(0.5, 0.0, AlertSet::EMPTY)];
    let mut settings = melv_ems::Settings::self_consumption();
    settings.grid_services.droop = Some(melv_ems::Droop::default());
    let mut snap = snapshot(&b, Reason::Idle);
    snap.settings = Some(&settings);
    d.update(1.0, &snap).unwrap();
    let get = |m: u16, p: &str| d.map().get_scaled(m, p).unwrap();
    // Not in grid-services mode: configured but disabled.
    assert_eq!(get(705, "Ena"), Some(0.0));
    // AS/NZS 4777.2 volt-var (the EMS default): 207 V = 90 % of 230 V, +44 % of rated VA.
    assert_eq!(get(705, "Crv.Pt[0].V"), Some(90.0));
    assert_eq!(get(705, "Crv.Pt[0].Var"), Some(44.0));
    assert_eq!(get(705, "Crv.Pt[3].Var"), Some(-60.0));
    assert_eq!(get(705, "Crv.ActPt"), Some(4.0));
    assert_eq!(get(705, "NPt"), Some(4.0));
    // Volt-watt discharge curve: 253 V 100 %, 260 V 20 %.
    assert_eq!(get(706, "Crv.Pt[1].V"), Some(113.0));
    assert_eq!(get(706, "Crv.Pt[1].W"), Some(20.0));
    // Droop: 10 mHz dead band, 0.2 Hz for full power on 50 Hz: K = 0.004.
    assert_eq!(get(711, "Ctl.DbOf"), Some(0.01));
    assert_eq!(get(711, "Ctl.KUf"), Some(0.004));
    settings.mode = melv_core::WorkingMode::GridServices;
    settings.grid_services.volt_var = None;
    let mut snap = snapshot(&b, Reason::Idle);
    snap.settings = Some(&settings);
    d.update(2.0, &snap).unwrap();
    let get = |m: u16, p: &str| d.map().get_scaled(m, p).unwrap();
    assert_eq!(get(705, "Ena"), Some(0.0)); // no volt-var curve
    assert_eq!(get(705, "Crv.Pt[0].V"), None);
    assert_eq!(get(706, "Ena"), Some(1.0));
    assert_eq!(get(711, "Ena"), Some(1.0));
    // Read-only: the curves are the owner's settings.
    let a = addr(&d, 706, "Ena");
    assert_eq!(d.write(3.0, a, &[0]).map_err(|e| e.exception()), Err(2));
}

#[test]
fn bad_writes_get_their_exception_and_change_nothing() {
    check(124, "InWRte", &[101], Err(3));
    check(124, "InWRte", &[(-101i16) as u16], Err(3));
    check(124, "StorCtl_Mod", &[4], Err(3));
    check(124, "ChaGriSet", &[2], Err(3));
    check(124, "MinRsvPct", &[101], Err(3));
    check(704, "WSetEna", &[2], Err(3));
    check(704, "WMaxLimPct", &[0xFFFF], Err(3)); // "not implemented" is not a value
    check(802, "AlmRst", &[2], Err(3));
    // Writable in the model, not implemented by this device.
    check(702, "WMax", &[1000], Err(2));
    check(1, "DA", &[3], Err(2));
    check(124, "WChaMax", &[1000], Err(2));
    check(802, "SetInvState", &[4], Err(3));
    check(802, "SetOp", &[0], Err(3));
    // Read-only.
    check(802, "SoC", &[500], Err(2));
    // Grid charging where the site forbids it (manual 5.1 note).
    let forbidden = SunSpecDevice::new(
        nameplate(GridCharging::Forbidden),
        WatchdogConfig::default(),
    )
    .unwrap();
    check_on(forbidden, 124, "ChaGriSet", &[1], Err(3));
    // All or nothing: a valid StorCtl_Mod with a bad VAChaMax after it stores neither.
    let mut d = device();
    let a = addr(&d, 124, "StorCtl_Mod");
    assert_eq!(d.write(0.0, a, &[1, 5]).map_err(|e| e.exception()), Err(2));
    assert_eq!(d.map().get_int(124, "StorCtl_Mod").unwrap(), Some(0));
    assert!(!d.control().is_active());
}

fn battery(soc: f64, ac_power_w: f64, alerts: AlertSet) -> BatteryStatus {
    BatteryStatus {
        soc,
        soh: 1.0,
        pack_v: 26.4,
        pack_current_a: ac_power_w / 26.4,
        ac_power_w,
        reactive_power_var: 0.0,
        min_cell_v: 3.29,
        max_cell_v: 3.31,
        min_temp_c: 24.0,
        max_temp_c: 26.5,
        max_charge_w: 3750.0,
        max_discharge_w: 4500.0,
        alerts,
        lifecycle: Lifecycle::Active,
        soc_led: SocLed::Off,
        status_led: StatusLed::Off,
        ac_charged_wh: 1234.0,
        ac_discharged_wh: 987.0,
    }
}

fn snapshot<'a>(b: &'a [BatteryStatus], reason: Reason) -> SiteSnapshot<'a> {
    SiteSnapshot {
        batteries: b,
        grid_v: [230.0, 0.0, 0.0],
        frequency_hz: 50.0,
        island: false,
        gateway_alerts: AlertSet::EMPTY,
        reason,
        reserve_soc: 0.1,
        meters: crate::values::Meters::UNKNOWN,
        settings: None,
    }
}

/// Reads `model.point` scaled after an update with `batteries`.
fn check_value(
    batteries: &[BatteryStatus],
    reason: Reason,
    model: u16,
    point: &str,
    expected: Option<f64>,
) {
    let mut d = device();
    d.update(1.0, &snapshot(batteries, reason)).unwrap();
    let got = d.map().get_scaled(model, point).unwrap();
    match (got, expected) {
        (Some(g), Some(e)) => assert!((g - e).abs() < 1e-6, "{model}.{point}: {g} vs {e}"),
        _ => assert_eq!(got, expected, "{model}.{point}"),
    }
}

#[test]
fn the_site_reads_in_sunspec_units() {
    let one = [battery(0.5, -2500.0, AlertSet::EMPTY)];
    let r = Reason::SelfConsumptionCharge;
    check_value(&one, r, 701, "W", Some(-2500.0));
    check_value(&one, r, 701, "Hz", Some(50.0));
    check_value(&one, r, 701, "LNV", Some(230.0));
    check_value(&one, r, 701, "A", Some(10.87));
    check_value(&one, r, 701, "WL2", None); // single phase: L2 not implemented
    check_value(&one, r, 701, "TotWhInj", Some(987.0));
    check_value(&one, r, 701, "TotWhAbs", Some(1234.0));
    check_value(&one, r, 713, "SoC", Some(50.0));
    check_value(&one, r, 713, "WHAvail", Some(3500.0));
    check_value(&one, r, 802, "SoC", Some(50.0));
    check_value(&one, r, 802, "V", Some(26.4));
    check_value(&one, r, 802, "CellVMax", Some(3.31));
    check_value(&one, r, 802, "ChaSt", Some(4.0)); // CHARGING
    check_value(&one, r, 802, "LocRemCtl", Some(1.0)); // LOCAL
    check_value(&one, r, 802, "SoCRsvMin", Some(10.0));
    check_value(&one, r, 124, "MinRsvPct", Some(10.0));
    check_value(&one, r, 124, "StorAval", Some(112.0)); // (0.5 - 0.1) x 280 Ah
    check_value(
        &one,
        Reason::ReserveReached,
        802,
        "StateVnd",
        Some(reason_code(Reason::ReserveReached) as f64),
    );
    check_value(&one, Reason::ReserveReached, 802, "State", Some(5.0)); // SOC PROTECTION
    check_value(&one, r, 702, "WMaxRtg", Some(4500.0));
    check_value(&one, r, 702, "WChaRteMaxRtg", Some(3750.0));
    check_value(&one, r, 802, "AHRtg", Some(280.0));
    check_value(&one, r, 713, "WHRtg", Some(7000.0));
    // Two units: SOC weighted, powers summed, the module with the highest cell named.
    let mut hot = battery(0.7, 1000.0, AlertSet::EMPTY);
    hot.max_cell_v = 3.35;
    let two = [battery(0.5, 1000.0, AlertSet::EMPTY), hot];
    check_value(&two, r, 802, "SoC", Some(60.0));
    check_value(&two, r, 701, "W", Some(2000.0));
    check_value(&two, r, 802, "CellVMaxMod", Some(2.0));
    // No unit reporting: measured values read "not implemented".
    check_value(&[], r, 802, "SoC", None);
    check_value(&[], r, 701, "St", Some(0.0));
}

#[test]
fn alerts_map_to_the_models_alarm_bits() {
    let a: AlertSet = [
        AlertCode::GRID_OVERVOLTAGE,
        AlertCode::LOW_SOH,
        AlertCode::COMMUNICATION_LOST,
    ]
    .into_iter()
    .collect();
    let b = [battery(0.5, 0.0, a)];
    let mut d = device();
    d.update(1.0, &snapshot(&b, Reason::Idle)).unwrap();
    let get = |m: u16, p: &str| d.map().get_int(m, p).unwrap();
    // 701: AC_OVER_VOLT (10) and MANUFACTURER_ALRM (16) for codes 57 and 63.
    assert_eq!(get(701, "Alrm"), Some((1 << 10) | (1 << 16)));
    // 802: COMMUNICATION_ERROR (0) and OTHER_ALARM (25) for low SOH (a fault that stops the unit:
    // manual 6.3 says to stop using the battery, docs/firmware.md).
    assert_eq!(get(802, "Evt1"), Some(1 | (1 << 25)));
    assert_eq!(get(802, "EvtVnd1"), Some(a.bits() as i64));
    // Grid overvoltage stops the unit (a fault, manual 6.3): ERROR.
    assert_eq!(get(713, "Sta"), Some(2));
}

#[test]
fn revert_timers_and_the_watchdog_show_in_the_registers() {
    let b = [battery(0.5, 0.0, AlertSet::EMPTY)];
    let mut d = device();
    let a = addr(&d, 124, "StorCtl_Mod");
    d.write(0.0, addr(&d, 124, "InOutWRte_RvrtTms"), &[5])
        .unwrap();
    d.write(0.0, a, &[1]).unwrap();
    d.update(4.0, &snapshot(&b, Reason::Idle)).unwrap();
    assert_eq!(d.map().get_int(802, "LocRemCtl").unwrap(), Some(0)); // REMOTE
    d.update(5.0, &snapshot(&b, Reason::Idle)).unwrap();
    assert_eq!(d.map().get_int(124, "StorCtl_Mod").unwrap(), Some(0));
    assert_eq!(d.map().get_int(802, "LocRemCtl").unwrap(), Some(1));
    // 704 counts the time down; the watchdog (60 s) ends a control without a timer.
    let w = addr(&d, 704, "WMaxLimPctEna");
    d.write(10.0, addr(&d, 704, "WMaxLimPctRvrtTms"), &[0, 30])
        .unwrap();
    d.write(10.0, w, &[1, 50]).unwrap();
    d.update(20.0, &snapshot(&b, Reason::Idle)).unwrap();
    assert_eq!(d.map().get_int(704, "WMaxLimPctRvrtRem").unwrap(), Some(20));
    d.write(20.0, addr(&d, 124, "MinRsvPct"), &[40]).unwrap();
    d.update(79.0, &snapshot(&b, Reason::Idle)).unwrap();
    assert_eq!(d.control().reserve_soc, Some(0.4));
    d.update(80.0, &snapshot(&b, Reason::Idle)).unwrap();
    assert!(!d.control().is_active());
    assert_eq!(d.map().get_int(704, "WMaxLimPctEna").unwrap(), Some(0));
    assert_eq!(d.map().get_scaled(124, "MinRsvPct").unwrap(), Some(10.0));
}
