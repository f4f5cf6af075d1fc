//! The engine's error: the typed error of whichever layer failed, or one the engine
//! makes itself, each with the [`ErrorKind`] decided where it was made. What the
//! engine does about a kind is decided once, in [`super::policy`].

use crate::error::ErrorKind;
use crate::pipeline::PipelineError;
use crate::sink::SinkError;
use crate::source::SourceError;
use crate::state_store::StateStoreError;

use super::setup::SetupError;

/// Why one run of a pipeline ended other than on request.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The replication source.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The stream is not what the pipeline can apply.
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    /// The sink could not apply a batch.
    #[error(transparent)]
    Sink(#[from] SinkError),
    /// The checkpoint could not be written (or belongs to a newer lease epoch).
    #[error(transparent)]
    Checkpoint(#[from] StateStoreError),
    /// Setup (PostgreSQL, checkpoint store, sink) is not ready.
    #[error(transparent)]
    Setup(#[from] SetupError),
    /// The lease this pipeline runs under is overdue or lost (self-fencing, design
    /// rule 8): nothing more is written or confirmed.
    #[error("lease of job '{job}' (epoch {epoch}) {what}")]
    LeaseOverdue {
        /// Job id.
        job: String,
        /// Epoch held.
        epoch: i64,
        /// What was not done.
        what: &'static str,
    },
    /// The replication stream ended without an error.
    #[error("replication stream ended")]
    StreamEnded,
    /// The loader stopped while the pipeline still ran.
    #[error("loader stopped unexpectedly")]
    LoaderStopped,
    /// The loader task ended abnormally.
    #[error("loader task failed: {0}")]
    LoaderFailed(String),
    /// A fault point fired (test builds only).
    #[error("{0}")]
    FaultInjected(String),
}

impl EngineError {
    /// What can be done about it, as the layer that made the error decided.
    pub fn kind(&self) -> ErrorKind {
        match self {
            EngineError::Source(e) => e.kind(),
            EngineError::Pipeline(e) => e.kind(),
            // A cancelled sink only returns while the engine stops anyway.
            EngineError::Sink(e) => e.kind().unwrap_or(ErrorKind::Transient),
            EngineError::Checkpoint(e) => e.kind(),
            EngineError::Setup(e) => e.kind(),
            EngineError::LeaseOverdue { .. } => ErrorKind::Fenced,
            EngineError::StreamEnded | EngineError::LoaderStopped => ErrorKind::Transient,
            EngineError::LoaderFailed(_) | EngineError::FaultInjected(_) => ErrorKind::Definite,
        }
    }
}
