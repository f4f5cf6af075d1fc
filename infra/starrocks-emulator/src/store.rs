//! The emulator's bookkeeping in its own MariaDB database (default `__emulator`):
//! transactions and their labels, staged transaction-load rows, error logs.
//!
//! Because it lives in MariaDB, an emulator restart keeps every label and every
//! PREPARED transaction. At start-up, transactions still in PREPARE are aborted, as
//! the FE aborts the transactions of a coordinator BE that restarted.
//!
//! State machine per (db, label): PREPARE → PREPARED → COMMITTED → VISIBLE, and
//! PREPARE|PREPARED → ABORTED. A label can be used again only once ABORTED (or
//! forgotten after `label_keep_max_second`).

use mysql_async::prelude::Queryable;
use mysql_async::{IsolationLevel, Pool, TxOpts};

/// Milliseconds since the epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Transaction states (`TransactionStatus` names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnState {
    /// Begun, loading.
    Prepare,
    /// Pre-committed (transaction interface).
    Prepared,
    /// Committed, not yet visible (publish timeout).
    Committed,
    /// Committed and visible.
    Visible,
    /// Rolled back.
    Aborted,
}

impl TxnState {
    /// The StarRocks name.
    pub fn name(self) -> &'static str {
        match self {
            TxnState::Prepare => "PREPARE",
            TxnState::Prepared => "PREPARED",
            TxnState::Committed => "COMMITTED",
            TxnState::Visible => "VISIBLE",
            TxnState::Aborted => "ABORTED",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "PREPARE" => TxnState::Prepare,
            "PREPARED" => TxnState::Prepared,
            "COMMITTED" => TxnState::Committed,
            "VISIBLE" => TxnState::Visible,
            "ABORTED" => TxnState::Aborted,
            _ => return None,
        })
    }

    /// `ExistingJobStatus` for a label in this state (None: the label may be reused).
    pub fn existing_job_status(self) -> Option<&'static str> {
        match self {
            TxnState::Prepare | TxnState::Prepared => Some("RUNNING"),
            TxnState::Committed | TxnState::Visible => Some("FINISHED"),
            TxnState::Aborted => None,
        }
    }
}

/// Stream Load or transaction interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnKind {
    /// `/_stream_load`
    Stream,
    /// `/api/transaction/*`
    Txn,
}

/// One transaction row.
#[derive(Debug, Clone)]
pub struct Txn {
    /// Id.
    pub txn_id: i64,
    /// Database.
    pub db: String,
    /// Label.
    pub label: String,
    /// Table.
    pub table: String,
    /// Kind.
    pub kind: TxnKind,
    /// State.
    pub state: TxnState,
    /// Why it was aborted.
    pub reason: Option<String>,
    /// Deadline for PREPARE (ms).
    pub deadline_ms: i64,
    /// Idle timeout (ms) for transaction loads.
    pub idle_ms: Option<i64>,
    /// Last activity (ms).
    pub active_ms: i64,
    /// Deadline for PREPARED (ms).
    pub prepared_deadline_ms: Option<i64>,
    /// When a COMMITTED transaction becomes VISIBLE (ms).
    pub visible_at_ms: Option<i64>,
    /// Load parameters of the first transaction load.
    pub params: Option<String>,
    /// Rows read.
    pub total: u64,
    /// Rows filtered.
    pub filtered: u64,
    /// Bytes received.
    pub bytes: u64,
    /// Number of transaction loads.
    pub loads: u32,
    /// `max_filter_ratio` of the transaction loads.
    pub max_filter_ratio: f64,
    /// Error log name.
    pub error_log: Option<String>,
    /// Created (ms).
    pub created_ms: i64,
}

impl Txn {
    /// Applies the timers: returns the abort reason if the transaction has expired.
    pub fn expiry(&self, now: i64) -> Option<(TxnState, &'static str)> {
        match self.state {
            TxnState::Prepare if now > self.deadline_ms => {
                Some((TxnState::Aborted, "timeout by txn manager"))
            }
            TxnState::Prepare if self.idle_ms.is_some_and(|i| now > self.active_ms + i) => {
                Some((TxnState::Aborted, "idle transaction timeout"))
            }
            TxnState::Prepared if self.prepared_deadline_ms.is_some_and(|d| now > d) => {
                Some((TxnState::Aborted, "prepared transaction timeout"))
            }
            TxnState::Committed if self.visible_at_ms.is_some_and(|v| now >= v) => {
                Some((TxnState::Visible, ""))
            }
            _ => None,
        }
    }
}

