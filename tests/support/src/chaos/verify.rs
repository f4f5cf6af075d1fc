//! The oracle of a chaos run.
//!
//! * [`History`]: MariaDB triggers on every sink table append each write (insert,
//!   update, physical delete) with the row's key, `seq` and `dbmazz_cdc_version` to
//!   `chaos_audit.history`. Per key, neither may ever go down; the same version
//!   written twice is a re-application (harmless for the state, but visible in the
//!   history, which is how the label tests prove a load ran exactly once).
//! * [`TableDiff`]: source and sink compared row by row by key: rows missing in the
//!   sink (lost), rows that differ, rows live in the sink but gone at the source.
//! * [`ConfirmWatch`]: samples every job's slot `confirmed_flush_lsn` and checkpoint;
//!   the slot must never be ahead of the checkpoint.

use std::collections::BTreeMap;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use tokio::task::JoinHandle;

use crate::compare::{self, NormRow};

/// Database of the history table (not the sink database, so dbmazz never sees it).
pub const AUDIT_DB: &str = "chaos_audit";

/// What the history shows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HistoryReport {
    /// Writes recorded.
    pub writes: u64,
    /// Writes that moved a key's `seq` or version backwards (must be empty).
    pub regressions: Vec<String>,
    /// Writes that repeated the version already stored for the key.
    pub reapplied: u64,
}

/// `(table, key, op, seq, version)` as stored.
type HistoryRow = (String, String, String, Option<i64>, Option<String>);

/// History triggers on sink tables.
#[derive(Debug)]
pub struct History;

fn q(s: &str) -> String {
    format!("`{}`", s.replace('`', "``"))
}

