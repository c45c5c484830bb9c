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
//! A record leaves the queue only when the **cloud** confirms it committed it: the cloud's
//! [`melv_wire::UplinkAck`] carries the highest contiguous number it holds, and
//! [`Queue::confirm_through`] deletes everything up to it. The broker's PUBACK deletes nothing: a
//! broker that restarts without its sessions drops what it had acknowledged (issue 15 measured 9 to
//! 11 % of all records lost that way), so it cannot be the guarantee.
//!
//! Policy when full: at most `capacity` records are held (default 30 days of 1-minute telemetry
//! plus room for alerts); when an append would exceed it, the *oldest* records are dropped and
//! counted in `dropped` (persisted, reported in `/status`). Newest data is kept because the cloud's
//! present view matters most and old backlog is the least likely to still be wanted. The highest
//! number dropped (`dropped_through`) travels in every record appended afterwards, so that the
//! cloud stops waiting for the dropped ones and counts them as lost.

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
    /// Highest number discarded by the bound (0: none).
    dropped_through: u64,
    /// Highest contiguous number the cloud confirmed.
    cloud_mark: u64,
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
            dropped_through: 0,
            cloud_mark: 0,
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
        q.dropped_through = q
            .meta("dropped_through")?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        q.cloud_mark = q
            .meta("cloud_mark")?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
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
    /// When the bound is reached the oldest records are discarded first, so that the new records
    /// carry the drop mark that includes them.
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
        let mut dropped_through = self.dropped_through;
        let capacity = self.capacity;
        let tx = self.conn.transaction().map_err(|e| QueueError::Sqlite {
            path: self.path.clone(),
            source: e,
        })?;
        let res = (|| -> Result<(), rusqlite::Error> {
            // Room for the new records first (all of it, when there are more than the bound: then
            // the oldest of them go as well, below).
            let excess = (len + records.len() as u64).saturating_sub(capacity);
            drop_oldest(&tx, excess, &mut len, &mut dropped, &mut dropped_through)?;
            // What the records tell the cloud it need not wait for: everything below the oldest
            // record still held. That is the bound's drops, and, in a queue that ran before the
            // cloud's ack existed, what the broker's PUBACK deleted (sent once; the cloud has it or
            // it is lost), so that old gaps cannot stall the cloud's mark.
            let oldest: Option<i64> =
                tx.query_row("SELECT MIN(seq) FROM records", [], |r| r.get(0))?;
            let floor = oldest.map_or(next.saturating_sub(1), |o| (o as u64).saturating_sub(1));
            let floor = floor.max(dropped_through);
            for r in records {
                tx.execute(
                    "INSERT INTO records (seq, kind, payload) VALUES (?1, ?2, ?3)",
                    params![
                        next as i64,
                        r.kind(),
                        r.to_payload_after_drop(gateway, next, floor)
                    ],
                )?;
                seqs.push(next);
                next += 1;
                len += 1;
            }
            let excess = len.saturating_sub(capacity);
            drop_oldest(&tx, excess, &mut len, &mut dropped, &mut dropped_through)?;
            let put = "INSERT INTO meta (key, value) VALUES (?1, ?2)
                       ON CONFLICT(key) DO UPDATE SET value = excluded.value";
            tx.execute(put, params!["next_seq", next.to_string()])?;
            tx.execute(put, params!["dropped", dropped.to_string()])?;
            tx.execute(put, params!["dropped_through", dropped_through.to_string()])?;
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
                self.dropped_through = dropped_through;
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

    /// The cloud has committed every record numbered up to `mark`: delete them (one statement)
    /// and keep the mark. A mark at or below the one already known changes nothing (an old retained
    /// ack, or acks of two workers crossing); a mark beyond the numbers given so far is held to the
    /// last number given (a cloud that knows of records this queue never made: a state directory
    /// that was reset). Returns how many records were deleted.
    pub fn confirm_through(&mut self, mark: u64) -> Result<u64, QueueError> {
        let mark = mark.min(self.next_seq.saturating_sub(1));
        if mark <= self.cloud_mark {
            return Ok(0);
        }
        let tx = self.conn.transaction().map_err(|e| QueueError::Sqlite {
            path: self.path.clone(),
            source: e,
        })?;
        let res = (|| -> Result<u64, rusqlite::Error> {
            let n = tx.execute("DELETE FROM records WHERE seq <= ?1", [mark as i64])? as u64;
            tx.execute(
                "INSERT INTO meta (key, value) VALUES ('cloud_mark', ?1)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                [mark.to_string()],
            )?;
            Ok(n)
        })();
        match res.and_then(|n| tx.commit().map(|()| n)) {
            Ok(n) => {
                self.len -= n.min(self.len);
                self.cloud_mark = mark;
                Ok(n)
            }
            Err(e) => Err(self.err(e)),
        }
    }

    /// Delete these records (`--confirm broker`: the broker's PUBACK confirms, one by one). Unknown
    /// numbers are ignored (a duplicate acknowledgement, or a record already dropped by the bound).
    pub fn remove(&mut self, seqs: &[u64]) -> Result<u64, QueueError> {
        if seqs.is_empty() {
            return Ok(0);
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
                Ok(removed)
            }
            Err(e) => Err(self.err(e)),
        }
    }

    /// The highest contiguous number the cloud confirmed (0: none yet).
    pub fn cloud_mark(&self) -> u64 {
        self.cloud_mark
    }
    /// The highest number the bound discarded (0: none).
    pub fn dropped_through(&self) -> u64 {
        self.dropped_through
    }

    /// Records waiting for the cloud's confirmation.
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

/// Deletes the `n` oldest records, counting them and raising the drop mark.
fn drop_oldest(
    tx: &rusqlite::Transaction<'_>,
    n: u64,
    len: &mut u64,
    dropped: &mut u64,
    dropped_through: &mut u64,
) -> Result<(), rusqlite::Error> {
    if n == 0 {
        return Ok(());
    }
    let highest: Option<i64> = tx.query_row(
        "SELECT MAX(seq) FROM (SELECT seq FROM records ORDER BY seq LIMIT ?1)",
        [n as i64],
        |r| r.get(0),
    )?;
    let removed = tx.execute(
        "DELETE FROM records WHERE seq IN (SELECT seq FROM records ORDER BY seq LIMIT ?1)",
        [n as i64],
    )? as u64;
    *len -= removed.min(*len);
    *dropped += removed;
    if let Some(h) = highest {
        *dropped_through = (*dropped_through).max(h as u64);
    }
    Ok(())
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

    /// Append `appends` batches, then the cloud confirms through `mark`, with capacity `cap`;
    /// expect the stored numbers, the drops and the drop mark.
    fn check(cap: u64, appends: &[usize], mark: u64, stored: &[u64], dropped: (u64, u64)) {
        let p = tmp(&format!("check-{cap}-{appends:?}-{mark}"));
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
        q.confirm_through(mark).unwrap();
        assert_eq!(seqs(&q), stored);
        assert_eq!((q.dropped(), q.dropped_through()), dropped);
        assert_eq!(q.len(), stored.len() as u64);
    }

    #[test]
    fn append_confirm_and_bound() {
        check(10, &[3], 0, &[1, 2, 3], (0, 0));
        check(10, &[3, 2], 2, &[3, 4, 5], (0, 0));
        // A mark beyond the numbers given is held to the last one.
        check(10, &[3], 7, &[], (0, 0));
        // Full: the oldest go first, counted, and the drop mark follows them.
        check(4, &[3, 3], 0, &[3, 4, 5, 6], (2, 2));
        check(2, &[5], 0, &[4, 5], (3, 3));
        check(3, &[2, 2], 2, &[3, 4], (1, 1));
        check(3, &[2, 2], 4, &[], (1, 1));
    }

    #[test]
    fn the_broker_mode_removes_one_by_one() {
        let p = tmp("remove");
        let mut q = Queue::open(&p, 10).unwrap();
        let rs: Vec<Record> = (0..5).map(rec).collect();
        q.append("gw", &rs, &[]).unwrap();
        assert_eq!(q.remove(&[2, 4, 4, 9]).unwrap(), 2);
        assert_eq!(seqs(&q), vec![1, 3, 5]);
        assert_eq!(q.len(), 3);
    }

    /// (seq, dropped_through) of every record held.
    fn drop_marks(q: &Queue) -> Vec<(u64, i64)> {
        q.fetch(0, 100, 10)
            .unwrap()
            .iter()
            .map(|r| {
                let e: melv_wire::Envelope = serde_json::from_slice(&r.payload).unwrap();
                (r.seq, e.dropped_through)
            })
            .collect()
    }

    /// The records appended after a drop carry the drop mark; those before it do not.
    #[test]
    fn records_after_a_drop_carry_the_mark() {
        let p = tmp("drop-mark");
        let mut q = Queue::open(&p, 3).unwrap();
        q.append("gw", &[rec(1), rec(2)], &[]).unwrap();
        q.append("gw", &[rec(3), rec(4)], &[]).unwrap();
        let marks = drop_marks(&q);
        assert_eq!(marks, vec![(2, 0), (3, 1), (4, 1)]);
    }

    /// A queue that ran under the PUBACK rule: what the PUBACK deleted will not be sent again, and
    /// the next records say so.
    #[test]
    fn records_tell_the_cloud_what_will_never_come() {
        let p = tmp("floor");
        let mut q = Queue::open(&p, 100).unwrap();
        let rs: Vec<Record> = (0..5).map(rec).collect();
        q.append("gw", &rs, &[]).unwrap();
        q.remove(&[1, 2, 3]).unwrap();
        q.append("gw", &[rec(6)], &[]).unwrap();
        q.remove(&[4, 5, 6]).unwrap();
        q.append("gw", &[rec(7)], &[]).unwrap();
        let marks = drop_marks(&q);
        assert_eq!(marks, vec![(7, 6)]);
    }

    #[test]
    fn a_cloud_mark_only_moves_forward() {
        let p = tmp("mark");
        let mut q = Queue::open(&p, 100).unwrap();
        let rs: Vec<Record> = (0..6).map(rec).collect();
        q.append("gw", &rs, &[]).unwrap();
        assert_eq!(q.confirm_through(3).unwrap(), 3);
        // An older mark (a stale retained ack) deletes nothing and does not lower it.
        assert_eq!(q.confirm_through(2).unwrap(), 0);
        assert_eq!(q.cloud_mark(), 3);
        assert_eq!(seqs(&q), vec![4, 5, 6]);
        drop(q);
        let q = Queue::open(&p, 100).unwrap();
        assert_eq!((q.cloud_mark(), q.len()), (3, 3));
    }

    #[test]
    fn numbers_and_state_survive_reopen() {
        let p = tmp("reopen");
        {
            let mut q = Queue::open(&p, 100).unwrap();
            q.append("gw", &[rec(1), rec(2)], &[("clock", "120".into())])
                .unwrap();
            q.confirm_through(1).unwrap();
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
