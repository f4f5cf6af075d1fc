//! Sinks: where batches go. StarRocks (Stream Load) is the first.
//!
//! The [`Sink`] boundary speaks only of batches, schemas and acknowledgements; no
//! StarRocks type leaks through it. A sink acknowledges a batch only when every
//! table of it is durably applied; only then does the engine write the checkpoint
//! and confirm the slot (design rule 1).

pub mod catalog;
pub mod curl_loader;
pub mod encode;
pub mod fit;
pub mod label;
pub mod response;
pub mod starrocks;

use std::future::Future;
use std::sync::Arc;

use crate::pipeline::batch::Batch;
use crate::pipeline::schema_cache::TableSchema;

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

/// Sink failures, split by what the engine should do.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// Retrying later may succeed (the sink already retried what it could).
    #[error("{0}")]
    Transient(String),
    /// Retrying cannot help until someone changes data or configuration.
    #[error("{0}")]
    Definite(String),
    /// The engine asked the sink to stop.
    #[error("cancelled")]
    Cancelled,
}

impl SinkError {
    /// True when the engine may retry the batch after a back-off.
    pub fn is_transient(&self) -> bool {
        matches!(self, SinkError::Transient(_))
    }
}

/// A destination for batches.
pub trait Sink: Send + Sync {
    /// Applies every table of `batch`; returns only when all of it is durable.
    /// Replays of a batch (same rows, same LSNs) must be harmless.
    fn push_batch(
        &self,
        batch: Arc<Batch>,
    ) -> impl Future<Output = Result<SinkAck, SinkError>> + Send;

    /// Makes the sink table ready for rows of `schema` (e.g. adds new columns);
    /// called before the first row of a new schema is loaded.
    fn apply_schema(
        &self,
        schema: &Arc<TableSchema>,
    ) -> impl Future<Output = Result<(), SinkError>> + Send;
}
