//! Bad input to the tools (issue 13 item 7): endless or huge files and out-of-range numbers are
//! refused with the file or option and the reason, before memory grows; never a panic.

mod common;
use common::refused;

#[test]
fn an_endless_file_is_refused_at_its_bound() {
    // Both used to read /dev/zero until the allocator gave up (a 4 GB abort).
    refused(
        &["can", "decode", "/dev/zero"],
        "/dev/zero:1: line longer than 512 bytes",
    );
    refused(
        &["can", "topology", "/dev/zero"],
        "/dev/zero: larger than 1048576 bytes; not a wiring description",
    );
    refused(
        &["storage", "--log", "/dev/zero"],
        "/dev/zero: larger than 16777216 bytes; not a temperature log",
    );
    refused(
        &["simulate", "/dev/zero"],
        "/dev/zero: larger than 1048576 bytes",
    );
}

#[test]
fn a_run_shorter_than_one_step_and_a_bad_gateway_number_are_refused() {
    refused(
        &[
            "simulate",
            "--example",
            "self-consumption",
            "--days",
            "1e-9",
        ],
        "--days: 0.000000001 days is shorter than one step of 60 s",
    );
    refused(
        &[
            "gateway",
            "--run-for",
            "nan",
            "--mqtt",
            "mqtt://127.0.0.1:1",
        ],
        "--run-for NaN: must be a positive number of simulated seconds",
    );
}

/// A reader that stops early (`melv can decode log | head -1`) ends the run quietly: exit 0, no
/// panic (println! panicked on the broken pipe).
#[test]
fn a_reader_that_stops_early_is_no_error() {
    use std::io::Read as _;
    use std::process::{Command, Stdio};
    let dir = std::env::temp_dir().join(format!("melv-pipe-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("day.log");
    let o = common::melv(&[
        "simulate",
        "--example",
        "self-consumption",
        "--days",
        "1",
        "--quiet",
        "--can-log",
        log.to_str().unwrap(),
    ]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let mut child = Command::new(env!("CARGO_BIN_EXE_melv"))
        .args(["can", "decode", log.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run melv");
    // Read one chunk, then close our end of the pipe while melv still has thousands of lines to write.
    let mut out = child.stdout.take().unwrap();
    let mut first = [0u8; 256];
    let n = out.read(&mut first).unwrap();
    assert!(n > 0);
    drop(out);
    let status = child.wait().unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    std::fs::remove_dir_all(&dir).ok();
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(status.code(), Some(0), "{err}");
}