/// Bookkeeping failures.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// MariaDB failed.
    #[error("emulator bookkeeping in MariaDB failed: {0}")]
    Sql(#[from] mysql_async::Error),
    /// A bookkeeping row could not be read.
    #[error("emulator bookkeeping row is malformed: {0}")]
    Corrupt(String),
}

/// Why begin failed.
#[derive(Debug)]
pub enum BeginError {
    /// The label is taken; its transaction and its `ExistingJobStatus`.
    LabelExists(Box<Txn>, &'static str),
    /// Too many running transactions.
    TooMany(String),
    /// MariaDB failed.
    Store(StoreError),
}

impl From<StoreError> for BeginError {
    fn from(e: StoreError) -> Self {
        BeginError::Store(e)
    }
}

impl From<mysql_async::Error> for BeginError {
    fn from(e: mysql_async::Error) -> Self {
        BeginError::Store(StoreError::Sql(e))
    }
}

/// Quotes an identifier for MariaDB.
pub fn ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// The bookkeeping database.
#[derive(Debug, Clone)]
pub struct Store {
    pool: Pool,
    meta: String,
    label_keep_ms: i64,
}

const COLS: &str = "txn_id, db, label, tbl, kind, state, reason, deadline_ms, idle_ms, active_ms, \
    prepared_deadline_ms, visible_at_ms, params, total_rows, filtered_rows, load_bytes, loads, \
    max_filter_ratio, error_log, created_ms";

/// Read-committed transactions: no gap locks between unrelated labels.
pub fn rc() -> TxOpts {
    let mut o = TxOpts::default();
    o.with_isolation_level(IsolationLevel::ReadCommitted);
    o
}

impl Store {
    /// Opens (and creates if needed) the bookkeeping database `meta`.
    pub async fn open(pool: Pool, meta: &str, label_keep_ms: i64) -> Result<Self, StoreError> {
        let store = Store {
            pool,
            meta: ident(meta),
            label_keep_ms,
        };
        let m = &store.meta;
        let mut c = store.pool.get_conn().await?;
        c.query_drop(format!("CREATE DATABASE IF NOT EXISTS {m}"))
            .await?;
        c.query_drop(format!(
            "CREATE TABLE IF NOT EXISTS {m}.txns (
                txn_id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
                db VARCHAR(255) NOT NULL, label VARCHAR(255) NOT NULL, tbl VARCHAR(255) NOT NULL,
                kind VARCHAR(8) NOT NULL, state VARCHAR(16) NOT NULL, reason TEXT NULL,
                deadline_ms BIGINT NOT NULL, idle_ms BIGINT NULL, active_ms BIGINT NOT NULL,
                prepared_deadline_ms BIGINT NULL, visible_at_ms BIGINT NULL, params TEXT NULL,
                total_rows BIGINT NOT NULL DEFAULT 0, filtered_rows BIGINT NOT NULL DEFAULT 0,
                load_bytes BIGINT NOT NULL DEFAULT 0, loads INT NOT NULL DEFAULT 0,
                max_filter_ratio DOUBLE NOT NULL DEFAULT 0, error_log VARCHAR(64) NULL,
                created_ms BIGINT NOT NULL, finished_ms BIGINT NULL,
                UNIQUE KEY db_label (db, label), KEY state (state)
            ) ENGINE=InnoDB"
        ))
        .await?;
        c.query_drop(format!(
            "CREATE TABLE IF NOT EXISTS {m}.staged_rows (
                txn_id BIGINT NOT NULL, seq BIGINT NOT NULL, payload LONGBLOB NOT NULL,
                PRIMARY KEY (txn_id, seq)
            ) ENGINE=InnoDB"
        ))
        .await?;
        c.query_drop(format!(
            "CREATE TABLE IF NOT EXISTS {m}.error_logs (
                name VARCHAR(64) NOT NULL PRIMARY KEY, created_ms BIGINT NOT NULL,
                content LONGTEXT NOT NULL
            ) ENGINE=InnoDB"
        ))
        .await?;
        // Boot recovery: the coordinator BE restarted, so its running loads are gone.
        c.exec_drop(
            format!(
                "UPDATE {m}.txns SET state = 'ABORTED', reason = 'coordinate BE restarted', \
                 finished_ms = ? WHERE state = 'PREPARE'"
            ),
            (now_ms(),),
        )
        .await?;
        drop(c);
        store.sweep().await?;
        Ok(store)
    }

    /// The pool.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// The quoted bookkeeping database name.
    pub fn meta(&self) -> &str {
        &self.meta
    }

    /// Applies every timer, publishes due COMMITTED transactions, drops staged rows of
    /// aborted transactions and forgets labels older than `label_keep_max_second`.
    pub async fn sweep(&self) -> Result<(), StoreError> {
        let m = &self.meta;
        let now = now_ms();
        let mut c = self.pool.get_conn().await?;
        c.exec_drop(
            format!(
                "UPDATE {m}.txns SET state = 'ABORTED', finished_ms = ?, reason = \
                 IF(? > deadline_ms, 'timeout by txn manager', 'idle transaction timeout') \
                 WHERE state = 'PREPARE' AND (? > deadline_ms OR (idle_ms IS NOT NULL AND ? > active_ms + idle_ms))"
            ),
            (now, now, now, now),
        )
        .await?;
        c.exec_drop(
            format!(
                "UPDATE {m}.txns SET state = 'ABORTED', finished_ms = ?, reason = 'prepared transaction timeout' \
                 WHERE state = 'PREPARED' AND prepared_deadline_ms < ?"
            ),
            (now, now),
        )
        .await?;
        c.exec_drop(
            format!("UPDATE {m}.txns SET state = 'VISIBLE' WHERE state = 'COMMITTED' AND visible_at_ms <= ?"),
            (now,),
        )
        .await?;
        c.query_drop(format!(
            "DELETE FROM {m}.staged_rows WHERE txn_id IN \
             (SELECT txn_id FROM {m}.txns WHERE state IN ('ABORTED', 'VISIBLE', 'COMMITTED'))"
        ))
        .await?;
        let horizon = now - self.label_keep_ms;
        c.exec_drop(
            format!(
                "DELETE FROM {m}.txns WHERE state IN ('VISIBLE', 'ABORTED') AND finished_ms < ?"
            ),
            (horizon,),
        )
        .await?;
        c.exec_drop(
            format!("DELETE FROM {m}.error_logs WHERE created_ms < ?"),
            (horizon,),
        )
        .await?;
        Ok(())
    }

    fn row_to_txn(row: mysql_async::Row) -> Result<Txn, StoreError> {
        let bad = |w: &str| StoreError::Corrupt(w.to_owned());
        let g = |row: &mysql_async::Row, i: usize| -> Option<mysql_async::Value> {
            row.as_ref(i).cloned()
        };
        let int = |v: Option<mysql_async::Value>| -> Option<i64> {
            match v? {
                mysql_async::Value::Int(i) => Some(i),
                mysql_async::Value::UInt(u) => i64::try_from(u).ok(),
                mysql_async::Value::Bytes(b) => std::str::from_utf8(&b).ok()?.parse().ok(),
                _ => None,
            }
        };
        let text = |v: Option<mysql_async::Value>| -> Option<String> {
            match v? {
                mysql_async::Value::Bytes(b) => String::from_utf8(b).ok(),
                _ => None,
            }
        };
        let float = |v: Option<mysql_async::Value>| -> Option<f64> {
            match v? {
                mysql_async::Value::Double(d) => Some(d),
                mysql_async::Value::Float(f) => Some(f64::from(f)),
                mysql_async::Value::Bytes(b) => std::str::from_utf8(&b).ok()?.parse().ok(),
                _ => None,
            }
        };
        let u = |v: Option<i64>| u64::try_from(v.unwrap_or(0)).unwrap_or(0);
        Ok(Txn {
            txn_id: int(g(&row, 0)).ok_or_else(|| bad("txn_id"))?,
            db: text(g(&row, 1)).ok_or_else(|| bad("db"))?,
            label: text(g(&row, 2)).ok_or_else(|| bad("label"))?,
            table: text(g(&row, 3)).ok_or_else(|| bad("tbl"))?,
            kind: match text(g(&row, 4)).as_deref() {
                Some("txn") => TxnKind::Txn,
                _ => TxnKind::Stream,
            },
            state: text(g(&row, 5))
                .as_deref()
                .and_then(TxnState::parse)
                .ok_or_else(|| bad("state"))?,
            reason: text(g(&row, 6)),
            deadline_ms: int(g(&row, 7)).unwrap_or(0),
            idle_ms: int(g(&row, 8)),
            active_ms: int(g(&row, 9)).unwrap_or(0),
            prepared_deadline_ms: int(g(&row, 10)),
            visible_at_ms: int(g(&row, 11)),
            params: text(g(&row, 12)),
            total: u(int(g(&row, 13))),
            filtered: u(int(g(&row, 14))),
            bytes: u(int(g(&row, 15))),
            loads: u32::try_from(int(g(&row, 16)).unwrap_or(0)).unwrap_or(0),
            max_filter_ratio: float(g(&row, 17)).unwrap_or(0.0),
            error_log: text(g(&row, 18)),
            created_ms: int(g(&row, 19)).unwrap_or(0),
        })
    }

    /// The transaction holding `label` in `db`, with its timers applied.
    pub async fn get(&self, db: &str, label: &str) -> Result<Option<Txn>, StoreError> {
        let m = &self.meta;
        let mut c = self.pool.get_conn().await?;
        let row: Option<mysql_async::Row> = c
            .exec_first(
                format!("SELECT {COLS} FROM {m}.txns WHERE db = ? AND label = ?"),
                (db, label),
            )
            .await?;
        let Some(row) = row else { return Ok(None) };
        let mut t = Self::row_to_txn(row)?;
        if let Some((state, reason)) = t.expiry(now_ms()) {
            self.set_state(t.txn_id, t.state, state, reason).await?;
            if state == TxnState::Aborted {
                t.reason = Some(reason.to_owned());
            }
            t.state = state;
        }
        Ok(Some(t))
    }

    /// Moves `txn_id` from `from` to `to` (no-op if it is no longer in `from`).
    pub async fn set_state(
        &self,
        txn_id: i64,
        from: TxnState,
        to: TxnState,
        reason: &str,
    ) -> Result<bool, StoreError> {
        let m = &self.meta;
        let mut c = self.pool.get_conn().await?;
        c.exec_drop(
            format!(
                "UPDATE {m}.txns SET state = ?, reason = IF(? = '', reason, ?), finished_ms = ? \
                 WHERE txn_id = ? AND state = ?"
            ),
            (to.name(), reason, reason, now_ms(), txn_id, from.name()),
        )
        .await?;
        let changed = c.affected_rows() == 1;
        if changed && to == TxnState::Aborted {
            c.exec_drop(
                format!("DELETE FROM {m}.staged_rows WHERE txn_id = ?"),
                (txn_id,),
            )
            .await?;
        }
        Ok(changed)
    }

    /// Begins a transaction for `label` (the FE's `beginTransaction`).
    #[allow(clippy::too_many_arguments)]
    pub async fn begin(
        &self,
        db: &str,
        label: &str,
        table: &str,
        kind: TxnKind,
        timeout_ms: i64,
        idle_ms: Option<i64>,
        running_limit: u64,
    ) -> Result<Txn, BeginError> {
        let m = &self.meta;
        if let Some(old) = self.get(db, label).await? {
            match old.state.existing_job_status() {
                Some(status) => {
                    if kind == TxnKind::Txn
                        && old.state == TxnState::Prepare
                        && old.kind == TxnKind::Txn
                    {
                        // Beginning a label that an in-progress transaction holds makes
                        // that transaction fail (transaction interface precautions).
                        self.set_state(
                            old.txn_id,
                            TxnState::Prepare,
                            TxnState::Aborted,
                            "the label was begun again",
                        )
                        .await?;
                    }
                    return Err(BeginError::LabelExists(Box::new(old), status));
                }
                None => {
                    let mut c = self.pool.get_conn().await?;
                    c.exec_drop(
                        format!("DELETE FROM {m}.txns WHERE txn_id = ? AND state = 'ABORTED'"),
                        (old.txn_id,),
                    )
                    .await?;
                }
            }
        }
        let mut c = self.pool.get_conn().await?;
        let running: Option<i64> = c
            .exec_first(
                format!(
                    "SELECT COUNT(*) FROM {m}.txns WHERE db = ? AND state IN ('PREPARE', 'PREPARED', 'COMMITTED')"
                ),
                (db,),
            )
            .await?;
        let running = u64::try_from(running.unwrap_or(0)).unwrap_or(0);
        if running >= running_limit {
            return Err(BeginError::TooMany(format!(
                "current running txns on db {db} is {running}, larger than limit {running_limit}"
            )));
        }
        let now = now_ms();
        let kind_s = if kind == TxnKind::Txn {
            "txn"
        } else {
            "stream"
        };
        let res = c
            .exec_drop(
                format!(
                    "INSERT INTO {m}.txns (db, label, tbl, kind, state, deadline_ms, idle_ms, active_ms, created_ms) \
                     VALUES (?, ?, ?, ?, 'PREPARE', ?, ?, ?, ?)"
                ),
                (db, label, table, kind_s, now + timeout_ms, idle_ms, now, now),
            )
            .await;
        match res {
            Ok(()) => {}
            Err(mysql_async::Error::Server(e)) if e.code == 1062 => {
                drop(c);
                // Someone began the same label concurrently.
                return match self.get(db, label).await? {
                    Some(t) => {
                        let status = t.state.existing_job_status().unwrap_or("RUNNING");
                        Err(BeginError::LabelExists(Box::new(t), status))
                    }
                    None => Err(BeginError::TooMany("label contention, retry".into())),
                };
            }
            Err(e) => return Err(e.into()),
        }
        let id = c
            .last_insert_id()
            .and_then(|i| i64::try_from(i).ok())
            .ok_or_else(|| StoreError::Corrupt("no transaction id assigned".into()))?;
        Ok(Txn {
            txn_id: id,
            db: db.to_owned(),
            label: label.to_owned(),
            table: table.to_owned(),
            kind,
            state: TxnState::Prepare,
            reason: None,
            deadline_ms: now + timeout_ms,
            idle_ms,
            active_ms: now,
            prepared_deadline_ms: None,
            visible_at_ms: None,
            params: None,
            total: 0,
            filtered: 0,
            bytes: 0,
            loads: 0,
            max_filter_ratio: 0.0,
            error_log: None,
            created_ms: now,
        })
    }

    /// Inside the apply transaction: marks a Stream Load finished. Returns false when
    /// the transaction is no longer in PREPARE (cancelled or timed out meanwhile).
    pub async fn finish_in(
        &self,
        tx: &mut mysql_async::Transaction<'_>,
        txn_id: i64,
        from: TxnState,
        visible_at_ms: Option<i64>,
        counts: (u64, u64, u64),
        error_log: Option<&str>,
    ) -> Result<bool, StoreError> {
        let m = &self.meta;
        let state = if visible_at_ms.is_some() {
            "COMMITTED"
        } else {
            "VISIBLE"
        };
        let now = now_ms();
        tx.exec_drop(
            format!(
                "UPDATE {m}.txns SET state = ?, visible_at_ms = ?, finished_ms = ?, active_ms = ?, \
                 total_rows = ?, filtered_rows = ?, load_bytes = ?, error_log = COALESCE(?, error_log) \
                 WHERE txn_id = ? AND state = ? AND (state <> 'PREPARE' OR deadline_ms >= ?)"
            ),
            (
                state,
                visible_at_ms,
                now,
                now,
                counts.0,
                counts.1,
                counts.2,
                error_log,
                txn_id,
                from.name(),
                now,
            ),
        )
        .await?;
        if tx.affected_rows() != 1 {
            return Ok(false);
        }
        tx.exec_drop(
            format!("DELETE FROM {m}.staged_rows WHERE txn_id = ?"),
            (txn_id,),
        )
        .await?;
        Ok(true)
    }

    /// Records a transaction load: its staged rows (in parts), counters and parameters.
    #[allow(clippy::too_many_arguments)]
    pub async fn stage(
        &self,
        txn_id: i64,
        seq: u32,
        payloads: Vec<Vec<u8>>,
        params: &str,
        max_filter_ratio: f64,
        counts: (u64, u64, u64),
        error_log: Option<&str>,
    ) -> Result<bool, StoreError> {
        let m = &self.meta;
        let mut c = self.pool.get_conn().await?;
        let mut tx = c.start_transaction(rc()).await?;
        let now = now_ms();
        tx.exec_drop(
            format!(
                "UPDATE {m}.txns SET loads = loads + 1, active_ms = ?, params = ?, max_filter_ratio = ?, \
                 total_rows = total_rows + ?, filtered_rows = filtered_rows + ?, load_bytes = load_bytes + ?, \
                 error_log = COALESCE(?, error_log) WHERE txn_id = ? AND state = 'PREPARE'"
            ),
            (now, params, max_filter_ratio, counts.0, counts.1, counts.2, error_log, txn_id),
        )
        .await?;
        if tx.affected_rows() != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        // Load `seq`, part `i`: ordered by load, then by position in the load.
        for (i, p) in payloads.into_iter().enumerate() {
            let key = (i64::from(seq) << 32) | i64::try_from(i).unwrap_or(0);
            tx.exec_drop(
                format!("INSERT INTO {m}.staged_rows (txn_id, seq, payload) VALUES (?, ?, ?)"),
                (txn_id, key, p),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// PREPARE → PREPARED with its deadline.
    pub async fn prepare(
        &self,
        txn_id: i64,
        prepared_deadline_ms: i64,
    ) -> Result<bool, StoreError> {
        let m = &self.meta;
        let mut c = self.pool.get_conn().await?;
        c.exec_drop(
            format!(
                "UPDATE {m}.txns SET state = 'PREPARED', prepared_deadline_ms = ?, active_ms = ? \
                 WHERE txn_id = ? AND state = 'PREPARE'"
            ),
            (prepared_deadline_ms, now_ms(), txn_id),
        )
        .await?;
        Ok(c.affected_rows() == 1)
    }

    /// The staged payloads of a transaction in load order (inside the apply transaction).
    pub async fn staged_in(
        &self,
        tx: &mut mysql_async::Transaction<'_>,
        txn_id: i64,
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        let m = &self.meta;
        let rows: Vec<Vec<u8>> = tx
            .exec(
                format!("SELECT payload FROM {m}.staged_rows WHERE txn_id = ? ORDER BY seq"),
                (txn_id,),
            )
            .await?;
        Ok(rows)
    }

    /// Locks the transaction row inside the apply transaction and returns its state.
    pub async fn lock_state_in(
        &self,
        tx: &mut mysql_async::Transaction<'_>,
        txn_id: i64,
    ) -> Result<Option<TxnState>, StoreError> {
        let m = &self.meta;
        let s: Option<String> = tx
            .exec_first(
                format!("SELECT state FROM {m}.txns WHERE txn_id = ? FOR UPDATE"),
                (txn_id,),
            )
            .await?;
        Ok(s.as_deref().and_then(TxnState::parse))
    }

    /// Saves an error log.
    pub async fn save_error_log(&self, name: &str, content: &str) -> Result<(), StoreError> {
        let m = &self.meta;
        let mut c = self.pool.get_conn().await?;
        c.exec_drop(
            format!(
                "INSERT INTO {m}.error_logs (name, created_ms, content) VALUES (?, ?, ?) \
                 ON DUPLICATE KEY UPDATE content = CONCAT(content, VALUES(content))"
            ),
            (name, now_ms(), content),
        )
        .await?;
        Ok(())
    }

    /// Reads an error log.
    pub async fn error_log(&self, name: &str) -> Result<Option<String>, StoreError> {
        let m = &self.meta;
        let mut c = self.pool.get_conn().await?;
        Ok(c.exec_first(
            format!("SELECT content FROM {m}.error_logs WHERE name = ?"),
            (name,),
        )
        .await?)
    }
}
