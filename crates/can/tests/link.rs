//! The link end to end: battery and gateway nodes, over the codec and the in-process bus.

use melv_can::confinement::SplitMix64;
use melv_can::frame::CanFrame;
use melv_can::gateway::{GatewayNode, Supervision, SILENCE_TIMEOUT_S};
use melv_can::messages::{MessageKind, UnitIndex};
use melv_can::node::{BatteryEvent, BatteryIdentity, BatteryNode, RxStats, HEARTBEAT_TIMEOUT_S};
use melv_can::repr::{CmdRepr, Message};
use melv_can::topology::{check, Wiring};
use melv_can::transport::inproc::{InProcBus, InProcPort};
use melv_can::transport::Transport;
use melv_core::status::{BatteryCommand, BatteryStatus, UnitRequest};
use melv_core::{AlertCode, AlertSet, Lifecycle, SocLed, StatusLed};
use proptest::prelude::*;
use std::time::Duration;

fn u(n: u8) -> UnitIndex {
    UnitIndex::new(n).unwrap()
}

fn ident() -> BatteryIdentity {
    BatteryIdentity {
        serial: 77,
        firmware: (2, 1, 0),
    }
}

fn status() -> BatteryStatus {
    BatteryStatus {
        soc: 0.6234,
        soh: 0.9712,
        pack_v: 26.43,
        pack_current_a: -88.4,
        ac_power_w: -2150.0,
        reactive_power_var: 300.0,
        min_cell_v: 3.291,
        max_cell_v: 3.318,
        min_temp_c: 18.3,
        max_temp_c: 22.9,
        max_charge_w: 3750.0,
        max_discharge_w: 4500.0,
        alerts: [AlertCode::GRID_OVERVOLTAGE, AlertCode::LOW_SOH]
            .into_iter()
            .collect(),
        lifecycle: Lifecycle::Active,
        soc_led: SocLed::SolidBlue { percent: 62 },
        status_led: StatusLed::Dim,
        ac_charged_wh: 123_456.7,
        ac_discharged_wh: 110_000.2,
    }
}

/// Largest difference between two reports, field by field, in each field's own unit.
fn assert_close(a: &BatteryStatus, b: &BatteryStatus) {
    let pairs = [
        (a.soc, b.soc, 1e-4),
        (a.soh, b.soh, 1e-4),
        (a.pack_v, b.pack_v, 0.005),
        (a.pack_current_a, b.pack_current_a, 0.05),
        (a.ac_power_w, b.ac_power_w, 0.5),
        (a.reactive_power_var, b.reactive_power_var, 0.5),
        (a.min_cell_v, b.min_cell_v, 0.0005),
        (a.max_cell_v, b.max_cell_v, 0.0005),
        (a.min_temp_c, b.min_temp_c, 0.05),
        (a.max_temp_c, b.max_temp_c, 0.05),
        (a.max_charge_w, b.max_charge_w, 0.5),
        (a.max_discharge_w, b.max_discharge_w, 0.5),
        (a.ac_charged_wh, b.ac_charged_wh, 0.05),
        (a.ac_discharged_wh, b.ac_discharged_wh, 0.05),
    ];
    for (i, (x, y, tol)) in pairs.iter().enumerate() {
        assert!((x - y).abs() <= *tol + 1e-9, "field {i}: {x} vs {y}");
    }
    assert_eq!(
        (a.alerts, a.lifecycle, a.soc_led, a.status_led),
        (b.alerts, b.lifecycle, b.soc_led, b.status_led)
    );
}

#[test]
fn a_status_travels_from_battery_to_gateway() {
    let bat = BatteryNode::new(u(4), ident());
    let mut gw = GatewayNode::new(&[u(4)]).unwrap();
    for f in bat.encode_all(&status()).unwrap() {
        assert_eq!(gw.handle_frame(0.0, &f), Ok(Some(u(4))));
    }
    assert!(gw.supervise(0.0).is_empty());
    assert_close(&gw.status(u(4)).unwrap(), &status());
    assert_eq!(gw.identity(u(4)).unwrap().serial, 77);
    assert_eq!(
        gw.stats(),
        RxStats {
            accepted: 6,
            ..Default::default()
        }
    );
}

