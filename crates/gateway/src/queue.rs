//! The store-and-forward queue: SQLite in WAL mode, one file per gateway (`STATE_DIR/queue.sqlite`).
//!
//! Why SQLite and not our own segment files: the queue is removed from *out of order* (live records
//! are acknowledged before the older backlog), it must allocate sequence numbers atomically with the
//! record they number, and it must keep a few pieces of state (energy counters, simulated clock,
//! settings in force) consistent with the records. A database transaction gives all three at once;
//! SQLite's own page checksums, journal and recovery have decades of crash testing behind them
//! (sqlite.org/testing.html), where a hand-written segment format would need its own. WAL with
//! `synchronous=NORMAL` keeps every committed transaction across a process crash or `kill -9`; only
//! a power cut may lose the last transactions, and then it loses them together with the sequence
//! numbers they took, so the numbering stays gapless (sqlite.org/pragma.html#pragma_synchronous).
//!
//! Policy when full: at most `capacity` records are held (default 30 days of 1-minute telemetry
//! plus room for alerts); when an append would exceed it, the *oldest* records are dropped and
//! counted in `dropped` (persisted, reported in `/status`). Newest data is kept because the cloud's
//! present view matters most and old backlog is the least likely to still be wanted.

use crate::record::Record;
use rusqlite::{params, Connection, OptionalExtension};
use std::path::Path;

/// 30 days of 1-minute telemetry (43 200) plus 10 % headroom for alert records.
pub const DEFAULT_CAPACITY: u64 = 30 * 24 * 60 * 11 / 10;

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("queue database {path}: {source}")]
    Sqlite {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("queue capacity must be at least 1")]
    Capacity,
}

/// One stored record, ready to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    pub seq: u64,
    pub kind: String,
    pub payload: Vec<u8>,
}

/// The on-disk queue of one gateway.
pub struct Queue {
    conn: Connection,
    path: String,
    capacity: u64,
    len: u64,
    next_seq: u64,
    dropped: u64,
}

