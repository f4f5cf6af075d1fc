//! One attempt of the CDC stage: setup, then stream until drained, aborted or an
//! error ends it.
//!
//! ```text
//! SourceStream ──chunks──▶ Batcher (this task) ──Batch──▶ Loader task ──▶ sink.push_batch
//!                                │ keepalive while idle           │
//!                                └──────────Idle(walEnd)─────────▶│ store.commit (fenced)
//!                                                                 └▶ confirm(Checkpointed)
//! ```
//!
//! The channel to the loader holds one batch: while one batch loads, the next one
//! fills; when both are busy the batcher stops reading, the source channel fills,
//! and the replication connection stops reading its socket (backpressure reaches
//! PostgreSQL). Batches are loaded and checkpointed strictly in order, so at any
//! time at most one batch is in the sink without a checkpoint — which is what makes
//! replays after a crash small and harmless.
//!
//! The drain order is fixed: stop reading → hand on the open batch (whole
//! transactions only) → load → checkpoint → confirm → close the stream (its last
//! status update carries the final checkpoint).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{setup, EngineSettings, Outcome, PipelineHandle};
use crate::grpc::state::{SharedState, Stage};
use crate::lsn::Lsn;
use crate::pipeline::batch::Batch;
use crate::pipeline::schema_cache::SchemaCache;
use crate::pipeline::Batcher;
use crate::sink::starrocks::StarRocksSink;
use crate::sink::{Sink, SinkError};
use crate::source::message::PG_EPOCH_OFFSET_MICROS;
use crate::source::{ConfirmHandle, SourceConfig, SourceEvent, SourceStream};
use crate::state_store::{StateStore, StateStoreError};

enum LoaderMsg {
    Batch(Arc<Batch>),
    Idle(Lsn),
}

struct Loader {
    sink: Arc<StarRocksSink>,
    store: StateStore,
    confirm: ConfirmHandle,
    state: Arc<SharedState>,
    job: String,
    slot: String,
    epoch: i64,
    checkpoint: Lsn,
    abort: CancellationToken,
    handle: PipelineHandle,
}

/// Minimum time between two idle checkpoints (keepalive positions).
const IDLE_CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

impl Loader {
    async fn run(mut self, mut rx: mpsc::Receiver<LoaderMsg>) -> Outcome {
        while let Some(msg) = rx.recv().await {
            let result = match msg {
                LoaderMsg::Batch(b) => self.load(b).await,
                LoaderMsg::Idle(lsn) if lsn > self.checkpoint => self.checkpoint_at(lsn).await,
                LoaderMsg::Idle(_) => Ok(()),
            };
            if let Err(o) = result {
                return o;
            }
        }
        Outcome::Stopped
    }

    async fn load(&mut self, b: Arc<Batch>) -> Result<(), Outcome> {
        let started = Instant::now();
        let ack = match self.sink.push_batch(b.clone()).await {
            Ok(a) => a,
            Err(SinkError::Cancelled) => return Err(Outcome::Stopped),
            Err(e @ SinkError::Transient(_)) => return Err(Outcome::Transient(e.to_string())),
            Err(e @ SinkError::Definite(_)) => return Err(Outcome::Definite(e.to_string())),
        };
        SharedState::raise(&self.state.flushed_lsn, b.end_lsn);
        fail::fail_point!("loader::after_ack", |a| Err(Outcome::Definite(
            crate::failpoint::hit("loader::after_ack", a)
        )));
        self.checkpoint_at(b.end_lsn).await?;
        self.state.batches.fetch_add(1, Ordering::Relaxed);
        self.state.last_commit_unix_us.store(
            b.last_commit_time.saturating_add(PG_EPOCH_OFFSET_MICROS),
            Ordering::Relaxed,
        );
        tracing::debug!(
            seq = b.seq,
            txns = b.transactions,
            rows = ack.rows,
            loads = ack.loads,
            end = %b.end_lsn,
            ms = started.elapsed().as_millis() as u64,
            "batch loaded and checkpointed"
        );
        Ok(())
    }

