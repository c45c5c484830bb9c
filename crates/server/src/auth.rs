//! Passwords, tokens and who is calling.
//!
//! Passwords are hashed with Argon2id at the `argon2` crate's defaults (19 MiB, 2 passes, 1 lane:
//! the first of OWASP's Password Storage Cheat Sheet recommendations for Argon2id). Sessions are
//! 256-bit random tokens from the OS; the database keeps only their SHA-256, so a leaked database
//! cannot be replayed. The web app carries the token in an `HttpOnly; SameSite=Strict` cookie (which
//! also stops cross-site form posts), the API in `Authorization: Bearer`.

use crate::error::{ApiError, ApiResult};
use crate::AppState;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use melv_store::{Role, User};
use rand::RngCore;
use sha2::{Digest, Sha256};

pub const COOKIE: &str = "melv_session";
/// Sessions last a week: long enough for an owner's phone, short enough to limit a stolen token.
pub const SESSION_MS: i64 = 7 * 24 * 3600 * 1000;
/// Shortest password accepted (NIST SP 800-63B 5.1.1.1: at least 8 characters).
pub const MIN_PASSWORD: usize = 8;
/// Longest password hashed: bounds the work one request can ask for.
pub const MAX_PASSWORD: usize = 256;

pub fn hash_password(password: &str) -> ApiResult<String> {
    check_password(password)?;
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| ApiError::invalid(format!("password: {e}")))
}

pub fn check_password(password: &str) -> ApiResult<()> {
    let n = password.chars().count();
    if !(MIN_PASSWORD..=MAX_PASSWORD).contains(&n) {
        return Err(ApiError::invalid(format!(
            "password: {n} characters; expected {MIN_PASSWORD} to {MAX_PASSWORD}"
        )));
    }
    Ok(())
}

pub fn verify_password(password: &str, phc: &str) -> bool {
    if password.len() > MAX_PASSWORD * 4 {
        return false;
    }
    PasswordHash::new(phc)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A hash of a random password with the same parameters as every account's: verified against for an
/// unknown address, so that a sign-in takes as long whether the address has an account or not.
pub fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| {
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        Argon2::default()
            .hash_password(new_token().as_bytes(), &salt)
            .map(|h| h.to_string())
            .unwrap_or_default()
    })
}

/// A fresh secret: 32 random bytes from the OS, hex.
pub fn new_token() -> String {
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    hex(&b)
}

/// A fresh gateway claim code ([`melv_wire::claim`]): for tests and the demo, whose gateways the
/// cloud itself provisions. A real gateway makes its own (`melv gateway --print-claim`).
pub fn new_claim_code() -> String {
    let mut b = [0u8; 13];
    rand::rngs::OsRng.fill_bytes(&mut b);
    melv_wire::claim::encode(&b)
}

pub fn token_hash(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Compares two secrets' hashes in time independent of where they differ.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The secret the request carries: the bearer token, else the session cookie.
pub fn presented_token(headers: &HeaderMap) -> Option<String> {
    if let Some(v) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        return v.strip_prefix("Bearer ").map(|t| t.trim().to_string());
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
}

/// Failed sign-ins per e-mail: after [`LoginLimiter::MAX_FAILURES`] failures within
/// [`LoginLimiter::WINDOW_MS`] the address is refused (429) until the window has passed, which
/// bounds online password guessing (OWASP Authentication Cheat Sheet, "Account lockout"; NIST SP
/// 800-63B 5.2.2 asks for a limit of at most 100 consecutive failures). In memory: a restart clears it.
///
/// Memory is bounded: the table is keyed by the SHA-256 of the address (32 bytes, whatever was sent)
/// and holds at most [`LoginLimiter::MAX_ENTRIES`]; when full, expired entries go first, then the
/// oldest one (so a flood of made-up addresses costs at most MAX_ENTRIES x ~100 bytes).
#[derive(Default)]
pub struct LoginLimiter(std::sync::Mutex<std::collections::HashMap<[u8; 32], (u32, i64)>>);

fn key(email: &str) -> [u8; 32] {
    Sha256::digest(email.as_bytes()).into()
}

impl LoginLimiter {
    pub const MAX_FAILURES: u32 = 10;
    pub const WINDOW_MS: i64 = 15 * 60 * 1000;
    /// Entries kept at most, so that guessing many addresses cannot grow memory without bound.
    pub const MAX_ENTRIES: usize = 10_000;

    /// `Err(wait_ms)` while the address is locked.
    pub fn check(&self, email: &str, now_ms: i64) -> Result<(), i64> {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match map.get(&key(email)) {
            Some(&(n, since)) if n >= Self::MAX_FAILURES && now_ms - since < Self::WINDOW_MS => {
                Err(Self::WINDOW_MS - (now_ms - since))
            }
            _ => Ok(()),
        }
    }

    pub fn failed(&self, email: &str, now_ms: i64) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let k = key(email);
        if map.len() >= Self::MAX_ENTRIES && !map.contains_key(&k) {
            map.retain(|_, (_, since)| now_ms - *since < Self::WINDOW_MS);
            if map.len() >= Self::MAX_ENTRIES {
                if let Some(oldest) = map
                    .iter()
                    .min_by_key(|(_, (_, since))| *since)
                    .map(|(k, _)| *k)
                {
                    map.remove(&oldest);
                }
            }
        }
        let e = map.entry(k).or_insert((0, now_ms));
        if now_ms - e.1 >= Self::WINDOW_MS {
            *e = (0, now_ms);
        }
        e.0 += 1;
    }

    /// Entries held (for tests and metrics).
    pub fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn succeeded(&self, email: &str) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&key(email));
    }
}

