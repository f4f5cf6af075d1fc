//! One pipeline's lifecycle: INIT → SETUP → CDC, plus PAUSED, DRAINING, STOPPED
//! and FAILED, published in [`status::SharedState`].
//!
//! The caller starts an engine with two cancellation tokens, so a job runner can run
//! several pipelines per process:
//! - `drain`: stop reading, load and checkpoint what was read, confirm, stop
//!   (SIGTERM, DrainAndStop);
//! - `abort`: stop at once; nothing unconfirmed is lost, it is replayed on the next
//!   start (Stop, lost lease).
//!
//! Error policy, in one place ([`policy`]): every error carries the kind its layer
//! decided. Transient errors (connections, a slot still held by a previous
//! walsender, an unreachable sink) are retried with exponential back-off and jitter,
//! re-running setup each time; definite errors (bad data, configuration, an
//! invalidated slot) move the pipeline to FAILED with a message that names the fix.
//! A setup error that needs an operator keeps the process (and the control plane)
//! up, re-checking periodically, so fixing the cause is enough. A lost lease stops
//! the pipeline without writing anything.
//!
//! - [`cdc`]: one attempt (connect, setup, start the stream); [`flow`]: the
//!   streaming loop (batcher, loader, checkpoint, confirm), generic over the source,
//!   the checkpoint store and the [`crate::sink::Sink`];
//! - [`setup`]: PostgreSQL, checkpoint store and sink made ready, idempotently;
//! - [`status`]: the status board the control plane reads; [`handle`]: steering.

pub mod cdc;
pub mod error;
pub mod flow;
pub mod handle;
pub mod policy;
pub mod setup;
pub mod status;
#[cfg(test)]
mod tests;

pub use error::EngineError;
pub use handle::{PipelineHandle, Pipelines};

use std::time::Duration;

use crate::config::Secret;
use crate::pipeline::BatchLimits;
use crate::sink::SinkConnector;
use policy::{Action, Restarts};
use status::Stage;

/// Everything one pipeline needs (built from the configuration); `C` opens its sink.
#[derive(Clone, Debug)]
pub struct EngineSettings<C> {
    /// Job id.
    pub job_id: String,
    /// Source URL.
    pub source_url: Secret,
    /// Tables `(schema, name, sink table)`.
    pub tables: Vec<(String, String, String)>,
    /// Replication slot.
    pub slot: String,
    /// Publication.
    pub publication: String,
    /// Set REPLICA IDENTITY FULL during setup.
    pub replica_identity_full: bool,
    /// Checkpoint database URL.
    pub checkpoint_url: Secret,
    /// Schema of the checkpoint table.
    pub checkpoint_schema: String,
    /// Lease epoch (0 without leases).
    pub epoch: i64,
    /// Batching limits.
    pub limits: BatchLimits,
    /// The sink's settings.
    pub sink: C,
    /// How often progress is logged.
    pub progress_interval: Duration,
}

/// Runs the pipeline until drained/aborted (`Ok`), failed or fenced (`Err`).
pub async fn run<C: SinkConnector>(
    settings: EngineSettings<C>,
    handle: PipelineHandle,
) -> Result<(), EngineError> {
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
        let result = cdc::run_once(&settings, &handle).await;
        let streamed = state.stage() == Stage::Cdc;
        let err = match result {
            Ok(()) => {
                state.set_stage(Stage::Stopped);
                return Ok(());
            }
            Err(e) => e,
        };
        let msg = err.to_string();
        let wait = match policy::action(err.kind()) {
            Action::Stop => {
                tracing::warn!(job = %settings.job_id, reason = %msg, "lease lost; pipeline stopped");
                state.record_error(msg);
                state.set_stage(Stage::Stopped);
                return Err(err);
            }
            Action::Fail => {
                tracing::error!(job = %settings.job_id, error = %msg, "pipeline failed");
                state.record_error(msg);
                state.set_stage(Stage::Failed);
                return Err(err);
            }
            Action::Recheck(wait) => {
                tracing::error!(job = %settings.job_id, error = %msg, "setup needs attention; re-checking in 30 s");
                state.record_error(msg);
                state.set_stage(Stage::Failed);
                wait
            }
            Action::Restart => {
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