#[test]
fn each_message_goes_at_its_cycle_time() {
    let mut bat = BatteryNode::new(u(1), ident());
    let mut gw = GatewayNode::new(&[u(1), u(2)]).unwrap();
    let mut counts = std::collections::HashMap::new();
    // 10 s in 10 ms steps (integer steps, so no float drift in the loop itself).
    for step in 0..1000 {
        let now = f64::from(step) * 0.01;
        let mut frames = bat.poll_transmit(now, &status()).unwrap();
        frames.extend(gw.poll_transmit(now, Some(1_700_000_000_000)).unwrap());
        for f in frames {
            *counts
                .entry(Message::parse(&f).unwrap().kind())
                .or_insert(0) += 1;
        }
    }
    let check =
        |k: MessageKind, n: u32| assert_eq!(counts.get(&k).copied().unwrap_or(0), n, "{k:?}");
    check(MessageKind::BatStatus, 100);
    check(MessageKind::BatPower, 100);
    check(MessageKind::BatHealth, 50);
    check(MessageKind::BatCells, 10);
    check(MessageKind::BatEnergy, 10);
    check(MessageKind::BatIdent, 10);
    check(MessageKind::GwCmd, 200);
    check(MessageKind::GwTime, 10);
    check(MessageKind::GwRequest, 0);
}

fn cmd_frame(unit: u8, counter: u8, watts: f64) -> CanFrame {
    Message::Cmd(
        u(unit),
        CmdRepr {
            alive_counter: counter,
            grid_forming: false,
            active_power_w: watts,
            reactive_power_var: 0.0,
        },
    )
    .emit()
    .unwrap()
}

#[test]
fn a_heartbeat_counts_only_when_its_counter_advances() {
    // (counter sequence, which ones are accepted as heartbeats)
    let check = |counters: &[u8], accepted: &[bool]| {
        let mut bat = BatteryNode::new(u(1), ident());
        let got: Vec<bool> = counters
            .iter()
            .map(|&c| {
                matches!(
                    bat.handle_frame(0.0, &cmd_frame(1, c, 100.0)),
                    Some(BatteryEvent::Command(_))
                )
            })
            .collect();
        assert_eq!(got, accepted, "{counters:?}");
    };
    check(&[5, 6, 7], &[true, true, true]);
    check(&[5, 5, 5, 6], &[true, false, false, true]);
    check(&[254, 255, 0, 1], &[true, true, true, true]);
    // Up to 9 lost frames in between are tolerated, more is a jump that resynchronises.
    check(&[1, 11, 30, 31], &[true, true, false, true]);
    check(&[9, 8], &[true, false]);
}

#[test]
fn without_a_valid_heartbeat_the_battery_orders_itself_to_zero_power() {
    let mut bat = BatteryNode::new(u(2), ident());
    assert_eq!(
        bat.command(0.0),
        BatteryCommand::default(),
        "no heartbeat yet"
    );
    bat.handle_frame(0.0, &cmd_frame(2, 1, 1500.0));
    assert_eq!(bat.command(0.5).active_power_w, 1500.0);
    // A frame for another unit is not a heartbeat for this one.
    bat.handle_frame(0.9, &cmd_frame(1, 2, 1500.0));
    // A stuck counter does not extend the deadline.
    bat.handle_frame(0.9, &cmd_frame(2, 1, 1500.0));
    assert_eq!(bat.command(HEARTBEAT_TIMEOUT_S).active_power_w, 1500.0);
    assert_eq!(
        bat.command(HEARTBEAT_TIMEOUT_S + 0.01),
        BatteryCommand::default()
    );
    assert!(!bat.heartbeat_ok(1.2));
    assert_eq!(bat.stats().stale_heartbeats, 1);
}

#[test]
fn a_request_is_repeated_on_the_wire_and_delivered_once() {
    let mut gw = GatewayNode::new(&[u(3)]).unwrap();
    let mut bat = BatteryNode::new(u(3), ident());
    gw.request(u(3), UnitRequest::Shutdown).unwrap();
    let mut on_wire = 0;
    let mut delivered = Vec::new();
    for step in 0..50 {
        let now = f64::from(step) * 0.01;
        for f in gw.poll_transmit(now, None).unwrap() {
            if Message::parse(&f).unwrap().kind() == MessageKind::GwRequest {
                on_wire += 1;
            }
            if let Some(BatteryEvent::Request(r)) = bat.handle_frame(now, &f) {
                delivered.push(r);
            }
        }
    }
    assert_eq!(on_wire, 3);
    assert_eq!(delivered, vec![UnitRequest::Shutdown]);
    // A second request gets a new sequence number and is delivered too.
    gw.request(u(3), UnitRequest::PowerOn).unwrap();
    let f = gw.poll_transmit(1.0, None).unwrap();
    let got: Vec<_> = f.iter().filter_map(|f| bat.handle_frame(1.0, f)).collect();
    assert!(
        got.contains(&BatteryEvent::Request(UnitRequest::PowerOn)),
        "{got:?}"
    );
}