    /// Writes the checkpoint (fenced), then confirms it to the server.
    async fn checkpoint_at(&mut self, lsn: Lsn) -> Result<(), Outcome> {
        let mut attempt = 0u32;
        let proof = loop {
            // Self-fencing (rule 8): with an overdue lease, write nothing. The write
            // itself is fenced by the epoch too; this check keeps a worker that does
            // not know yet that it lost the lease from even trying.
            if !self.handle.lease_valid() {
                return Err(Outcome::Fenced(format!(
                    "lease of job '{}' (epoch {}) is overdue or lost; not writing the \
                     checkpoint",
                    self.job, self.epoch
                )));
            }
            match self
                .store
                .commit(&self.job, &self.slot, lsn, self.epoch)
                .await
            {
                Ok(p) => break p,
                Err(e @ StateStoreError::Fenced { .. }) => {
                    return Err(Outcome::Fenced(e.to_string()))
                }
                Err(e @ StateStoreError::Corrupt { .. }) => {
                    return Err(Outcome::Definite(e.to_string()))
                }
                Err(StateStoreError::Regression { stored, .. }) => {
                    // Another run of this job got further (a replay): nothing to do.
                    tracing::warn!(%stored, %lsn, "checkpoint already past this batch");
                    return Ok(());
                }
                Err(e) => {
                    attempt += 1;
                    if attempt > 5 {
                        return Err(Outcome::Transient(e.to_string()));
                    }
                    tracing::warn!(error = %e, attempt, "checkpoint write failed; retrying");
                    tokio::select! {
                        _ = self.abort.cancelled() => return Err(Outcome::Stopped),
                        _ = tokio::time::sleep(crate::sink::starrocks::backoff(attempt)) => {}
                    }
                }
            }
        };
        self.checkpoint = lsn;
        SharedState::raise(&self.state.checkpoint_lsn, lsn);
        fail::fail_point!("loader::after_checkpoint", |a| Err(Outcome::Definite(
            crate::failpoint::hit("loader::after_checkpoint", a)
        )));
        if !self.handle.lease_valid() {
            return Err(Outcome::Fenced(format!(
                "lease of job '{}' (epoch {}) ran out while checkpointing; not confirming",
                self.job, self.epoch
            )));
        }
        self.confirm.confirm(proof);
        SharedState::raise(&self.state.confirmed_lsn, lsn);
        Ok(())
    }
}

fn source_outcome(e: crate::source::SourceError) -> Outcome {
    if e.is_transient() {
        Outcome::Transient(e.to_string())
    } else {
        Outcome::Definite(e.to_string())
    }
}

