//! `melv demo` as a user meets it: start it, sign in as the owner over the JSON API, see a live
//! Normal site with history, change the working mode and see the gateway apply it, stop it with
//! SIGTERM, start it again on the same database and see it go on (time, sequence numbers, settings).

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Liveness bound of every wait: generous for a loaded 2-core machine; the test never measures speed.
const PATIENCE: Duration = Duration::from_secs(180);
const SPEED: &str = "3600";

struct Demo {
    child: Child,
    addr: String,
    stdout: Vec<String>,
    stderr: Arc<Mutex<String>>,
}

impl Demo {
    fn start(db: &str) -> Demo {
        let site = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../examples/self-consumption.toml"
        );
        Self::spawn(
            &[
                "--site",
                site,
                "--speed",
                SPEED,
                "--history-days",
                "1",
                "--database",
                db,
            ],
            None,
        )
    }

    /// `melv demo --listen 127.0.0.1:0 ARGS`, in `cwd` when given; returns once it listens.
    fn spawn(args: &[&str], cwd: Option<&std::path::Path>) -> Demo {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_melv"));
        cmd.args(["demo", "--listen", "127.0.0.1:0"]).args(args);
        if let Some(dir) = cwd {
            cmd.current_dir(dir);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start melv demo");
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err = child.stderr.take().unwrap();
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let (tx, rx) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        // From here the child is killed and reaped on every path (Drop), panics included.
        let mut demo = Demo {
            child,
            addr: String::new(),
            stdout: Vec::new(),
            stderr,
        };
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx.recv_timeout(left).unwrap_or_else(|_| {
                panic!(
                    "no \"listening on\" line; stdout {:?}, stderr {}",
                    demo.stdout,
                    demo.stderr.lock().unwrap()
                )
            });
            demo.stdout.push(line.clone());
            if let Some(url) = line.strip_prefix("melv demo: listening on http://") {
                demo.addr = url.trim().to_string();
                return demo;
            }
        }
    }

    /// SIGTERM (what Ctrl-C's SIGINT also does), then the exit status.
    fn stop(mut self) -> String {
        let pid = self.child.id().to_string();
        let ok = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("run kill");
        assert!(ok.success());
        let deadline = Instant::now() + PATIENCE;
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            assert!(
                Instant::now() < deadline,
                "melv demo did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        // Let the reader thread take the last lines.
        std::thread::sleep(Duration::from_millis(200));
        let err = self.stderr.lock().unwrap().clone();
        assert!(status.success(), "exit {status}: {err}");
        err
    }

    fn call(&self, method: &str, path: &str, token: Option<&str>, body: Option<&Value>) -> Value {
        let (code, v) = http(&self.addr, method, path, token, body);
        assert!(
            (200..300).contains(&code),
            "{method} {path}: {code} {v}; stderr {}",
            self.stderr.lock().unwrap()
        );
        v
    }

    fn sign_in(&self, email: &str, password: &str) -> String {
        let v = self.call(
            "POST",
            "/api/login",
            None,
            Some(&json!({"email": email, "password": password})),
        );
        v["token"].as_str().expect("token").to_string()
    }

    /// Asks `f` until it answers `Some`, within [`PATIENCE`].
    fn wait_for<T>(&self, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(t) = f() {
                return t;
            }
            assert!(
                Instant::now() < deadline,
                "waited in vain for {what}; stderr {}",
                self.stderr.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 request with `Connection: close`; the status and the JSON body (Null if empty).
fn http(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> (u16, Value) {
    let mut s = TcpStream::connect(addr).expect("connect to the demo");
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !body.is_empty() {
        req.push_str("Content-Type: application/json\r\n");
    }
    if let Some(t) = token {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(&body);
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, rest) = text.split_once("\r\n\r\n").expect("HTTP head");
    let code: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status code");
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_string()
    };
    let v = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&body).unwrap_or(Value::String(body))
    };
    (code, v)
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

fn sum(buckets: &Value, field: &str) -> f64 {
    buckets
        .as_array()
        .expect("buckets")
        .iter()
        .map(|b| num(&b[field]))
        .sum()
}

fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Issue 12: an installed `melv demo` runs from any directory, with its built-in example site, and
/// leaves nothing where it ran (its default database lives in a temporary directory of its own).
#[test]
fn the_demo_runs_from_an_empty_directory_and_leaves_it_empty() {
    let dir = std::env::temp_dir().join(format!("melv-demo-cwd-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let demo = Demo::spawn(&["--speed", SPEED, "--history-days", "0.1"], Some(&dir));
    let banner = demo.stdout.join("\n");
    assert!(
        banner.contains("built-in example self-consumption"),
        "{banner}"
    );
    let (code, page) = http(&demo.addr, "GET", "/login", None, None);
    assert_eq!(code, 200, "{page}");
    assert!(page.as_str().unwrap_or("").contains("Sign in"), "{page}");
    demo.stop();
    let left: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        left.is_empty(),
        "melv demo left {left:?} in its working directory"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_demo_runs_a_live_site_that_takes_settings_and_goes_on_after_a_restart() {
    let dir = std::env::temp_dir().join(format!("melv-demo-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let db_path = dir.join("demo.db");
    let db = format!("sqlite://{}", db_path.display());
    let started_ms = wall_ms();

    let demo = Demo::start(&db);
    let banner = demo.stdout.join("\n");
    for want in [
        "owner@example.com",
        "demo-owner",
        "installer@example.com",
        "demo-installer",
        "admin@example.com",
        "demo-admin",
    ] {
        assert!(banner.contains(want), "{want} not in the banner:\n{banner}");
    }
    let token = demo.sign_in("owner@example.com", "demo-owner");
    let sites = demo.call("GET", "/api/sites", Some(&token), None);
    let sites = sites.as_array().expect("site list");
    assert_eq!(sites.len(), 1, "the owner sees the demo site");
    let id = sites[0]["site"]["id"].as_i64().unwrap();
    assert!(banner.contains(&format!("/sites/{id}")), "{banner}");

    // Live and Normal, with telemetry from now on (the site's clock starts at the wall clock).
    let site = demo.call("GET", &format!("/api/sites/{id}"), Some(&token), None);
    assert_eq!(site["status"], "normal", "{site}");
    assert_eq!(site["active"], true);
    let first_seen = site["last_seen_ms"].as_i64().unwrap();
    assert!(
        first_seen >= started_ms - 60_000,
        "{first_seen} vs {started_ms}"
    );
    assert_eq!(site["batteries"].as_array().unwrap().len(), 1, "{site}");
    assert!(site["latest"]["soc"].is_number(), "{site}");
    demo.wait_for("the site to report again", || {
        let s = demo.call("GET", &format!("/api/sites/{id}"), Some(&token), None);
        (s["last_seen_ms"].as_i64().unwrap() > first_seen && s["status"] == "normal").then_some(())
    });

    // A day of history before the live part; the site discharged in it (self-consumption).
    let hist = demo.call(
        "GET",
        &format!("/api/sites/{id}/history?resolution=hour"),
        Some(&token),
        None,
    );
    let buckets = &hist["buckets"];
    assert!(buckets.as_array().unwrap().len() >= 20, "{hist}");
    assert!(sum(buckets, "points") >= 20.0 * 60.0, "{hist}");
    assert!(sum(buckets, "discharge_wh") > 100.0, "{hist}");

    // Version 1 is the site file's settings, acknowledged by the gateway.
    let settings_path = format!("/api/sites/{id}/settings");
    demo.wait_for("settings v1 acked", || {
        let s = demo.call("GET", &settings_path, Some(&token), None);
        (s["version"] == 1 && s["delivery"] == "acked").then_some(())
    });
    // The owner switches to time of use with one charging period all day.
    let tou = json!({"mode": "time_of_use",
                     "tou": {"weekday": [{"start": "00:00", "end": "24:00", "kind": "charge"}],
                             "weekend": [{"start": "00:00", "end": "24:00", "kind": "charge"}]}});
    let saved = demo.call("PUT", &settings_path, Some(&token), Some(&tou));
    assert_eq!(saved["version"], 2, "{saved}");
    let acked_ms = demo.wait_for("settings v2 acked", || {
        let versions = demo.call(
            "GET",
            &format!("/api/sites/{id}/settings/versions"),
            Some(&token),
            None,
        );
        let v2 = versions
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["version"] == 2)
            .cloned()
            .unwrap();
        (v2["delivery"] == "acked").then(|| v2["acked_ms"].as_i64().unwrap())
    });
    // What the site then does: charging from the grid, never discharging (manual 5.1, TOU
    // "charging period"), through a night. Every point ending a minute after the ack is of a
    // minute that started after the settings were applied.
    let day_later = demo.wait_for("12 site hours after the ack", || {
        let s = demo.call("GET", &format!("/api/sites/{id}"), Some(&token), None);
        let t = s["last_seen_ms"].as_i64().unwrap();
        (t >= acked_ms + 12 * 3_600_000).then_some(s)
    });
    let after = demo.call(
        "GET",
        &format!(
            "/api/sites/{id}/history?resolution=hour&from_ms={}&to_ms={}",
            acked_ms + 60_000,
            day_later["last_seen_ms"].as_i64().unwrap() + 1
        ),
        Some(&token),
        None,
    );
    let b = &after["buckets"];
    assert!(sum(b, "points") >= 12.0 * 60.0 - 1.0, "{after}");
    assert_eq!(sum(b, "discharge_wh"), 0.0, "{after}");
    assert!(
        num(&day_later["latest"]["soc"]) >= 0.9,
        "charged full: {day_later}"
    );
    let last_before_stop = day_later["last_seen_ms"].as_i64().unwrap();
    let err = demo.stop();
    assert!(err.contains("settings v2 applied"), "{err}");
    assert!(
        err.contains("melv demo: site time "),
        "hourly progress: {err}"
    );
    assert!(err.contains("melv demo: stopped"), "{err}");
    assert!(!err.contains("warning"), "{err}");

    // Again on the same database: time goes on after the newest point, settings v2 still rule.
    let demo = Demo::start(&db);
    let token = demo.sign_in("owner@example.com", "demo-owner");
    let resumed = demo.wait_for("telemetry after the restart", || {
        let s = demo.call("GET", &format!("/api/sites/{id}"), Some(&token), None);
        let t = s["last_seen_ms"].as_i64().unwrap();
        (t >= last_before_stop + 2 * 3_600_000).then_some(t)
    });
    let s = demo.call("GET", &settings_path, Some(&token), None);
    assert_eq!(
        (s["version"].as_i64(), s["delivery"].as_str()),
        (Some(2), Some("acked"))
    );
    let after = demo.call(
        "GET",
        &format!(
            "/api/sites/{id}/history?resolution=hour&from_ms={last_before_stop}&to_ms={}",
            resumed + 1
        ),
        Some(&token),
        None,
    );
    assert!(sum(&after["buckets"], "points") >= 120.0, "{after}");
    assert_eq!(sum(&after["buckets"], "discharge_wh"), 0.0, "{after}");
    let err = demo.stop();
    assert!(!err.contains("warning"), "{err}");

    // Across both runs: every record exactly once, numbered 1..=n, nothing refused.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = melv_store::Store::open(&db).await.unwrap();
        let seqs: Vec<i64> = store
            .stored_seqs("demo-gw")
            .await
            .unwrap()
            .into_iter()
            .map(|(_, s)| s)
            .collect();
        assert!(seqs.len() > 24 * 60, "{}", seqs.len());
        assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>());
        assert_eq!(store.count_rejects().await.unwrap(), 0);
        store.close().await;
    });
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_options_are_refused_with_the_reason() {
    let site = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/self-consumption.toml"
    );
    let run = |args: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_melv"));
        c.arg("demo");
        if !args.contains(&"--site") {
            c.args(["--site", site]);
        }
        c.args(args).output().unwrap()
    };
    for (args, want) in [
        (
            &["--speed", "0"][..],
            "--speed 0: expected a number above 0",
        ),
        (&["--speed", "1e9"][..], "--speed 1000000000"),
        (
            &["--history-days=-1"][..],
            "--history-days -1: expected 0 to 366",
        ),
        (
            &[
                "--listen",
                "127.0.0.1:0",
                "--site",
                "/nonexistent/site.toml",
            ][..],
            "/nonexistent/site.toml",
        ),
        (
            &["--listen", "127.0.0.1:0", "--database", "mysql://x"][..],
            "--database mysql://x",
        ),
    ] {
        let o = run(args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {want:?} not in {err:?}");
        assert!(!err.contains("panicked"), "{err}");
    }
}
