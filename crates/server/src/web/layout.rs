//! Page frame, stylesheet, escaping, and the web session extractor.

use crate::auth::{presented_token, token_hash, Principal};
use crate::error::ApiError;
use crate::AppState;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};

/// HTML-escapes text for element content and quoted attribute values.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// A page: title, the signed-in user's name (for the header) and the body HTML.
pub fn page(title: &str, user: Option<&Principal>, body: &str) -> Html<String> {
    let nav = match user {
        Some(p) => format!(
            r#"<nav aria-label="Main"><a href="/">Sites</a> <span class="who">{} ({})</span>
<form method="post" action="/logout" class="inline"><button type="submit">Sign out</button></form></nav>"#,
            esc(&p.user.name),
            p.user.role
        ),
        None => String::new(),
    };
    let html = format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{} · melv</title><link rel="stylesheet" href="/style.css"></head>
<body><header><a class="brand" href="/">melv</a>{nav}</header>
<main id="main"><h1>{}</h1>
{body}
</main></body></html>"#,
        esc(title),
        esc(title)
    );
    // Every post form of a signed-in page carries the session's CSRF token (super::csrf).
    Html(match user {
        Some(p) => super::csrf::insert(&html, &p.token_hash),
        None => html,
    })
}

/// Colours: text #1a1a1a on #fff (contrast 17:1), links #0b57d0 (6.5:1), status badges dark text on
/// light tints (all above 7:1). Sizes in rem so the browser's font size setting is honoured.
const CSS: &str = r#"
*{box-sizing:border-box}
body{margin:0;font:1rem/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1a1a1a;background:#fff}
header{display:flex;flex-wrap:wrap;gap:.5rem 1rem;align-items:center;justify-content:space-between;padding:.5rem 1rem;background:#f1f3f4;border-bottom:1px solid #c4c7c5}
.brand{font-weight:700;font-size:1.25rem;text-decoration:none;color:#1a1a1a}
nav{display:flex;gap:.75rem;align-items:center;flex-wrap:wrap}
main{max-width:60rem;margin:0 auto;padding:1rem}
a{color:#0b57d0}
a:focus,button:focus,input:focus,select:focus{outline:3px solid #f9ab00;outline-offset:2px}
h1{font-size:1.5rem;margin:.5rem 0 1rem}
h2{font-size:1.2rem;margin:1.5rem 0 .5rem}
table{border-collapse:collapse;width:100%;margin:.5rem 0}
th,td{text-align:left;padding:.35rem .5rem;border-bottom:1px solid #dadce0;vertical-align:top}
form.inline{display:inline}
label{display:block;font-weight:600;margin:.5rem 0 .2rem}
input,select{font:inherit;padding:.4rem;border:1px solid #5f6368;border-radius:4px;max-width:100%}
button{font:inherit;padding:.45rem 1rem;border-radius:4px;border:1px solid #0b57d0;background:#0b57d0;color:#fff;cursor:pointer}
nav button{background:#fff;color:#0b57d0}
fieldset{border:1px solid #c4c7c5;border-radius:6px;margin:1rem 0;padding:.5rem 1rem;min-width:0}
.badge{display:inline-block;padding:.1rem .6rem;border-radius:1rem;font-weight:700;border:1px solid}
.normal{background:#e6f4ea;color:#0d652d}.faulty{background:#fce8e6;color:#a50e0e}.offline{background:#f1f3f4;color:#3c4043}
.notice{padding:.5rem 1rem;border-left:4px solid #0b57d0;background:#e8f0fe}
.error{padding:.5rem 1rem;border-left:4px solid #a50e0e;background:#fce8e6}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(14rem,1fr));gap:1rem}
.card{border:1px solid #dadce0;border-radius:8px;padding:.75rem 1rem}
.tou{table-layout:fixed}.tou td,.tou th{padding:.2rem}.tou input,.tou select{width:100%;min-width:0}
svg{max-width:100%;height:auto;font-size:14px}
.legend{list-style:none;display:flex;flex-wrap:wrap;gap:.25rem 1rem;padding:0;margin:.25rem 0}.swatch{display:inline-block;width:.9rem;height:.9rem;margin-right:.35rem;vertical-align:-.1rem;border:1px solid #1a1a1a}
code{word-break:break-all}
.sr{position:absolute;width:1px;height:1px;margin:-1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap;border:0}
"#;

pub async fn stylesheet() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], CSS)
}

/// The signed-in user of a web page; anonymous visitors are sent to the sign-in page.
pub struct WebUser(pub Principal);

impl FromRequestParts<AppState> for WebUser {
    type Rejection = Response;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let Some(token) = presented_token(&parts.headers) else {
            return Err(Redirect::to("/login").into_response());
        };
        let hash = token_hash(&token);
        match state.store.session(&hash, state.clock.now_ms()).await {
            Ok(Some(s)) => Ok(WebUser(Principal {
                user: s.user,
                token_hash: hash,
            })),
            Ok(None) => Err(Redirect::to("/login").into_response()),
            Err(e) => Err(error_page(None, ApiError::from(e))),
        }
    }
}

/// `axum::Form` whose rejection is an error page (status and message) instead of plain text.
pub struct WebForm<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> axum::extract::FromRequest<S> for WebForm<T> {
    type Rejection = Response;
    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Response> {
        match axum::Form::<T>::from_request(req, state).await {
            Ok(axum::Form(v)) => Ok(WebForm(v)),
            Err(r) => Err(error_page(
                None,
                ApiError::new(r.status(), format!("form: {}", r.body_text())),
            )),
        }
    }
}

/// An error as a page, with the API's status and message.
pub fn error_page(user: Option<&Principal>, e: ApiError) -> Response {
    let title = match e.status {
        StatusCode::NOT_FOUND => "Not found",
        StatusCode::FORBIDDEN => "Not allowed",
        _ => "Cannot do that",
    };
    let body = format!(
        r#"<p class="error" role="alert">{}</p><p><a href="/">Back to your sites</a></p>"#,
        esc(&e.message)
    );
    (e.status, page(title, user, &body)).into_response()
}

/// Formats a UTC millisecond time in the site's zone.
pub fn local_time(ms: i64, tz: &str) -> String {
    use chrono::TimeZone;
    let tz: chrono_tz::Tz = tz.parse().unwrap_or(chrono_tz::UTC);
    match tz.timestamp_millis_opt(ms).earliest() {
        Some(t) => t.format("%Y-%m-%d %H:%M %Z").to_string(),
        None => "-".into(),
    }
}

pub fn kw(w: f64) -> String {
    format!("{:.2} kW", w / 1000.0)
}

pub fn kwh(wh: f64) -> String {
    format!("{:.2} kWh", wh / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: &str) {
        assert_eq!(esc(input), expected);
    }

    #[test]
    fn escaping() {
        check("a<b>&\"'", "a&lt;b&gt;&amp;&quot;&#39;");
        check("plain", "plain");
        check(
            "<script>alert(1)</script>",
            "&lt;script&gt;alert(1)&lt;/script&gt;",
        );
    }
}