/// Every frame of `gw` due at `now` handed to `bat`; the requests it delivers.
fn deliver(gw: &mut GatewayNode, bat: &mut BatteryNode, now: f64) -> Vec<UnitRequest> {
    let mut out = Vec::new();
    for f in gw.poll_transmit(now, None).unwrap() {
        if let Some(BatteryEvent::Request(r)) = bat.handle_frame(now, &f) {
            out.push(r);
        }
    }
    out
}

/// Issue 15: a restarted gateway counts its sequence numbers from 0 again, and its first request
/// (a Shutdown with seq 0) was dropped as a repeat of the seq 0 before the restart. With the boot
/// counter as the session it is executed; the old frames played back are not.
#[test]
fn a_request_after_a_gateway_restart_is_executed_and_a_replay_is_not() {
    let mut bat = BatteryNode::new(u(1), ident());
    let mut gw = GatewayNode::new(&[u(1)]).unwrap().with_session(7);
    gw.request(u(1), UnitRequest::Activate).unwrap();
    let mut recorded = Vec::new();
    let mut delivered = Vec::new();
    for k in 0..5 {
        let now = f64::from(k) * 0.1;
        for f in gw.poll_transmit(now, None).unwrap() {
            if Message::parse(&f).unwrap().kind() == MessageKind::GwRequest {
                recorded.push(f);
            }
            if let Some(BatteryEvent::Request(r)) = bat.handle_frame(now, &f) {
                delivered.push(r);
            }
        }
    }
    assert_eq!(delivered, vec![UnitRequest::Activate]);
    assert_eq!(recorded.len(), 3);
    // The gateway restarts: a new node, sequence numbers from 0 again, the next boot counter.
    let mut gw = GatewayNode::new(&[u(1)]).unwrap().with_session(8);
    gw.request(u(1), UnitRequest::Shutdown).unwrap();
    let got = deliver(&mut gw, &mut bat, 10.0);
    assert_eq!(
        got,
        vec![UnitRequest::Shutdown],
        "the first request after a restart"
    );
    // The Activate recorded before the restart, played back: refused as a replay.
    let before = bat.stats().replayed_requests;
    for f in &recorded {
        assert_eq!(bat.handle_frame(11.0, f), None);
    }
    assert_eq!(bat.stats().replayed_requests, before + 3);
    // Within a session, an older sequence number played back is refused too.
    gw.request(u(1), UnitRequest::PowerOn).unwrap();
    let mut session8 = Vec::new();
    for k in 0..3 {
        let now = 20.0 + f64::from(k) * 0.1;
        session8.extend(gw.poll_transmit(now, None).unwrap());
    }
    let got: Vec<_> = session8
        .iter()
        .filter_map(|f| match bat.handle_frame(21.0, f) {
            Some(BatteryEvent::Request(r)) => Some(r),
            _ => None,
        })
        .collect();
    assert_eq!(got, vec![UnitRequest::PowerOn]);
    let shutdown = Message::Request(
        u(1),
        melv_can::repr::RequestRepr {
            request: UnitRequest::Shutdown,
            seq: 0,
            session: 8,
        },
    )
    .emit()
    .unwrap();
    assert_eq!(bat.handle_frame(22.0, &shutdown), None);
    assert_eq!(bat.stats().replayed_requests, before + 4);
}

