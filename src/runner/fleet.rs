//! The fleet loop of `dbmazz run` with a lease backend: every worker of a fleet runs
//! the same catalog of jobs and the leases decide which worker runs which job.
//!
//! ```text
//! every poll (TTL/10, 100 ms … 1 s):
//!   heartbeat (every TTL/3) ─ view: live workers + live leases of the catalog
//!   if held < DBMAZZ_MAX_JOBS_PER_WORKER and no live worker holds fewer jobs:
//!       try_acquire(one free job) ─▶ job task: claim checkpoint row ─▶ free the slot
//!                                    ─▶ engine::run(epoch) ; keeper renews every TTL/3
//! a job task ends ─▶ lease released (the epoch stays) ─▶ job free for any worker
//! SIGTERM ─▶ stop acquiring ─▶ drain every job ─▶ release its lease ─▶ leave
//! ```
//!
//! Spreading rule: a worker takes another job only while no live worker it can see
//! (presence heartbeats in the lease backend) holds fewer jobs than it does
//! ([`crate::lease::FleetView::may_take_more`]). Idle workers therefore take free jobs first, and
//! three workers with four jobs end up with 2/1/1; equal workers race and the lease
//! decides. The rule is advisory: the lease alone guarantees one holder per job.
//!
//! A job whose pipeline FAILED (an error an operator must look at) is released and not
//! taken again by this worker for [`FAILED_RETRY_AFTER`], so another worker (or this
//! one, later) retries it instead of one worker spinning on it.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::{settings, takeover, RunSummary};
use crate::config::{Config, JobConfig};
use crate::engine::status::SharedState;
use crate::engine::{self, PipelineHandle, Pipelines};
use crate::error::ErrorKind;
use crate::lease::{Fence, Lease, LeaseError, LeaseGuard};
use crate::sink::starrocks::StarRocksSettings;
use crate::state_store::{StateStore, StateStoreError};

/// How long a job whose pipeline failed is left to other workers.
pub const FAILED_RETRY_AFTER: Duration = Duration::from_secs(60);

/// How long the takeover waits for a previous walsender to go away.
const SLOT_WAIT: Duration = Duration::from_secs(10);

/// How a job task ended.
#[derive(Debug)]
enum JobEnd {
    /// Drained or stopped (including: the lease was lost and the pipeline aborted).
    Stopped,
    /// The lease was lost or fenced; nothing was written after that.
    Fenced(String),
    /// The checkpoint row belongs to a newer epoch than ours: try again above it.
    Stale(i64),
    /// Could not start (checkpoint store unreachable); try again soon.
    Retry(String),
    /// The pipeline FAILED.
    Failed(String),
}

struct Held {
    guard: LeaseGuard,
    handle: PipelineHandle,
    fence: Arc<Fence>,
    keeper_stop: CancellationToken,
}

/// The fleet loop. `lease` serves acquisitions and the fleet view, `keeper` the
/// renewals (two connections, so a slow view never delays a renewal). Returns after
/// `stopping` is cancelled and every held job has drained (or was aborted by the
/// signal watcher) and its lease was released.
pub async fn run<L: Lease>(
    config: &Config,
    lease: L,
    keeper: L,
    pipelines: Pipelines,
    stopping: CancellationToken,
) -> RunSummary {
    let (lease, keeper) = (Arc::new(lease), Arc::new(keeper));
    let me = config.worker.worker_id.clone();
    let ttl = lease.ttl();
    let poll = (ttl / 10).clamp(Duration::from_millis(100), Duration::from_secs(1));
    let max = config
        .worker
        .max_jobs_per_worker
        .map_or(usize::MAX, |n| n.get());
    let catalog: BTreeMap<String, JobConfig> = config
        .jobs
        .iter()
        .map(|j| (j.id.clone(), j.clone()))
        .collect();
    let ids: Vec<String> = catalog.keys().cloned().collect();
    let mut held: HashMap<String, Held> = HashMap::new();
    let mut tasks: JoinSet<(String, JobEnd)> = JoinSet::new();
    let mut floors: HashMap<String, i64> = HashMap::new();
    let mut not_before: HashMap<String, Instant> = HashMap::new();
    let mut summary = RunSummary {
        stopped: 0,
        failed: Vec::new(),
    };
    let mut last_heartbeat: Option<Instant> = None;
    tracing::info!(worker = %me, jobs = ids.len(), ttl_ms = ttl.as_millis() as u64, "fleet worker waiting for leases");

    loop {
        if stopping.is_cancelled() {
            break;
        }
        if last_heartbeat.is_none_or(|t| t.elapsed() >= ttl / 3) {
            match lease.heartbeat(&me).await {
                Ok(()) => last_heartbeat = Some(Instant::now()),
                Err(e) => tracing::warn!(error = %e, "lease backend: heartbeat failed"),
            }
        }
        let mut acquired = false;
        if held.len() < max {
            match acquire_one(&lease, &me, &ids, &held, &floors, &not_before).await {
                Ok(Some((guard, sent))) => {
                    acquired = true;
                    let job = guard.job.clone();
                    match catalog.get(&job) {
                        Some(cfg) => {
                            let h = start_job(cfg, guard, sent, &keeper, &pipelines, &mut tasks);
                            held.insert(job, h);
                        }
                        None => {
                            let _ = lease.release(&guard).await;
                        }
                    }
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "lease backend: cannot acquire"),
            }
        }
        if acquired {
            continue;
        }
        tokio::select! {
            biased;
            _ = stopping.cancelled() => break,
            Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                finish(done, &lease, &mut held, &pipelines, &mut floors, &mut not_before, &mut summary).await;
            }
            _ = tokio::time::sleep(poll) => {}
        }
    }

    // Drain: stop reading, load, checkpoint, confirm; then release each lease so
    // another worker takes over at once instead of after the TTL.
    for h in held.values() {
        h.handle.drain.cancel();
    }
    while let Some(done) = tasks.join_next().await {
        finish(
            done,
            &lease,
            &mut held,
            &pipelines,
            &mut floors,
            &mut not_before,
            &mut summary,
        )
        .await;
    }
    if let Err(e) = lease.leave(&me).await {
        tracing::warn!(error = %e, "lease backend: could not withdraw the worker's presence");
    }
    summary
}

