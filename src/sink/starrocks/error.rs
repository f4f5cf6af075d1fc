//! Errors of the StarRocks sink. Each says which [`ErrorKind`] it is where it is
//! made; at the sink boundary it becomes a [`SinkError`] of that kind.

use super::catalog::CatalogError;
use super::encode::EncodeError;
use super::setup::SinkSetupError;
use crate::error::ErrorKind;
use crate::sink::SinkError;

/// Why the StarRocks sink could not prepare or load.
#[derive(Debug, thiserror::Error)]
pub enum StarRocksError {
    /// The MySQL-protocol side failed (connection or statement).
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// Setup found the sink unreachable or unusable.
    #[error(transparent)]
    Setup(#[from] SinkSetupError),
    /// A Stream Load failed for good (the message names the fix where it is known).
    #[error("Stream Load into {database}.{table} (label {label}) failed: {detail}")]
    Load {
        /// Database.
        database: String,
        /// Table.
        table: String,
        /// Label of the load.
        label: String,
        /// Why.
        detail: String,
    },
    /// A value cannot be written for its sink column.
    #[error(transparent)]
    Encode(#[from] Box<EncodeError>),
    /// The batch names a table setup did not prepare.
    #[error("sink table '{0}' was not prepared by setup")]
    NotPrepared(String),
    /// The table vanished while columns were added.
    #[error("sink table '{0}' disappeared")]
    Disappeared(String),
    /// A TRUNCATE arrived with `DBMAZZ_TRUNCATE_MODE=fail`.
    #[error("TRUNCATE of {0} reached the sink with DBMAZZ_TRUNCATE_MODE=fail")]
    TruncateRejected(String),
    /// The encoder task ended abnormally.
    #[error("encoder task failed: {0}")]
    Task(String),
    /// A fault point fired (test builds only).
    #[error("{0}")]
    FaultInjected(String),
}

impl StarRocksError {
    /// What the engine should do about it: connection-level catalog failures and an
    /// unreachable server at setup are transient, setup findings need an operator,
    /// everything else is definite.
    pub fn kind(&self) -> ErrorKind {
        match self {
            StarRocksError::Catalog(e) => e.kind(),
            StarRocksError::Setup(e) => e.kind(),
            _ => ErrorKind::Definite,
        }
    }
}

impl From<StarRocksError> for SinkError {
    fn from(e: StarRocksError) -> Self {
        SinkError::new(e.kind(), e)
    }
}