#[test]
fn request_history_follows_sessions_and_sequence_numbers() {
    use melv_can::Admission::{New, Repeat, Replay};
    let mut h = melv_can::RequestHistory::default();
    let cases = [
        ((1, 0), New),
        ((1, 0), Repeat),
        ((1, 1), New),
        ((1, 0), Replay),
        ((1, 200), Replay), // more than half the circle ahead: behind
        ((1, 128), New),    // 127 ahead
        ((2, 0), New),      // a new session starts its own sequence
        ((1, 129), Replay), // an earlier session
        ((3, 255), New),
        ((3, 0), New), // the sequence wraps
        ((2, 1), Replay),
    ];
    for ((session, seq), expected) in cases {
        assert_eq!(
            h.admit(session, seq),
            expected,
            "session {session} seq {seq}"
        );
    }
    // Sessions older than the remembered ones are forgotten (a bounded history).
    let mut h = melv_can::RequestHistory::default();
    for s in 0..=melv_can::node::REMEMBERED_SESSIONS as u16 + 1 {
        assert_eq!(h.admit(s, 0), New);
    }
    assert_eq!(h.admit(1, 0), Replay);
    assert_eq!(h.admit(0, 0), New);
}

/// Issue 15: two batteries on one address (both set to unit 2) flipped the site SOC between their
/// reports and went unnoticed. Two serial numbers on one id within the window are a conflict: 63
/// for that unit, with both serials named; one battery alone again clears it.
#[test]
fn a_duplicate_address_is_detected_and_named() {
    let mut gw = GatewayNode::new(&[u(1), u(2)]).unwrap();
    let mut a = BatteryNode::new(
        u(2),
        BatteryIdentity {
            serial: 1111,
            firmware: (1, 0, 0),
        },
    );
    let mut b = BatteryNode::new(
        u(2),
        BatteryIdentity {
            serial: 2222,
            firmware: (1, 0, 0),
        },
    );
    let mut one = BatteryNode::new(u(1), ident());
    let st = status();
    let mut verdicts = Vec::new();
    for k in 0..100 {
        let now = f64::from(k) * 0.1;
        let mut frames = one.poll_transmit(now, &st).unwrap();
        frames.extend(a.poll_transmit(now, &st).unwrap());
        // The second battery on address 2 from 3 s to 6 s.
        if (30..60).contains(&k) {
            frames.extend(b.poll_transmit(now, &st).unwrap());
        }
        for f in &frames {
            gw.handle_frame(now, f).unwrap();
        }
        for v in gw.supervise(now) {
            verdicts.push((k, v));
        }
    }
    assert_eq!(verdicts.len(), 2, "{verdicts:?}");
    let (k_lost, lost) = verdicts[0];
    let (k_back, back) = verdicts[1];
    assert_eq!(lost, Supervision::Lost(u(2)));
    assert_eq!(back, Supervision::Restored(u(2)));
    // Raised at the second source's first BAT_IDENT (3 s), cleared once its last one (5 s) is
    // older than the 3 s window.
    assert_eq!(k_lost, 30);
    assert!((80..=82).contains(&k_back), "{k_back}");
    assert!(gw.conflict(u(1)).is_none());
    // While it stood, the conflict named both serials and the unit carried 63.
    let mut gw2 = GatewayNode::new(&[u(2)]).unwrap();
    for (t, n) in [(0.0, &mut a), (0.5, &mut b)] {
        for f in n.encode_all(&st).unwrap() {
            gw2.handle_frame(t, &f).unwrap();
        }
    }
    gw2.supervise(0.6);
    let c = gw2.conflict(u(2)).expect("a conflict");
    assert_eq!(c.serials, [1111, 2222]);
    assert!(c.to_string().contains("serials 1111 and 2222"), "{c}");
    assert!(gw2
        .alerts(u(2))
        .contains(melv_core::AlertCode::COMMUNICATION_LOST));
    assert_eq!(gw2.conflicts().count(), 1);
}

#[test]
fn gateway_refuses_bad_configuration_and_calls() {
    assert!(GatewayNode::new(&[u(1), u(1)]).is_err());
    let mut gw = GatewayNode::new(&[u(1)]).unwrap();
    assert!(gw.set_command(u(2), BatteryCommand::default()).is_err());
    assert!(gw.request(u(5), UnitRequest::Reset).is_err());
    let nan = BatteryCommand {
        active_power_w: f64::NAN,
        ..Default::default()
    };
    assert!(gw
        .set_command(u(1), nan)
        .unwrap_err()
        .to_string()
        .contains("not a number"));
}