impl History {
    /// Creates the history table and installs triggers on `db.table` for each
    /// `(table, key columns)`. The tables must already have `dbmazz_cdc_version`
    /// (dbmazz adds it during setup); waits up to a minute for that.
    pub async fn install(
        pool: &mysql_async::Pool,
        db: &str,
        tables: &[(String, Vec<&str>)],
    ) -> Result<(), String> {
        let err = |e: mysql_async::Error| e.to_string();
        let mut c = pool.get_conn().await.map_err(err)?;
        c.query_drop(format!(
            "CREATE DATABASE IF NOT EXISTS {AUDIT_DB};
             CREATE TABLE IF NOT EXISTS {AUDIT_DB}.history (
                 id BIGINT AUTO_INCREMENT PRIMARY KEY,
                 tbl VARCHAR(128) NOT NULL, pk VARCHAR(255) NOT NULL, op CHAR(1) NOT NULL,
                 seq BIGINT, version DECIMAL(30,0), deleted TINYINT,
                 KEY by_key (tbl, pk, id)) ENGINE=InnoDB"
        ))
        .await
        .map_err(err)?;
        for (table, keys) in tables {
            let start = std::time::Instant::now();
            loop {
                let n: Option<i64> = c
                    .exec_first(
                        "SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? \
                         AND TABLE_NAME = ? AND COLUMN_NAME = 'dbmazz_cdc_version'",
                        (db, table),
                    )
                    .await
                    .map_err(err)?;
                if n == Some(1) {
                    break;
                }
                if start.elapsed() > Duration::from_secs(60) {
                    return Err(format!("{db}.{table} has no dbmazz_cdc_version after 60 s"));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let pk = |row: &str| {
                let parts: Vec<String> = keys.iter().map(|k| format!("{row}.{}", q(k))).collect();
                format!("CONCAT_WS(',', {})", parts.join(", "))
            };
            let t = format!("{}.{}", q(db), q(table));
            let tl = table.replace('\'', "''");
            for (suffix, event, row, op) in [
                ("i", "INSERT", "NEW", "i"),
                ("u", "UPDATE", "NEW", "u"),
                ("d", "DELETE", "OLD", "d"),
            ] {
                let name = q(&format!("chaos_hist_{table}_{suffix}"));
                c.query_drop(format!("DROP TRIGGER IF EXISTS {}.{name}", q(db)))
                    .await
                    .map_err(err)?;
                c.query_drop(format!(
                    "CREATE TRIGGER {}.{name} AFTER {event} ON {t} FOR EACH ROW \
                     INSERT INTO {AUDIT_DB}.history (tbl, pk, op, seq, version, deleted) \
                     VALUES ('{tl}', {}, '{op}', {row}.seq, {row}.dbmazz_cdc_version, {row}.dbmazz_is_deleted)",
                    q(db),
                    pk(row)
                ))
                .await
                .map_err(err)?;
            }
        }
        Ok(())
    }

    /// Reads the history and checks it.
    pub async fn check(pool: &mysql_async::Pool) -> Result<HistoryReport, String> {
        let mut c = pool.get_conn().await.map_err(|e| e.to_string())?;
        let rows: Vec<HistoryRow> = c
            .query(format!(
                "SELECT tbl, pk, op, seq, CAST(version AS CHAR) FROM {AUDIT_DB}.history ORDER BY id"
            ))
            .await
            .map_err(|e| e.to_string())?;
        let mut last: BTreeMap<(String, String), (i64, i128)> = BTreeMap::new();
        let mut r = HistoryReport {
            writes: rows.len() as u64,
            ..Default::default()
        };
        for (tbl, pk, op, seq, version) in rows {
            let (Some(seq), Some(v)) = (seq, version.and_then(|v| v.parse::<i128>().ok())) else {
                r.regressions
                    .push(format!("{tbl} {pk}: write without seq or version ({op})"));
                continue;
            };
            let key = (tbl.clone(), pk.clone());
            if let Some(&(ls, lv)) = last.get(&key) {
                if v < lv || seq < ls {
                    r.regressions.push(format!(
                        "{tbl} key {pk}: {op} moved from seq {ls} version {lv} to seq {seq} version {v}"
                    ));
                } else if v == lv && op != "d" {
                    r.reapplied += 1;
                }
            }
            // A physical delete keeps its version as a tombstone: a later re-insert
            // must carry a higher one.
            let e = last.entry(key).or_insert((seq, v));
            *e = (e.0.max(seq), e.1.max(v));
        }
        Ok(r)
    }

    /// Forgets the history (between scripted phases of a test).
    pub async fn clear(pool: &mysql_async::Pool) -> Result<(), String> {
        let mut c = pool.get_conn().await.map_err(|e| e.to_string())?;
        c.query_drop(format!("DELETE FROM {AUDIT_DB}.history"))
            .await
            .map_err(|e| e.to_string())
    }
}

/// Source and sink of one table compared by key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TableDiff {
    /// Table.
    pub table: String,
    /// Rows at the source.
    pub source_rows: u64,
    /// Source rows missing in the sink.
    pub lost: u64,
    /// Rows present on both sides with different values.
    pub different: u64,
    /// Rows live in the sink but absent at the source.
    pub extra: u64,
    /// The first differences, readable.
    pub examples: Vec<String>,
}

impl TableDiff {
    /// True when both sides are equal.
    pub fn is_equal(&self) -> bool {
        self.lost == 0 && self.different == 0 && self.extra == 0
    }

