//! A workload whose every version is known: each row carries `seq`, its per-key
//! version counter (1 on first insert, +1 on every change, continued after a delete
//! and re-insert), and every other column is a pure function of the key and `seq`.
//! So any row seen in the sink can be checked against the one version it claims to
//! be, and `seq` (like `dbmazz_cdc_version`) must never go down for a key.
//!
//! Two tables per workload, `<prefix>_acct` (single key, a sometimes-TOASTed `note`
//! that most updates leave unchanged) and `<prefix>_line` (composite key). A
//! transaction mixes inserts, updates, deletes, re-inserts after delete, primary-key
//! changes, and now and then a few hundred rows at once.
//!
//! The writer survives PostgreSQL restarts: when a statement fails it cannot know
//! whether the COMMIT happened, so it reconnects and reloads its model from the
//! source, which is the truth.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::faults::Rng;
use crate::stack::Stack;

/// What the writer did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// Transactions that committed.
    pub txns: u64,
    /// Transactions whose outcome was unknown (the connection broke).
    pub unknown: u64,
    /// Rows inserted (committed transactions).
    pub inserts: u64,
    /// Rows updated.
    pub updates: u64,
    /// Rows deleted.
    pub deletes: u64,
    /// Primary-key changes.
    pub key_changes: u64,
}

impl WriterStats {
    /// Row changes in total.
    pub fn rows(&self) -> u64 {
        self.inserts + self.updates + self.deletes
    }

    /// Adds `o`.
    pub fn add(&mut self, o: &WriterStats) {
        self.txns += o.txns;
        self.unknown += o.unknown;
        self.inserts += o.inserts;
        self.updates += o.updates;
        self.deletes += o.deletes;
        self.key_changes += o.key_changes;
    }
}

/// The tables and the writer of one workload. Clones share the model of what was
/// written, so a writer started after another never reuses a key's `seq` (keys
/// deleted at the source are remembered).
#[derive(Clone, Debug)]
pub struct Workload {
    /// Table name prefix (`<prefix>_acct`, `<prefix>_line`).
    pub prefix: String,
    /// Seed of the writer's choices.
    pub seed: u64,
    /// Pause between two transactions.
    pub pace: Duration,
    /// Probability that a transaction touches a few hundred rows.
    pub big_txn_chance: f64,
    model: std::sync::Arc<tokio::sync::Mutex<Model>>,
}

#[derive(Clone, Copy, Debug, Default)]
struct KeyState {
    seq: i64,
    live: bool,
}

#[derive(Clone, Debug, Default)]
struct Model {
    acct: BTreeMap<i64, KeyState>,
    line: BTreeMap<(i64, i64), KeyState>,
    next_acct: i64,
}

fn payload(id: &str, seq: &str) -> String {
    format!("'a' || ({id}) || '-s' || ({seq}) || '-' || md5(({id})::text || ':' || ({seq})::text)")
}

fn amount(id: &str, seq: &str) -> String {
    format!("((({id}) * 37 + ({seq}) * 11) % 100000)::numeric / 100")
}

fn updated_at(id: &str, seq: &str) -> String {
    format!(
        "timestamptz '2024-01-01 00:00:00+00' + ({seq}) * interval '1 second' + (({id}) % 1000) * interval '1 minute'"
    )
}

fn note(id: &str, seq: &str, big: bool) -> String {
    if big {
        // ~6 KB of hex digits: compresses to more than the TOAST threshold.
        format!(
            "(SELECT string_agg(md5(({id})::text || ':' || ({seq})::text || ':' || i::text), '') FROM generate_series(1, 200) i)"
        )
    } else {
        format!("'n' || ({id}) || '.' || ({seq})")
    }
}

fn qty(a: &str, l: &str, seq: &str) -> String {
    format!("((({a}) * 7 + ({l}) * 3 + ({seq})) % 1000)::int")
}

fn label(a: &str, l: &str, seq: &str) -> String {
    format!("'l' || ({a}) || '.' || ({l}) || '.' || ({seq})")
}

impl Workload {
    /// A workload with tables `<prefix>_acct` and `<prefix>_line`.
    pub fn new(prefix: &str, seed: u64) -> Self {
        Workload {
            prefix: prefix.to_owned(),
            seed,
            pace: Duration::from_millis(5),
            big_txn_chance: 0.02,
            model: Default::default(),
        }
    }

