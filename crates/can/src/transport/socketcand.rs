//! The socketcand ASCII protocol over TCP (raw mode), server and client.
//!
//! socketcand (github.com/linux-can/socketcand, `doc/protocol.md`) exposes a CAN bus over TCP with
//! `< ... >`-delimited ASCII messages. What we speak, and what python-can's `socketcand` interface
//! (`can/interfaces/socketcand/socketcand.py`) needs:
//! * server greets `< hi >`; client `< open can0 >` -> `< ok >`; client `< rawmode >` -> `< ok >`;
//! * server -> client, each bus frame: `< frame 181 1700000000.000000 0102030405060708 >`
//!   (id as 3 hex digits for 11-bit ids, which python-can uses to tell base from extended ids;
//!   data as one run of hex digits, which is what its parser expects);
//! * client -> server: `< send 181 8 1 2 3 4 5 6 7 8 >` (id, length, bytes in hex);
//! * `< echo >` is answered with `< echo >`; an unknown command with `< error unknown command >`.
//!
//! What socketcand itself does with a `send` (`src/state_raw.c`) is the rule here too: a send with
//! an 8-digit id is a 29-bit frame and goes on the bus, and a send it cannot parse is logged on the
//! daemon's side with no reply to the client (python-can's client reads every message from the
//! server as a frame, so an `< error ... >` in the middle of the stream made it raise). Our bus
//! carries 11-bit frames only, so a 29-bit frame is relayed to the other clients as socketcand's
//! `< frame XXXXXXXX ... >` and counted ([`SocketcandServer::foreign_frames`]); our own nodes never
//! see it.
//!
//! python-can reads the greeting and each `< ok >` with one `recv` and compares the whole string,
//! so the server writes those alone and starts streaming frames to a client only
//! [`RAW_SETTLE`] after its `< ok >` to rawmode.
//! A frame sent by one client is put on our bus (returned by the server's `recv`) and relayed to the
//! other clients, as a CAN bus would.

use super::{Transport, TransportError};
use crate::frame::CanFrame;
use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Delay between `< ok >` to rawmode and the first frame to that client.
pub const RAW_SETTLE: Duration = Duration::from_millis(100);
/// Longest message we accept; socketcand's own are under 100 characters.
const MAX_MESSAGE: usize = 512;
/// Frames buffered from clients before the oldest are dropped.
const RX_CAP: usize = 4096;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Take the next complete `< ... >` message out of `buf`, trimmed of its brackets. Garbage before
/// a `<` is dropped; an over-long unterminated message is dropped too (and reported as `Err`).
pub fn next_message(buf: &mut Vec<u8>) -> Result<Option<String>, String> {
    let Some(start) = buf.iter().position(|&b| b == b'<') else {
        buf.clear();
        return Ok(None);
    };
    buf.drain(..start);
    match buf.iter().position(|&b| b == b'>') {
        Some(end) => {
            let msg: Vec<u8> = buf.drain(..=end).collect();
            let text = String::from_utf8_lossy(&msg[1..msg.len() - 1])
                .trim()
                .to_string();
            Ok(Some(text))
        }
        None if buf.len() > MAX_MESSAGE => {
            let bad = String::from_utf8_lossy(&buf[..32]).to_string();
            buf.clear();
            Err(bad)
        }
        None => Ok(None),
    }
}

/// `< frame ID SECS.USECS DATA >` for a frame stamped at `t` (seconds since the Unix epoch).
pub fn format_frame(frame: &CanFrame, t: f64) -> String {
    let data: String = frame.data().iter().map(|b| format!("{b:02X}")).collect();
    format!("< frame {:03X} {:.6} {} >", frame.id(), t, data)
}

/// `< send ID LEN B0 B1 ... >`, the client's way to put a frame on the bus.
pub fn format_send(frame: &CanFrame) -> String {
    let data: Vec<String> = frame.data().iter().map(|b| format!("{b:02X}")).collect();
    format!(
        "< send {:03X} {} {} >",
        frame.id(),
        frame.len(),
        data.join(" ")
    )
}

