//! One round-trip test per message, and the typed refusals of bad frames.
use melv_can::frame::CanFrame;
use melv_can::messages::UnitIndex;
use melv_can::repr::*;
use melv_core::status::UnitRequest;
use melv_core::{AlertCode, AlertSet, Lifecycle, StatusLed};

fn u(n: u8) -> UnitIndex {
    UnitIndex::new(n).unwrap()
}

/// Emit, parse, compare; then emit again and require the same bytes (the codec is a bijection
/// on values already on the signal grid).
fn check(msg: Message, id: u16, dlc: usize) {
    let frame = msg.emit().unwrap();
    assert_eq!(frame.id(), id, "{msg:?}");
    assert_eq!(frame.len(), dlc, "{msg:?}");
    let back = Message::parse(&frame).unwrap();
    assert_eq!(back, msg);
    assert_eq!(back.emit().unwrap(), frame);
}

#[test]
fn gw_time_round_trips() {
    check(
        Message::Time(TimeRepr {
            unix_time_ms: 1_700_000_000_123,
        }),
        0x100,
        6,
    );
    check(Message::Time(TimeRepr { unix_time_ms: 0 }), 0x100, 6);
}

#[test]
fn gw_cmd_round_trips() {
    let c = |n, active, reactive, gf| CmdRepr {
        alive_counter: n,
        grid_forming: gf,
        active_power_w: active,
        reactive_power_var: reactive,
    };
    check(Message::Cmd(u(1), c(0, 0.0, 0.0, false)), 0x111, 8);
    check(Message::Cmd(u(6), c(255, -3750.0, 1200.0, true)), 0x116, 8);
    check(Message::Cmd(u(3), c(17, 5000.0, -5000.0, false)), 0x113, 8);
}

#[test]
fn gw_request_round_trips() {
    for (i, r) in [
        UnitRequest::Activate,
        UnitRequest::Reset,
        UnitRequest::Shutdown,
        UnitRequest::PowerOn,
    ]
    .into_iter()
    .enumerate()
    {
        check(
            Message::Request(
                u(2),
                RequestRepr {
                    request: r,
                    seq: i as u8 * 60,
                    session: [0, 1, 0x1234, u16::MAX][i],
                },
            ),
            0x122,
            5,
        );
    }
}

#[test]
fn bat_status_round_trips() {
    check(
        Message::Status(
            u(1),
            StatusRepr {
                soc_pct: 55.55,
                pack_v: 26.41,
                pack_current_a: -120.5,
                ac_power_w: -3000.0,
            },
        ),
        0x181,
        8,
    );
    check(
        Message::Status(
            u(6),
            StatusRepr {
                soc_pct: 100.0,
                pack_v: 28.8,
                pack_current_a: 195.3,
                ac_power_w: 5000.0,
            },
        ),
        0x186,
        8,
    );
}

#[test]
fn bat_power_round_trips() {
    let p = |lc, led, soc| PowerRepr {
        reactive_power_var: -1500.0,
        max_charge_w: 3750.0,
        max_discharge_w: 4500.0,
        lifecycle: lc,
        status_led: led,
        soc_led_percent: soc,
    };
    check(
        Message::Power(u(2), p(Lifecycle::Active, StatusLed::Dim, Some(73))),
        0x192,
        8,
    );
    check(
        Message::Power(u(4), p(Lifecycle::LatchedFault, StatusLed::SolidRed, None)),
        0x194,
        8,
    );
    check(
        Message::Power(u(5), p(Lifecycle::Off, StatusLed::Off, Some(0))),
        0x195,
        8,
    );
    check(
        Message::Power(
            u(1),
            p(Lifecycle::Standby, StatusLed::QuickFlash, Some(100)),
        ),
        0x191,
        8,
    );
}

#[test]
fn bat_health_round_trips_every_alert() {
    for code in AlertCode::all() {
        let alerts: AlertSet = [code].into_iter().collect();
        check(
            Message::Health(
                u(3),
                HealthRepr {
                    alerts,
                    soh_pct: 97.5,
                },
            ),
            0x1A3,
            5,
        );
    }
    let all: AlertSet = AlertCode::all().collect();
    check(
        Message::Health(
            u(1),
            HealthRepr {
                alerts: all,
                soh_pct: 100.0,
            },
        ),
        0x1A1,
        5,
    );
    check(
        Message::Health(
            u(1),
            HealthRepr {
                alerts: AlertSet::EMPTY,
                soh_pct: 0.0,
            },
        ),
        0x1A1,
        5,
    );
}