    /// Table names.
    pub fn tables(&self) -> Vec<String> {
        vec![
            format!("{}_acct", self.prefix),
            format!("{}_line", self.prefix),
        ]
    }

    /// Key columns of one of [`Workload::tables`].
    pub fn key_columns(&self, table: &str) -> Vec<&'static str> {
        if table.ends_with("_line") {
            vec!["acct_id", "line"]
        } else {
            vec!["id"]
        }
    }

    fn acct(&self) -> String {
        format!("{}_acct", self.prefix)
    }

    fn line(&self) -> String {
        format!("{}_line", self.prefix)
    }

    /// Creates the tables at the source and at the sink.
    pub async fn create(&self, env: &Stack) -> Result<(), String> {
        let (a, l) = (self.acct(), self.line());
        let c = env.pg_client().await.map_err(|e| e.to_string())?;
        c.batch_execute(&format!(
            "CREATE TABLE {a} (id bigint PRIMARY KEY, seq bigint NOT NULL, payload text NOT NULL,
                               amount numeric(14,2), note text, updated_at timestamptz);
             CREATE TABLE {l} (acct_id bigint, line int, seq bigint NOT NULL, qty int,
                               label varchar(40), PRIMARY KEY (acct_id, line));"
        ))
        .await
        .map_err(|e| format!("creating the source tables: {e}"))?;
        use mysql_async::prelude::Queryable;
        let mut s = env.sink.get_conn().await.map_err(|e| e.to_string())?;
        s.query_drop(format!(
            "CREATE TABLE {a} (id BIGINT PRIMARY KEY, seq BIGINT NOT NULL, payload LONGTEXT NOT NULL,
                               amount DECIMAL(14,2), note LONGTEXT, updated_at DATETIME(6));
             CREATE TABLE {l} (acct_id BIGINT, line INT, seq BIGINT NOT NULL, qty INT,
                               label VARCHAR(40), PRIMARY KEY (acct_id, line));"
        ))
        .await
        .map_err(|e| format!("creating the sink tables: {e}"))?;
        Ok(())
    }

    /// Starts the writer on `conn` (a source connection string); it stops when `stop`
    /// becomes true and returns what it did.
    pub fn spawn_writer(
        &self,
        conn: String,
        stop: watch::Receiver<bool>,
    ) -> JoinHandle<WriterStats> {
        let w = self.clone();
        tokio::spawn(async move { w.write(conn, stop).await })
    }

    async fn connect(conn: &str, stop: &watch::Receiver<bool>) -> Option<tokio_postgres::Client> {
        loop {
            if *stop.borrow() {
                return None;
            }
            if let Ok((c, connection)) = tokio_postgres::connect(conn, tokio_postgres::NoTls).await
            {
                tokio::spawn(async move {
                    let _ = connection.await;
                });
                return Some(c);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn reload(
        &self,
        c: &tokio_postgres::Client,
        m: &mut Model,
    ) -> Result<(), tokio_postgres::Error> {
        let rows = c
            .query(&format!("SELECT id, seq FROM {}", self.acct()), &[])
            .await?;
        for s in m.acct.values_mut() {
            s.live = false;
        }
        for r in rows {
            let (id, seq): (i64, i64) = (r.get(0), r.get(1));
            let e = m.acct.entry(id).or_default();
            *e = KeyState {
                seq: seq.max(e.seq),
                live: true,
            };
            m.next_acct = m.next_acct.max(id + 1);
        }
        let rows = c
            .query(
                &format!("SELECT acct_id, line::bigint, seq FROM {}", self.line()),
                &[],
            )
            .await?;
        for s in m.line.values_mut() {
            s.live = false;
        }
        for r in rows {
            let (a, l, seq): (i64, i64, i64) = (r.get(0), r.get(1), r.get(2));
            let e = m.line.entry((a, l)).or_default();
            *e = KeyState {
                seq: seq.max(e.seq),
                live: true,
            };
        }
        Ok(())
    }

    async fn write(self, conn: String, mut stop: watch::Receiver<bool>) -> WriterStats {
        let shared = self.model.clone();
        let mut model = shared.lock().await;
        // Each writer continues the sequence of choices where the last one stopped.
        let mut rng = Rng::new(self.seed ^ model.next_acct as u64);
        let mut stats = WriterStats::default();
        model.next_acct = model.next_acct.max(1);
        let Some(mut c) = Self::connect(&conn, &stop).await else {
            return stats;
        };
        let mut synced = self.reload(&c, &mut model).await.is_ok();
        loop {
            if *stop.borrow() {
                return stats;
            }
            if !synced {
                match Self::connect(&conn, &stop).await {
                    Some(nc) => c = nc,
                    None => return stats,
                }
                synced = self.reload(&c, &mut model).await.is_ok();
                if !synced {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            }
            let mut next = model.clone();
            let mut delta = WriterStats::default();
            let sql = self.transaction(&mut rng, &mut next, &mut delta);
            match c.batch_execute(&sql).await {
                Ok(()) => {
                    *model = next;
                    delta.txns = 1;
                    stats.add(&delta);
                }
                Err(e) => {
                    // A failed statement inside BEGIN rolls back; a broken connection
                    // leaves the outcome unknown. Either way the source says what is.
                    let _ = c.batch_execute("ROLLBACK").await;
                    stats.unknown += 1;
                    if c.is_closed() || e.is_closed() {
                        synced = false;
                    } else {
                        synced = self.reload(&c, &mut model).await.is_ok();
                    }
                }
            }
            if !self.pace.is_zero() {
                tokio::select! {
                    _ = tokio::time::sleep(self.pace) => {}
                    _ = stop.changed() => {}
                }
            }
        }
    }

    /// One transaction's SQL; applies it to `m` and counts it in `d`.
    fn transaction(&self, rng: &mut Rng, m: &mut Model, d: &mut WriterStats) -> String {
        let mut sql = String::from("BEGIN;\n");
        if rng.chance(self.big_txn_chance) {
            self.big(rng, m, d, &mut sql);
        } else {
            for _ in 0..rng.range(1, 6) {
                self.one(rng, m, d, &mut sql);
            }
        }
        sql.push_str("COMMIT;");
        sql
    }

    fn insert_acct(&self, id: i64, seq: i64, big_note: bool, sql: &mut String) {
        let (i, s) = (id.to_string(), seq.to_string());
        sql.push_str(&format!(
            "INSERT INTO {} (id, seq, payload, amount, note, updated_at) VALUES ({i}, {s}, {}, {}, {}, {});\n",
            self.acct(),
            payload(&i, &s),
            amount(&i, &s),
            note(&i, &s, big_note),
            updated_at(&i, &s)
        ));
    }

    fn one(&self, rng: &mut Rng, m: &mut Model, d: &mut WriterStats, sql: &mut String) {
        let (a, l) = (self.acct(), self.line());
        let roll = rng.range(0, 99);
        let existing = if m.next_acct > 1 {
            Some(rng.range(1, (m.next_acct - 1) as u64) as i64)
        } else {
            None
        };
        match (roll, existing) {
            (0..=24, _) | (_, None) => {
                let id = m.next_acct;
                m.next_acct += 1;
                self.insert_acct(id, 1, rng.chance(0.2), sql);
                m.acct.insert(id, KeyState { seq: 1, live: true });
                d.inserts += 1;
            }
            (25..=59, Some(id)) => {
                let st = m.acct.get(&id).copied().unwrap_or_default();
                let seq = st.seq + 1;
                let (i, s) = (id.to_string(), seq.to_string());
                if st.live {
                    // Most updates leave `note` alone (unchanged TOAST when it is big).
                    let note_set = if rng.chance(0.15) {
                        format!(", note = {}", note(&i, &s, rng.chance(0.3)))
                    } else {
                        String::new()
                    };
                    sql.push_str(&format!(
                        "UPDATE {a} SET seq = {s}, payload = {}, amount = {}, updated_at = {}{note_set} WHERE id = {i};\n",
                        payload(&i, &s),
                        amount(&i, &s),
                        updated_at(&i, &s)
                    ));
                    d.updates += 1;
                } else {
                    // Re-insert after delete: the version counter continues.
                    self.insert_acct(id, seq, rng.chance(0.2), sql);
                    d.inserts += 1;
                }
                m.acct.insert(id, KeyState { seq, live: true });
            }
            (60..=69, Some(id)) => {
                if m.acct.get(&id).is_some_and(|s| s.live) {
                    sql.push_str(&format!("DELETE FROM {a} WHERE id = {id};\n"));
                    if let Some(s) = m.acct.get_mut(&id) {
                        s.live = false;
                    }
                    d.deletes += 1;
                }
            }
            (70..=72, Some(id)) => {
                // Primary-key change: the old key disappears, the new one continues.
                let Some(st) = m.acct.get(&id).copied().filter(|s| s.live) else {
                    return;
                };
                let new_id = m.next_acct;
                m.next_acct += 1;
                let seq = st.seq + 1;
                let (i, s) = (new_id.to_string(), seq.to_string());
                sql.push_str(&format!(
                    "UPDATE {a} SET id = {i}, seq = {s}, payload = {}, amount = {}, updated_at = {} WHERE id = {id};\n",
                    payload(&i, &s),
                    amount(&i, &s),
                    updated_at(&i, &s)
                ));
                if let Some(old) = m.acct.get_mut(&id) {
                    old.live = false;
                }
                m.acct.insert(new_id, KeyState { seq, live: true });
                d.key_changes += 1;
                d.updates += 1;
            }
            (_, Some(id)) => {
                let line = rng.range(1, 4) as i64;
                let st = m.line.get(&(id, line)).copied().unwrap_or_default();
                let seq = st.seq + 1;
                let (ai, li, s) = (id.to_string(), line.to_string(), seq.to_string());
                if st.live && rng.chance(0.25) {
                    sql.push_str(&format!(
                        "DELETE FROM {l} WHERE acct_id = {ai} AND line = {li};\n"
                    ));
                    if let Some(s) = m.line.get_mut(&(id, line)) {
                        s.live = false;
                    }
                    d.deletes += 1;
                } else if st.live {
                    sql.push_str(&format!(
                        "UPDATE {l} SET seq = {s}, qty = {}, label = {} WHERE acct_id = {ai} AND line = {li};\n",
                        qty(&ai, &li, &s),
                        label(&ai, &li, &s)
                    ));
                    m.line.insert((id, line), KeyState { seq, live: true });
                    d.updates += 1;
                } else {
                    sql.push_str(&format!(
                        "INSERT INTO {l} (acct_id, line, seq, qty, label) VALUES ({ai}, {li}, {s}, {}, {});\n",
                        qty(&ai, &li, &s),
                        label(&ai, &li, &s)
                    ));
                    m.line.insert((id, line), KeyState { seq, live: true });
                    d.inserts += 1;
                }
            }
        }
    }

    /// A few hundred rows in one transaction: a range of new accounts, then one
    /// update of every live account in a range.
    fn big(&self, rng: &mut Rng, m: &mut Model, d: &mut WriterStats, sql: &mut String) {
        let a = self.acct();
        let n = rng.range(100, 600) as i64;
        let first = m.next_acct;
        let last = first + n - 1;
        m.next_acct = last + 1;
        sql.push_str(&format!(
            "INSERT INTO {a} (id, seq, payload, amount, note, updated_at) SELECT g, 1, {}, {}, {}, {} FROM generate_series({first}, {last}) g;\n",
            payload("g", "1"),
            amount("g", "1"),
            note("g", "1", false),
            updated_at("g", "1")
        ));
        for id in first..=last {
            m.acct.insert(id, KeyState { seq: 1, live: true });
        }
        d.inserts += n as u64;
        let lo = rng.range(1, last as u64) as i64;
        let hi = (lo + rng.range(50, 400) as i64).min(last);
        sql.push_str(&format!(
            "UPDATE {a} SET seq = seq + 1, payload = {}, amount = {}, updated_at = {} WHERE id BETWEEN {lo} AND {hi};\n",
            payload("id", "seq + 1"),
            amount("id", "seq + 1"),
            updated_at("id", "seq + 1")
        ));
        for id in lo..=hi {
            if let Some(s) = m.acct.get_mut(&id).filter(|s| s.live) {
                s.seq += 1;
                d.updates += 1;
            }
        }
    }
}