fn hex_bytes(tokens: &[&str]) -> Option<Vec<u8>> {
    let joined: String = tokens.concat();
    if !joined.len().is_multiple_of(2) {
        // Single-digit bytes ("< send 181 2 1 a >", as python-can writes them) are one token each.
        return tokens
            .iter()
            .map(|t| u8::from_str_radix(t, 16).ok())
            .collect();
    }
    (0..joined.len())
        .step_by(2)
        .map(|i| {
            joined
                .get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect()
}

/// Parse the body of a `send` message (without brackets): `send ID LEN B0 ...`.
pub fn parse_send(msg: &str) -> Result<CanFrame, String> {
    let t: Vec<&str> = msg.split_whitespace().collect();
    let bad = || format!("malformed send {msg:?}");
    if t.len() < 3 || t[0] != "send" {
        return Err(bad());
    }
    let id = u32::from_str_radix(t[1], 16).map_err(|_| bad())?;
    let len = usize::from_str_radix(t[2], 16).map_err(|_| bad())?;
    let bytes: Vec<u8> = t[3..]
        .iter()
        .map(|b| u8::from_str_radix(b, 16))
        .collect::<Result<_, _>>()
        .map_err(|_| bad())?;
    if bytes.len() != len {
        return Err(format!(
            "send {msg:?} declares {len} bytes and carries {}",
            bytes.len()
        ));
    }
    CanFrame::new(id, &bytes).map_err(|e| e.to_string())
}

/// Parse the body of a `frame` message: `frame ID SECS.USECS DATA...`.
pub fn parse_frame(msg: &str) -> Result<CanFrame, String> {
    let t: Vec<&str> = msg.split_whitespace().collect();
    let bad = || format!("malformed frame {msg:?}");
    if t.len() < 3 || t[0] != "frame" {
        return Err(bad());
    }
    let id = u32::from_str_radix(t[1], 16).map_err(|_| bad())?;
    t[2].parse::<f64>().map_err(|_| bad())?;
    let data = hex_bytes(&t[3..]).ok_or_else(bad)?;
    CanFrame::new(id, &data).map_err(|e| e.to_string())
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

struct Client {
    id: u64,
    stream: TcpStream,
    raw_since: Option<Instant>,
}

struct Shared {
    channel: String,
    clients: Mutex<Vec<Client>>,
    rx: Mutex<VecDeque<CanFrame>>,
    cv: Condvar,
    stop: AtomicBool,
    /// 29-bit frames relayed between clients.
    foreign: AtomicU64,
    /// `send` commands that did not parse (socketcand logs them and replies nothing).
    bad_sends: AtomicU64,
}

/// A client's `send` of a 29-bit frame: `send XXXXXXXX LEN B0 ...` with an 8-digit id. Returns the
/// `< frame ... >` line socketcand would write to the other clients.
fn extended_send(msg: &str, t: f64) -> Option<String> {
    let tokens: Vec<&str> = msg.split_whitespace().collect();
    let (id, len) = (tokens.get(1)?, tokens.get(2)?);
    if id.len() != 8 {
        return None;
    }
    let id = u32::from_str_radix(id, 16)
        .ok()
        .filter(|i| *i <= 0x1FFF_FFFF)?;
    let len: usize = len.parse().ok().filter(|l| *l <= 8)?;
    let bytes: Vec<u8> = tokens[3..]
        .iter()
        .map(|b| u8::from_str_radix(b, 16).ok())
        .collect::<Option<_>>()?;
    if bytes.len() != len {
        return None;
    }
    let data: String = bytes.iter().map(|b| format!("{b:02X}")).collect();
    Some(format!("< frame {id:08X} {t:.6} {data} >"))
}

impl Shared {
    fn broadcast(&self, frame: &CanFrame, except: Option<u64>) {
        self.broadcast_line(&format_frame(frame, unix_now()), except);
    }

    fn broadcast_line(&self, line: &str, except: Option<u64>) {
        let now = Instant::now();
        let mut clients = lock(&self.clients);
        // A client whose socket fails is dropped; the others keep going.
        clients.retain_mut(|c| {
            if Some(c.id) == except || c.raw_since.is_none_or(|t| now < t) {
                return true;
            }
            c.stream.write_all(line.as_bytes()).is_ok()
        });
    }

    fn set_raw(&self, id: u64) {
        for c in lock(&self.clients).iter_mut().filter(|c| c.id == id) {
            c.raw_since = Some(Instant::now() + RAW_SETTLE);
        }
    }
}

fn serve_client(shared: Arc<Shared>, mut stream: TcpStream, id: u64) {
    let reply = |s: &mut TcpStream, text: &str| s.write_all(text.as_bytes()).is_ok();
    if !reply(&mut stream, "< hi >") {
        return;
    }
    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
    let mut buf = Vec::new();
    let mut opened = false;
    let mut chunk = [0u8; 1024];
    while !shared.stop.load(Ordering::Relaxed) {
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(_) => break,
        }
        loop {
            let msg = match next_message(&mut buf) {
                Ok(Some(m)) => m,
                Ok(None) => break,
                Err(_) => {
                    reply(&mut stream, "< error message too long >");
                    continue;
                }
            };
            let word = msg.split_whitespace().next().unwrap_or("");
            let ok = match word {
                "open" if msg.split_whitespace().nth(1) == Some(shared.channel.as_str()) => {
                    opened = true;
                    reply(&mut stream, "< ok >")
                }
                "open" => reply(&mut stream, "< error could not open bus >"),
                "rawmode" if opened => {
                    let ok = reply(&mut stream, "< ok >");
                    shared.set_raw(id);
                    ok
                }
                "echo" => reply(&mut stream, "< echo >"),
                "send" if opened => match parse_send(&msg) {
                    Err(_) if extended_send(&msg, 0.0).is_some() => {
                        if let Some(line) = extended_send(&msg, unix_now()) {
                            shared.foreign.fetch_add(1, Ordering::Relaxed);
                            shared.broadcast_line(&line, Some(id));
                        }
                        true
                    }
                    Ok(frame) => {
                        {
                            let mut rx = lock(&shared.rx);
                            if rx.len() >= RX_CAP {
                                rx.pop_front();
                            }
                            rx.push_back(frame);
                        }
                        shared.cv.notify_all();
                        shared.broadcast(&frame, Some(id));
                        true
                    }
                    Err(_) => {
                        // socketcand: "Syntax error in send command" on its own log, no reply.
                        shared.bad_sends.fetch_add(1, Ordering::Relaxed);
                        true
                    }
                },
                _ => reply(&mut stream, "< error unknown command >"),
            };
            if !ok {
                return;
            }
        }
    }
}

/// A socketcand-compatible server: our end of the bus, reachable over TCP.
pub struct SocketcandServer {
    shared: Arc<Shared>,
    local_addr: SocketAddr,
}

impl SocketcandServer {
    /// Listen on `addr` (e.g. `127.0.0.1:29536`, port 0 for any) offering one bus named `channel`.
    pub fn bind(addr: &str, channel: &str) -> Result<Self, TransportError> {
        let listener = TcpListener::bind(addr)
            .map_err(|e| TransportError::io(format!("socketcand: bind {addr}"), e))?;
        let local_addr = listener
            .local_addr()
            .map_err(|e| TransportError::io("socketcand: local address", e))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| TransportError::io("socketcand: listener", e))?;
        let shared = Arc::new(Shared {
            channel: channel.to_string(),
            clients: Mutex::new(Vec::new()),
            rx: Mutex::new(VecDeque::new()),
            cv: Condvar::new(),
            stop: AtomicBool::new(false),
            foreign: AtomicU64::new(0),
            bad_sends: AtomicU64::new(0),
        });
        let acc = Arc::clone(&shared);
        thread::spawn(move || {
            let mut next_id = 0u64;
            while !acc.stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let _ = stream.set_nonblocking(false);
                        let _ = stream.set_nodelay(true);
                        let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
                        next_id += 1;
                        if let Ok(w) = stream.try_clone() {
                            lock(&acc.clients).push(Client {
                                id: next_id,
                                stream: w,
                                raw_since: None,
                            });
                            let s = Arc::clone(&acc);
                            let id = next_id;
                            thread::spawn(move || serve_client(s, stream, id));
                        }
                    }
                    Err(_) => thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        Ok(Self { shared, local_addr })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Clients currently in raw mode and past the settle delay (they receive frames).
    pub fn raw_clients(&self) -> usize {
        let now = Instant::now();
        lock(&self.shared.clients)
            .iter()
            .filter(|c| c.raw_since.is_some_and(|t| now >= t))
            .count()
    }
}

impl SocketcandServer {
    /// 29-bit frames clients sent, relayed to the other clients (never to our nodes).
    pub fn foreign_frames(&self) -> u64 {
        self.shared.foreign.load(Ordering::Relaxed)
    }

    /// `send` commands that did not parse (ignored without a reply, as socketcand does).
    pub fn bad_sends(&self) -> u64 {
        self.shared.bad_sends.load(Ordering::Relaxed)
    }
}

impl Drop for SocketcandServer {
    /// The server going away closes every client's connection at once, as a socketcand daemon
    /// that exits does: clients see the end of the stream.
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        for c in lock(&self.shared.clients).drain(..) {
            let _ = c.stream.shutdown(std::net::Shutdown::Both);
        }
    }
}

impl Transport for SocketcandServer {
    fn send(&mut self, frame: &CanFrame) -> Result<(), TransportError> {
        self.shared.broadcast(frame, None);
        Ok(())
    }

    fn recv(&mut self, timeout: Duration) -> Result<Option<CanFrame>, TransportError> {
        let deadline = Instant::now() + timeout;
        let mut rx = lock(&self.shared.rx);
        loop {
            if let Some(f) = rx.pop_front() {
                return Ok(Some(f));
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            rx = self
                .shared
                .cv
                .wait_timeout(rx, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

/// A socketcand client (raw mode): joins a bus served by socketcand or by [`SocketcandServer`].
pub struct SocketcandClient {
    stream: TcpStream,
    buf: Vec<u8>,
    /// Messages from the server that were neither frames nor expected replies.
    pub unexpected: u64,
}

impl SocketcandClient {
    /// Connect, open `channel` and switch to raw mode.
    pub fn connect(addr: &str, channel: &str) -> Result<Self, TransportError> {
        let stream = TcpStream::connect(addr)
            .map_err(|e| TransportError::io(format!("socketcand: connect {addr}"), e))?;
        let _ = stream.set_nodelay(true);
        let mut c = Self {
            stream,
            buf: Vec::new(),
            unexpected: 0,
        };
        c.expect("hi", "greeting")?;
        c.write(&format!("< open {channel} >"))?;
        c.expect("ok", "open")?;
        c.write("< rawmode >")?;
        c.expect("ok", "rawmode")?;
        Ok(c)
    }

    fn write(&mut self, text: &str) -> Result<(), TransportError> {
        self.stream
            .write_all(text.as_bytes())
            .map_err(|e| TransportError::io("socketcand: write", e))
    }

    fn read_message(&mut self, timeout: Duration) -> Result<Option<String>, TransportError> {
        let deadline = Instant::now() + timeout;
        let mut chunk = [0u8; 4096];
        let mut polled = false;
        loop {
            match next_message(&mut self.buf) {
                Ok(Some(m)) => return Ok(Some(m)),
                Ok(None) => {}
                Err(got) => {
                    return Err(TransportError::Protocol {
                        context: "socketcand: over-long message".into(),
                        got,
                    })
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                // A poll (`recv(Duration::ZERO)`) still takes in what has already arrived.
                if polled {
                    return Ok(None);
                }
                polled = true;
                self.stream
                    .set_nonblocking(true)
                    .map_err(|e| TransportError::io("socketcand: poll", e))?;
                let r = self.stream.read(&mut chunk);
                self.stream
                    .set_nonblocking(false)
                    .map_err(|e| TransportError::io("socketcand: poll", e))?;
                match r {
                    Ok(0) => return Err(TransportError::Closed),
                    Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(None),
                    Err(e) => return Err(TransportError::io("socketcand: read", e)),
                }
                continue;
            }
            self.stream
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .map_err(|e| TransportError::io("socketcand: timeout", e))?;
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err(TransportError::Closed),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Ok(None)
                }
                Err(e) => return Err(TransportError::io("socketcand: read", e)),
            }
        }
    }

    fn expect(&mut self, word: &str, context: &str) -> Result<(), TransportError> {
        match self.read_message(Duration::from_secs(5))? {
            Some(m) if m == word => Ok(()),
            other => Err(TransportError::Protocol {
                context: format!("socketcand: {context}, expected < {word} >"),
                got: other.unwrap_or_else(|| "nothing within 5 s".into()),
            }),
        }
    }
}

impl Transport for SocketcandClient {
    fn send(&mut self, frame: &CanFrame) -> Result<(), TransportError> {
        let line = format_send(frame);
        self.write(&line)
    }

    fn recv(&mut self, timeout: Duration) -> Result<Option<CanFrame>, TransportError> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some(m) = self.read_message(left)? else {
                return Ok(None);
            };
            match parse_frame(&m) {
                Ok(f) => return Ok(Some(f)),
                Err(_) => self.unexpected += 1,
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_cut_out_of_a_stream() {
        let check = |input: &str, expected: &[&str], rest: &str| {
            let mut buf = input.as_bytes().to_vec();
            let mut got = Vec::new();
            while let Ok(Some(m)) = next_message(&mut buf) {
                got.push(m);
            }
            assert_eq!(got, expected, "{input:?}");
            assert_eq!(String::from_utf8_lossy(&buf), rest, "{input:?}");
        };
        check("< hi >", &["hi"], "");
        check(
            "< ok >< frame 181 1.0 01 >",
            &["ok", "frame 181 1.0 01"],
            "",
        );
        check("junk< echo >< fra", &["echo"], "< fra");
        check("no brackets", &[], "");
    }

    #[test]
    fn frames_and_sends_parse_in_both_spellings() {
        let f = CanFrame::new(0x181, &[0x01, 0xAB, 0x00]).unwrap();
        let check = |text: &str,
                     expected: Result<CanFrame, ()>,
                     parse: fn(&str) -> Result<CanFrame, String>| {
            assert_eq!(parse(text).map_err(|_| ()), expected, "{text}");
        };
        check("frame 181 1700000000.000000 01AB00", Ok(f), parse_frame);
        check("frame 181 1.5 01 AB 00", Ok(f), parse_frame);
        check("frame 181 x 01AB00", Err(()), parse_frame);
        check("frame 800 1.0 01", Err(()), parse_frame);
        check("send 181 3 1 ab 0", Ok(f), parse_send);
        check("send 181 3 01 AB 00", Ok(f), parse_send);
        check("send 181 4 01 AB 00", Err(()), parse_send);
        check("send 181 9 1 2 3 4 5 6 7 8 9", Err(()), parse_send);
        check("send zz 1 1", Err(()), parse_send);
        assert_eq!(format_frame(&f, 1.5), "< frame 181 1.500000 01AB00 >");
        assert_eq!(
            parse_send(&format_send(&f)[2..format_send(&f).len() - 2]),
            Ok(f)
        );
    }

    #[test]
    fn our_client_and_server_talk_both_ways() {
        let mut server = SocketcandServer::bind("127.0.0.1:0", "can0").unwrap();
        let addr = server.local_addr().to_string();
        let mut client = SocketcandClient::connect(&addr, "can0").unwrap();
        // The server streams to a client only after the settle delay; wait for it (bounded).
        for _ in 0..100 {
            if server.raw_clients() == 1 {
                break;
            }
            thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(server.raw_clients(), 1);
        let f = CanFrame::new(0x181, &[1, 2, 3, 4, 5, 6, 7, 8]).unwrap();
        server.send(&f).unwrap();
        assert_eq!(client.recv(Duration::from_secs(5)).unwrap(), Some(f));
        let g = CanFrame::new(0x111, &[9, 8]).unwrap();
        client.send(&g).unwrap();
        assert_eq!(server.recv(Duration::from_secs(5)).unwrap(), Some(g));
    }

    fn wait_raw(server: &SocketcandServer, n: usize) {
        // The server streams to a client only after the settle delay; wait for it (bounded).
        for _ in 0..200 {
            if server.raw_clients() == n {
                return;
            }
            thread::sleep(Duration::from_millis(10));
        }
        panic!("{} raw clients, expected {n}", server.raw_clients());
    }

    /// Issue 15: a 29-bit frame from python-can got an `< error ... >` reply, which python-can's
    /// client reads as a frame and crashes on. socketcand puts it on the bus and replies nothing.
    #[test]
    fn a_29_bit_send_is_relayed_without_an_error_reply() {
        let mut server = SocketcandServer::bind("127.0.0.1:0", "can0").unwrap();
        let addr = server.local_addr().to_string();
        let mut a = SocketcandClient::connect(&addr, "can0").unwrap();
        let mut b = SocketcandClient::connect(&addr, "can0").unwrap();
        wait_raw(&server, 2);
        a.write("< send 1FFFFFFF 2 01 AB >").unwrap();
        a.write("< send 181 9 1 >").unwrap(); // malformed: ignored, no reply either
        a.write("< echo >").unwrap();
        // The next thing `a` hears is the echo: no error came before it.
        assert_eq!(
            a.read_message(Duration::from_secs(5)).unwrap().as_deref(),
            Some("echo")
        );
        let m = b.read_message(Duration::from_secs(5)).unwrap().unwrap();
        assert!(m.starts_with("frame 1FFFFFFF "), "{m}");
        assert!(m.ends_with(" 01AB"), "{m}");
        assert_eq!(server.recv(Duration::from_millis(50)).unwrap(), None);
        assert_eq!((server.foreign_frames(), server.bad_sends()), (1, 1));
        a.write("< frobnicate >").unwrap();
        assert_eq!(
            a.read_message(Duration::from_secs(5)).unwrap().as_deref(),
            Some("error unknown command")
        );
    }

    /// A server that goes away ends its clients' streams: they see `Closed`, not silence.
    #[test]
    fn a_dropped_server_closes_its_clients() {
        let server = SocketcandServer::bind("127.0.0.1:0", "can0").unwrap();
        let mut c = SocketcandClient::connect(&server.local_addr().to_string(), "can0").unwrap();
        wait_raw(&server, 1);
        drop(server);
        let mut closed = false;
        for _ in 0..50 {
            match c.recv(Duration::from_millis(100)) {
                Err(TransportError::Closed) | Err(TransportError::Io { .. }) => {
                    closed = true;
                    break;
                }
                _ => {}
            }
        }
        assert!(closed, "the client never saw the server go");
    }

    #[test]
    fn a_wrong_channel_is_refused() {
        let server = SocketcandServer::bind("127.0.0.1:0", "can0").unwrap();
        let err = SocketcandClient::connect(&server.local_addr().to_string(), "vcan9")
            .err()
            .unwrap();
        assert!(err.to_string().contains("open"), "{err}");
    }
}