/// A signed-in account. Handlers that take it answer 401 to anonymous requests.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user: User,
    pub token_hash: String,
}

impl Principal {
    pub fn role(&self) -> Role {
        self.user.role
    }
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Self> {
        let token = presented_token(&parts.headers).ok_or_else(ApiError::unauthorized)?;
        let hash = token_hash(&token);
        let session = state
            .store
            .session(&hash, state.clock.now_ms())
            .await?
            .ok_or_else(ApiError::unauthorized)?;
        Ok(Principal {
            user: session.user,
            token_hash: hash,
        })
    }
}

/// A gateway authenticated by its token (issued once when the gateway was added to a site).
#[derive(Debug, Clone)]
pub struct GatewayToken(pub String);

impl FromRequestParts<AppState> for GatewayToken {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> ApiResult<Self> {
        let t = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| {
                ApiError::new(
                    axum::http::StatusCode::UNAUTHORIZED,
                    "gateway routes need the gateway's token as `Authorization: Bearer`",
                )
            })?;
        Ok(GatewayToken(token_hash(t.trim())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(headers: &[(&str, &str)], expected: Option<&str>) {
        let mut h = HeaderMap::new();
        for (k, v) in headers {
            h.append(
                header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        assert_eq!(presented_token(&h).as_deref(), expected);
    }

    #[test]
    fn tokens_are_found_in_header_or_cookie() {
        check(&[], None);
        check(&[("authorization", "Bearer abc")], Some("abc"));
        check(&[("authorization", "Basic abc")], None);
        check(&[("cookie", "a=1; melv_session=xyz")], Some("xyz"));
        check(&[("cookie", "melv_sessionx=1")], None);
    }

    #[test]
    fn sign_ins_are_throttled_per_address() {
        let l = LoginLimiter::default();
        for i in 0..LoginLimiter::MAX_FAILURES {
            assert_eq!(l.check("a", i as i64), Ok(()));
            l.failed("a", i as i64);
        }
        assert_eq!(l.check("a", 100), Err(LoginLimiter::WINDOW_MS - 100));
        assert_eq!(
            l.check("b", 100),
            Ok(()),
            "other addresses are not affected"
        );
        assert_eq!(
            l.check("a", LoginLimiter::WINDOW_MS),
            Ok(()),
            "the window passes"
        );
        l.succeeded("a");
        assert_eq!(l.check("a", 100), Ok(()));
    }

    #[test]
    fn the_throttle_table_is_bounded() {
        let l = LoginLimiter::default();
        for i in 0..LoginLimiter::MAX_ENTRIES + 500 {
            l.failed(&format!("{i}@x"), i as i64);
        }
        assert_eq!(l.len(), LoginLimiter::MAX_ENTRIES);
    }

    #[test]
    fn passwords_hash_and_verify() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("wrong horse", &h));
        assert!(!verify_password("x", "not a hash"));
        assert_eq!(
            hash_password("short").unwrap_err().message,
            "password: 5 characters; expected 8 to 256"
        );
        assert!(same(&token_hash("a"), &token_hash("a")));
        assert!(!same(&token_hash("a"), &token_hash("b")));
        assert_eq!(new_token().len(), 64);
    }
}
