//! Tests of the register map: layout, encoding, scale factors, round trips.

use crate::map::*;
use crate::model::{standard_models, PointType};

fn map() -> SunSpecMap {
    SunSpecMap::standard(1).expect("standard map")
}

/// Where each model's ID sits, from the JSON lengths: 40002, then + L + 2 each.
#[test]
fn models_follow_the_marker_in_order_and_end_with_the_end_model() {
    let m = map();
    assert_eq!(m.read(40_000, 2).unwrap(), &MARKER);
    let mut addr = 40_002u32;
    // The first seven keep the addresses clients were configured with; the meters and the
    // per-unit batteries follow (one unit here).
    let expected = [
        (1, 66),
        (701, 153),
        (702, 50),
        (704, 65),
        (713, 7),
        (802, 62),
        (124, 24),
        (203, 105),
        (203, 105),
        (203, 105),
        (705, 31),
        (706, 22),
        (711, 22),
        (802, 62),
    ];
    assert_eq!(m.models().len(), expected.len());
    for (p, (id, len)) in m.models().iter().zip(expected) {
        assert_eq!(p.def.id, id);
        assert_eq!(p.start as u32, addr, "model {id}");
        assert_eq!(m.read(p.start, 2).unwrap(), &[id, len]);
        addr += len as u32 + 2;
    }
    assert_eq!(m.read(addr as u16, 2).unwrap(), &END_MODEL);
    assert_eq!(m.registers().len() as u32, addr + 2 - 40_000);
}

fn check_read(addr: u16, count: u16, ok: bool) {
    let m = map();
    assert_eq!(m.read(addr, count).is_ok(), ok, "read {addr}+{count}");
}

#[test]
fn any_read_within_the_map_is_answered() {
    let m = map();
    let c701 = m.model(701).unwrap().start;
    check_read(40_000, 3, true); // "SunS" and model 1's ID, as pysunspec2 scans
    check_read(40_000, 70, true); // marker and all of model 1 (2 + 66 + 2)
    check_read(40_000, 71, true); // into model 701
    check_read(40_000, 125, true); // the largest read, across three models
    check_read(c701 - 1, 2, true); // last register of model 1 and ID of 701
    check_read(c701, 125, true);
    check_read(c701 + 125, 31, true); // past 701's end, into 702
                                      // 125 registers from every start that leaves room for them, and the same data as the image.
    let n = m.registers().len() as u16;
    for start in 40_000..=40_000 + n - 125 {
        let i = (start - 40_000) as usize;
        assert_eq!(m.read(start, 125).unwrap(), &m.registers()[i..i + 125]);
    }
    check_read(40_000 + n - 124, 125, false); // one past the end model
    check_read(39_999, 2, false);
    check_read(0, 1, false);
    let end = 40_000 + m.registers().len() as u16;
    check_read(end - 2, 2, true);
    check_read(end - 2, 3, false);
    check_read(end, 1, false);
    check_read(65_535, 1, false);
    check_read(40_002, 0, false);
    // A read may start inside a multi-register point (clients chunk long models at 125).
    let tot = c701 + m.model(701).unwrap().def.point("TotWhInj").unwrap().offset;
    check_read(tot + 1, 2, true);
}

fn check_write(model: u16, offset: u16, values: &[u16], expected: Result<&[&str], u8>) {
    let m = map();
    let addr = m.model(model).unwrap().start + offset;
    let got = m
        .check_write(addr, values)
        .map(|ws| ws.into_iter().map(|w| w.point).collect::<Vec<_>>())
        .map_err(|e| e.exception());
    let expected = expected.map(|ps| ps.iter().map(|p| p.to_string()).collect::<Vec<_>>());
    assert_eq!(got, expected, "write {model}+{offset} {values:?}");
}

