//! The status board of one pipeline ([`SharedState`]): what a running pipeline
//! publishes for whoever watches it (the control plane, progress logs, tests).
//!
//! ```text
//! Batcher ──▶ PipelineMetrics ─┐
//! Sink    ──▶ SinkMetrics ─────┼─▶ SharedState (stage, LSNs, lease, last error) ◀── reads: grpc
//! engine  ──▶ stage, checkpoint/confirmed LSNs, lease ─┘
//! ```
//!
//! The pipeline and the sink own their counters ([`PipelineMetrics`],
//! [`SinkMetrics`]); the board holds them and reads them, so neither stage knows
//! about the board, and the control plane only reads the engine. Everything on the
//! hot path is an atomic (relaxed ordering is enough: these are monitoring figures,
//! not synchronisation). Rarely changing text (the last error, the lease holder)
//! sits behind a mutex that is never held across an await point.

use std::sync::atomic::{AtomicI64, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use crate::error::{LastError, RecordedError};
use crate::lsn::AtomicLsn;
use crate::pipeline::metrics::PipelineMetrics;
use crate::sink::metrics::SinkMetrics;

/// Lifecycle stage of one pipeline.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Stage {
    /// Created, nothing done yet.
    Init = 0,
    /// Checking and preparing PostgreSQL and StarRocks.
    Setup = 1,
    /// Streaming changes.
    Cdc = 2,
    /// Paused by an operator: no reading, no loading; the slot connection stays up.
    Paused = 3,
    /// Flushing what was read, then stopping.
    Draining = 4,
    /// Stopped cleanly.
    Stopped = 5,
    /// Stopped by an error that needs an operator.
    Failed = 6,
}

impl Stage {
    fn from_u8(v: u8) -> Stage {
        match v {
            1 => Stage::Setup,
            2 => Stage::Cdc,
            3 => Stage::Paused,
            4 => Stage::Draining,
            5 => Stage::Stopped,
            6 => Stage::Failed,
            _ => Stage::Init,
        }
    }

    /// Upper-case name as shown in status output.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Init => "INIT",
            Stage::Setup => "SETUP",
            Stage::Cdc => "CDC",
            Stage::Paused => "PAUSED",
            Stage::Draining => "DRAINING",
            Stage::Stopped => "STOPPED",
            Stage::Failed => "FAILED",
        }
    }
}

/// Live state of one pipeline.
#[derive(Debug)]
pub struct SharedState {
    /// Job id.
    pub job_id: String,
    /// Replication slot.
    pub slot: String,
    /// Publication.
    pub publication: String,
    started: Instant,
    stage: AtomicU8,
    /// The batcher's counters (events, transactions, received and server LSNs).
    pub pipeline: Arc<PipelineMetrics>,
    /// The sink's counters (loads, rows, per-table counts, retry errors).
    pub sink: Arc<SinkMetrics>,
    /// End LSN of the last transaction acknowledged by the sink.
    pub flushed_lsn: AtomicLsn,
    /// LSN recorded in `dbmazz_checkpoints`.
    pub checkpoint_lsn: AtomicLsn,
    /// Flush LSN last reported to the server.
    pub confirmed_lsn: AtomicLsn,
    /// Commit time (Unix µs) of the last acknowledged transaction.
    pub last_commit_unix_us: AtomicI64,
    /// Unix µs when the last batch was acknowledged.
    pub last_ack_unix_us: AtomicI64,
    /// XLogData payload bytes received.
    pub bytes: AtomicU64,
    /// Batches loaded and checkpointed.
    pub batches: AtomicU64,
    /// Lease epoch the pipeline runs under (0 without leases).
    pub lease_epoch: AtomicI64,
    /// Lease expiry by the lease backend's clock, Unix ms (0 without leases).
    pub lease_expires_unix_ms: AtomicI64,
    lease_valid_until: Mutex<Option<Instant>>,
    last_error: LastError,
    holder: Mutex<Option<String>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding one of these small locks cannot leave the data half
    // written in a harmful way (plain counters and strings), so recover the guard.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl SharedState {
    /// New state in stage INIT.
    pub fn new(job_id: &str, slot: &str, publication: &str) -> Self {
        SharedState {
            job_id: job_id.to_owned(),
            slot: slot.to_owned(),
            publication: publication.to_owned(),
            started: Instant::now(),
            stage: AtomicU8::new(Stage::Init as u8),
            pipeline: Arc::default(),
            sink: Arc::default(),
            flushed_lsn: AtomicLsn::new(),
            checkpoint_lsn: AtomicLsn::new(),
            confirmed_lsn: AtomicLsn::new(),
            last_commit_unix_us: AtomicI64::new(0),
            last_ack_unix_us: AtomicI64::new(0),
            bytes: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            lease_epoch: AtomicI64::new(0),
            lease_expires_unix_ms: AtomicI64::new(0),
            lease_valid_until: Mutex::new(None),
            last_error: LastError::default(),
            holder: Mutex::new(None),
        }
    }

