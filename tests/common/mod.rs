//! Shared equipment for dbmazz's end-to-end tests: a real PostgreSQL, a MariaDB and
//! the StarRocks emulator in front of it, dbmazz pipelines run in-process, and the
//! oracle (row-by-row comparison of source and sink, version audit, confirmed LSN
//! never ahead of the checkpoint).

#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use dbmazz::config::{DeleteMode, Secret, TruncateMode};
use dbmazz::engine::status::{SharedState, Stage};
use dbmazz::engine::{self, EngineSettings, PipelineHandle};
use dbmazz::pipeline::BatchLimits;
use dbmazz::sink::starrocks::catalog::CatalogSettings;
use dbmazz::sink::starrocks::StarRocksSettings;
use dbmazz_testkit::{compare, MariaDb, PgCluster};
use mysql_async::prelude::Queryable;
use starrocks_emulator::{Emulator, EmulatorConfig, EmulatorHandle};

/// Source database name.
pub const DB: &str = "app";
/// Sink database name.
pub const SINK_DB: &str = "sink";
/// Job id / slot / publication used by the tests.
pub const JOB: &str = "job1";
/// Slot.
pub const SLOT: &str = "dbmazz_slot";
/// Publication.
pub const PUBLICATION: &str = "dbmazz_pub";

/// PostgreSQL + MariaDB + emulator.
pub struct Stack {
    pub pg: PgCluster,
    pub maria: MariaDb,
    pub emu: Option<EmulatorHandle>,
    pub sink: mysql_async::Pool,
    emu_config: EmulatorConfig,
}

impl Stack {
    /// Starts everything, with the default PostgreSQL settings.
    pub async fn start() -> Stack {
        Self::start_with(dbmazz_testkit::PgConfig::default()).await
    }

    /// Starts everything with PostgreSQL settings.
    pub async fn start_with(pg: dbmazz_testkit::PgConfig) -> Stack {
        let pg = PgCluster::start_with(pg).expect("postgres");
        pg.create_database(DB).expect("create source db");
        let maria = MariaDb::start().expect("mariadb");
        maria.create_database(SINK_DB).expect("create sink db");
        let mut emu_config =
            EmulatorConfig::new(format!("mysql://root@127.0.0.1:{}/", maria.port()));
        emu_config.users = vec![("root".into(), String::new())];
        let emu = Emulator::start(emu_config.clone()).await.expect("emulator");
        // Restarts keep the same ports.
        emu_config.fe_addr = ([127, 0, 0, 1], emu.fe_port()).into();
        emu_config.be_addr = ([127, 0, 0, 1], emu.be_port()).into();
        emu_config.admin_addr = ([127, 0, 0, 1], emu.admin_port()).into();
        let sink = maria.pool(SINK_DB);
        Stack {
            pg,
            maria,
            emu: Some(emu),
            sink,
            emu_config,
        }
    }

    /// The emulator.
    pub fn emu(&self) -> &EmulatorHandle {
        self.emu.as_ref().expect("emulator running")
    }

