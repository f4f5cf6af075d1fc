//! Per-pipeline leases: which worker of a fleet runs which job.
//!
//! ```text
//!   runner ──try_acquire(job, floor)──▶ backend (PostgreSQL table or Redis keys)
//!     │  ◀── LeaseGuard{epoch} ─────────┘          clock = the backend's own clock
//!     ├─ claim the checkpoint row with the epoch (state_store::claim, fenced)
//!     ├─ terminate the slot's previous walsender, wait until the slot is free
//!     ├─ engine::run(epoch) ── every checkpoint write carries the epoch ──▶ fenced
//!     └─ keeper: renew every TTL/3; the [`Fence`] deadline moves only on success
//! ```
//!
//! Invariants kept here and in the runner:
//! - **Mutual exclusion**: acquire, renew and release are single conditional
//!   statements (PostgreSQL) or Lua scripts (Redis) evaluated against the backend's
//!   clock, so worker clocks never decide who holds a lease.
//! - **Epochs only grow**: every acquisition gets a larger epoch than any before it
//!   for the job. PostgreSQL keeps it in the lease row (released leases keep their
//!   row); Redis keeps a counter, and because a Redis restart without persistence
//!   loses it, acquirers pass a `floor` (the epoch found in the checkpoint row) and
//!   the epoch is `max(counter, floor) + 1`.
//! - **Self-fencing**: a holder measures its lease from its own monotonic clock,
//!   starting when it *sent* the last successful renewal (the backend computed the
//!   expiry later than that), and stops its pipeline once [`Fence::deadline`]
//!   (`sent + TTL × 3/4`) passes without a new success. The remaining quarter of the
//!   TTL covers stopping and clock-rate differences, so the pipeline is stopped
//!   before the backend could grant the lease to anyone else.
//! - Even a holder that misses all of the above (a frozen process, `SIGSTOP`) can do
//!   no harm: checkpoint writes are fenced by the epoch in `dbmazz_checkpoints`, the
//!   slot is confirmed only after a fenced checkpoint, the new holder terminates its
//!   walsender, and late Stream Loads lose against `merge_condition`.

pub mod postgres;
pub mod redis;

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::error::ErrorKind;

pub use self::postgres::PgLease;
pub use self::redis::RedisLease;

/// Errors of a lease backend.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// The backend could not be reached or refused the statement; retrying may help.
    #[error("lease backend ({backend}): {detail}")]
    Unavailable {
        /// `postgres` or `redis`.
        backend: &'static str,
        /// What went wrong.
        detail: String,
    },
    /// The lease is no longer ours (expired, released or taken by another worker).
    #[error("lease of job '{job}' (epoch {epoch}) is lost: {reason}")]
    Lost {
        /// Job id.
        job: String,
        /// Epoch that was held.
        epoch: i64,
        /// Why.
        reason: String,
    },
    /// The backend holds something dbmazz did not write (manual edit or corruption).
    #[error("lease backend ({backend}): unexpected data for job '{job}': {detail}")]
    Corrupt {
        /// `postgres` or `redis`.
        backend: &'static str,
        /// Job id.
        job: String,
        /// What is wrong.
        detail: String,
    },
}

impl LeaseError {
    /// Transient when the backend is unreachable, fenced when the lease is gone,
    /// definite when the backend holds data dbmazz did not write.
    pub fn kind(&self) -> ErrorKind {
        match self {
            LeaseError::Unavailable { .. } => ErrorKind::Transient,
            LeaseError::Lost { .. } => ErrorKind::Fenced,
            LeaseError::Corrupt { .. } => ErrorKind::Definite,
        }
    }
}

/// A lease this worker holds. The epoch is the fencing token of everything the
/// pipeline writes while holding it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseGuard {
    /// Job id.
    pub job: String,
    /// Worker id of the holder.
    pub holder: String,
    /// Random token of this acquisition (a worker re-acquiring gets a new one).
    pub token: String,
    /// Fencing epoch; larger than every earlier epoch of the job.
    pub epoch: i64,
    /// Expiry by the backend's clock, Unix milliseconds.
    pub expires_unix_ms: i64,
}

/// Who holds what, as one worker sees the fleet (for spreading jobs).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FleetView {
    /// Workers whose presence has not expired (including this one once it has sent a
    /// heartbeat).
    pub live_workers: Vec<String>,
    /// Live leases among the jobs asked about: `(job, holder)`.
    pub holders: Vec<(String, String)>,
}

impl FleetView {
    /// Number of live leases `worker` holds.
    pub fn held_by(&self, worker: &str) -> usize {
        self.holders.iter().filter(|(_, h)| h == worker).count()
    }

    /// The holder of `job`, if its lease is live.
    pub fn holder_of(&self, job: &str) -> Option<&str> {
        self.holders
            .iter()
            .find(|(j, _)| j == job)
            .map(|(_, h)| h.as_str())
    }

    /// The spreading rule: a worker holding `held` jobs may take another only while
    /// no other live worker holds fewer. Workers with nothing take free jobs first;
    /// equal workers race, and the lease decides.
    pub fn may_take_more(&self, me: &str, held: usize) -> bool {
        self.live_workers
            .iter()
            .filter(|w| w.as_str() != me)
            .all(|w| self.held_by(w) >= held)
    }
}

