//! Running the built `melv` binary from the CLI tests.
#![allow(dead_code)]

use std::process::Command;

pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub fn melv(args: &[&str]) -> Out {
    let out = Command::new(env!("CARGO_BIN_EXE_melv"))
        .args(args)
        .output()
        .expect("run melv");
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

pub fn json(args: &[&str]) -> serde_json::Value {
    let o = melv(args);
    assert_eq!(o.code, 0, "{args:?}: {}", o.stderr);
    serde_json::from_str(&o.stdout)
        .unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {}", o.stdout))
}

/// A refusal: non-zero exit, a message containing `want` on stderr, and no panic.
pub fn refused(args: &[&str], want: &str) {
    let o = melv(args);
    assert_ne!(o.code, 0, "{args:?} should be refused: {}", o.stdout);
    assert!(
        o.stderr.contains(want),
        "{args:?}: {:?} not in {:?}",
        want,
        o.stderr
    );
    assert!(!o.stderr.contains("panicked"), "{args:?}: {}", o.stderr);
}