    /// Stops and starts the emulator on the same ports.
    pub async fn restart_emulator(&mut self) {
        if let Some(e) = self.emu.take() {
            e.shutdown().await;
        }
        let mut last = None;
        for _ in 0..50 {
            match Emulator::start(self.emu_config.clone()).await {
                Ok(e) => {
                    self.emu = Some(e);
                    return;
                }
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("emulator restart failed: {last:?}");
    }

    /// A client of the source database.
    pub async fn pg(&self) -> tokio_postgres::Client {
        self.pg.client(DB).await.expect("connect source")
    }

    /// Runs SQL on the source.
    pub async fn source_sql(&self, sql: &str) {
        let c = self.pg().await;
        c.batch_execute(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// Runs SQL on the sink (MariaDB).
    pub async fn sink_sql(&self, sql: &str) {
        let mut c = self.sink.get_conn().await.expect("sink conn");
        c.query_drop(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// Installs the version-regression audit on a sink table.
    pub async fn audit(&self, table: &str) {
        starrocks_emulator::install_version_audit(
            &self.sink,
            "__emulator",
            SINK_DB,
            table,
            "dbmazz_cdc_version",
        )
        .await
        .expect("install audit");
    }

    /// Regressions recorded on a sink table.
    pub async fn regressions(&self, table: &str) -> usize {
        starrocks_emulator::version_regressions(&self.sink, "__emulator", SINK_DB, table)
            .await
            .expect("read audit")
            .len()
    }

    /// Engine settings for `tables` (public schema) with small batches.
    pub fn settings(&self, tables: &[&str]) -> EngineSettings<StarRocksSettings> {
        let url = self.pg.url(DB);
        EngineSettings {
            job_id: JOB.into(),
            source_url: Secret::from(&url),
            tables: tables
                .iter()
                .map(|t| ("public".to_owned(), (*t).to_owned(), (*t).to_owned()))
                .collect(),
            slot: SLOT.into(),
            publication: PUBLICATION.into(),
            replica_identity_full: true,
            checkpoint_url: url.into(),
            checkpoint_schema: "dbmazz".into(),
            epoch: 0,
            limits: BatchLimits {
                max_changes: 500,
                max_bytes: 16 << 20,
                max_age: Duration::from_millis(100),
            },
            sink: StarRocksSettings {
                fe_url: self.emu().fe_url(),
                database: SINK_DB.into(),
                user: "root".into(),
                password: Secret::default(),
                label_prefix: "dbmazz".into(),
                job_id: JOB.into(),
                delete_mode: DeleteMode::Soft,
                truncate: TruncateMode::Apply,
                load_timeout: Duration::from_secs(60),
                catalog: CatalogSettings {
                    host: "127.0.0.1".into(),
                    port: self.maria.port(),
                    user: "root".into(),
                    password: Secret::default(),
                    database: SINK_DB.into(),
                },
            },
            progress_interval: Duration::ZERO,
        }
    }

    /// The environment of `dbmazz run` for `tables` (public schema).
    pub fn env(&self, tables: &[&str]) -> Vec<(String, String)> {
        [
            ("SOURCE_URL", self.pg.url(DB)),
            ("TABLES", tables.join(",")),
            ("SOURCE_SLOT_NAME", SLOT.to_owned()),
            ("SOURCE_PUBLICATION_NAME", PUBLICATION.to_owned()),
            ("DBMAZZ_JOB_ID", JOB.to_owned()),
            ("SINK_URL", self.emu().fe_url()),
            ("SINK_MYSQL_HOST", "127.0.0.1".to_owned()),
            ("SINK_MYSQL_PORT", self.maria.port().to_string()),
            ("SINK_DATABASE", SINK_DB.to_owned()),
            ("SINK_USER", "root".to_owned()),
            ("SINK_PASSWORD", String::new()),
            ("FLUSH_SIZE", "500".to_owned()),
            ("FLUSH_INTERVAL_MS", "100".to_owned()),
            ("DBMAZZ_METRICS_ADDR", "off".to_owned()),
            (
                "DBMAZZ_GRPC_ADDR",
                format!("127.0.0.1:{}", dbmazz_testkit::free_port()),
            ),
            ("DBMAZZ_SHUTDOWN_TIMEOUT_MS", "20000".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    /// Starts `dbmazz run` as a process.
    pub fn spawn_dbmazz(&self, env: &[(String, String)]) -> dbmazz_testkit::DbmazzProcess {
        dbmazz_testkit::DbmazzProcess::spawn(
            std::path::Path::new(env!("CARGO_BIN_EXE_dbmazz")),
            &["run"],
            env,
        )
        .expect("spawn dbmazz")
    }

    /// The checkpoint LSN of the test job.
    pub async fn checkpoint(&self) -> Option<String> {
        let c = self.pg().await;
        c.query_opt(
            "SELECT lsn::text FROM dbmazz.dbmazz_checkpoints WHERE job_id = $1",
            &[&JOB],
        )
        .await
        .ok()
        .flatten()
        .map(|r| r.get(0))
    }

    /// `confirmed_flush_lsn` of the test slot.
    pub async fn confirmed(&self) -> Option<String> {
        let c = self.pg().await;
        c.query_opt(
            "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1",
            &[&SLOT],
        )
        .await
        .ok()
        .flatten()
        .and_then(|r| r.get(0))
    }

    /// Compares a source table with the live (not soft-deleted) rows of its sink
    /// table, column by column. Returns a readable diff when they differ.
    pub async fn diff(&self, table: &str, order_by: &[&str]) -> Option<String> {
        let c = self.pg().await;
        let cols = compare::source_columns(&c, "public", table)
            .await
            .expect("columns");
        let src = compare::source_rows(&c, "public", table, &cols, order_by)
            .await
            .expect("source rows");
        let sink = compare::sink_rows(
            &self.sink,
            table,
            &cols,
            order_by,
            "NOT COALESCE(dbmazz_is_deleted, FALSE)",
        )
        .await
        .expect("sink rows");
        compare::describe_diff(table, &src, &sink)
    }

    /// Waits until source and sink match (or panics with the diff).
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
}

/// A pipeline running in-process.
pub struct Running {
    pub handle: PipelineHandle,
    pub task: tokio::task::JoinHandle<Result<(), engine::EngineError>>,
}

impl Running {
    /// Starts the engine.
    pub fn start(settings: EngineSettings<StarRocksSettings>) -> Running {
        let state = Arc::new(SharedState::new(
            &settings.job_id,
            &settings.slot,
            &settings.publication,
        ));
        let handle = PipelineHandle::new(state);
        let task = tokio::spawn(engine::run(settings, handle.clone()));
        Running { handle, task }
    }

    /// The shared state.
    pub fn state(&self) -> &Arc<SharedState> {
        &self.handle.state
    }

    /// Waits until the stage is reached (panics on timeout or FAILED).
    pub async fn wait_stage(&self, stage: Stage, timeout: Duration) {
        let start = Instant::now();
        loop {
            let s = self.state().stage();
            if s == stage {
                return;
            }
            if s == Stage::Failed && stage != Stage::Failed {
                panic!("pipeline FAILED: {:?}", self.state().last_error());
            }
            if start.elapsed() > timeout {
                panic!(
                    "stage {s:?} after {timeout:?}, wanted {stage:?}; last error {:?}",
                    self.state().last_error()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Drains and waits for the engine to stop.
    pub async fn drain(self) -> Result<(), engine::EngineError> {
        self.handle.drain.cancel();
        self.task.await.expect("engine task")
    }

    /// Aborts (like a crash of the pipeline, without a process exit).
    pub async fn abort(self) {
        self.handle.abort.cancel();
        let _ = self.task.await;
    }
}

/// Samples the slot and the checkpoint until stopped and records any moment the
/// slot was confirmed beyond the checkpoint.
pub struct ConfirmWatch {
    stop: tokio_util::sync::CancellationToken,
    task: tokio::task::JoinHandle<Vec<String>>,
}

impl ConfirmWatch {
    /// Starts sampling every 20 ms.
    pub fn start(stack: &Stack) -> ConfirmWatch {
        let url = stack.pg.conn_string(DB);
        let stop = tokio_util::sync::CancellationToken::new();
        let s2 = stop.clone();
        let task = tokio::spawn(async move {
            let (c, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .expect("connect");
            tokio::spawn(conn);
            let mut violations = Vec::new();
            while !s2.is_cancelled() {
                // Slot first, checkpoint second: a confirmed LSN must already be
                // recorded by the time it is visible on the slot.
                let slot = c
                    .query_opt(
                        "SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = $1",
                        &[&SLOT],
                    )
                    .await;
                let cp = c
                    .query_opt(
                        "SELECT lsn FROM dbmazz.dbmazz_checkpoints WHERE job_id = $1",
                        &[&JOB],
                    )
                    .await;
                if let (Ok(Some(s)), Ok(Some(cp))) = (slot, cp) {
                    let s: Option<tokio_postgres::types::PgLsn> = s.get(0);
                    let cp: tokio_postgres::types::PgLsn = cp.get(0);
                    if let Some(s) = s {
                        if u64::from(s) > u64::from(cp) {
                            violations.push(format!("slot confirmed {s} > checkpoint {cp}"));
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            violations
        });
        ConfirmWatch { stop, task }
    }

    /// Stops sampling; returns the violations seen.
    pub async fn finish(self) -> Vec<String> {
        self.stop.cancel();
        self.task.await.expect("watch task")
    }
}
