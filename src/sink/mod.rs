//! Sinks: where batches go. StarRocks (Stream Load, [`starrocks`]) is the first;
//! [`memory`] keeps tables in memory for tests and trials.
//!
//! ```text
//! engine ──SinkConnector::connect──▶ Sink ──prepare(source tables)──▶ ready tables
//!        ──push_batch(Batch)───────▶ SinkAck (every table durable) ──▶ checkpoint
//! ```
//!
//! The engine is generic over [`SinkConnector`] and [`Sink`]; the boundary speaks
//! only of batches, schemas, acknowledgements and [`SinkError`]s with an
//! [`ErrorKind`], so no StarRocks type leaks through it. A sink acknowledges a batch
//! only when every table of it is durably applied; only then does the engine write
//! the checkpoint and confirm the slot (design rule 1). Replays of a batch (same rows,
//! same LSNs) must be harmless.
//!
//! Counters live in [`metrics::SinkMetrics`], which the engine hands to the sink and
//! its status board reads.

pub mod memory;
pub mod metrics;
pub mod starrocks;

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::config::TruncateMode;
use crate::error::ErrorKind;
use crate::pipeline::batch::Batch;
use crate::pipeline::schema_cache::{SourceTable, TableSchema};
use metrics::SinkMetrics;

/// What a sink reports for an acknowledged batch.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SinkAck {
    /// Load requests that succeeded (including de-duplicated ones).
    pub loads: u64,
    /// Rows sent.
    pub rows: u64,
    /// Attempts that were retried.
    pub retries: u64,
}

/// A sink failure. The sink decides the [`ErrorKind`] where the error happens (it
/// knows whether a connection dropped or a value was rejected); the cause stays a
/// typed error of the sink behind the boundary.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The engine asked the sink to stop; not a failure.
    #[error("cancelled")]
    Cancelled,
    /// The sink could not prepare or apply.
    #[error("{error}")]
    Failed {
        /// What the engine should do about it.
        kind: ErrorKind,
        /// The sink's own error.
        error: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl SinkError {
    /// A failure of `kind` caused by `error`.
    pub fn new(
        kind: ErrorKind,
        error: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        SinkError::Failed {
            kind,
            error: error.into(),
        }
    }

    /// The kind of a failure; `None` for [`SinkError::Cancelled`].
    pub fn kind(&self) -> Option<ErrorKind> {
        match self {
            SinkError::Cancelled => None,
            SinkError::Failed { kind, .. } => Some(*kind),
        }
    }
}

/// A destination for batches.
pub trait Sink: Send + Sync + 'static {
    /// Checks and prepares the destination for the configured tables as setup found
    /// them in PostgreSQL (tables exist, keys match, columns and audit columns
    /// present). Runs on every start, before anything is loaded; idempotent.
    fn prepare(&self, tables: &[SourceTable])
        -> impl Future<Output = Result<(), SinkError>> + Send;

    /// Applies every table of `batch`; returns only when all of it is durable.
    /// Replays of a batch (same rows, same LSNs) must be harmless.
    fn push_batch(
        &self,
        batch: Arc<Batch>,
    ) -> impl Future<Output = Result<SinkAck, SinkError>> + Send;

    /// Makes the sink table ready for rows of `schema` (e.g. adds new columns);
    /// the sink also does this itself before the first row of a new schema is loaded.
    fn apply_schema(
        &self,
        schema: &Arc<TableSchema>,
    ) -> impl Future<Output = Result<(), SinkError>> + Send;
}

/// The settings of a sink, able to open it: what the engine is configured with.
pub trait SinkConnector: Clone + fmt::Debug + Send + Sync + 'static {
    /// The sink it opens.
    type Sink: Sink;

    /// Opens the sink. `metrics` are the counters the sink keeps (the engine's
    /// status board reads them); `cancel` stops work in progress.
    fn connect(
        &self,
        metrics: Arc<SinkMetrics>,
        cancel: CancellationToken,
    ) -> impl Future<Output = Result<Self::Sink, SinkError>> + Send;

    /// What the sink does with a source TRUNCATE; with [`TruncateMode::Fail`] the
    /// pipeline stops at the TRUNCATE before anything of its transaction is loaded.
    fn truncate_mode(&self) -> TruncateMode;
}
