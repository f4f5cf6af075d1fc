//! dbmazz: change data capture from PostgreSQL into StarRocks.
//!
//! ```text
//! PostgreSQL WAL ─▶ source (replication + pgoutput parser) ─▶ pipeline (batches on
//! commit boundaries) ─▶ sink (StarRocks Stream Load) ─▶ state_store (checkpoint) ─▶
//! replication confirm (standby status flush LSN)
//! ```
//!
//! See `docs/architecture.md` for the full picture and the correctness rules.

pub mod alloc;
pub mod cli;
pub mod config;
pub mod engine;
pub mod failpoint;
pub mod grpc;
pub mod lease;
pub mod lsn;
pub mod pipeline;
pub mod postgres;
pub mod runner;
pub mod sink;
pub mod source;
pub mod state_store;
pub mod telemetry;