/// Runs setup and streaming once.
pub async fn run_once(settings: &EngineSettings, handle: &PipelineHandle) -> Outcome {
    let state = &handle.state;
    let (drain, abort) = (&handle.drain, &handle.abort);
    let mut paused = handle.pause_watch();
    let store =
        match StateStore::connect(&settings.checkpoint_url, &settings.checkpoint_schema).await {
            Ok(s) => s,
            Err(e) => {
                let err = setup::SetupError::Checkpoint {
                    detail: e.to_string(),
                };
                // Only an unreachable database may heal by itself; a refused
                // statement (privileges, a read-only server) needs an operator.
                return match e {
                    StateStoreError::Connect(_) => Outcome::Transient(err.to_string()),
                    _ => Outcome::SetupBlocked(err.to_string()),
                };
            }
        };
    let sink_cancel = abort.child_token();
    let sink =
        match StarRocksSink::connect(settings.sink.clone(), state.clone(), sink_cancel.clone())
            .await
        {
            Ok(s) => s,
            Err(e) => {
                let err = setup::SetupError::SrConnect {
                    endpoint: format!(
                        "{}:{}",
                        settings.sink.catalog.host, settings.sink.catalog.port
                    ),
                    detail: e.to_string(),
                };
                return Outcome::Transient(err.to_string());
            }
        };
    fail::fail_point!("setup::before", |a| Outcome::Definite(
        crate::failpoint::hit("setup::before", a)
    ));
    let prepared = match setup::run(settings, &store, &sink).await {
        Ok(p) => p,
        Err(e) if e.is_transient() => return Outcome::Transient(e.to_string()),
        Err(e) => return Outcome::SetupBlocked(e.to_string()),
    };
    for (name, t) in prepared.sink_tables {
        sink.register_table(&name, t);
    }
    let resume = store.resume_point(&prepared.checkpoint);
    SharedState::raise(&state.checkpoint_lsn, resume.lsn());
    SharedState::raise(&state.flushed_lsn, resume.lsn());

    let mut cfg = SourceConfig::new(&settings.source_url, &settings.slot, &settings.publication);
    cfg.start_lsn = Some(resume);
    // A chunk holds up to a few thousand decoded messages (~0.5 KiB each); a few
    // chunks of read-ahead keep the reader busy without holding much memory.
    cfg.channel_capacity = 4;
    let mut source = match SourceStream::start(cfg).await {
        Ok(s) => s,
        Err(e) => return source_outcome(e),
    };
    SharedState::raise(&state.server_wal_lsn, source.server_info().xlogpos);
    state.clear_error();
    state.set_stage(Stage::Cdc);

    let mut cache = SchemaCache::new(prepared.specs);
    for s in prepared.schemas {
        cache.seed(s);
    }
    let mut batcher = Batcher::new(
        cache,
        settings.limits.clone(),
        settings.truncate(),
        prepared.checkpoint.lsn,
        state.clone(),
    );
    let (tx, rx) = mpsc::channel::<LoaderMsg>(1);
    let loader = Loader {
        sink: Arc::new(sink),
        store,
        confirm: source.confirm_handle(),
        state: state.clone(),
        job: settings.job_id.clone(),
        slot: settings.slot.clone(),
        epoch: settings.epoch,
        checkpoint: prepared.checkpoint.lsn,
        abort: sink_cancel.clone(),
        handle: handle.clone(),
    };
    let mut loader_task = tokio::spawn(loader.run(rx));

    let tick_every =
        (settings.limits.max_age / 4).clamp(Duration::from_millis(10), Duration::from_millis(250));
    let mut tick = tokio::time::interval(tick_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut progress = Progress::new(settings.progress_interval);
    let mut last_idle = Instant::now();
    let confirm = source.confirm_handle();
    let mut counted_bytes = 0u64;

    // Branch order (biased): an abort wins over everything, a drain over new data,
    // a finished loader (error) over reading more, timers before the next chunk so a
    // busy stream cannot starve time-based flushes.
    let outcome = loop {
        if *paused.borrow_and_update() {
            // Paused: no reading, no new loads; the batch in flight finishes, the open
            // one waits. The replication connection keeps sending status updates.
            state.set_stage(Stage::Paused);
            tokio::select! {
                biased;
                _ = abort.cancelled() => break Outcome::Stopped,
                _ = drain.cancelled() => {}
                r = paused.changed() => {
                    if r.is_err() {
                        break Outcome::Stopped;
                    }
                    if !*paused.borrow() {
                        state.set_stage(Stage::Cdc);
                    }
                    continue;
                }
            }
        }
        tokio::select! {
            biased;
            _ = abort.cancelled() => break Outcome::Stopped,
            _ = drain.cancelled() => {
                state.set_stage(Stage::Draining);
                if let Some(b) = batcher.flush() {
                    if tx.send(LoaderMsg::Batch(Arc::new(b))).await.is_err() {
                        break loader_result(&mut loader_task).await;
                    }
                }
                drop(tx);
                break loader_result(&mut loader_task).await;
            }
            r = &mut loader_task => {
                break match r {
                    Ok(Outcome::Stopped) => Outcome::Transient("loader stopped unexpectedly".into()),
                    Ok(o) => o,
                    Err(e) => Outcome::Definite(format!("loader task failed: {e}")),
                };
            }
            _ = tick.tick() => {
                if let Some(b) = batcher.on_tick() {
                    if !send(&tx, LoaderMsg::Batch(Arc::new(b)), abort).await {
                        break loader_result(&mut loader_task).await;
                    }
                }
                let b = confirm.received_bytes();
                state.bytes.fetch_add(b - counted_bytes, Ordering::Relaxed);
                counted_bytes = b;
                progress.maybe_log(state, &batcher);
            }
            chunk = source.next_chunk() => {
                let events = match chunk {
                    None => break Outcome::Transient("replication stream ended".into()),
                    Some(Err(e)) => break source_outcome(e),
                    Some(Ok(ev)) => ev,
                };
                let mut failed = None;
                for ev in events {
                    let keepalive = match &ev {
                        SourceEvent::Keepalive { wal_end } => Some(*wal_end),
                        _ => None,
                    };
                    match batcher.handle(ev) {
                        Ok(Some(b)) => {
                            if !send(&tx, LoaderMsg::Batch(Arc::new(b)), abort).await {
                                failed = Some(loader_result(&mut loader_task).await);
                                break;
                            }
                        }
                        Ok(None) => {}
                        Err(e) => {
                            failed = Some(Outcome::Definite(e.to_string()));
                            break;
                        }
                    }
                    if let Some(w) = keepalive {
                        if batcher.is_idle() && last_idle.elapsed() >= IDLE_CHECKPOINT_EVERY {
                            last_idle = Instant::now();
                            // Never wait for this: a full channel means work is in
                            // flight, and then the idle position is not safe anyway.
                            let _ = tx.try_send(LoaderMsg::Idle(w));
                        }
                    }
                }
                if let Some(o) = failed {
                    break o;
                }
            }
        }
    };
    sink_cancel.cancel();
    if !loader_task.is_finished() {
        loader_task.abort();
    }
    source.shutdown().await;
    outcome
}

async fn send(tx: &mpsc::Sender<LoaderMsg>, msg: LoaderMsg, abort: &CancellationToken) -> bool {
    tokio::select! {
        r = tx.send(msg) => r.is_ok(),
        _ = abort.cancelled() => false,
    }
}

async fn loader_result(task: &mut tokio::task::JoinHandle<Outcome>) -> Outcome {
    match task.await {
        Ok(o) => o,
        Err(e) => Outcome::Definite(format!("loader task failed: {e}")),
    }
}

/// Periodic progress lines: rows/s, lag.
struct Progress {
    every: Duration,
    last: Instant,
    last_rows: u64,
}

impl Progress {
    fn new(every: Duration) -> Self {
        Progress {
            every,
            last: Instant::now(),
            last_rows: 0,
        }
    }

    fn maybe_log(&mut self, state: &SharedState, batcher: &Batcher) {
        if self.every.is_zero() || self.last.elapsed() < self.every {
            return;
        }
        let rows = state.rows_loaded.load(Ordering::Relaxed);
        let secs = self.last.elapsed().as_secs_f64().max(0.001);
        tracing::info!(
            job = %state.job_id,
            rows_per_s = ((rows - self.last_rows) as f64 / secs).round() as u64,
            rows_total = rows,
            lag_bytes = state.lag_bytes(),
            lag_ms = state.lag_ms(),
            checkpoint = %SharedState::lsn(&state.checkpoint_lsn),
            buffered_bytes = batcher.buffered_bytes(),
            "progress"
        );
        self.last = Instant::now();
        self.last_rows = rows;
    }
}
