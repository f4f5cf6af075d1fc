//! dbmazz's engine in the test's own process, on a [`Stack`]: the settings of a
//! pipeline replicating the stack's source into its sink, and a running pipeline
//! with its status board, steered the way the worker steers it (drain, abort).

use std::sync::Arc;
use std::time::{Duration, Instant};

use ::dbmazz::config::DeleteMode;
use ::dbmazz::config::{Secret, TruncateMode};
use ::dbmazz::engine::status::{SharedState, Stage};
use ::dbmazz::engine::{self, EngineError, EngineSettings, PipelineHandle};
use ::dbmazz::pipeline::BatchLimits;
use ::dbmazz::sink::starrocks::catalog::CatalogSettings;
use ::dbmazz::sink::starrocks::StarRocksSettings;

use crate::stack::{Job, Stack, CHECKPOINT_SCHEMA};

impl Stack {
    /// Engine settings of the test job ([`Job::test`]) over `tables` (public schema),
    /// with small batches, soft deletes and TRUNCATE applied.
    pub fn engine_settings(&self, tables: &[&str]) -> EngineSettings<StarRocksSettings> {
        let job = Job::test(tables);
        let url = self.source_url();
        EngineSettings {
            job_id: job.id.clone(),
            source_url: Secret::from(&url),
            tables: job
                .tables
                .iter()
                .map(|t| ("public".to_owned(), t.clone(), t.clone()))
                .collect(),
            slot: job.slot,
            publication: job.publication,
            replica_identity_full: true,
            checkpoint_url: url.into(),
            checkpoint_schema: CHECKPOINT_SCHEMA.into(),
            epoch: 0,
            limits: BatchLimits {
                max_changes: 500,
                max_bytes: 16 << 20,
                max_age: Duration::from_millis(100),
            },
            sink: StarRocksSettings {
                fe_url: self.fe_url(),
                database: self.sink_db().into(),
                user: "root".into(),
                password: Secret::default(),
                label_prefix: "dbmazz".into(),
                job_id: job.id,
                delete_mode: DeleteMode::Soft,
                truncate: TruncateMode::Apply,
                load_timeout: Duration::from_secs(60),
                catalog: CatalogSettings {
                    host: "127.0.0.1".into(),
                    port: self.maria.port(),
                    user: "root".into(),
                    password: Secret::default(),
                    database: self.sink_db().into(),
                },
            },
            progress_interval: Duration::ZERO,
        }
    }
}

/// A pipeline running in this process.
pub struct Running {
    /// Its handle (status board, pause, drain, abort).
    pub handle: PipelineHandle,
    /// The engine task.
    pub task: tokio::task::JoinHandle<Result<(), EngineError>>,
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

    /// The status board.
    pub fn state(&self) -> &Arc<SharedState> {
        &self.handle.state
    }

    /// Waits until `stage` is reached.
    ///
    /// # Panics
    /// On timeout, or when the pipeline fails while another stage is awaited.
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

    /// Drains and waits for the engine to stop; returns what the engine returned.
    ///
    /// # Panics
    /// When the engine task panicked.
    pub async fn drain(self) -> Result<(), EngineError> {
        self.handle.drain.cancel();
        self.task.await.expect("engine task")
    }

    /// Aborts (what a crash looks like to the databases, without a process exit).
    pub async fn abort(self) {
        self.handle.abort.cancel();
        let _ = self.task.await;
    }
}
