//! The gateways' broker identities: each gateway connects to Mosquitto as its serial with its claim
//! code as the password, and `deploy/mosquitto/acl` limits every user to its own topic subtree
//! (`pattern ... melv/v1/%u/...`). The cloud is the source of the password file: a gateway gets an
//! entry when an installer proves its claim code, loses it when unbound, and gets a new one when the
//! code is rotated. The file is written whole (temporary file + rename) after each change, from the
//! store, with the operator's own service accounts (the ingest workers') copied in from an include
//! file; Mosquitto re-reads it on SIGHUP (mosquitto.conf(5), `password_file`).

use crate::error::{ApiError, ApiResult};
use base64::Engine;
use hmac::{Hmac, Mac};
use melv_store::Store;
use rand::RngCore;
use sha2::Sha512;
use std::path::{Path, PathBuf};

/// PBKDF2 iterations of a `$7$` hash: Mosquitto 2.0's own default (`mosquitto_passwd` writes 101).
/// The password is a 100-bit random claim code, so the iteration count is not what protects it.
pub const ITERATIONS: u32 = 101;
/// Salt bytes, as `mosquitto_passwd` uses.
const SALT_LEN: usize = 12;

/// PBKDF2-HMAC-SHA512 (RFC 8018 5.2) with a 64-byte output: one block.
fn pbkdf2_sha512(password: &[u8], salt: &[u8], iterations: u32) -> [u8; 64] {
    let mac = || Hmac::<Sha512>::new_from_slice(password).expect("HMAC takes any key length");
    let mut m = mac();
    m.update(salt);
    m.update(&1u32.to_be_bytes());
    let mut u: [u8; 64] = m.finalize().into_bytes().into();
    let mut t = u;
    for _ in 1..iterations {
        let mut m = mac();
        m.update(&u);
        u = m.finalize().into_bytes().into();
        t.iter_mut().zip(u.iter()).for_each(|(a, b)| *a ^= b);
    }
    t
}

/// A Mosquitto 2.0 password-file hash (`$7$ITER$SALT$HASH`, PBKDF2-SHA512) with the given salt.
pub fn mosquitto_hash_with(password: &str, salt: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD;
    let h = pbkdf2_sha512(password.as_bytes(), salt, ITERATIONS);
    format!("$7${ITERATIONS}${}${}", b64.encode(salt), b64.encode(h))
}

/// [`mosquitto_hash_with`] with a fresh random salt.
pub fn mosquitto_hash(password: &str) -> String {
    let mut salt = [0u8; SALT_LEN];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    mosquitto_hash_with(password, &salt)
}

/// Where the cloud writes the broker's password file, and the service accounts it copies in.
#[derive(Debug, Clone)]
pub struct BrokerAuth {
    pub passwd: PathBuf,
    /// A password file of the operator's own accounts (e.g. `melv-ingest`, made with
    /// `mosquitto_passwd`), copied in first.
    pub include: Option<PathBuf>,
}

/// Writes the password file: the include file's lines, then one line per bound gateway. A gateway
/// whose serial is also a service account's name is left out (it could otherwise take that
/// account's place) and reported. Returns the number of gateway entries.
pub async fn write_passwd(store: &Store, auth: &BrokerAuth) -> ApiResult<usize> {
    let io = |what: &str, p: &Path, e: std::io::Error| {
        ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            format!("broker password file: {what} {}: {e}", p.display()),
        )
    };
    let mut out = String::new();
    let mut reserved = Vec::new();
    if let Some(inc) = &auth.include {
        let text = std::fs::read_to_string(inc).map_err(|e| io("reading", inc, e))?;
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            if let Some((user, _)) = line.split_once(':') {
                reserved.push(user.to_string());
            }
            out.push_str(line);
            out.push('\n');
        }
    }
    let mut n = 0;
    for (serial, hash) in store.gateway_mqtt_hashes().await? {
        if reserved.contains(&serial) {
            eprintln!("melv serve: gateway {serial:?} has the name of a service account of the broker; left out of the password file");
            continue;
        }
        out.push_str(&format!("{serial}:{hash}\n"));
        n += 1;
    }
    let tmp = auth.passwd.with_extension("tmp");
    std::fs::write(&tmp, out).map_err(|e| io("writing", &tmp, e))?;
    std::fs::rename(&tmp, &auth.passwd).map_err(|e| io("replacing", &auth.passwd, e))?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_match_mosquitto_passwd() {
        // `mosquitto_passwd -b` (Mosquitto 2.0.11) for the password ABCDEFGHJKMNPQRSTVWX.
        let line = "$7$101$baYOIeGWbOn3Uyxf$N2yWbWRcbOuZwNFzuu7EluwJ+3TmD0yzMraMX0/P1B3xPe3rIBck1DxWaWTuzZoUGmH98R7gP4EwSZTCAHOnSg==";
        let salt = base64::engine::general_purpose::STANDARD
            .decode("baYOIeGWbOn3Uyxf")
            .unwrap();
        assert_eq!(mosquitto_hash_with("ABCDEFGHJKMNPQRSTVWX", &salt), line);
        assert_ne!(mosquitto_hash_with("ABCDEFGHJKMNPQRSTVWY", &salt), line);
        assert_ne!(mosquitto_hash("x"), mosquitto_hash("x"), "fresh salt");
    }
}
