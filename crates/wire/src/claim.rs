//! The gateway's claim code: its per-device secret, printed on its label and shown by
//! `melv gateway --print-claim` (docs/cloud.md, "Threat model"). The installer proves it once, when
//! binding the gateway's serial to a site; afterwards the gateway authenticates with it (its MQTT
//! password and its HTTP bearer token), and the cloud keeps only hashes of it.
//!
//! Format: 20 characters of Crockford's base32 (100 bits from the OS's random source), shown in
//! groups of four (`7K2M-9QXD-...`). Reading it back forgives what people mistype: case, dashes and
//! spaces, `O` for `0`, `I`/`L` for `1`.

/// Crockford's base32 alphabet (no I, L, O, U).
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/// Characters of a claim code: 20 x 5 bits = 100 bits, beyond any online or offline guessing.
pub const CLAIM_LEN: usize = 20;
/// Longest text accepted before normalising (the grouped form is 24 characters).
const MAX_RAW: usize = 64;

/// A claim code from at least 13 random bytes (the first 100 bits are used), in its canonical
/// (ungrouped, upper-case) form.
pub fn encode(random: &[u8; 13]) -> String {
    let mut bits: u128 = 0;
    for b in random {
        bits = (bits << 8) | u128::from(*b);
    }
    bits >>= 4; // 104 -> 100 bits
    (0..CLAIM_LEN)
        .rev()
        .map(|i| ALPHABET[((bits >> (5 * i)) & 31) as usize] as char)
        .collect()
}

/// The canonical form of a typed claim code, or why it is not one.
pub fn normalize(raw: &str) -> Result<String, String> {
    if raw.len() > MAX_RAW {
        return Err(format!(
            "claim_code: {} characters; expected the {CLAIM_LEN}-character code from the gateway's label",
            raw.len()
        ));
    }
    let mut out = String::with_capacity(CLAIM_LEN);
    for c in raw.chars() {
        let c = match c.to_ascii_uppercase() {
            '-' | ' ' => continue,
            'O' => '0',
            'I' | 'L' => '1',
            c => c,
        };
        if !c.is_ascii() || !ALPHABET.contains(&(c as u8)) {
            return Err(format!(
                "claim_code: {c:?} is not a character of a claim code (0-9 and A-Z without I, L, O, U)"
            ));
        }
        out.push(c);
    }
    if out.len() != CLAIM_LEN {
        return Err(format!(
            "claim_code: {} characters; expected the {CLAIM_LEN}-character code from the gateway's label",
            out.len()
        ));
    }
    Ok(out)
}

/// The code as printed on a label: groups of four joined by dashes.
pub fn grouped(code: &str) -> String {
    code.as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join("-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_forgive_typing() {
        let c = encode(&[0xff; 13]);
        assert_eq!(c, "ZZZZZZZZZZZZZZZZZZZZ");
        let c = encode(&[0; 13]);
        assert_eq!(c, "0".repeat(20));
        let c = encode(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13]);
        assert_eq!(normalize(&grouped(&c)), Ok(c.clone()));
        assert_eq!(normalize(&grouped(&c).to_lowercase()), Ok(c.clone()));
        assert_eq!(
            normalize("oool-iiii-0000-1111-abcd"),
            Ok("0001111100001111ABCD".to_string())
        );
    }

    #[test]
    fn bad_codes_say_why() {
        assert!(normalize("ABCD").unwrap_err().contains("4 characters"));
        assert!(normalize("ABCD-EFGH-JKMN-PQRS-TVWU")
            .unwrap_err()
            .contains("'U'"));
        assert!(normalize("ABCD\0EFGH").unwrap_err().contains("'\\0'"));
        assert!(normalize(&"A".repeat(100)).unwrap_err().contains("100"));
    }
}
