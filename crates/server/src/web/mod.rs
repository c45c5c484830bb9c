//! The web app: server-rendered HTML, no JavaScript. Every page is a plain function of data from
//! [`crate::service`], so the web app shows exactly what the API answers and enforces the same rules.
//!
//! Accessibility: semantic landmarks (`header`, `nav`, `main`), a label for every input, status told
//! in words (never by colour alone), text contrast above WCAG 2.1 AA's 4.5:1, visible focus, and a
//! single-column layout that fits a 360-px-wide phone. Charts are inline SVG with a `title` and the
//! same numbers in a table.

mod chart;
pub mod csrf;
mod layout;
mod pages;
mod settings_form;

use crate::AppState;
use axum::routing::{get, post};
use axum::Router;

pub use layout::esc;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(pages::home))
        .route(
            "/login",
            get(pages::login_form)
                .post(pages::login)
                .layer(axum::extract::DefaultBodyLimit::max(crate::MAX_LOGIN_BODY)),
        )
        .route("/logout", post(pages::logout))
        .route("/style.css", get(layout::stylesheet))
        .route(
            "/sites/new",
            get(pages::new_site_form).post(pages::new_site),
        )
        .route("/sites/{id}", get(pages::dashboard))
        .route("/sites/{id}/deploy", get(pages::deploy))
        .route("/sites/{id}/deploy/device", post(pages::deploy_device))
        .route("/sites/{id}/deploy/check", post(pages::deploy_check))
        .route("/sites/{id}/deploy/activate", post(pages::deploy_activate))
        .route("/sites/{id}/deploy/handover", post(pages::deploy_handover))
        .route("/sites/{id}/alerts", get(pages::alerts))
        .route(
            "/sites/{id}/settings",
            get(settings_form::show).post(settings_form::save),
        )
        .route("/sites/{id}/history", get(pages::history))
        .layer(axum::middleware::from_fn(csrf::check))
}
