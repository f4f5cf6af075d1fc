//! One pipeline's lifecycle: INIT → SETUP → CDC, plus PAUSED, DRAINING, STOPPED
//! and FAILED, published in [`SharedState`].
//!
//! The caller starts an engine with two cancellation tokens, so a job runner can run
//! several pipelines per process:
//! - `drain`: stop reading, load and checkpoint what was read, confirm, stop
//!   (SIGTERM, DrainAndStop);
//! - `abort`: stop at once; nothing unconfirmed is lost, it is replayed on the next
//!   start (Stop, lost lease).
//!
//! Error policy, in one place ([`run`]): transient errors (connections, a slot still
//! held by a previous walsender, an unreachable sink) are retried with exponential
//! back-off and jitter, re-running setup each time; definite errors (bad data,
//! configuration, an invalidated slot) move the pipeline to FAILED with a message
//! that names the fix. A setup error that needs an operator keeps the process (and
//! the control plane) up, re-checking periodically, so fixing the cause is enough.

pub mod cdc;
pub mod handle;
pub mod setup;

pub use handle::{PipelineHandle, Pipelines};

use std::time::Duration;

use crate::grpc::state::Stage;
use crate::pipeline::{BatchLimits, TruncatePolicy};
use crate::sink::encode::DeleteMode;
use crate::sink::starrocks::StarRocksSettings;

/// Everything one pipeline needs (built from the configuration).
#[derive(Clone, Debug)]
pub struct EngineSettings {
    /// Job id.
    pub job_id: String,
    /// Source URL (secret; never logged).
    pub source_url: String,
    /// Tables `(schema, name, sink table)`.
    pub tables: Vec<(String, String, String)>,
    /// Replication slot.
    pub slot: String,
    /// Publication.
    pub publication: String,
    /// Set REPLICA IDENTITY FULL during setup.
    pub replica_identity_full: bool,
    /// Checkpoint database URL (secret).
    pub checkpoint_url: String,
    /// Schema of the checkpoint table.
    pub checkpoint_schema: String,
    /// Lease epoch (0 without leases).
    pub epoch: i64,
    /// Batching limits.
    pub limits: BatchLimits,
    /// Sink settings.
    pub sink: StarRocksSettings,
    /// How often progress is logged.
    pub progress_interval: Duration,
}

impl EngineSettings {
    /// Delete handling.
    pub fn delete_mode(&self) -> DeleteMode {
        self.sink.delete_mode
    }

    /// TRUNCATE handling.
    pub fn truncate(&self) -> TruncatePolicy {
        self.sink.truncate
    }
}

/// Why the engine stopped.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A definite error: the pipeline is FAILED.
    #[error("{0}")]
    Failed(String),
    /// This worker lost the job's lease (another worker owns it now); the pipeline
    /// stopped without writing anything.
    #[error("{0}")]
    Fenced(String),
}

/// How an attempt of the CDC stage ended.
#[derive(Debug)]
pub enum Outcome {
    /// Drained or aborted on request.
    Stopped,
    /// Worth retrying after a back-off.
    Transient(String),
    /// Needs an operator.
    Definite(String),
    /// Setup found a problem an operator must fix; re-checked periodically.
    SetupBlocked(String),
    /// The lease was lost or a newer epoch owns the checkpoint: stop, write nothing.
    Fenced(String),
}

/// Exponential back-off with jitter for engine restarts: 1 s doubling to 30 s.
fn restart_backoff(attempt: u32) -> Duration {
    let base = 1000u64.saturating_mul(1 << attempt.min(5)).min(30_000);
    Duration::from_millis((base as f64 * rand::random_range(0.5..=1.0)) as u64)
}

/// A pipeline that streamed at least this long before a transient error starts its
/// back-off from the first step again: that error is a new one, not the previous one
/// repeating.
const HEALTHY_RUN: Duration = Duration::from_secs(30);

/// Counts consecutive transient failures and says how long to wait before the next
/// attempt. Without the reset, every recovery late in a process's life (after a
/// handful of database restarts over days) waited the full 30 s.
#[derive(Debug, Default)]
struct Restarts {
    attempt: u32,
}

impl Restarts {
    /// The wait after a transient failure of an attempt that ran for `ran_for` and
    /// did (`streamed`) or did not reach streaming; also the attempt number.
    fn next_wait(&mut self, streamed: bool, ran_for: Duration) -> (u32, Duration) {
        if streamed && ran_for >= HEALTHY_RUN {
            self.attempt = 0;
        }
        self.attempt += 1;
        (self.attempt, restart_backoff(self.attempt))
    }
}

/// Runs the pipeline until drained/aborted (`Ok`) or failed (`Err`).
pub async fn run(settings: EngineSettings, handle: PipelineHandle) -> Result<(), EngineError> {
    let state = handle.state.clone();
    let (drain, abort) = (handle.drain.clone(), handle.abort.clone());
    let mut restarts = Restarts::default();
    loop {
        if drain.is_cancelled() || abort.is_cancelled() {
            state.set_stage(Stage::Stopped);
            return Ok(());
        }
        state.set_stage(Stage::Setup);
        let started = std::time::Instant::now();
        let outcome = cdc::run_once(&settings, &handle).await;
        let streamed = state.stage() == Stage::Cdc;
        let wait = match outcome {
            Outcome::Stopped => {
                state.set_stage(Stage::Stopped);
                return Ok(());
            }
            Outcome::Fenced(msg) => {
                tracing::warn!(job = %settings.job_id, reason = %msg, "lease lost; pipeline stopped");
                state.record_error(msg.clone());
                state.set_stage(Stage::Stopped);
                return Err(EngineError::Fenced(msg));
            }
            Outcome::Definite(msg) => {
                tracing::error!(job = %settings.job_id, error = %msg, "pipeline failed");
                state.record_error(msg.clone());
                state.set_stage(Stage::Failed);
                return Err(EngineError::Failed(msg));
            }
            Outcome::SetupBlocked(msg) => {
                tracing::error!(job = %settings.job_id, error = %msg, "setup needs attention; re-checking in 30 s");
                state.record_error(msg);
                state.set_stage(Stage::Failed);
                Duration::from_secs(30)
            }
            Outcome::Transient(msg) => {
                let (attempt, wait) = restarts.next_wait(streamed, started.elapsed());
                tracing::warn!(job = %settings.job_id, error = %msg, attempt, wait_ms = wait.as_millis() as u64, "transient error; restarting the pipeline");
                state.record_error(msg);
                wait
            }
        };
        tokio::select! {
            _ = drain.cancelled() => {}
            _ = abort.cancelled() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn back_off_grows_while_failures_repeat_and_restarts_after_a_healthy_run() {
        let mut r = Restarts::default();
        let quick = Duration::from_secs(1);
        let (a, first) = r.next_wait(false, quick);
        assert_eq!(a, 1);
        assert!(first <= Duration::from_secs(2));
        for _ in 0..6 {
            r.next_wait(true, quick);
        }
        let (a, late) = r.next_wait(false, Duration::from_secs(600));
        assert_eq!(a, 8, "a failure before streaming is not a healthy run");
        assert!(late >= Duration::from_secs(15));
        let (a, again) = r.next_wait(true, HEALTHY_RUN);
        assert_eq!(a, 1, "streaming for a while resets the count");
        assert!(again <= Duration::from_secs(2));
    }
}