#[test]
fn bat_cells_round_trips() {
    check(
        Message::Cells(
            u(2),
            CellsRepr {
                min_cell_v: 3.201,
                max_cell_v: 3.338,
                min_temp_c: -12.5,
                max_temp_c: 41.2,
            },
        ),
        0x1B2,
        8,
    );
}

#[test]
fn bat_energy_round_trips() {
    check(
        Message::Energy(
            u(2),
            EnergyRepr {
                ac_charged_wh: 1_234_567.8,
                ac_discharged_wh: 0.0,
            },
        ),
        0x1C2,
        8,
    );
    check(
        Message::Energy(
            u(6),
            EnergyRepr {
                ac_charged_wh: 70_000_000.0,
                ac_discharged_wh: 63_000_000.1,
            },
        ),
        0x1C6,
        8,
    );
}

#[test]
fn bat_ident_round_trips() {
    check(
        Message::Ident(
            u(5),
            IdentRepr {
                serial: 2_024_110_042,
                firmware: (1, 4, 12),
                unit_index: u(5),
            },
        ),
        0x1D5,
        8,
    );
}

#[test]
fn bad_frames_get_typed_errors() {
    let check = |id: u32, data: &[u8], expected: ErrorClass| {
        let frame = CanFrame::new(id, data).unwrap();
        let err = Message::parse(&frame).unwrap_err();
        assert_eq!(err.class(), expected, "{frame:?}: {err}");
        assert!(!err.to_string().is_empty());
    };
    check(0x7FF, &[1, 2], ErrorClass::UnknownId);
    check(0x187, &[0; 8], ErrorClass::UnknownId);
    check(0x181, &[0; 7], ErrorClass::WrongLength);
    check(0x1A1, &[0; 8], ErrorClass::WrongLength);
    // SOC raw 0xFFFF = 655.35 %: outside 0..100.
    check(
        0x181,
        &[0xFF, 0xFF, 0, 0, 0, 0, 0, 0],
        ErrorClass::Malformed,
    );
    // Lifecycle 7 is not defined.
    check(0x191, &[0, 0, 0, 0, 0, 0, 0b111, 0], ErrorClass::Malformed);
    // A heartbeat whose CRC does not match.
    check(0x111, &[1, 0, 0, 0, 0, 0, 0, 0], ErrorClass::Malformed);
    // A request code 9.
    let mut req = [9u8, 0, 0, 0, 0];
    req[4] = crc8_j1850(0x121, &req[..4]);
    check(0x121, &req, ErrorClass::Malformed);
    // Ident whose payload claims unit 2 on unit 1's id.
    check(0x1D1, &[0, 0, 0, 0, 1, 0, 0, 2], ErrorClass::Malformed);
}

#[test]
fn a_command_for_one_unit_fails_the_crc_on_another() {
    let f = Message::Cmd(
        u(1),
        CmdRepr {
            alive_counter: 3,
            grid_forming: false,
            active_power_w: 500.0,
            reactive_power_var: 0.0,
        },
    )
    .emit()
    .unwrap();
    let moved = CanFrame::new(0x112, f.data()).unwrap();
    assert!(matches!(
        Message::parse(&moved),
        Err(DecodeError::BadCrc { .. })
    ));
}

#[test]
fn crc8_matches_the_autosar_check_value() {
    // AUTOSAR SWS CRC library, CRC-8 SAE J1850: check value of "123456789" is 0x4B. Our function
    // prefixes the id's low byte, so feed '1' as the id and the rest as data.
    assert_eq!(crc8_j1850(u16::from(b'1'), b"23456789"), 0x4B);
}

#[test]
fn emit_refuses_out_of_range_and_nan() {
    let s = |soc| {
        Message::Status(
            u(1),
            StatusRepr {
                soc_pct: soc,
                pack_v: 26.0,
                pack_current_a: 0.0,
                ac_power_w: 0.0,
            },
        )
    };
    assert!(s(100.0).emit().is_ok());
    assert!(s(100.1).emit().is_err());
    assert!(s(f64::NAN).emit().is_err());
    assert!(s(-0.5).emit().is_err());
}
