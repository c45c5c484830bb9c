//! The store tests' databases: SQLite always, PostgreSQL when `MELV_TEST_POSTGRES` holds a URL.

use melv_store::*;
use std::sync::atomic::{AtomicUsize, Ordering};

static N: AtomicUsize = AtomicUsize::new(0);

/// A fresh database per call: a temporary SQLite file, and a scratch PostgreSQL database if asked
/// (named melv_store_PID_N, which the test scripts drop after the run).
pub async fn stores() -> Vec<Store> {
    let n = N.fetch_add(1, Ordering::SeqCst);
    let pid = std::process::id();
    let path = std::env::temp_dir().join(format!("melv-store-{pid}-{n}.db"));
    let _ = std::fs::remove_file(&path);
    let mut out = vec![Store::open(&format!("sqlite://{}", path.display()))
        .await
        .unwrap()];
    if let Ok(base) = std::env::var("MELV_TEST_POSTGRES") {
        let url = scratch_postgres(&base, &format!("melv_store_{pid}_{n}"))
            .await
            .unwrap();
        out.push(Store::open(&url).await.unwrap());
    }
    out
}
