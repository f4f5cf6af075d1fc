//! The worker loop of `dbmazz run`: it starts one engine per configured job,
//! registers each in the pipeline registry the control plane reads (the CLI serves
//! it, from before the first engine until after the last one ended), and on
//! SIGTERM/SIGINT drains every pipeline (stop reading, load, checkpoint, confirm)
//! within `DBMAZZ_SHUTDOWN_TIMEOUT_MS`, after which whatever is still running is
//! aborted (nothing unconfirmed is lost: it is replayed on the next start). A second
//! signal aborts at once.
//!
//! With `DBMAZZ_LEASE_BACKEND=postgres|redis` the worker is one of a fleet: it runs
//! only the jobs whose leases it holds ([`fleet`]); on SIGTERM it drains them and
//! releases their leases so other workers take over at once.
//!
//! Exit status: 0 when every pipeline stopped cleanly, 1 when any ended FAILED
//! (a permanent error an operator must look at). A setup problem that an operator
//! must fix does not end the process: the pipeline reports it (FAILED with the
//! reason) and re-checks periodically, so fixing the cause is enough.

pub mod fleet;
pub mod settings;
pub mod takeover;

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, LeaseBackend, Secret};
use crate::engine::status::SharedState;
use crate::engine::{self, PipelineHandle, Pipelines};
use crate::lease::{PgLease, RedisLease};

/// How the worker ended.
#[derive(Debug, PartialEq, Eq)]
pub struct RunSummary {
    /// Jobs that stopped cleanly.
    pub stopped: usize,
    /// Jobs that ended FAILED, with their messages.
    pub failed: Vec<(String, String)>,
}

/// Runs every job of `config` until a signal (or every job ends), registering each
/// pipeline in `pipelines` (which the control plane reads).
pub async fn run(config: &Config, pipelines: &Pipelines) -> RunSummary {
    match config.worker.lease.backend {
        LeaseBackend::None => run_all(config, pipelines).await,
        LeaseBackend::Postgres | LeaseBackend::Redis => run_fleet(config, pipelines).await,
    }
}

/// With a lease backend: the fleet loop.
async fn run_fleet(config: &Config, pipelines: &Pipelines) -> RunSummary {
    let lease = &config.worker.lease;
    let url = lease.url.as_ref().map(Secret::from);
    let fail = |msg: String| RunSummary {
        stopped: 0,
        failed: vec![("(lease backend)".into(), msg)],
    };
    let Some(url) = url else {
        return fail("DBMAZZ_LEASE_URL is required with a lease backend".into());
    };
    let stopping = CancellationToken::new();
    let shutdown = config.worker.shutdown_timeout;
    let signals = tokio::spawn(watch_signals(pipelines.clone(), shutdown, stopping.clone()));
    let summary = match lease.backend {
        LeaseBackend::Redis => {
            let pair = RedisLease::new(&url, lease.ttl)
                .and_then(|a| RedisLease::new(&url, lease.ttl).map(|b| (a, b)));
            match pair {
                Ok((a, b)) => fleet::run(config, a, b, pipelines.clone(), stopping).await,
                Err(e) => fail(e.to_string()),
            }
        }
        _ => {
            // Lease tables live beside the first job's checkpoints.
            let schema = config
                .jobs
                .first()
                .map_or("dbmazz", |j| j.checkpoint_schema.as_str());
            let a = PgLease::new(&url, schema, lease.ttl);
            let b = PgLease::new(&url, schema, lease.ttl);
            fleet::run(config, a, b, pipelines.clone(), stopping).await
        }
    };
    signals.abort();
    summary
}

/// Without a lease backend: every configured job, until a signal (or all end).
async fn run_all(config: &Config, pipelines: &Pipelines) -> RunSummary {
    let mut set = JoinSet::new();
    for job in &config.jobs {
        let settings = settings::engine_settings(job);
        let state = Arc::new(SharedState::new(
            &job.id,
            &job.slot_name,
            &job.publication_name,
        ));
        let handle = PipelineHandle::new(state);
        pipelines.insert(handle.clone());
        let id = job.id.clone();
        set.spawn(async move { (id, engine::run(settings, handle).await) });
    }
    tracing::info!(
        worker = %config.worker.worker_id,
        jobs = config.jobs.len(),
        "dbmazz running"
    );
    let shutdown = config.worker.shutdown_timeout;
    let signals = tokio::spawn(watch_signals(
        pipelines.clone(),
        shutdown,
        CancellationToken::new(),
    ));
    let mut summary = RunSummary {
        stopped: 0,
        failed: Vec::new(),
    };
    while let Some(done) = set.join_next().await {
        match done {
            Ok((_, Ok(()))) => summary.stopped += 1,
            Ok((id, Err(e))) => summary.failed.push((id, e.to_string())),
            Err(e) => summary
                .failed
                .push(("?".into(), format!("engine task failed: {e}"))),
        }
    }
    signals.abort();
    summary
}

/// First SIGTERM/SIGINT: cancel `stopping` (no new jobs), drain all, abort after
/// `timeout`. Second one: abort now.
async fn watch_signals(pipelines: Pipelines, timeout: Duration, stopping: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers; stop dbmazz with SIGKILL");
        return;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: draining"),
        _ = int.recv() => tracing::info!("SIGINT: draining"),
    }
    stopping.cancel();
    for p in pipelines.all() {
        p.drain.cancel();
    }
    tokio::select! {
        _ = tokio::time::sleep(timeout) => {
            tracing::warn!(timeout_ms = timeout.as_millis() as u64, "drain did not finish in time; aborting");
        }
        _ = term.recv() => tracing::warn!("second signal: aborting"),
        _ = int.recv() => tracing::warn!("second signal: aborting"),
    }
    for p in pipelines.all() {
        p.abort.cancel();
    }
}
