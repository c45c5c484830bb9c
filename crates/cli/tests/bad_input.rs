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