/// A lease backend. Every operation is one atomic step on the backend.
pub trait Lease: Send + Sync + 'static {
    /// Takes the lease of `job` for `holder` when nobody holds it. The epoch is
    /// larger than every earlier one and than `floor`.
    fn try_acquire(
        &self,
        job: &str,
        holder: &str,
        floor: i64,
    ) -> impl Future<Output = Result<Option<LeaseGuard>, LeaseError>> + Send;

    /// Extends the lease by one TTL from now (the backend's now). Fails with
    /// [`LeaseError::Lost`] when it is not held by `guard` any more.
    fn renew(
        &self,
        guard: &LeaseGuard,
    ) -> impl Future<Output = Result<LeaseGuard, LeaseError>> + Send;

    /// Gives the lease up (only if `guard` still holds it), keeping the epoch.
    fn release(&self, guard: &LeaseGuard) -> impl Future<Output = Result<(), LeaseError>> + Send;

    /// Announces that `worker` is alive for one TTL (used by the spreading rule).
    fn heartbeat(&self, worker: &str) -> impl Future<Output = Result<(), LeaseError>> + Send;

    /// Removes `worker`'s presence (a clean shutdown).
    fn leave(&self, worker: &str) -> impl Future<Output = Result<(), LeaseError>> + Send;

    /// Live workers and the live leases of `jobs`.
    fn view(&self, jobs: &[String]) -> impl Future<Output = Result<FleetView, LeaseError>> + Send;

    /// The time-to-live.
    fn ttl(&self) -> Duration;
}

/// A random token for one acquisition.
pub fn new_token() -> String {
    format!(
        "{:016x}{:016x}",
        rand::random::<u64>(),
        rand::random::<u64>()
    )
}

/// The self-fencing clock of one held lease, shared by the keeper that renews it
/// and the pipeline that checks it before every checkpoint write.
#[derive(Debug)]
pub struct Fence {
    deadline: Mutex<Instant>,
    revoked: AtomicBool,
    ttl: Duration,
}

impl Fence {
    /// The part of the TTL a holder may use, measured from sending a renewal that
    /// then succeeded.
    pub fn usable(ttl: Duration) -> Duration {
        ttl * 3 / 4
    }

    /// A fence for a lease acquired by a request sent at `sent`.
    pub fn new(ttl: Duration, sent: Instant) -> Self {
        Fence {
            deadline: Mutex::new(sent + Self::usable(ttl)),
            revoked: AtomicBool::new(false),
            ttl,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Instant> {
        self.deadline.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A renewal sent at `sent` succeeded.
    pub fn extend(&self, sent: Instant) {
        let mut d = self.lock();
        let new = sent + Self::usable(self.ttl);
        if new > *d {
            *d = new;
        }
    }

    /// The instant after which this worker must not act as the holder.
    pub fn deadline(&self) -> Instant {
        *self.lock()
    }

    /// The lease is gone for good (lost, released or overdue).
    pub fn revoke(&self) {
        self.revoked.store(true, Ordering::SeqCst);
    }

    /// True while this worker may act as the holder: not revoked and not overdue.
    pub fn is_valid(&self) -> bool {
        !self.revoked.load(Ordering::SeqCst) && Instant::now() < self.deadline()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(workers: &[&str], holders: &[(&str, &str)]) -> FleetView {
        FleetView {
            live_workers: workers.iter().map(|w| (*w).to_owned()).collect(),
            holders: holders
                .iter()
                .map(|(j, h)| ((*j).to_owned(), (*h).to_owned()))
                .collect(),
        }
    }

    #[test]
    fn idle_workers_take_jobs_first() {
        let v = view(&["a", "b", "c"], &[("j1", "a")]);
        assert!(!v.may_take_more("a", 1), "b and c hold nothing");
        assert!(v.may_take_more("b", 0));
        let v = view(&["a", "b", "c"], &[("j1", "a"), ("j2", "b"), ("j3", "c")]);
        assert!(v.may_take_more("a", 1), "everyone holds one");
        let v = view(&["a"], &[("j1", "a"), ("j2", "a")]);
        assert!(v.may_take_more("a", 2), "alone");
        // A worker the view does not list yet (no heartbeat) counts as not there.
        let v = view(&[], &[]);
        assert!(v.may_take_more("a", 0));
    }

    #[test]
    fn fence_expires_and_extends() {
        let ttl = Duration::from_millis(400);
        let start = Instant::now();
        let f = Fence::new(ttl, start);
        assert!(f.is_valid());
        assert_eq!(f.deadline(), start + Duration::from_millis(300));
        f.extend(start + Duration::from_millis(100));
        assert_eq!(f.deadline(), start + Duration::from_millis(400));
        // An older renewal never moves the deadline back.
        f.extend(start);
        assert_eq!(f.deadline(), start + Duration::from_millis(400));
        f.revoke();
        assert!(!f.is_valid());
        let old = Fence::new(ttl, start - Duration::from_secs(1));
        assert!(!old.is_valid(), "overdue");
    }
}
