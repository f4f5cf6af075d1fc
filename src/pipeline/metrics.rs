//! The pipeline's own counters: what the batcher saw of the stream. The engine's
//! status board ([`crate::engine::status`]) reads them; nothing here knows about
//! the board or the control plane.

use std::sync::atomic::AtomicU64;

use crate::lsn::AtomicLsn;

/// Counters the batcher keeps (relaxed atomics: monitoring figures).
#[derive(Debug, Default)]
pub struct PipelineMetrics {
    /// pgoutput messages received.
    pub events: AtomicU64,
    /// Transactions received (committed, not skipped as replays).
    pub transactions: AtomicU64,
    /// Last LSN received from the server (end of the last commit).
    pub received_lsn: AtomicLsn,
    /// Server WAL position (keepalive walEnd, or IDENTIFY_SYSTEM at start).
    pub server_wal_lsn: AtomicLsn,
}
