//! Prints the register map as Markdown tables (the table in `docs/modbus.md` is this output).
//!
//! Run: `cargo run -p melv-modbus --example register_table > /tmp/map.md`
//!
//! Every address and size comes from the SunSpec JSON definitions through `SunSpecMap`; the
//! "served" column is what a one-unit site reads after one control cycle.

use melv_core::status::BatteryStatus;
use melv_core::{AlertSet, GridCharging, Lifecycle, Phases, SocLed, StatusLed};
use melv_modbus::model::{Access, PointType, ScaleRef};
use melv_modbus::{Nameplate, SiteSnapshot, SunSpecDevice, WatchdogConfig};

fn main() -> anyhow::Result<()> {
    let mut dev = SunSpecDevice::new(
        Nameplate {
            manufacturer: "ATMOCE".into(),
            model: "M-ELV MS-7K-U".into(),
            serial: "S".into(),
            version: "0".into(),
            batteries: 1,
            phases: Phases::Single,
            nominal_v: 230.0,
            nominal_hz: 50.0,
            grid_charging: GridCharging::Permitted,
        },
        WatchdogConfig::default(),
    )?;
    let b = [BatteryStatus {
        soc: 0.5,
        soh: 1.0,
        pack_v: 26.4,
        pack_current_a: 0.0,
        ac_power_w: 0.0,
        reactive_power_var: 0.0,
        min_cell_v: 3.3,
        max_cell_v: 3.3,
        min_temp_c: 25.0,
        max_temp_c: 25.0,
        max_charge_w: 3750.0,
        max_discharge_w: 4500.0,
        alerts: AlertSet::EMPTY,
        lifecycle: Lifecycle::Active,
        soc_led: SocLed::Off,
        status_led: StatusLed::Off,
        ac_charged_wh: 0.0,
        ac_discharged_wh: 0.0,
    }];
    // Grid services with the EMS's default curves and a droop, so that 705, 706 and 711 show them.
    let mut settings = melv_ems::Settings::self_consumption();
    settings.mode = melv_core::WorkingMode::GridServices;
    settings.grid_services.droop = Some(melv_ems::Droop::default());
    dev.update(
        0.0,
        &SiteSnapshot {
            batteries: &b,
            grid_v: [230.0, 0.0, 0.0],
            frequency_hz: 50.0,
            island: false,
            gateway_alerts: AlertSet::EMPTY,
            reason: melv_ems::Reason::Idle,
            reserve_soc: 0.0,
            meters: melv_modbus::Meters {
                grid_w: [-250.0, f64::NAN, f64::NAN],
                pv_w: Some(1200.0),
                load_w: Some(950.0),
                grid_import_wh: 1000.0,
                grid_export_wh: 2000.0,
                pv_wh: 3000.0,
                load_wh: 2000.0,
            },
            settings: Some(&settings),
        },
    )?;
    let map = dev.map();
    println!("| address | model | point | type | size | units | scale factor | access | served |");
    println!("|---|---|---|---|---|---|---|---|---|");
    println!("| 40000 | - | SunS marker | string | 2 | | | R | `0x5375 0x6E53` |");
    let mut seen: Vec<u16> = Vec::new();
    for m in map.models() {
        // Which instance of its model this is (203 and 802 are served more than once).
        let instance = seen.iter().filter(|id| **id == m.def.id).count();
        seen.push(m.def.id);
        for p in &m.def.points {
            let served = if instance == 0 && SunSpecDevice::is_control_point(m.def.id, &p.name) {
                "**control**".to_string()
            } else if matches!(p.ty, PointType::String) {
                "text".to_string()
            } else if matches!(p.ty, PointType::Pad) {
                "pad".to_string()
            } else {
                match map.get_int((m.def.id, instance), &p.name)? {
                    None => "not implemented".to_string(),
                    Some(v) if p.ty == PointType::Sunssf => format!("`{v}`"),
                    Some(_) => "yes".to_string(),
                }
            };
            let sf = match &p.sf {
                None => String::new(),
                Some(ScaleRef::Point(s)) => s.clone(),
                Some(ScaleRef::Fixed(v)) => v.to_string(),
            };
            let access = if p.access == Access::RW { "RW" } else { "R" };
            println!(
                "| {} | {} | {} | {:?} | {} | {} | {} | {} | {} |",
                m.start + p.offset,
                m.def.id,
                p.name,
                p.ty,
                p.size,
                p.units.as_deref().unwrap_or(""),
                sf,
                access,
                served
            );
        }
    }
    let end = map.base() as usize + map.registers().len() - 2;
    println!("| {end} | - | end model | uint16 | 2 | | | R | `0xFFFF 0` |");
    Ok(())
}