/// A site on the in-process bus: the gateway and its batteries, stepped every 10 ms.
struct Site {
    bus: InProcBus,
    gw: GatewayNode,
    gw_port: InProcPort,
    bats: Vec<(BatteryNode, InProcPort)>,
    events: Vec<(f64, Supervision)>,
}

impl Site {
    fn new(units: &[u8]) -> Self {
        let bus = InProcBus::new();
        let idx: Vec<UnitIndex> = units.iter().map(|&n| u(n)).collect();
        Site {
            gw: GatewayNode::new(&idx).unwrap(),
            gw_port: bus.connect(),
            bats: idx
                .iter()
                .map(|&i| (BatteryNode::new(i, ident()), bus.connect()))
                .collect(),
            bus,
            events: Vec::new(),
        }
    }

    fn step(&mut self, now: f64) {
        self.bus.set_time(now);
        // Bus-off is a normal outcome on a bad bus; the frame is lost and counted by the bus.
        for f in self.gw.poll_transmit(now, None).unwrap() {
            let _ = self.gw_port.send(&f);
        }
        for (bat, port) in self.bats.iter_mut() {
            while let Some(f) = port.recv(Duration::ZERO).unwrap() {
                bat.handle_frame(now, &f);
            }
            for f in bat.poll_transmit(now, &status()).unwrap() {
                let _ = port.send(&f);
            }
        }
        while let Some(f) = self.gw_port.recv(Duration::ZERO).unwrap() {
            let _ = self.gw.handle_frame(now, &f);
        }
        for e in self.gw.supervise(now) {
            self.events.push((now, e));
        }
    }

    fn run(&mut self, from_step: u32, to_step: u32) {
        for s in from_step..to_step {
            self.step(f64::from(s) * 0.01);
        }
    }
}

#[test]
fn pulling_one_battery_raises_63_for_that_battery_only_and_clears_it() {
    let mut site = Site::new(&[1, 2]);
    site.run(0, 500);
    assert!(site.events.is_empty(), "{:?}", site.events);
    site.bats[1].1.set_muted(true); // battery 2's cable pulled at t = 5 s
    site.run(500, 800);
    let lost: Vec<_> = site
        .events
        .iter()
        .filter(|(_, e)| matches!(e, Supervision::Lost(_)))
        .collect();
    assert_eq!(lost.len(), 1, "{:?}", site.events);
    let (t, e) = lost[0];
    assert_eq!(*e, Supervision::Lost(u(2)));
    // The last frame was heard just before 5.0 s; the verdict comes within one status cycle of the timeout.
    assert!(
        *t > 4.9 + SILENCE_TIMEOUT_S && *t <= 5.0 + SILENCE_TIMEOUT_S + 0.1,
        "raised at {t}"
    );
    assert!(site.gw.alerts(u(2)).contains(AlertCode::COMMUNICATION_LOST));
    assert!(site
        .gw
        .status(u(2))
        .unwrap()
        .alerts
        .contains(AlertCode::COMMUNICATION_LOST));
    assert!(!site.gw.alerts(u(1)).contains(AlertCode::COMMUNICATION_LOST));
    site.bats[1].1.set_muted(false); // plugged back at t = 8 s
    site.run(800, 900);
    assert_eq!(
        site.events.last().map(|(_, e)| *e),
        Some(Supervision::Restored(u(2)))
    );
    assert!(site.events.last().unwrap().0 <= 8.1);
    assert_eq!(
        site.gw.alerts(u(2)),
        AlertSet::from_iter([AlertCode::GRID_OVERVOLTAGE, AlertCode::LOW_SOH])
    );
}

#[test]
fn a_battery_never_heard_is_reported_after_the_timeout() {
    let mut site = Site::new(&[1]);
    site.gw = GatewayNode::new(&[u(1), u(5)]).unwrap();
    site.run(0, 150);
    assert_eq!(
        site.events.iter().map(|(_, e)| *e).collect::<Vec<_>>(),
        vec![Supervision::Lost(u(5))]
    );
    assert!(site.gw.status(u(5)).is_none());
}

