//! Scenario equipment for the change-semantics tests (the modules of this target).
//!
//! One [`Stack`] (PostgreSQL, MariaDB, emulator) serves every scenario of a test
//! file; each scenario gets its own source database, sink database, replication
//! slot, publication and job, so scenarios run side by side without seeing each
//! other. A scenario ends by comparing the whole sink table with what it must be:
//! the live rows value by value with the source (the oracle of
//! `dbmazz_testkit::compare`), and every row, soft-deleted ones included, with the
//! audit columns the test expects.

use std::time::{Duration, Instant};

use dbmazz::engine::status::Stage;
use dbmazz::engine::EngineSettings;
use dbmazz::lsn::Lsn;
use dbmazz::sink::starrocks::StarRocksSettings;
use dbmazz_testkit::engine::Running;
use dbmazz_testkit::{compare, PgConfig, Stack, StackConfig};
use mysql_async::prelude::Queryable;

/// How long a scenario waits for anything.
pub const T: Duration = Duration::from_secs(90);

/// A stack sized for several scenarios at once (slots, walsenders, prepared
/// transactions).
pub async fn stack() -> Stack {
    Stack::start_with(
        StackConfig::default().pg(PgConfig::default()
            .setting("max_replication_slots", "40")
            .setting("max_wal_senders", "40")
            .setting("max_prepared_transactions", "20")
            .setting("max_connections", "200")),
    )
    .await
    .expect("start the stack")
}

/// One scenario: its own source and sink databases and its own pipeline.
pub struct Scenario<'a> {
    /// The shared stack.
    pub stack: &'a Stack,
    /// Name (database, slot, publication and job id).
    pub name: String,
    /// Engine settings (tests adjust delete/truncate mode, identity, limits).
    pub settings: EngineSettings<StarRocksSettings>,
    /// Sink pool on the scenario's sink database.
    pub sink: mysql_async::Pool,
    client: tokio_postgres::Client,
}

/// A sink cell as text (`None` = NULL).
pub type Cell = Option<String>;

/// Shorthand for an expected row: `row(&["1", "a", NULL])`.
pub fn row(cells: &[&str]) -> Vec<Cell> {
    cells
        .iter()
        .map(|c| (*c != NULL).then(|| (*c).to_owned()))
        .collect()
}

/// The NULL marker in [`row`].
pub const NULL: &str = "<NULL>";