#[test]
fn writes_cover_whole_writable_points() {
    // 124: WChaMax (2), WChaGra (3), WDisChaGra (4), StorCtl_Mod (5)... InWRte (13).
    check_write(
        124,
        2,
        &[1, 2, 3, 4],
        Ok(&["WChaMax", "WChaGra", "WDisChaGra", "StorCtl_Mod"]),
    );
    check_write(124, 13, &[50], Ok(&["InWRte"]));
    check_write(124, 8, &[50], Err(2)); // ChaState is read-only
    check_write(124, 0, &[124], Err(2)); // ID
    check_write(124, 24, &[1, 2, 3], Err(2)); // runs past the model's end
                                              // 704 WSet (int32 at 24): both registers or nothing.
    check_write(704, 24, &[0, 100], Ok(&["WSet"]));
    check_write(704, 24, &[0], Err(2));
    check_write(704, 25, &[100], Err(2));
    check_write(701, 10, &[1], Err(2)); // measured W
    let m = map();
    assert_eq!(m.check_write(40_000, &[1]).unwrap_err().exception(), 2);
}

#[test]
fn every_point_round_trips_through_its_registers() {
    let mut m = map();
    for model in standard_models(1).unwrap() {
        for p in &model.points {
            if p.name == "ID" || p.name == "L" {
                continue;
            }
            match p.ty {
                PointType::String => {
                    let text: String = "ATMOCE-M-ELV-0123456789"
                        .chars()
                        .take(p.size as usize * 2)
                        .collect();
                    m.set_str(model.id, &p.name, &text).unwrap();
                    let regs = {
                        let pl = m.model(model.id).unwrap();
                        m.read(pl.start + p.offset, p.size).unwrap().to_vec()
                    };
                    let bytes: Vec<u8> = regs.iter().flat_map(|r| r.to_be_bytes()).collect();
                    assert!(
                        bytes.starts_with(text.as_bytes()),
                        "{}.{}",
                        model.id,
                        p.name
                    );
                }
                PointType::Pad => {}
                ty => {
                    let (lo, hi) = range(ty);
                    for v in [lo, hi, (lo + hi) / 2, lo.max(-1).min(hi), 7.min(hi)] {
                        if ty == PointType::Acc32 && v == 0 {
                            // An accumulator's 0 is also its "not implemented" (SunSpec).
                            continue;
                        }
                        m.set_int(model.id, &p.name, v).unwrap();
                        assert_eq!(
                            m.get_int(model.id, &p.name).unwrap(),
                            Some(v),
                            "{}.{} = {v}",
                            model.id,
                            p.name
                        );
                    }
                    m.set_unimplemented(model.id, &p.name).unwrap();
                    assert_eq!(
                        m.get_int(model.id, &p.name).unwrap(),
                        None,
                        "{}.{}",
                        model.id,
                        p.name
                    );
                    if let Some(over) = hi.checked_add(1) {
                        assert!(
                            m.set_int(model.id, &p.name, over).is_err(),
                            "{}.{}",
                            model.id,
                            p.name
                        );
                    }
                }
            }
        }
    }
}

fn check_scaled(sf: i64, value: f64, raw: Option<i64>, back: Option<f64>) {
    let mut m = map();
    m.set_int(701, "W_SF", sf).unwrap();
    m.set_scaled(701, "W", value).unwrap();
    assert_eq!(m.get_int(701, "W").unwrap(), raw, "sf {sf}, {value}");
    assert_eq!(m.get_scaled(701, "W").unwrap(), back, "sf {sf}, {value}");
}

#[test]
fn scale_factors_apply_as_powers_of_ten() {
    check_scaled(0, 1234.4, Some(1234), Some(1234.0));
    check_scaled(0, -1234.6, Some(-1235), Some(-1235.0));
    check_scaled(1, 1234.0, Some(123), Some(1230.0));
    check_scaled(-1, 12.34, Some(123), Some(12.3));
    check_scaled(-2, -3.0, Some(-300), Some(-3.0));
    // Out of the int16 range: clamped to the largest implemented value, never "not implemented".
    check_scaled(0, 1e9, Some(0x7FFF), Some(32767.0));
    check_scaled(0, -1e9, Some(-0x7FFF), Some(-32767.0));
    check_scaled(0, f64::NAN, None, None);
    let m = map();
    // An unset scale factor is an error, not a silent 10^0.
    assert!(m.get_scaled(701, "W").is_err());
}

#[test]
fn unknown_points_are_errors() {
    let mut m = map();
    assert!(matches!(
        m.set_int(701, "Nope", 1),
        Err(MapError::UnknownPoint { .. })
    ));
    assert!(matches!(
        m.get_int(9, "W"),
        Err(MapError::UnknownPoint { .. })
    ));
    assert!(m.set_int(701, "St", -1).is_err());
}
