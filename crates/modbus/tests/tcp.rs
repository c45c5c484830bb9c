//! The server over real TCP sockets: exception paths, misbehaving clients, arbitrary bytes.
#![allow(
    clippy::disallowed_methods,
    clippy::disallowed_types,
    reason = "tests of the TCP server: they open sockets and wait on deadlines"
)]

use melv_core::{GridCharging, Phases};
use melv_modbus::pdu::{frame_len, handle_adu};
use melv_modbus::server::{serve, Clock, ServerConfig};
use melv_modbus::{Nameplate, SunSpecDevice, WatchdogConfig};
use proptest::prelude::*;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn device() -> SunSpecDevice {
    SunSpecDevice::new(
        Nameplate {
            manufacturer: "ATMOCE".into(),
            model: "M-ELV MS-7K-U".into(),
            serial: "T1".into(),
            version: "0.1.0".into(),
            batteries: 1,
            phases: Phases::Single,
            nominal_v: 230.0,
            nominal_hz: 50.0,
            grid_charging: GridCharging::Permitted,
        },
        WatchdogConfig::default(),
    )
    .expect("device")
}

async fn start() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let clock: Clock = Arc::new(|| 0.0);
    let cfg = ServerConfig {
        unit_id: 3,
        ..ServerConfig::default()
    };
    tokio::spawn(serve(listener, Arc::new(Mutex::new(device())), clock, cfg));
    addr
}

/// An ADU for unit 3 with transaction id 0x1234.
fn adu(unit: u8, pdu: &[u8]) -> Vec<u8> {
    let mut v = vec![0x12, 0x34, 0, 0];
    v.extend_from_slice(&((pdu.len() + 1) as u16).to_be_bytes());
    v.push(unit);
    v.extend_from_slice(pdu);
    v
}

async fn exchange(s: &mut TcpStream, req: &[u8]) -> Vec<u8> {
    s.write_all(req).await.expect("write");
    let mut head = [0u8; 6];
    s.read_exact(&mut head).await.expect("response header");
    let len = u16::from_be_bytes([head[4], head[5]]) as usize;
    let mut rest = vec![0u8; len];
    s.read_exact(&mut rest).await.expect("response body");
    assert_eq!(
        &head[..4],
        &[0x12, 0x34, 0, 0],
        "transaction and protocol echoed"
    );
    rest[1..].to_vec() // the PDU, after the unit id
}

fn read(fc: u8, addr: u16, count: u16) -> Vec<u8> {
    let mut p = vec![fc];
    p.extend_from_slice(&addr.to_be_bytes());
    p.extend_from_slice(&count.to_be_bytes());
    p
}

fn write_multiple(addr: u16, values: &[u16]) -> Vec<u8> {
    let mut p = vec![16];
    p.extend_from_slice(&addr.to_be_bytes());
    p.extend_from_slice(&(values.len() as u16).to_be_bytes());
    p.push((values.len() * 2) as u8);
    for v in values {
        p.extend_from_slice(&v.to_be_bytes());
    }
    p
}

/// Model start addresses of the standard map (from the JSON lengths, see map tests).
const M701: u16 = 40_070;
const M124: u16 = 40_000 + 2 + 68 + 155 + 52 + 67 + 9 + 64;