impl Queue {
    /// Open (or create) the queue at `path`.
    pub fn open(path: &Path, capacity: u64) -> Result<Self, QueueError> {
        let p = path.display().to_string();
        let err = |source| QueueError::Sqlite {
            path: p.clone(),
            source,
        };
        if capacity == 0 {
            return Err(QueueError::Capacity);
        }
        let conn = Connection::open(path).map_err(err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(err)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(err)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS records (
                 seq INTEGER PRIMARY KEY,
                 kind TEXT NOT NULL,
                 payload BLOB NOT NULL);
             CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);",
        )
        .map_err(err)?;
        let mut q = Self {
            conn,
            path: p.clone(),
            capacity,
            len: 0,
            next_seq: 1,
            dropped: 0,
        };
        q.len = q
            .conn
            .query_row("SELECT COUNT(*) FROM records", [], |r| r.get::<_, i64>(0))
            .map_err(err)? as u64;
        q.next_seq = q
            .meta("next_seq")?
            .and_then(|v| v.parse().ok())
            .unwrap_or(1);
        q.dropped = q.meta("dropped")?.and_then(|v| v.parse().ok()).unwrap_or(0);
        Ok(q)
    }

    fn err(&self, source: rusqlite::Error) -> QueueError {
        QueueError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    /// A stored piece of state.
    pub fn meta(&self, key: &str) -> Result<Option<String>, QueueError> {
        self.conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Store records and state in one transaction; returns the sequence numbers given. The state
    /// pairs (`key`, `value`) are written with them, so that counters and clock match the records.
    pub fn append(
        &mut self,
        gateway: &str,
        records: &[Record],
        state: &[(&str, String)],
    ) -> Result<Vec<u64>, QueueError> {
        let mut seqs = Vec::with_capacity(records.len());
        let mut next = self.next_seq;
        let mut len = self.len;
        let mut dropped = self.dropped;
        let tx = self.conn.transaction().map_err(|e| QueueError::Sqlite {
            path: self.path.clone(),
            source: e,
        })?;
        let res = (|| -> Result<(), rusqlite::Error> {
            for r in records {
                tx.execute(
                    "INSERT INTO records (seq, kind, payload) VALUES (?1, ?2, ?3)",
                    params![next as i64, r.kind(), r.to_payload(gateway, next)],
                )?;
                seqs.push(next);
                next += 1;
                len += 1;
            }
            if len > self.capacity {
                let excess = len - self.capacity;
                let n = tx.execute(
                    "DELETE FROM records WHERE seq IN (SELECT seq FROM records ORDER BY seq LIMIT ?1)",
                    [excess as i64],
                )? as u64;
                len -= n;
                dropped += n;
            }
            let put = "INSERT INTO meta (key, value) VALUES (?1, ?2)
                       ON CONFLICT(key) DO UPDATE SET value = excluded.value";
            tx.execute(put, params!["next_seq", next.to_string()])?;
            tx.execute(put, params!["dropped", dropped.to_string()])?;
            for (k, v) in state {
                tx.execute(put, params![k, v])?;
            }
            Ok(())
        })();
        match res.and_then(|()| tx.commit()) {
            Ok(()) => {
                self.next_seq = next;
                self.len = len;
                self.dropped = dropped;
                Ok(seqs)
            }
            Err(e) => Err(self.err(e)),
        }
    }

    /// Store state alone.
    pub fn set_meta(&mut self, key: &str, value: &str) -> Result<(), QueueError> {
        self.conn
            .execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                params![key, value],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// Up to `limit` records with `from <= seq < below`, oldest first.
    pub fn fetch(&self, from: u64, below: u64, limit: usize) -> Result<Vec<Queued>, QueueError> {
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT seq, kind, payload FROM records WHERE seq >= ?1 AND seq < ?2 ORDER BY seq LIMIT ?3",
            )
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map(params![from as i64, below as i64, limit as i64], |r| {
                Ok(Queued {
                    seq: r.get::<_, i64>(0)? as u64,
                    kind: r.get(1)?,
                    payload: r.get(2)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))
    }

    /// The broker has the records: remove them (in one transaction). Unknown numbers are ignored
    /// (a duplicate acknowledgement, or a record already dropped by the bound).
    pub fn ack(&mut self, seqs: &[u64]) -> Result<(), QueueError> {
        if seqs.is_empty() {
            return Ok(());
        }
        let tx = self.conn.transaction().map_err(|e| QueueError::Sqlite {
            path: self.path.clone(),
            source: e,
        })?;
        let mut removed = 0u64;
        let res = (|| -> Result<(), rusqlite::Error> {
            for s in seqs {
                removed += tx.execute("DELETE FROM records WHERE seq = ?1", [*s as i64])? as u64;
            }
            Ok(())
        })();
        match res.and_then(|()| tx.commit()) {
            Ok(()) => {
                self.len -= removed.min(self.len);
                Ok(())
            }
            Err(e) => Err(self.err(e)),
        }
    }

    /// Records waiting for an acknowledgement.
    pub fn len(&self) -> u64 {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// The number the next record will get.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }
    /// Records dropped by the bound, over the queue's life.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
    pub fn capacity(&self) -> u64 {
        self.capacity
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::AlertRecord;
    use melv_core::AlertCode;

    fn tmp(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("melv-gw-queue-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d.join("q.sqlite")
    }

    fn rec(t: i64) -> Record {
        Record::Alert(AlertRecord::new(
            t,
            None,
            AlertCode::COMMUNICATION_LOST,
            true,
        ))
    }

    fn seqs(q: &Queue) -> Vec<u64> {
        q.fetch(0, u64::MAX >> 1, 1000)
            .unwrap()
            .iter()
            .map(|r| r.seq)
            .collect()
    }

    /// Append `appends` batches, ack `acks`, with capacity `cap`; expect the stored numbers and drops.
    fn check(cap: u64, appends: &[usize], acks: &[u64], stored: &[u64], dropped: u64) {
        let p = tmp(&format!("check-{cap}-{}-{}", appends.len(), acks.len()));
        let mut q = Queue::open(&p, cap).unwrap();
        let mut t = 0;
        for &n in appends {
            let rs: Vec<Record> = (0..n)
                .map(|_| {
                    t += 1;
                    rec(t)
                })
                .collect();
            q.append("gw", &rs, &[]).unwrap();
        }
        q.ack(acks).unwrap();
        assert_eq!(seqs(&q), stored);
        assert_eq!(q.dropped(), dropped);
        assert_eq!(q.len(), stored.len() as u64);
    }

    #[test]
    fn append_ack_and_bound() {
        check(10, &[3], &[], &[1, 2, 3], 0);
        check(10, &[3, 2], &[2, 4], &[1, 3, 5], 0);
        check(10, &[3], &[7, 7], &[1, 2, 3], 0);
        // Full: the oldest go first, counted.
        check(4, &[3, 3], &[], &[3, 4, 5, 6], 2);
        check(2, &[5], &[], &[4, 5], 3);
        check(3, &[2, 2], &[4], &[2, 3], 1);
    }

    #[test]
    fn numbers_and_state_survive_reopen() {
        let p = tmp("reopen");
        {
            let mut q = Queue::open(&p, 100).unwrap();
            q.append("gw", &[rec(1), rec(2)], &[("clock", "120".into())])
                .unwrap();
            q.ack(&[1]).unwrap();
        }
        let mut q = Queue::open(&p, 100).unwrap();
        assert_eq!(q.len(), 1);
        assert_eq!(q.next_seq(), 3);
        assert_eq!(q.meta("clock").unwrap().as_deref(), Some("120"));
        // Numbers continue after the acknowledged ones: never reused.
        assert_eq!(q.append("gw", &[rec(3)], &[]).unwrap(), vec![3]);
        let r = &q.fetch(3, 4, 10).unwrap()[0];
        let v: serde_json::Value = serde_json::from_slice(&r.payload).unwrap();
        assert_eq!(v["seq"], 3);
        assert_eq!(v["gateway"], "gw");
        assert_eq!(r.kind, "alert");
    }

    #[test]
    fn fetch_window() {
        let p = tmp("window");
        let mut q = Queue::open(&p, 100).unwrap();
        let rs: Vec<Record> = (0..10).map(rec).collect();
        q.append("gw", &rs, &[]).unwrap();
        let got: Vec<u64> = q.fetch(3, 7, 2).unwrap().iter().map(|r| r.seq).collect();
        assert_eq!(got, vec![3, 4]);
        let got: Vec<u64> = q.fetch(6, 7, 10).unwrap().iter().map(|r| r.seq).collect();
        assert_eq!(got, vec![6]);
        assert!(Queue::open(&p, 0).is_err());
    }
}
