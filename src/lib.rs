//! dbmazz: change data capture from PostgreSQL into StarRocks.
//!
//! ```text
//! PostgreSQL WAL ─▶ source (replication + pgoutput parser) ─▶ pipeline (batches on
//! commit boundaries) ─▶ sink (StarRocks Stream Load) ─▶ state_store (checkpoint) ─▶
//! source confirm (standby status flush LSN)
//! ```
//!
//! Layers, top to bottom: `cli` → `runner` → `engine` → the data path (`source`,
//! `pipeline`, `sink`, `state_store`, `lease`) → the bottom (`postgres`, `lsn`,
//! `error`, `clock`, `config`, `failpoint`, `alloc`); `grpc` and `telemetry` sit
//! beside the corridor and only `cli` imports them. See `docs/architecture.md` for the
//! layout, the rules (checked by a test) and the correctness rules.

pub mod alloc;
pub mod cli;
pub mod clock;
pub mod config;
pub mod engine;
pub mod error;
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