    /// Compares `table` (public schema at the source, live rows at the sink).
    pub async fn compute(
        pg: &tokio_postgres::Client,
        sink: &mysql_async::Pool,
        table: &str,
        keys: &[&str],
    ) -> Result<TableDiff, String> {
        let (src, dst) = compare::live_rows(pg, sink, table, keys).await?;
        let key_of = |r: &NormRow| -> Vec<Option<String>> {
            keys.iter().map(|k| r.get(*k).cloned().flatten()).collect()
        };
        let dst: BTreeMap<Vec<Option<String>>, NormRow> =
            dst.into_iter().map(|r| (key_of(&r), r)).collect();
        let mut d = TableDiff {
            table: table.to_owned(),
            source_rows: src.len() as u64,
            ..Default::default()
        };
        let mut seen = 0u64;
        for s in &src {
            let k = key_of(s);
            match dst.get(&k) {
                None => {
                    d.lost += 1;
                    if d.examples.len() < 5 {
                        d.examples.push(format!("lost {k:?}: {s:?}"));
                    }
                }
                Some(t) => {
                    seen += 1;
                    if t != s {
                        d.different += 1;
                        if d.examples.len() < 5 {
                            d.examples
                                .push(format!("different {k:?}:\n  source {s:?}\n  sink   {t:?}"));
                        }
                    }
                }
            }
        }
        d.extra = dst.len() as u64 - seen;
        if d.extra > 0 && d.examples.len() < 5 {
            let src_keys: std::collections::BTreeSet<_> = src.iter().map(key_of).collect();
            if let Some(k) = dst.keys().find(|k| !src_keys.contains(*k)) {
                d.examples
                    .push(format!("extra (deleted at the source) {k:?}"));
            }
        }
        Ok(d)
    }
}

/// Samples slots and checkpoints; records every moment a slot was confirmed beyond
/// its job's checkpoint.
pub struct ConfirmWatch {
    stop: tokio::sync::watch::Sender<bool>,
    task: JoinHandle<(u64, Vec<String>)>,
}

impl ConfirmWatch {
    /// Starts sampling every 20 ms; `jobs` are `(job id, slot)`, `schema` the
    /// checkpoint schema. Survives PostgreSQL restarts (reconnects).
    pub fn start(conn: String, schema: &str, jobs: Vec<(String, String)>) -> ConfirmWatch {
        let (stop, mut rx) = tokio::sync::watch::channel(false);
        let table = format!("\"{}\".dbmazz_checkpoints", schema.replace('"', "\"\""));
        let task = tokio::spawn(async move {
            let mut samples = 0u64;
            let mut violations = Vec::new();
            let mut client: Option<tokio_postgres::Client> = None;
            while !*rx.borrow() {
                if client.as_ref().is_none_or(|c| c.is_closed()) {
                    client = match tokio_postgres::connect(&conn, tokio_postgres::NoTls).await {
                        Ok((c, connection)) => {
                            tokio::spawn(async move {
                                let _ = connection.await;
                            });
                            Some(c)
                        }
                        Err(_) => None,
                    };
                }
                if let Some(c) = &client {
                    for (job, slot) in &jobs {
                        // Slot first, checkpoint second: whatever the slot shows must
                        // already be recorded by then (the checkpoint never goes back).
                        let s = c
                            .query_opt(
                                "SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = $1",
                                &[slot],
                            )
                            .await;
                        let cp = c
                            .query_opt(
                                &format!("SELECT lsn FROM {table} WHERE job_id = $1"),
                                &[job],
                            )
                            .await;
                        if let (Ok(Some(s)), Ok(cp)) = (s, cp) {
                            let s: Option<tokio_postgres::types::PgLsn> = s.get(0);
                            let cp: Option<tokio_postgres::types::PgLsn> = cp.map(|r| r.get(0));
                            samples += 1;
                            match (s, cp) {
                                (Some(s), Some(cp)) if u64::from(s) > u64::from(cp) => violations
                                    .push(format!(
                                        "job {job}: slot {slot} confirmed {s} > checkpoint {cp}"
                                    )),
                                _ => {}
                            }
                        }
                    }
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(20)) => {}
                    _ = rx.changed() => {}
                }
            }
            (samples, violations)
        });
        ConfirmWatch { stop, task }
    }

    /// Stops sampling; returns `(samples, violations)`.
    pub async fn finish(self) -> (u64, Vec<String>) {
        let _ = self.stop.send(true);
        self.task
            .await
            .unwrap_or((0, vec!["confirm watch task failed".into()]))
    }
}
