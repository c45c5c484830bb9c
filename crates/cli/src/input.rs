//! Bounded reading of the files users hand to the CLI (issue 13 item 7): a file larger than its
//! bound, or a line longer than its bound, is refused with the file, the line and the reason, before
//! memory grows (`/dev/zero` as a log or a wiring file used to abort on a 4 GB allocation).

use anyhow::{bail, Context, Result};
use std::io::{BufRead, Read};
use std::path::Path;

/// Largest wiring (topology) JSON, bytes: six batteries' resistors and cables take about 1 KB.
pub const MAX_WIRING_BYTES: u64 = 1 << 20;
/// Largest storage temperature log (`melv storage --log`), bytes: ten years of hourly readings take
/// about 3 MB.
pub const MAX_TEMPLOG_BYTES: u64 = 16 << 20;
/// Longest candump log line, bytes: `(1234567890.123456) can0 12345678#` and 64 data bytes in hex
/// (CAN FD's largest frame) take about 170.
pub const MAX_CANDUMP_LINE: usize = 512;

/// The whole file at `path` as text, refused when it holds more than `max` bytes.
pub fn read_text(path: &Path, max: u64, what: &str) -> Result<String> {
    let f = std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut bytes = Vec::new();
    f.take(max + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {}", path.display()))?;
    if bytes.len() as u64 > max {
        bail!("{}: larger than {max} bytes; not {what}", path.display());
    }
    String::from_utf8(bytes)
        .with_context(|| format!("{}: not UTF-8 text; not {what}", path.display()))
}

/// Calls `f(line_number, line)` for every line of `r` (without its line end), refusing a line longer
/// than `max` bytes or not UTF-8; `name` names the input in errors.
pub fn for_each_line<R: BufRead>(
    mut r: R,
    max: usize,
    name: &str,
    mut f: impl FnMut(usize, &str) -> Result<()>,
) -> Result<()> {
    let mut buf = Vec::with_capacity(max.min(4096));
    for n in 1.. {
        buf.clear();
        let got = r
            .by_ref()
            .take(max as u64 + 1)
            .read_until(b'\n', &mut buf)
            .with_context(|| format!("{name}: read error at line {n}"))?;
        if got == 0 {
            break;
        }
        if buf.last() == Some(&b'\n') {
            buf.pop();
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
        } else if buf.len() > max {
            bail!("{name}:{n}: line longer than {max} bytes");
        }
        let line =
            std::str::from_utf8(&buf).with_context(|| format!("{name}:{n}: not UTF-8 text"))?;
        f(n, line)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8], max: usize) -> Result<Vec<(usize, String)>> {
        let mut out = Vec::new();
        for_each_line(input, max, "log", |n, l| {
            out.push((n, l.to_string()));
            Ok(())
        })?;
        Ok(out)
    }

    #[test]
    fn lines_are_numbered_and_bounded() {
        assert_eq!(
            lines(b"a\r\nbb\n\nccc", 3).unwrap(),
            [
                (1, "a".into()),
                (2, "bb".into()),
                (3, "".into()),
                (4, "ccc".into())
            ]
        );
        let e = lines(b"ok\nfour\n", 3).unwrap_err().to_string();
        assert_eq!(e, "log:2: line longer than 3 bytes");
        // An endless input without a newline stops at the bound.
        let zeros = std::io::repeat(0).take(1 << 30);
        let e = for_each_line(std::io::BufReader::new(zeros), 512, "z", |_, _| Ok(()))
            .unwrap_err()
            .to_string();
        assert_eq!(e, "z:1: line longer than 512 bytes");
        let e = lines(b"\xff\n", 3).unwrap_err().to_string();
        assert!(e.starts_with("log:1: not UTF-8"), "{e}");
    }
}