#[tokio::test]
async fn requests_get_answers_or_the_right_exception() {
    let addr = start().await;
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let dev = device();
    assert_eq!(dev.map().model(124).map(|m| m.start), Some(M124));
    assert_eq!(dev.map().model(701).map(|m| m.start), Some(M701));
    let cases: Vec<(Vec<u8>, Vec<u8>)> = vec![
        // "SunS" and the ID of model 1, by FC 3 and by FC 4.
        (read(3, 40_000, 3), vec![3, 6, 0x53, 0x75, 0x6e, 0x53, 0, 1]),
        (read(4, 40_000, 3), vec![4, 6, 0x53, 0x75, 0x6e, 0x53, 0, 1]),
        // Unknown function codes: 01.
        (read(1, 40_000, 1), vec![0x81, 1]),
        (read(43, 40_000, 1), vec![0xAB, 1]),
        (vec![0x7F], vec![0xFF, 1]),
        // Bad quantities and lengths: 03.
        (read(3, 40_000, 0), vec![0x83, 3]),
        (read(3, 40_000, 126), vec![0x83, 3]),
        (vec![3, 0x9c, 0x40, 0], vec![0x83, 3]),
        (vec![6, 0x9c, 0x40], vec![0x86, 3]),
        (vec![16, 0x9c, 0x40, 0, 2, 3, 0, 0, 0], vec![0x90, 3]),
        // Across a model boundary: answered (model 1's pad, then 701's ID), as real servers do.
        (read(3, M701 - 1, 2), vec![3, 4, 0, 0, 0x02, 0xBD]),
        // Unmapped, past the end: 02.
        (read(3, 30_000, 1), vec![0x83, 2]),
        (read(3, 65_535, 1), vec![0x83, 2]),
        // Read-only point (701 W at +10): 02; a value out of range (124 InWRte at +13): 03.
        (
            vec![6, ((M701 + 10) >> 8) as u8, (M701 + 10) as u8, 0, 5],
            vec![0x86, 2],
        ),
        (write_multiple(M124 + 13, &[200]), vec![0x90, 3]),
        // A good write is echoed (FC 16: address and quantity; FC 6: address and value).
        (write_multiple(M124 + 13, &[50]), {
            let mut v = vec![16];
            v.extend_from_slice(&(M124 + 13).to_be_bytes());
            v.extend_from_slice(&[0, 1]);
            v
        }),
        (vec![6, ((M124 + 5) >> 8) as u8, (M124 + 5) as u8, 0, 1], {
            let mut v = vec![6];
            v.extend_from_slice(&(M124 + 5).to_be_bytes());
            v.extend_from_slice(&[0, 1]);
            v
        }),
        // Read back.
        (read(3, M124 + 13, 1), vec![3, 2, 0, 50]),
    ];
    for (req, expected) in cases {
        let got = exchange(&mut s, &adu(3, &req)).await;
        assert_eq!(got, expected, "request {req:02x?}");
    }
    // 0xFF and 0 reach the device too (Implementation Guide 4.4.2.1).
    for uid in [0xFF, 0] {
        let got = exchange(&mut s, &adu(uid, &read(3, 40_000, 1))).await;
        assert_eq!(got, vec![3, 2, 0x53, 0x75]);
    }
    // Another unit id: 0B, on the same connection.
    assert_eq!(
        exchange(&mut s, &adu(9, &read(3, 40_000, 1))).await,
        vec![0x83, 0x0B]
    );
}

#[tokio::test]
async fn one_misbehaving_client_never_stops_the_others() {
    let addr = start().await;
    let mut good = TcpStream::connect(addr).await.expect("connect");
    // A client with a foreign protocol id is disconnected ...
    let mut bad = TcpStream::connect(addr).await.expect("connect");
    bad.write_all(&[0, 1, 0, 7, 0, 6, 3, 3, 0, 0, 0, 1])
        .await
        .expect("write");
    let mut buf = [0u8; 16];
    assert_eq!(bad.read(&mut buf).await.expect("closed cleanly"), 0);
    // ... one that sends half a frame and stalls holds only its own connection ...
    let mut stalled = TcpStream::connect(addr).await.expect("connect");
    stalled
        .write_all(&[0, 1, 0, 0, 0, 6, 3])
        .await
        .expect("write");
    // ... and one that floods frames of garbage PDUs gets exceptions, not a crash.
    let mut noisy = TcpStream::connect(addr).await.expect("connect");
    for fc in [0u8, 2, 5, 99, 200] {
        let got = exchange(&mut noisy, &adu(3, &[fc, 1, 2, 3])).await;
        assert_eq!(got[0], fc | 0x80);
    }
    let got = exchange(&mut good, &adu(3, &read(3, 40_000, 2))).await;
    assert_eq!(got, vec![3, 4, 0x53, 0x75, 0x6e, 0x53]);
}

#[tokio::test]
async fn arbitrary_byte_streams_leave_the_server_serving() {
    let addr = start().await;
    // A fixed-seed xorshift: the streams are the same on every run.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for _ in 0..32 {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        let mut bytes = Vec::new();
        for _ in 0..300 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            bytes.push(x as u8);
        }
        // Half of the streams start with a plausible header so the PDU parser sees garbage too.
        if x & 1 == 0 {
            bytes[2] = 0;
            bytes[3] = 0;
            bytes[4] = 0;
            bytes[5] = 10;
        }
        let _ = s.write_all(&bytes).await;
        drop(s);
    }
    let mut good = TcpStream::connect(addr).await.expect("connect");
    let got = exchange(&mut good, &adu(3, &read(3, 40_000, 2))).await;
    assert_eq!(got, vec![3, 4, 0x53, 0x75, 0x6e, 0x53]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any bytes: framing and handling never panic, and every answer is a well-formed ADU.
    #[test]
    fn arbitrary_requests_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300),
                                      fc in prop_oneof![Just(3u8), Just(4), Just(6), Just(16), any::<u8>()]) {
        let mut dev = device();
        for input in [bytes.clone(), { let mut v = adu(3, &[fc]); v.extend_from_slice(&bytes); let n = (v.len() - 6).min(254) as u16; v[4..6].copy_from_slice(&n.to_be_bytes()); v }] {
            if let Ok(Some(len)) = frame_len(&input) {
                let out = handle_adu(&mut dev, 3, melv_modbus::ClientId::Local, 0.0, &input[..len]);
                prop_assert!(out.len() >= 8);
                prop_assert_eq!(frame_len(&out), Ok(Some(out.len())));
                prop_assert_eq!(&out[..4], &input[..4]);
            }
        }
    }
}
