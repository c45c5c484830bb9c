//! # melv-server: the M-ELV cloud (`melv serve`)
//!
//! One process serves the JSON API (`/api/...`), the server-rendered web app (`/`, `/sites/...`) and
//! the gateways' ingest, on top of [`melv_store`] (SQLite by default, PostgreSQL for many sites).
//! It is the open counterpart of the ATMOCE Cloud and the ATMOZEN app that the manual refers to
//! (4.1.5, 4.11, 5.1, 6.2).
//!
//! ## Design
//! * Three layers. [`api`] and [`web`] are adapters (parse a request, render a response);
//!   [`service`] and [`ingest`] hold the rules (tenant isolation, deployment, activation, status,
//!   settings validation with `melv_ems::Settings::validate`, installer checks with
//!   `melv_install::plan`); the store keeps rows. The web app and the API call the same service
//!   functions, so they cannot disagree about who may do what.
//! * Tenant isolation lives in one function ([`service::site_for`]): a site the caller may not see
//!   is a 404, never data. Role limits inside a visible site are 403 with the reason.
//! * Time comes from a [`Clock`] in the state, so tests age a site into Offline without sleeping.
//! * Bad input is a 4xx with a JSON message naming the field (`settings.tou.weekday[1]: ...`); bodies
//!   are limited to [`MAX_BODY`]; a batch is validated whole before anything is stored.
//! * The web app needs no JavaScript: forms post, pages are HTML with inline SVG charts, styles are
//!   one small stylesheet. Sessions are `HttpOnly; SameSite=Strict` cookies.
//!
//! ## Architecture invariant
//! This crate knows HTTP, HTML and the rules of the cloud; it knows no SQL (only `melv_store`'s
//! typed functions) and no control logic (settings rules are `melv_ems`'s, installer rules
//! `melv_install`'s, the alert catalogue `melv_core`'s). Its only clock is [`Clock`].

pub mod api;
pub mod auth;
pub mod broker_auth;
pub mod error;
pub mod feed;
pub mod ingest;
pub mod mqtt;
pub mod openapi;
pub mod service;
pub mod web;

use axum::extract::DefaultBodyLimit;
use axum::Router;
use melv_store::{Role, Store};
use melv_wire::shutdown_signal;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

/// Largest request body: a full ingest batch of 10,000 points is about 1.3 MB of JSON.
pub const MAX_BODY: usize = 2 * 1024 * 1024;
/// Largest sign-in body (API JSON or web form): an e-mail of at most 254 bytes and a password of at
/// most 256 characters (up to 1 KiB of UTF-8) fit with room for escaping.
pub const MAX_LOGIN_BODY: usize = 4 * 1024;

/// A site is Offline after this long without telemetry: 5 minutes, i.e. several missed uploads of
/// a gateway that reports every minute (issue 5 leaves the time to us; it must only be stated).
pub const DEFAULT_OFFLINE_AFTER_S: i64 = 300;

/// Where "now" comes from: the system clock in service, a settable one in tests.
pub trait Clock: Send + Sync {
    fn now_ms(&self) -> i64;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    }
}

/// A clock that tests move by hand.
#[derive(Default)]
pub struct ManualClock(pub AtomicI64);

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

impl ManualClock {
    pub fn set(&self, ms: i64) {
        self.0.store(ms, Ordering::SeqCst)
    }
}

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub clock: Arc<dyn Clock>,
    pub offline_after_s: i64,
    pub logins: Arc<auth::LoginLimiter>,
    /// The broker password file the cloud keeps ([`broker_auth`]); `None`: the operator keeps it.
    pub broker: Option<Arc<broker_auth::BrokerAuth>>,
}

impl AppState {
    pub fn new(store: Store, clock: Arc<dyn Clock>, offline_after_s: i64) -> Self {
        AppState {
            store,
            clock,
            offline_after_s,
            logins: Arc::default(),
            broker: None,
        }
    }
}

/// The whole application: API, web app, body limit, JSON 404 for unknown paths.
pub fn app(state: AppState) -> Router {
    api::router()
        .merge(web::router())
        .fallback(|| async { error::ApiError::not_found("no such page or API route") })
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(state)
}

/// Content-Security-Policy of every answer: no script at all (the web app has none), styles and
/// images from this origin (inline `style` attributes of the SVG charts allowed), forms post only
/// here, no framing (clickjacking).
pub const CSP: &str = "default-src 'self'; script-src 'none'; style-src 'self' 'unsafe-inline'; \
    img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Security headers on every answer (OWASP Secure Headers Project): CSP, no MIME sniffing, the
/// referrer only to this origin (the CSRF check reads it when a browser sends no Origin).
async fn security_headers(mut res: axum::response::Response) -> axum::response::Response {
    use axum::http::{header, HeaderValue};
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    res
}

