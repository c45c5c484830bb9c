//! Cross-site request forgery defence for the web app's forms (issue 16 item 4: an auto-submitting
//! form on another port of the same host changed a homeowner's working mode; `SameSite=Strict` does
//! not stop same-*site* requests). Two checks on every form post (OWASP CSRF Prevention Cheat Sheet):
//!
//! * **Origin**: a browser's `Origin` (or, without it, `Referer`) must name this server's own
//!   `Host`; `Origin: null` is refused. Requests without either header (non-browser clients) go on
//!   to the token check.
//! * **Synchronizer token**: every post of a signed-in page carries a hidden `csrf` field derived
//!   from the session (`SHA-256("melv-csrf\0" + session token hash)`), which another origin can
//!   neither read nor compute. [`page`](super::layout::page) inserts it into every `method="post"`
//!   form; this layer checks it, then passes the form on without it. The sign-in form has no
//!   session yet: it gets the Origin check only.

use crate::auth::{presented_token, token_hash};
use crate::error::ApiError;
use axum::body::{to_bytes, Body};
use axum::extract::Request;
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use sha2::{Digest, Sha256};

pub const FIELD: &str = "csrf";

/// The form token of the session whose token hash is `session_hash`.
pub fn token(session_hash: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"melv-csrf\0");
    h.update(session_hash.as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The hidden input of a form.
pub fn field(session_hash: &str) -> String {
    format!(
        r#"<input type="hidden" name="{FIELD}" value="{}">"#,
        token(session_hash)
    )
}

/// Puts [`field`] right after the opening tag of every post form in `html`.
pub fn insert(html: &str, session_hash: &str) -> String {
    let f = field(session_hash);
    let mut out = String::with_capacity(html.len() + 200);
    let mut rest = html;
    while let Some(i) = rest.find(r#"<form method="post""#) {
        match rest[i..].find('>') {
            Some(j) => {
                out.push_str(&rest[..i + j + 1]);
                out.push_str(&f);
                rest = &rest[i + j + 1..];
            }
            None => break,
        }
    }
    out.push_str(rest);
    out
}

fn host_of(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    Some(rest.split('/').next().unwrap_or(rest))
}

/// `Err(reason)` when the request names another origin than this server's host.
pub fn same_origin(headers: &HeaderMap) -> Result<(), String> {
    let get = |h| headers.get(h).and_then(|v| v.to_str().ok());
    let claimed = match (get(header::ORIGIN), get(header::REFERER)) {
        (Some("null"), _) => return Err("Origin: null (a sandboxed or cross-origin form)".into()),
        (Some(o), _) | (None, Some(o)) => o,
        (None, None) => return Ok(()),
    };
    let Some(host) = get(header::HOST) else {
        return Err("the request names an origin but has no Host header".into());
    };
    match host_of(claimed) {
        Some(h) if h.eq_ignore_ascii_case(host) => Ok(()),
        _ => Err(format!(
            "the form was sent from {claimed:?}, not from {host}"
        )),
    }
}

fn refuse(why: String) -> Response {
    super::layout::error_page(
        None,
        ApiError::new(StatusCode::FORBIDDEN, format!("form refused: {why}")),
    )
}

/// The layer on the web routes: checks every POST, strips the token, passes the form on.
pub async fn check(req: Request, next: Next) -> Response {
    if req.method() != Method::POST {
        return next.run(req).await;
    }
    if let Err(why) = same_origin(req.headers()) {
        return refuse(why);
    }
    if req.uri().path() == "/login" {
        return next.run(req).await;
    }
    // No session: the handler sends the visitor to the sign-in page.
    let Some(session) = presented_token(req.headers()) else {
        return next.run(req).await;
    };
    let expected = token(&token_hash(&session));
    let (parts, body) = req.into_parts();
    let Ok(bytes) = to_bytes(body, crate::MAX_BODY).await else {
        return super::layout::error_page(
            None,
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "form: the body is too large"),
        );
    };
    let pairs: Vec<(String, String)> = form_urlencoded::parse(&bytes).into_owned().collect();
    let presented: Vec<&String> = pairs
        .iter()
        .filter(|(k, _)| k == FIELD)
        .map(|(_, v)| v)
        .collect();
    if presented.len() != 1 || !crate::auth::same(presented[0], &expected) {
        return refuse(
            "the form's security token is missing or stale; reload the page and try again".into(),
        );
    }
    let rest: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs.iter().filter(|(k, _)| k != FIELD))
        .finish();
    next.run(Request::from_parts(parts, Body::from(rest))).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(pairs: &[(&str, &str)]) -> Result<(), String> {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        same_origin(&h)
    }

    #[test]
    fn origins() {
        assert_eq!(
            origin(&[("host", "a:8080"), ("origin", "http://a:8080")]),
            Ok(())
        );
        assert_eq!(origin(&[("host", "a:8080")]), Ok(()));
        assert_eq!(
            origin(&[("host", "a:8080"), ("referer", "http://a:8080/sites/1")]),
            Ok(())
        );
        assert!(origin(&[("host", "a:8080"), ("origin", "http://a:9999")]).is_err());
        assert!(origin(&[("host", "a:8080"), ("origin", "null")]).is_err());
        assert!(origin(&[("host", "a:8080"), ("referer", "http://evil/x")]).is_err());
        assert!(origin(&[("origin", "http://a:8080")]).is_err());
    }

    #[test]
    fn tokens_go_into_post_forms_only() {
        let html = r#"<form method="get"><form method="post" action="/x" class="i"><button>"#;
        let out = insert(html, "h");
        assert_eq!(out.matches(r#"name="csrf""#).count(), 1);
        assert!(out.starts_with(r#"<form method="get"><form method="post" action="/x" class="i"><input type="hidden" name="csrf" value=""#));
        assert_ne!(token("a"), token("b"));
    }
}