impl<'a> Scenario<'a> {
    /// Creates the databases; `tables` are the replicated tables (public schema).
    pub async fn new(stack: &'a Stack, name: &str, tables: &[&str]) -> Scenario<'a> {
        stack.pg.create_database(name).expect("create source db");
        stack.maria.create_database(name).expect("create sink db");
        let mut settings = stack.engine_settings(tables);
        let url = stack.pg.url(name);
        settings.job_id = name.to_owned();
        settings.sink.job_id = name.to_owned();
        settings.source_url = url.clone().into();
        settings.checkpoint_url = url.into();
        settings.slot = format!("{name}_slot");
        settings.publication = format!("{name}_pub");
        settings.sink.database = name.to_owned();
        settings.sink.catalog.database = name.to_owned();
        let client = stack.pg.client(name).await.expect("connect source");
        Scenario {
            stack,
            name: name.to_owned(),
            settings,
            sink: stack.maria.pool(name),
            client,
        }
    }

    /// The source connection of this scenario.
    pub fn pg(&self) -> &tokio_postgres::Client {
        &self.client
    }

    /// A second, independent source connection (concurrent transactions).
    pub async fn pg_conn(&self) -> tokio_postgres::Client {
        self.stack.pg.client(&self.name).await.expect("connect")
    }

    /// Runs SQL on the source; panics with the statement on error.
    pub async fn sql(&self, sql: &str) {
        self.client
            .batch_execute(sql)
            .await
            .unwrap_or_else(|e| panic!("[{}] {sql}: {e:?}", self.name));
    }

    /// Runs SQL on the sink.
    pub async fn sink_sql(&self, sql: &str) {
        let mut c = self.sink.get_conn().await.expect("sink conn");
        c.query_drop(sql)
            .await
            .unwrap_or_else(|e| panic!("[{}] sink: {sql}: {e}", self.name));
    }

    /// Runs one transaction (`sql` without BEGIN/COMMIT) and returns the WAL range
    /// its commit record starts in: `[before, after)`.
    pub async fn txn(&self, sql: &str) -> (Lsn, Lsn) {
        self.sql(&format!("BEGIN; {sql}")).await;
        let before = self.wal_lsn().await;
        self.sql("COMMIT").await;
        (before, self.wal_lsn().await)
    }

    /// `pg_current_wal_insert_lsn()`.
    pub async fn wal_lsn(&self) -> Lsn {
        let s: String = self
            .client
            .query_one("SELECT pg_current_wal_insert_lsn()::text", &[])
            .await
            .expect("wal lsn")
            .get(0);
        s.parse().expect("lsn")
    }

    /// Starts the pipeline and waits for the CDC stage.
    pub async fn start(&self) -> Running {
        let run = Running::start(self.settings.clone());
        run.wait_stage(Stage::Cdc, T).await;
        run
    }

    /// Waits until everything committed so far is loaded and checkpointed (fails
    /// when the checkpoint stops moving for [`T`]).
    pub async fn caught_up(&self, run: &Running) {
        let target = self.wal_lsn().await;
        let mut start = Instant::now();
        let mut last = run.state().checkpoint_lsn.get();
        loop {
            let st = run.state();
            if st.stage() == Stage::Failed {
                panic!(
                    "[{}] pipeline FAILED: {:?}",
                    self.name,
                    st.last_error().map(|e| e.message)
                );
            }
            let now = st.checkpoint_lsn.get();
            if now >= target {
                return;
            }
            if now > last {
                last = now;
                start = Instant::now();
            }
            if start.elapsed() > T {
                panic!(
                    "[{}] checkpoint stuck at {} for {T:?}, short of {target}; last error {:?}",
                    self.name,
                    st.checkpoint_lsn.get(),
                    st.last_error().map(|e| e.message)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the pipeline is FAILED; returns the error.
    pub async fn failed(&self, run: &Running) -> String {
        let start = Instant::now();
        loop {
            let st = run.state();
            if st.stage() == Stage::Failed {
                return st.last_error().map(|e| e.message).unwrap_or_default();
            }
            if start.elapsed() > T {
                panic!(
                    "[{}] expected FAILED, stage {:?}, last error {:?}",
                    self.name,
                    st.stage(),
                    st.last_error().map(|e| e.message)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The checkpoint LSN of this scenario's job.
    pub async fn checkpoint(&self) -> Option<Lsn> {
        self.client
            .query_opt(
                "SELECT lsn::text FROM dbmazz.dbmazz_checkpoints WHERE job_id = $1",
                &[&self.name],
            )
            .await
            .ok()
            .flatten()
            .map(|r| r.get::<_, String>(0).parse().expect("lsn"))
    }

    /// `confirmed_flush_lsn` of this scenario's slot.
    pub async fn confirmed(&self) -> Option<Lsn> {
        self.client
            .query_opt(
                "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1",
                &[&self.settings.slot],
            )
            .await
            .ok()
            .flatten()
            .and_then(|r| r.get::<_, Option<String>>(0))
            .map(|s| s.parse().expect("lsn"))
    }

    /// The live (not soft-deleted) sink rows equal the source rows, value by value.
    pub async fn assert_oracle(&self, table: &str, order_by: &[&str]) {
        if let Some(d) = self.diff(table, order_by).await {
            panic!("[{}] source and sink differ:\n{d}", self.name);
        }
    }

    async fn diff(&self, table: &str, order_by: &[&str]) -> Option<String> {
        compare::live_diff(&self.client, &self.sink, table, order_by)
            .await
            .unwrap_or_else(|e| panic!("[{}] comparing {table}: {e}", self.name))
    }

    /// Rows of `SELECT {select} FROM {table} ORDER BY {order}` on the sink, as text.
    pub async fn sink_select(&self, table: &str, select: &str, order: &str) -> Vec<Vec<Cell>> {
        let mut c = self.sink.get_conn().await.expect("sink conn");
        let cols: Vec<String> = split_top_level(select)
            .iter()
            .map(|s| format!("CAST({} AS CHAR)", s.trim()))
            .collect();
        let sql = format!("SELECT {} FROM `{table}` ORDER BY {order}", cols.join(", "));
        let rows: Vec<mysql_async::Row> = c
            .query(sql.clone())
            .await
            .unwrap_or_else(|e| panic!("[{}] {sql}: {e}", self.name));
        rows.into_iter()
            .map(|r| {
                (0..r.len())
                    .map(|i| r.get::<Option<String>, usize>(i).flatten())
                    .collect()
            })
            .collect()
    }

    /// Every sink row (soft-deleted ones included) is exactly `expected` for the
    /// columns `select` (comma-separated sink expressions), in `order`; every row has
    /// its audit timestamps and a positive version.
    pub async fn assert_sink(
        &self,
        table: &str,
        select: &str,
        order: &str,
        expected: &[Vec<Cell>],
    ) {
        let got = self.sink_select(table, select, order).await;
        if got != expected {
            let mut msg = format!(
                "[{}] sink table {table} ({select}) is not as expected\n",
                self.name
            );
            for i in 0..got.len().max(expected.len()) {
                let (g, e) = (got.get(i), expected.get(i));
                let mark = if g == e { " " } else { "!" };
                msg.push_str(&format!("{mark} expected {e:?}\n  got      {g:?}\n"));
            }
            panic!("{msg}");
        }
        let mut c = self.sink.get_conn().await.expect("sink conn");
        let bad: Option<i64> = c
            .query_first(format!(
                "SELECT COUNT(*) FROM `{table}` WHERE dbmazz_synced_at IS NULL \
                 OR dbmazz_cdc_version IS NULL OR dbmazz_cdc_version <= 0 \
                 OR dbmazz_op_type IS NULL OR dbmazz_is_deleted IS NULL"
            ))
            .await
            .expect("audit check");
        assert_eq!(
            bad,
            Some(0),
            "[{}] rows of {table} without audit values",
            self.name
        );
    }

    /// The `dbmazz_cdc_version` of the row `where_` lies in the commit range `r`
    /// returned by [`Scenario::txn`].
    pub async fn assert_version(&self, table: &str, where_: &str, r: (Lsn, Lsn)) {
        let mut c = self.sink.get_conn().await.expect("sink conn");
        let v: Option<i64> = c
            .query_first(format!(
                "SELECT dbmazz_cdc_version FROM `{table}` WHERE {where_}"
            ))
            .await
            .expect("version");
        let v = v.unwrap_or_else(|| panic!("[{}] no row {where_} in {table}", self.name));
        let v = u64::try_from(v).expect("positive version");
        assert!(
            v >= r.0 .0 && v < r.1 .0,
            "[{}] version of {where_} in {table} is {}, the commit record starts in [{}, {})",
            self.name,
            Lsn(v),
            r.0,
            r.1
        );
    }

    /// Number of sink rows of `table`.
    pub async fn sink_count(&self, table: &str) -> i64 {
        let mut c = self.sink.get_conn().await.expect("sink conn");
        c.query_first(format!("SELECT COUNT(*) FROM `{table}`"))
            .await
            .expect("count")
            .unwrap_or(0)
    }

    /// Installs the emulator's version-regression audit on a sink table.
    pub async fn audit(&self, table: &str) {
        starrocks_emulator::install_version_audit(
            &self.sink,
            "__emulator",
            &self.name,
            table,
            "dbmazz_cdc_version",
        )
        .await
        .expect("install audit");
    }

    /// Version regressions recorded on a sink table (must be 0).
    pub async fn regressions(&self, table: &str) -> usize {
        starrocks_emulator::version_regressions(&self.sink, "__emulator", &self.name, table)
            .await
            .expect("read audit")
            .len()
    }

    /// Drains the pipeline and checks the slot is confirmed exactly to the checkpoint.
    pub async fn finish(&self, run: Running) {
        run.drain().await.expect("drain");
        assert_eq!(
            self.checkpoint().await,
            self.confirmed().await,
            "[{}] slot and checkpoint differ after a drain",
            self.name
        );
    }
}

/// Splits `a, f(b, c), d` at the commas outside parentheses and quotes.
fn split_top_level(s: &str) -> Vec<String> {
    let (mut out, mut cur, mut depth, mut quoted) = (Vec::new(), String::new(), 0i32, false);
    for ch in s.chars() {
        match ch {
            '\'' => quoted = !quoted,
            '(' if !quoted => depth += 1,
            ')' if !quoted => depth -= 1,
            ',' if !quoted && depth == 0 => {
                out.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(ch);
    }
    out.push(cur);
    out
}

/// A scenario to run: its name (what it proves) and its body.
pub type Named<'a> = (
    &'static str,
    std::pin::Pin<Box<dyn std::future::Future<Output = ()> + 'a>>,
);

/// Runs scenarios side by side on one stack; a failing scenario does not stop the
/// others, and the panic names every scenario that failed.
pub async fn run_all(scenarios: Vec<Named<'_>>) {
    use futures_util::FutureExt;
    let runs = scenarios.into_iter().map(|(name, f)| async move {
        let r = std::panic::AssertUnwindSafe(f).catch_unwind().await;
        r.err().map(|p| {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            format!("scenario `{name}` failed: {msg}")
        })
    });
    let failures: Vec<String> = futures_util::future::join_all(runs)
        .await
        .into_iter()
        .flatten()
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