/// What `melv serve` needs.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub database: String,
    pub admin_email: String,
    /// Creates the admin account at start when no account exists yet.
    pub admin_password: Option<String>,
    pub offline_after_s: i64,
    /// Also run one MQTT ingest worker in this process ([`mqtt`]).
    pub mqtt: Option<mqtt::WorkerConfig>,
    /// Keep the broker's password file ([`broker_auth`]).
    pub broker: Option<broker_auth::BrokerAuth>,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Store(#[from] melv_store::StoreError),
    #[error("admin account: {0}")]
    Admin(String),
    #[error("{0}")]
    Broker(String),
    #[error("listen on {0}: {1}")]
    Listen(SocketAddr, std::io::Error),
    #[error("tokio runtime: {0}")]
    Runtime(std::io::Error),
    #[error("retiring the worker: {0}")]
    Retire(String),
}

/// Opens the store (migrating it), makes sure an admin exists, then serves until Ctrl-C or
/// SIGTERM; with [`Config::mqtt`] an MQTT ingest worker runs beside the HTTP server, and at shutdown
/// it commits and acknowledges the batch in hand before the store is closed.
pub async fn serve(config: Config) -> Result<(), ServeError> {
    let store = Store::open(&config.database).await?;
    let mut state = AppState::new(store.clone(), Arc::new(SystemClock), config.offline_after_s);
    bootstrap_admin(&state, &config).await?;
    if let Some(b) = &config.broker {
        let n = broker_auth::write_passwd(&store, b)
            .await
            .map_err(|e| ServeError::Broker(e.message))?;
        eprintln!(
            "melv serve: broker password file {} written ({n} gateways)",
            b.passwd.display()
        );
        state.broker = Some(Arc::new(b.clone()));
    }
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| ServeError::Listen(config.listen, e))?;
    eprintln!(
        "melv serve: web app and API on http://{} ({:?} database)",
        listener.local_addr().unwrap_or(config.listen),
        store.backend()
    );
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let worker = config.mqtt.clone().map(|cfg| {
        let w = mqtt::Worker::new(feed::Feed::new(state.clone()), cfg);
        tokio::spawn(w.run(Box::pin(stopped(stop_rx.clone()))))
    });
    let served = axum::serve(listener, app(state))
        .with_graceful_shutdown(stopped(stop_rx))
        .await
        .map_err(|e| ServeError::Listen(config.listen, e));
    if let Some(w) = worker {
        // The worker sees the same signal; it ends after its batch in hand (and logs its summary).
        let _ = w.await;
    }
    store.close().await;
    served
}

/// `melv ingest`: an MQTT ingest worker without HTTP, on a Tokio runtime of its own, until Ctrl-C
/// or SIGTERM; returns its summary after the batch in hand was committed and acknowledged.
pub fn ingest_blocking(
    database: &str,
    config: mqtt::WorkerConfig,
) -> Result<mqtt::WorkerSummary, ServeError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(ServeError::Runtime)?;
    rt.block_on(async {
        let store = Store::open(database).await?;
        let state = AppState::new(
            store.clone(),
            Arc::new(SystemClock),
            DEFAULT_OFFLINE_AFTER_S,
        );
        let worker = mqtt::Worker::new(feed::Feed::new(state), config);
        let summary = worker.run(Box::pin(shutdown_signal())).await;
        store.close().await;
        Ok(summary)
    })
}

/// `melv ingest --retire`: takes a stopped worker out of service for good ([`mqtt::retire`]).
pub fn retire_blocking(
    database: &str,
    config: mqtt::WorkerConfig,
) -> Result<mqtt::WorkerSummary, ServeError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(ServeError::Runtime)?;
    rt.block_on(async {
        let store = Store::open(database).await?;
        let state = AppState::new(
            store.clone(),
            Arc::new(SystemClock),
            DEFAULT_OFFLINE_AFTER_S,
        );
        let r = mqtt::retire(feed::Feed::new(state), config).await;
        store.close().await;
        r.map_err(ServeError::Retire)
    })
}

async fn bootstrap_admin(state: &AppState, config: &Config) -> Result<(), ServeError> {
    if state.store.count_users().await? > 0 {
        return Ok(());
    }
    let (password, shown) = match &config.admin_password {
        Some(p) => (p.clone(), false),
        None => (auth::new_token()[..20].to_string(), true),
    };
    let hash = auth::hash_password(&password).map_err(|e| ServeError::Admin(e.message))?;
    state
        .store
        .create_user(
            &config.admin_email,
            "Administrator",
            Role::Admin,
            &hash,
            state.clock.now_ms(),
        )
        .await?;
    if shown {
        eprintln!(
            "melv serve: created admin account {} with password {password} (change it, or pass --admin-password)",
            config.admin_email
        );
    }
    Ok(())
}

/// [`serve`] on a multi-threaded Tokio runtime of its own, for callers without one (the CLI).
pub fn serve_blocking(config: Config) -> Result<(), ServeError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| ServeError::Listen(config.listen, e))?;
    rt.block_on(serve(config))
}