    /// Current stage.
    pub fn stage(&self) -> Stage {
        Stage::from_u8(self.stage.load(Ordering::Relaxed))
    }

    /// Moves to `stage`.
    pub fn set_stage(&self, stage: Stage) {
        let old = Stage::from_u8(self.stage.swap(stage as u8, Ordering::Relaxed));
        if old != stage {
            tracing::info!(job = %self.job_id, from = old.as_str(), to = stage.as_str(), "stage");
        }
    }

    /// Seconds since the state was created.
    pub fn uptime(&self) -> std::time::Duration {
        self.started.elapsed()
    }

    /// Records an error (shown in status until cleared).
    pub fn record_error(&self, message: impl Into<String>) {
        self.last_error.record(message);
    }

    /// Forgets the last error, the engine's and the sink's (after recovery).
    pub fn clear_error(&self) {
        self.last_error.clear();
        self.sink.last_retry.clear();
    }

    /// The last recorded error: the engine's or the sink's, whichever is newer.
    pub fn last_error(&self) -> Option<RecordedError> {
        self.last_error.newest(&self.sink.last_retry)
    }

    /// Sets the lease holder shown in status.
    pub fn set_holder(&self, holder: Option<String>) {
        *lock(&self.holder) = holder;
    }

    /// The lease holder shown in status: `None` without a lease, and also once this
    /// worker's own clock says the lease is overdue (a worker that was frozen never
    /// claims a lease it may have lost).
    pub fn holder(&self) -> Option<String> {
        if lock(&self.lease_valid_until).is_some_and(|t| Instant::now() >= t) {
            return None;
        }
        lock(&self.holder).clone()
    }

    /// Records the lease the pipeline runs under: holder, epoch, expiry by the
    /// backend's clock, and the instant (this worker's monotonic clock) after which
    /// it must not act as the holder any more.
    pub fn set_lease(&self, holder: &str, epoch: i64, expires_unix_ms: i64, valid_until: Instant) {
        *lock(&self.holder) = Some(holder.to_owned());
        self.lease_epoch.store(epoch, Ordering::Relaxed);
        self.lease_expires_unix_ms
            .store(expires_unix_ms, Ordering::Relaxed);
        *lock(&self.lease_valid_until) = Some(valid_until);
    }

    /// Forgets the lease (released or lost); the epoch stays for reference.
    pub fn clear_lease(&self) {
        *lock(&self.holder) = None;
        self.lease_expires_unix_ms.store(0, Ordering::Relaxed);
        *lock(&self.lease_valid_until) = None;
    }

    /// Bytes of WAL between the server position and the confirmed LSN.
    pub fn lag_bytes(&self) -> u64 {
        let server = self.pipeline.server_wal_lsn.get().0;
        let confirmed = self.confirmed_lsn.get().0;
        server.saturating_sub(confirmed)
    }

    /// Milliseconds between now and the commit time of the last acknowledged
    /// transaction (0 when nothing was acknowledged yet).
    pub fn lag_ms(&self) -> u64 {
        let commit = self.last_commit_unix_us.load(Ordering::Relaxed);
        if commit <= 0 {
            return 0;
        }
        let now = unix_micros();
        u64::try_from((now - commit).max(0) / 1000).unwrap_or(0)
    }
}

/// Microseconds since the Unix epoch, now.
pub fn unix_micros() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage_round_trips() {
        let s = SharedState::new("j", "s", "p");
        for st in [
            Stage::Init,
            Stage::Setup,
            Stage::Cdc,
            Stage::Paused,
            Stage::Draining,
            Stage::Stopped,
            Stage::Failed,
        ] {
            s.set_stage(st);
            assert_eq!(s.stage(), st);
        }
    }

    #[test]
    fn the_newer_of_engine_and_sink_errors_is_shown_and_both_clear() {
        let s = SharedState::new("j", "s", "p");
        s.record_error("setup failed");
        assert_eq!(
            s.last_error().map(|e| e.message),
            Some("setup failed".into())
        );
        std::thread::sleep(std::time::Duration::from_millis(2));
        s.sink.last_retry.record("Stream Load retrying");
        assert_eq!(
            s.last_error().map(|e| e.message),
            Some("Stream Load retrying".into())
        );
        s.clear_error();
        assert_eq!(s.last_error(), None);
    }
}