#[test]
fn an_unterminated_bus_silences_every_battery_and_a_proper_one_does_not() {
    let check = |wiring: Wiring, expect_lost: bool| {
        let report = check(&wiring).unwrap();
        let mut site = Site::new(&[1, 2, 3]);
        site.bus.set_error_rate(report.frame_error_rate, 11);
        site.run(0, 300);
        for n in 1..=3 {
            assert_eq!(site.gw.comm_lost(u(n)), expect_lost, "unit {n}, {report:?}");
        }
    };
    check(Wiring::manual_plan(3), false);
    // Missing terminator at the far end only: errors are rare enough for retransmission.
    let mut far_open = Wiring::manual_plan(3);
    far_open.batteries[2].c2_removed = true;
    check(far_open, false);
    // No terminator anywhere: no frame gets through.
    let mut none = Wiring::manual_plan(3);
    none.batteries[2].c2_removed = true;
    none.gateway_terminated = false;
    check(none, true);
}

#[test]
fn the_gateway_counts_every_kind_of_bad_frame() {
    let mut gw = GatewayNode::new(&[u(1)]).unwrap();
    let frames = [
        CanFrame::new(0x7FF, &[0]).unwrap(),       // unknown id
        CanFrame::new(0x181, &[0; 4]).unwrap(),    // wrong length
        CanFrame::new(0x181, &[0xFF; 8]).unwrap(), // SOC 655 %: malformed
        cmd_frame(1, 1, 0.0),                      // our own heartbeat: ignored
        BatteryNode::new(u(3), ident())
            .encode_all(&status())
            .unwrap()[0], // unit 3 not configured
    ];
    for f in frames {
        let _ = gw.handle_frame(0.0, &f);
    }
    let s = gw.stats();
    assert_eq!(
        (
            s.unknown_id,
            s.wrong_length,
            s.malformed,
            s.ignored,
            s.unconfigured_unit,
            s.accepted
        ),
        (1, 1, 1, 1, 1, 0)
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    /// Arbitrary ids, lengths and bytes: never a panic, always counted exactly once.
    #[test]
    fn decoding_arbitrary_frames_never_panics(frames in prop::collection::vec((0u32..0x900, prop::collection::vec(any::<u8>(), 0..=10)), 1..40)) {
        let mut gw = GatewayNode::new(&[u(1), u(2)]).unwrap();
        let mut bat = BatteryNode::new(u(1), ident());
        let mut valid = 0u64;
        for (id, data) in &frames {
            match CanFrame::new(*id, data) {
                Ok(f) => {
                    valid += 1;
                    let _ = Message::parse(&f);
                    let _ = gw.handle_frame(0.0, &f);
                    let _ = bat.handle_frame(0.0, &f);
                }
                Err(e) => prop_assert!(!e.to_string().is_empty()),
            }
        }
        let s = gw.stats();
        prop_assert_eq!(s.accepted + s.ignored + s.errors() + s.unconfigured_unit, valid);
    }

    /// Any report inside the DBC's ranges arrives within one resolution step.
    #[test]
    fn any_report_in_range_round_trips(soc in 0.0..=1.0f64, soh in 0.0..=1.0f64, v in 0.0..40.0f64, i in -3000.0..3000.0f64,
                                       p in -10000.0..10000.0f64, cell in 2.0..4.0f64, t in -40.0..125.0f64, e in 0.0..1e8f64,
                                       bits in any::<u32>(), seed in any::<u64>()) {
        let mut rng = SplitMix64::new(seed);
        // Code 63 is the gateway's verdict (catalogue source: Gateway); a battery's own bit 63 is overridden.
        let mut alerts = AlertSet::from_bits(bits);
        alerts.remove(AlertCode::COMMUNICATION_LOST);
        let st = BatteryStatus { soc, soh, pack_v: v, pack_current_a: i, ac_power_w: p, reactive_power_var: -p,
            min_cell_v: cell, max_cell_v: cell + 0.01, min_temp_c: t, max_temp_c: t, max_charge_w: p.abs(), max_discharge_w: p.abs(),
            alerts, lifecycle: Lifecycle::Fault, soc_led: SocLed::SolidBlue { percent: (rng.next_u64() % 101) as u8 },
            status_led: StatusLed::QuickFlash, ac_charged_wh: e, ac_discharged_wh: e / 2.0 };
        let bat = BatteryNode::new(u(6), ident());
        let mut gw = GatewayNode::new(&[u(6)]).unwrap();
        for f in bat.encode_all(&st).unwrap() {
            prop_assert!(gw.handle_frame(0.0, &f).is_ok());
        }
        assert_close(&gw.status(u(6)).unwrap(), &st);
    }
}