/// Tries one free job this worker may take. Returns the guard and when the request
/// was sent (the start of the self-fencing clock).
async fn acquire_one<L: Lease>(
    lease: &Arc<L>,
    me: &str,
    ids: &[String],
    held: &HashMap<String, Held>,
    floors: &HashMap<String, i64>,
    not_before: &HashMap<String, Instant>,
) -> Result<Option<(LeaseGuard, Instant)>, LeaseError> {
    let view = lease.view(ids).await?;
    if !view.may_take_more(me, held.len()) {
        return Ok(None);
    }
    let now = Instant::now();
    let mut free: Vec<&String> = ids
        .iter()
        .filter(|j| !held.contains_key(*j))
        .filter(|j| view.holder_of(j).is_none())
        .filter(|j| not_before.get(*j).is_none_or(|t| now >= *t))
        .collect();
    if free.is_empty() {
        return Ok(None);
    }
    // Workers racing for the same free jobs start at different ones.
    let job = free.swap_remove(rand::random_range(0..free.len()));
    let sent = Instant::now();
    let guard = lease
        .try_acquire(job, me, floors.get(job).copied().unwrap_or(0))
        .await?;
    Ok(guard.map(|g| (g, sent)))
}

fn start_job<L: Lease>(
    cfg: &JobConfig,
    guard: LeaseGuard,
    sent: Instant,
    keeper: &Arc<L>,
    pipelines: &Pipelines,
    tasks: &mut JoinSet<(String, JobEnd)>,
) -> Held {
    let ttl = keeper.ttl();
    let fence = Arc::new(Fence::new(ttl, sent));
    let state = Arc::new(SharedState::new(
        &cfg.id,
        &cfg.slot_name,
        &cfg.publication_name,
    ));
    state.set_lease(
        &guard.holder,
        guard.epoch,
        guard.expires_unix_ms,
        fence.deadline(),
    );
    let handle = PipelineHandle::new(state).with_fence(fence.clone());
    pipelines.insert(handle.clone());
    tracing::info!(job = %cfg.id, epoch = guard.epoch, "lease acquired");
    let keeper_stop = CancellationToken::new();
    tokio::spawn(keep(
        keeper.clone(),
        guard.clone(),
        fence.clone(),
        handle.clone(),
        keeper_stop.clone(),
    ));
    let mut settings = settings::engine_settings(cfg);
    settings.epoch = guard.epoch;
    let job = cfg.id.clone();
    let h = handle.clone();
    tasks.spawn(async move { (job, run_job(settings, h).await) });
    Held {
        guard,
        handle,
        fence,
        keeper_stop,
    }
}

/// Claim the checkpoint, free the slot, run the engine.
async fn run_job(
    settings: engine::EngineSettings<StarRocksSettings>,
    handle: PipelineHandle,
) -> JobEnd {
    let job = settings.job_id.clone();
    let store =
        match StateStore::connect(&settings.checkpoint_url, &settings.checkpoint_schema).await {
            Ok(s) => s,
            Err(e) => return JobEnd::Retry(e.to_string()),
        };
    match store.claim(&job, settings.epoch).await {
        Ok(previous) => {
            tracing::info!(job = %job, epoch = settings.epoch, previous_epoch = ?previous, "checkpoint claimed")
        }
        Err(StateStoreError::Fenced { current_epoch, .. }) => return JobEnd::Stale(current_epoch),
        Err(e) => return JobEnd::Retry(e.to_string()),
    }
    drop(store);
    if !handle.lease_valid() {
        return JobEnd::Fenced("lease ran out before the pipeline started".into());
    }
    match takeover::free_slot(
        &settings.source_url,
        &settings.slot,
        SLOT_WAIT,
        &handle.abort,
    )
    .await
    {
        Ok(r) if !r.slot_free => {
            tracing::warn!(job = %job, slot = %settings.slot, "slot still in use after the takeover wait; setup retries")
        }
        Ok(_) => {}
        Err(e) => {
            tracing::warn!(job = %job, error = %e, "takeover of the slot failed; setup retries")
        }
    }
    if !handle.lease_valid() {
        return JobEnd::Fenced("lease ran out before the pipeline started".into());
    }
    match engine::run(settings, handle.clone()).await {
        Ok(()) if !handle.lease_valid() => JobEnd::Fenced("lease lost".into()),
        Ok(()) => JobEnd::Stopped,
        Err(e) if e.kind() == ErrorKind::Fenced => JobEnd::Fenced(e.to_string()),
        Err(e) => JobEnd::Failed(e.to_string()),
    }
}

