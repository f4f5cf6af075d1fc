//! The services every end-to-end run of dbmazz needs, in one place: a PostgreSQL
//! source (which also holds the checkpoints), MariaDB, and the StarRocks emulator in
//! this process in front of it. The tests, the chaos harness and the demo/benchmark
//! tools all start this one stack.
//!
//! ```text
//!  PostgreSQL (source db + checkpoints) ──WAL──▶ dbmazz ──Stream Load──▶ emulator ──▶ MariaDB (sink db)
//! ```
//!
//! The emulator can be stopped and started again on the same ports (as a restarted
//! StarRocks would come back), and PostgreSQL restarted with any [`StopMode`]. The
//! checks tests use (row-by-row oracle, version audit, checkpoint and slot
//! positions) panic with a readable message, which is how a test fails.

use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use starrocks_emulator::{Emulator, EmulatorConfig, EmulatorHandle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{compare, free_port, MariaDb, PgCluster, PgConfig, ServiceError, StopMode};

/// Source database name.
pub const SOURCE_DB: &str = "app";
/// Sink database name.
pub const SINK_DB: &str = "sink";
/// Schema of the checkpoint table.
pub const CHECKPOINT_SCHEMA: &str = "dbmazz";
/// The job id of single-pipeline tests ([`Job::test`]).
pub const JOB: &str = "job1";
/// The replication slot of [`JOB`].
pub const SLOT: &str = "job1_slot";
/// The publication of [`JOB`].
pub const PUBLICATION: &str = "job1_pub";

/// One pipeline: job id, slot, publication and its tables (public schema).
#[derive(Clone, Debug)]
pub struct Job {
    /// `DBMAZZ_JOB_ID`.
    pub id: String,
    /// `SOURCE_SLOT_NAME`.
    pub slot: String,
    /// `SOURCE_PUBLICATION_NAME`.
    pub publication: String,
    /// Tables (same name at the source and the sink).
    pub tables: Vec<String>,
}

impl Job {
    /// A job named `id` with slot `<id>_slot` and publication `<id>_pub`.
    pub fn new(id: &str, tables: Vec<String>) -> Self {
        Job {
            id: id.to_owned(),
            slot: format!("{id}_slot"),
            publication: format!("{id}_pub"),
            tables,
        }
    }

    /// The job of single-pipeline tests: [`JOB`], [`SLOT`], [`PUBLICATION`].
    pub fn test(tables: &[&str]) -> Self {
        Job::new(JOB, tables.iter().map(|t| (*t).to_owned()).collect())
    }
}

/// What to start.
#[derive(Clone, Debug)]
pub struct StackConfig {
    /// PostgreSQL settings.
    pub pg: PgConfig,
    /// Source database (created at start).
    pub source_db: String,
    /// Sink database (created at start).
    pub sink_db: String,
    /// Run the emulator in discard mode (loads are parsed and acknowledged, rows are
    /// not stored): for throughput measurements only.
    pub discard: bool,
}

impl Default for StackConfig {
    fn default() -> Self {
        StackConfig {
            pg: PgConfig::default(),
            source_db: SOURCE_DB.into(),
            sink_db: SINK_DB.into(),
            discard: false,
        }
    }
}

impl StackConfig {
    /// With these PostgreSQL settings.
    pub fn pg(mut self, pg: PgConfig) -> Self {
        self.pg = pg;
        self
    }

    /// With these source and sink database names.
    pub fn databases(mut self, source: &str, sink: &str) -> Self {
        self.source_db = source.into();
        self.sink_db = sink.into();
        self
    }

    /// With the emulator in discard mode (or not).
    pub fn discard(mut self, discard: bool) -> Self {
        self.discard = discard;
        self
    }
}

/// PostgreSQL + MariaDB + emulator, private to one test (stopped on drop).
pub struct Stack {
    /// The source (and checkpoint) cluster.
    pub pg: PgCluster,
    /// MariaDB behind the emulator.
    pub maria: MariaDb,
    /// A pool on the sink database.
    pub sink: mysql_async::Pool,
    emu: Option<EmulatorHandle>,
    emu_config: EmulatorConfig,
    source_db: String,
    sink_db: String,
}

/// Runs a blocking service start or stop without stalling the other tasks of a
/// multi-threaded runtime (a current-thread runtime has nothing else to run).
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

impl Stack {
    /// Starts the services with the defaults ([`StackConfig::default`]).
    pub async fn start() -> Result<Stack, ServiceError> {
        Self::start_with(StackConfig::default()).await
    }

    /// Starts the services and creates the source and sink databases.
    pub async fn start_with(config: StackConfig) -> Result<Stack, ServiceError> {
        let StackConfig {
            pg,
            source_db,
            sink_db,
            discard,
        } = config;
        let pg = blocking(|| PgCluster::start_with(pg))?;
        pg.create_database(&source_db)?;
        let maria = blocking(MariaDb::start)?;
        maria.create_database(&sink_db)?;
        let mut emu_config =
            EmulatorConfig::new(format!("mysql://root@127.0.0.1:{}/", maria.port()));
        emu_config.users = vec![("root".into(), String::new())];
        emu_config.discard = discard;
        let emu = Emulator::start(emu_config.clone())
            .await
            .map_err(|e| ServiceError::Failed {
                what: "starting the StarRocks emulator".into(),
                detail: e.to_string(),
            })?;
        // Restarts keep the ports, as a restarted StarRocks would.
        emu_config.fe_addr = ([127, 0, 0, 1], emu.fe_port()).into();
        emu_config.be_addr = ([127, 0, 0, 1], emu.be_port()).into();
        emu_config.admin_addr = ([127, 0, 0, 1], emu.admin_port()).into();
        let sink = maria.pool(&sink_db);
        Ok(Stack {
            pg,
            maria,
            sink,
            emu: Some(emu),
            emu_config,
            source_db,
            sink_db,
        })
    }

    /// The source database.
    pub fn source_db(&self) -> &str {
        &self.source_db
    }

    /// The sink database.
    pub fn sink_db(&self) -> &str {
        &self.sink_db
    }

    /// `postgres://` URL of the source database.
    pub fn source_url(&self) -> String {
        self.pg.url(&self.source_db)
    }

    /// Key/value connection string of the source database.
    pub fn source_conn(&self) -> String {
        self.pg.conn_string(&self.source_db)
    }

    /// A client of the source database.
    pub async fn pg_client(&self) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
        self.pg.client(&self.source_db).await
    }

    /// The FE URL (stays the same across emulator restarts).
    pub fn fe_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.emu_config.fe_addr.port())
    }

    /// The emulator's admin URL (faults, statistics).
    pub fn admin_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.emu_config.admin_addr.port())
    }

    /// True while the emulator runs.
    pub fn sink_up(&self) -> bool {
        self.emu.is_some()
    }

    /// The environment that connects `dbmazz run` to this stack: source, sink (HTTP
    /// and MySQL protocol), the metrics endpoint off and the control plane on a free
    /// loopback port. No job and no tuning: add them.
    pub fn connection_env(&self) -> Vec<(String, String)> {
        [
            ("SOURCE_URL", self.source_url()),
            ("SINK_URL", self.fe_url()),
            ("SINK_MYSQL_HOST", "127.0.0.1".to_owned()),
            ("SINK_MYSQL_PORT", self.maria.port().to_string()),
            ("SINK_DATABASE", self.sink_db.clone()),
            ("SINK_USER", "root".to_owned()),
            ("SINK_PASSWORD", String::new()),
            ("DBMAZZ_METRICS_ADDR", "off".to_owned()),
            ("DBMAZZ_GRPC_ADDR", format!("127.0.0.1:{}", free_port())),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    /// [`Stack::connection_env`] with the tests' tuning: small, frequent batches and a
    /// drain bound long enough for a loaded machine.
    pub fn worker_env(&self) -> Vec<(String, String)> {
        let mut env = self.connection_env();
        set_var(&mut env, "FLUSH_SIZE", "500");
        set_var(&mut env, "FLUSH_INTERVAL_MS", "100");
        set_var(&mut env, "DBMAZZ_SHUTDOWN_TIMEOUT_MS", "20000");
        env
    }

    /// The environment of `dbmazz run` for one job ([`Stack::worker_env`] plus the
    /// job's id, slot, publication and tables).
    pub fn dbmazz_env(&self, job: &Job) -> Vec<(String, String)> {
        let mut env = self.worker_env();
        set_var(&mut env, "TABLES", &job.tables.join(","));
        set_var(&mut env, "SOURCE_SLOT_NAME", &job.slot);
        set_var(&mut env, "SOURCE_PUBLICATION_NAME", &job.publication);
        set_var(&mut env, "DBMAZZ_JOB_ID", &job.id);
        env
    }

    /// Stops PostgreSQL with `mode` and starts it again on the same port; false when
    /// a fast shutdown had to be escalated to an immediate one.
    pub fn restart_pg(&mut self, mode: StopMode) -> Result<bool, ServiceError> {
        blocking(|| self.pg.restart_checked(mode))
    }

    /// Stops the emulator (the sink becomes unreachable: connections are refused).
    pub async fn stop_sink(&mut self) {
        if let Some(e) = self.emu.take() {
            e.shutdown().await;
        }
    }

    /// Starts the emulator again on the same ports (labels and transactions survive
    /// in MariaDB, as they survive a StarRocks restart).
    pub async fn start_sink(&mut self) -> Result<(), ServiceError> {
        if self.emu.is_some() {
            return Ok(());
        }
        let mut last = None;
        for _ in 0..100 {
            match Emulator::start(self.emu_config.clone()).await {
                Ok(e) => {
                    self.emu = Some(e);
                    return Ok(());
                }
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(ServiceError::Failed {
            what: "restarting the StarRocks emulator".into(),
            detail: format!("{last:?}"),
        })
    }

    /// Stops and starts the emulator.
    pub async fn restart_sink(&mut self) -> Result<(), ServiceError> {
        self.stop_sink().await;
        self.start_sink().await
    }

    /// Queues emulator faults (JSON objects of the admin API, see the emulator's
    /// `faults` module). Does nothing while the emulator is stopped.
    pub async fn inject(&self, faults: &[String]) -> Result<(), ServiceError> {
        if self.emu.is_none() || faults.is_empty() {
            return Ok(());
        }
        let body = format!("[{}]", faults.join(","));
        self.admin("POST", "/faults", &body).await.map(|_| ())
    }

    /// Empties the emulator's fault queue.
    pub async fn clear_faults(&self) -> Result<(), ServiceError> {
        if self.emu.is_none() {
            return Ok(());
        }
        self.admin("DELETE", "/faults", "").await.map(|_| ())
    }

    /// One admin request (HTTP/1.1, `Connection: close`); returns the body.
    pub async fn admin(
        &self,
        method: &str,
        path: &str,
        body: &str,
    ) -> Result<String, ServiceError> {
        let addr = self.emu_config.admin_addr;
        let fail = |detail: String| ServiceError::Failed {
            what: format!("emulator admin {method} {path}"),
            detail,
        };
        let mut s = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| fail(e.to_string()))?;
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes())
            .await
            .map_err(|e| fail(e.to_string()))?;
        let mut out = Vec::new();
        s.read_to_end(&mut out)
            .await
            .map_err(|e| fail(e.to_string()))?;
        let text = String::from_utf8_lossy(&out).into_owned();
        let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        if !head.starts_with("HTTP/1.1 200") {
            return Err(fail(text.clone()));
        }
        Ok(rest.to_owned())
    }

    // ---- checks for tests (panic with the reason) ----

    /// A client of the source database.
    ///
    /// # Panics
    /// When PostgreSQL does not accept the connection.
    pub async fn pg(&self) -> tokio_postgres::Client {
        self.pg_client().await.expect("connect to the source")
    }

    /// Runs SQL on the source.
    ///
    /// # Panics
    /// When the statement fails (the message names it).
    pub async fn source_sql(&self, sql: &str) {
        let c = self.pg().await;
        c.batch_execute(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// Runs SQL on the sink database (MariaDB).
    ///
    /// # Panics
    /// When the statement fails (the message names it).
    pub async fn sink_sql(&self, sql: &str) {
        let mut c = self.sink.get_conn().await.expect("sink connection");
        c.query_drop(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// Creates `name (id int PRIMARY KEY, v text)` at the source and its sink copy
    /// `(id INT PRIMARY KEY, v LONGTEXT)`: the table of tests that need just one.
    ///
    /// # Panics
    /// When either statement fails.
    pub async fn create_kv_table(&self, name: &str) {
        self.source_sql(&format!("CREATE TABLE {name} (id int PRIMARY KEY, v text)"))
            .await;
        self.sink_sql(&format!(
            "CREATE TABLE {name} (id INT PRIMARY KEY, v LONGTEXT)"
        ))
        .await;
    }

    /// Number of rows of a sink table, soft-deleted ones included.
    ///
    /// # Panics
    /// When the sink cannot be read.
    pub async fn sink_count(&self, table: &str) -> i64 {
        let mut c = self.sink.get_conn().await.expect("sink connection");
        c.query_first(format!("SELECT COUNT(*) FROM `{table}`"))
            .await
            .unwrap_or_else(|e| panic!("counting {table}: {e}"))
            .unwrap_or(0)
    }

    /// Installs the emulator's version-regression audit on a sink table.
    ///
    /// # Panics
    /// When the audit cannot be installed.
    pub async fn audit(&self, table: &str) {
        starrocks_emulator::install_version_audit(
            &self.sink,
            "__emulator",
            &self.sink_db,
            table,
            "dbmazz_cdc_version",
        )
        .await
        .expect("install the version audit");
    }

    /// Version regressions recorded on a sink table (must be 0).
    ///
    /// # Panics
    /// When the audit cannot be read.
    pub async fn regressions(&self, table: &str) -> usize {
        starrocks_emulator::version_regressions(&self.sink, "__emulator", &self.sink_db, table)
            .await
            .expect("read the version audit")
            .len()
    }

    /// Compares a source table with the live (not soft-deleted) rows of its sink
    /// table, column by column. Returns a readable diff when they differ.
    ///
    /// # Panics
    /// When either side cannot be read.
    pub async fn diff(&self, table: &str, order_by: &[&str]) -> Option<String> {
        let c = self.pg().await;
        compare::live_diff(&c, &self.sink, table, order_by)
            .await
            .unwrap_or_else(|e| panic!("comparing {table}: {e}"))
    }

    /// Waits until source and sink match.
    ///
    /// # Panics
    /// With the diff, when they still differ after `timeout`.
    pub async fn wait_equal(&self, table: &str, order_by: &[&str], timeout: Duration) {
        let start = Instant::now();
        loop {
            match self.diff(table, order_by).await {
                None => return,
                Some(d) if start.elapsed() > timeout => {
                    panic!("source and sink differ after {timeout:?}:\n{d}")
                }
                Some(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// The checkpoint LSN of `job` (text), if it has one.
    ///
    /// # Panics
    /// When the source cannot be reached.
    pub async fn checkpoint(&self, job: &str) -> Option<String> {
        let c = self.pg().await;
        c.query_opt(
            &format!(
                "SELECT lsn::text FROM {CHECKPOINT_SCHEMA}.dbmazz_checkpoints WHERE job_id = $1"
            ),
            &[&job],
        )
        .await
        .ok()
        .flatten()
        .map(|r| r.get(0))
    }

    /// `confirmed_flush_lsn` of `slot` (text), if the slot exists.
    ///
    /// # Panics
    /// When the source cannot be reached.
    pub async fn confirmed(&self, slot: &str) -> Option<String> {
        let c = self.pg().await;
        c.query_opt(
            "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await
        .ok()
        .flatten()
        .and_then(|r| r.get(0))
    }

    /// `pg_current_wal_lsn()` of the source, as text.
    ///
    /// # Panics
    /// When the source cannot be reached.
    pub async fn wal_lsn(&self) -> String {
        self.pg()
            .await
            .query_one("SELECT pg_current_wal_lsn()::text", &[])
            .await
            .expect("pg_current_wal_lsn")
            .get(0)
    }

    /// Waits until the consumer of `slot` has told PostgreSQL that it received the
    /// WAL up to `lsn` (`write_lsn` of the walsender serving the slot, which dbmazz
    /// reports from what its replication connection read off the wire).
    ///
    /// # Panics
    /// When that does not happen within `timeout`.
    pub async fn wait_received(&self, slot: &str, lsn: &str, timeout: Duration) {
        let c = self.pg().await;
        let start = Instant::now();
        loop {
            let row = c
                .query_opt(
                    "SELECT r.write_lsn::text, r.write_lsn >= $2::text::pg_lsn \
                     FROM pg_stat_replication r JOIN pg_replication_slots s ON s.active_pid = r.pid \
                     WHERE s.slot_name = $1",
                    &[&slot, &lsn],
                )
                .await
                .expect("pg_stat_replication");
            let (seen, done) = match row {
                Some(r) => (r.get::<_, Option<String>>(0), r.get::<_, Option<bool>>(1)),
                None => (None, None),
            };
            if done == Some(true) {
                return;
            }
            if start.elapsed() > timeout {
                panic!(
                    "the consumer of slot {slot} reported WAL received up to {seen:?}, not {lsn}, \
                     within {timeout:?}"
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Sets `key` in an environment list, replacing an earlier value.
pub fn set_var(env: &mut Vec<(String, String)>, key: &str, value: &str) {
    env.retain(|(k, _)| k != key);
    env.push((key.to_owned(), value.to_owned()));
}

/// The `dbmazz` binary of the package under test (for its integration tests, where
/// Cargo sets `CARGO_BIN_EXE_dbmazz`).
#[macro_export]
macro_rules! dbmazz_bin {
    () => {
        ::std::path::Path::new(env!("CARGO_BIN_EXE_dbmazz"))
    };
}
