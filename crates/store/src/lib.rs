//! # melv-store: the cloud's persistence, on SQLite (default) and PostgreSQL
//!
//! `melv serve` keeps accounts, sites and their devices, commissioning checks, versioned working-mode
//! settings with their audit trail, telemetry and alert events. This crate is the only place that
//! knows SQL. Everything above it calls typed functions on [`Store`] and gets typed rows back.
//!
//! ## Design
//! * One SQL text for both databases. Queries go through sqlx's `Any` driver as plain runtime strings
//!   (no compile-time macros, so building needs no database). The SQL is the common subset of SQLite
//!   3.35+ and PostgreSQL 12+: `BIGINT`, `DOUBLE PRECISION`, `TEXT`, `INSERT .. ON CONFLICT`,
//!   `RETURNING`, numbered parameters `$1`. The two places where the dialects differ (auto-increment
//!   keys, and SQLite's spelling `?N` of a numbered parameter) are rewritten by [`Backend`].
//! * Times are integers: milliseconds since the Unix epoch (UTC), passed in by the caller. The store
//!   never reads a clock, so tests can age a site into "Offline" without sleeping.
//! * Migrations are an ordered list of SQL scripts ([`migrate`]); each runs once, in a transaction, and
//!   is recorded in `melv_migrations`. `Store::open` applies what is missing.
//! * Idempotent ingest: a telemetry point and an event are keyed by (gateway serial, sequence number),
//!   inserted with `ON CONFLICT DO NOTHING`, so a gateway that retries a batch never duplicates data;
//!   one batch is one transaction, so a failed batch leaves nothing half-written.
//! * Aggregation: history buckets of fixed width (5 min, hour) are summed in SQL with integer division
//!   of the timestamp; calendar buckets (day, month in the site's time zone) are built by the caller
//!   from hourly buckets, because the two databases share no calendar function.
//!
//! ## Architecture invariant
//! This crate knows SQL and the shape of the rows, and nothing of HTTP, HTML, sessions or who may do
//! what: authorization is the server's. It never reads the clock and never hashes a password; it stores
//! what it is given. Only this crate may depend on `sqlx`.

mod accounts;
mod migrate;
mod settings;
mod sites;
mod telemetry;
mod uplink;

pub use accounts::{Role, Session, User};
pub use settings::{AuditEntry, Delivery, SettingsVersion};
pub use sites::{Check, Device, DeviceKind, NewSite, Site, SiteFilter};
pub use telemetry::{
    ActiveAlert, BatteryRow, Bucket, EventRow, IngestCounts, IngestPart, PointRow, RejectRow,
    StoredEvent,
};
pub use uplink::UplinkRow;

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Executor};
use std::sync::Once;

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database URL is not `sqlite://...` or `postgres://...`.
    #[error("database URL {0:?}: expected sqlite://PATH or postgres://USER@HOST/DB")]
    BadUrl(String),
    /// A unique key already exists (an e-mail, a device serial).
    #[error("{0} already exists")]
    Conflict(String),
    /// A row the caller names does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// A stored value cannot be read back (a corrupt row or a newer schema).
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// Which database a [`Store`] talks to: the SQL differs in two spellings only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// Rewrites the shared SQL for this backend: `{pk}` becomes the auto-increment key, and on SQLite
    /// `$N` becomes `?N` (SQLite reads `$N` as a *named* parameter and numbers those by first
    /// appearance; `?N` is its explicit numbered form).
    pub fn sql(self, shared: &str) -> String {
        let s = shared.replace(
            "{pk}",
            match self {
                Backend::Sqlite => "INTEGER PRIMARY KEY AUTOINCREMENT",
                Backend::Postgres => "BIGSERIAL PRIMARY KEY",
            },
        );
        match self {
            Backend::Postgres => s,
            Backend::Sqlite => s.replace('$', "?"),
        }
    }
}

/// A handle on the database: cheap to clone (a connection pool inside).
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

static DRIVERS: Once = Once::new();