/// A job task ended: stop renewing, release the lease, forget the pipeline.
async fn finish<L: Lease>(
    done: Result<(String, JobEnd), tokio::task::JoinError>,
    lease: &Arc<L>,
    held: &mut HashMap<String, Held>,
    pipelines: &Pipelines,
    floors: &mut HashMap<String, i64>,
    not_before: &mut HashMap<String, Instant>,
    summary: &mut RunSummary,
) {
    let (job, end) = match done {
        Ok(x) => x,
        Err(e) => {
            tracing::error!(error = %e, "job task failed");
            summary
                .failed
                .push(("?".into(), format!("job task failed: {e}")));
            return;
        }
    };
    let Some(h) = held.remove(&job) else { return };
    h.keeper_stop.cancel();
    let was_valid = h.fence.is_valid();
    h.fence.revoke();
    h.handle.state.clear_lease();
    pipelines.remove(&job);
    match &end {
        JobEnd::Stopped => {
            summary.stopped += 1;
            // Stopped by an operator (DrainAndStop/Stop) while the worker keeps
            // running: leave the job to the other workers for one TTL.
            not_before.insert(job.clone(), Instant::now() + lease.ttl());
        }
        JobEnd::Fenced(m) => {
            tracing::warn!(job = %job, epoch = h.guard.epoch, reason = %m, "lease lost; pipeline stopped")
        }
        JobEnd::Stale(current) => {
            tracing::info!(job = %job, epoch = h.guard.epoch, checkpoint_epoch = current, "a newer epoch owns the checkpoint; acquiring above it");
            floors.insert(job.clone(), *current);
        }
        JobEnd::Retry(m) => {
            tracing::warn!(job = %job, error = %m, "cannot start the job; releasing it");
            not_before.insert(job.clone(), Instant::now() + lease.ttl());
        }
        JobEnd::Failed(m) => {
            tracing::error!(job = %job, error = %m, "pipeline failed; releasing the job for {}s", FAILED_RETRY_AFTER.as_secs());
            summary.failed.push((job.clone(), m.clone()));
            not_before.insert(job.clone(), Instant::now() + FAILED_RETRY_AFTER);
        }
    }
    // Releasing a lease we no longer hold is a no-op on the backend (token check).
    match lease.release(&h.guard).await {
        Ok(()) if was_valid => {
            tracing::info!(job = %job, epoch = h.guard.epoch, "lease released")
        }
        Ok(()) => {}
        Err(e) => {
            tracing::warn!(job = %job, error = %e, "could not release the lease; it expires by itself")
        }
    }
}

/// Renews the lease every TTL/3 and stops the pipeline when the lease is lost or
/// overdue by this worker's monotonic clock (see [`Fence`]).
async fn keep<L: Lease>(
    lease: Arc<L>,
    mut guard: LeaseGuard,
    fence: Arc<Fence>,
    handle: PipelineHandle,
    stop: CancellationToken,
) {
    let every = lease.ttl() / 3;
    let retry = (every / 4).max(Duration::from_millis(50));
    let mut next = Instant::now() + every;
    loop {
        let deadline = fence.deadline();
        tokio::select! {
            biased;
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep_until(deadline.into()) => {
                if Instant::now() >= fence.deadline() {
                    lose(&fence, &handle, &guard, "renewal overdue (self-fencing)");
                    return;
                }
                continue;
            }
            _ = tokio::time::sleep_until(next.into()) => {}
        }
        let sent = Instant::now();
        let left = fence.deadline().saturating_duration_since(sent);
        match tokio::time::timeout(left, lease.renew(&guard)).await {
            Ok(Ok(g)) => {
                fence.extend(sent);
                guard = g;
                if fence.is_valid() {
                    handle.state.set_lease(
                        &guard.holder,
                        guard.epoch,
                        guard.expires_unix_ms,
                        fence.deadline(),
                    );
                }
                next = sent + every;
            }
            Ok(Err(LeaseError::Lost { reason, .. })) => {
                lose(&fence, &handle, &guard, &reason);
                return;
            }
            Ok(Err(e)) => {
                tracing::warn!(job = %guard.job, error = %e, "lease renewal failed; retrying");
                next = Instant::now() + retry;
            }
            Err(_) => next = Instant::now(),
        }
    }
}

fn lose(fence: &Fence, handle: &PipelineHandle, guard: &LeaseGuard, why: &str) {
    fence.revoke();
    handle.state.clear_lease();
    handle.abort.cancel();
    tracing::warn!(job = %guard.job, epoch = guard.epoch, reason = why, "lease lost; stopping the pipeline");
}