impl Store {
    /// Connects, creating the SQLite file if missing, and applies the migrations that are missing.
    pub async fn open(url: &str) -> Result<Self> {
        DRIVERS.call_once(sqlx::any::install_default_drivers);
        let (backend, url) = if let Some(rest) = url.strip_prefix("sqlite://") {
            // `mode=rwc`: create the file on first start, so `melv serve` needs nothing installed.
            let sep = if rest.contains('?') { '&' } else { '?' };
            (Backend::Sqlite, format!("sqlite://{rest}{sep}mode=rwc"))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (Backend::Postgres, url.to_string())
        } else {
            return Err(StoreError::BadUrl(url.to_string()));
        };
        let mut options = AnyPoolOptions::new();
        options = match backend {
            // SQLite has one writer; WAL lets readers run beside it, and a busy timeout makes a second
            // writer wait instead of failing (SQLite documentation, "Write-Ahead Logging").
            Backend::Sqlite => options.max_connections(4).after_connect(|conn, _| {
                Box::pin(async move {
                    conn.execute("PRAGMA journal_mode=WAL").await?;
                    conn.execute("PRAGMA synchronous=NORMAL").await?;
                    conn.execute("PRAGMA busy_timeout=5000").await?;
                    conn.execute("PRAGMA foreign_keys=ON").await?;
                    Ok(())
                })
            }),
            Backend::Postgres => options.max_connections(16),
        };
        let pool = options.connect(&url).await?;
        let store = Store { pool, backend };
        migrate::apply(&store).await?;
        Ok(store)
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Closes the pool (waits for connections to be returned).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    fn q(&self, shared: &str) -> String {
        self.backend.sql(shared)
    }
}

/// Test support: creates an empty PostgreSQL database `name` on the server of `base_url` (a URL of
/// any existing database there, e.g. `postgres://root@127.0.0.1:5432/test`) and returns its URL, so
/// that each test run gets a schema of its own and runs cannot collide. `name` is restricted to
/// `[a-z0-9_]` because it is spliced into DDL (identifiers cannot be bound parameters).
pub async fn scratch_postgres(base_url: &str, name: &str) -> Result<String> {
    use sqlx::Connection;
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(StoreError::BadUrl(format!("database name {name:?}")));
    }
    DRIVERS.call_once(sqlx::any::install_default_drivers);
    let (head, query) = match base_url.split_once('?') {
        Some((h, q)) => (h, format!("?{q}")),
        None => (base_url, String::new()),
    };
    let slash = head
        .rfind('/')
        .filter(|i| *i > "postgres://".len())
        .ok_or_else(|| StoreError::BadUrl(base_url.to_string()))?;
    let mut conn = sqlx::AnyConnection::connect(base_url).await?;
    conn.execute(format!("DROP DATABASE IF EXISTS {name}").as_str())
        .await?;
    conn.execute(format!("CREATE DATABASE {name}").as_str())
        .await?;
    conn.close().await?;
    Ok(format!("{}/{name}{query}", &head[..slash]))
}

/// Reads a column, turning a decoding failure into [`StoreError::Corrupt`] naming the column.
pub(crate) fn col<'r, T>(row: &'r AnyRow, name: &str) -> Result<T>
where
    T: sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    use sqlx::Row;
    row.try_get(name)
        .map_err(|e| StoreError::Corrupt(format!("column {name}: {e}")))
}

/// Maps a unique-key violation to [`StoreError::Conflict`] with a readable name.
pub(crate) fn conflict(e: sqlx::Error, what: impl Into<String>) -> StoreError {
    if let sqlx::Error::Database(db) = &e {
        if db.is_unique_violation() {
            return StoreError::Conflict(what.into());
        }
    }
    StoreError::Db(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(backend: Backend, shared: &str, expected: &str) {
        assert_eq!(backend.sql(shared), expected);
    }

    #[test]
    fn dialects() {
        check(Backend::Postgres, "id {pk}", "id BIGSERIAL PRIMARY KEY");
        check(
            Backend::Sqlite,
            "id {pk}",
            "id INTEGER PRIMARY KEY AUTOINCREMENT",
        );
        check(Backend::Sqlite, "a = $1 AND b = $12", "a = ?1 AND b = ?12");
        check(Backend::Postgres, "a = $1", "a = $1");
    }
}
