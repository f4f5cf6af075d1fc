//! The streaming part of one CDC run: read the stream, batch, load, checkpoint,
//! confirm — until drained, aborted or an error ends it.
//!
//! ```text
//! Events ──chunks──▶ Batcher (this task) ──Batch──▶ Loader task ──▶ sink.push_batch
//!                          │ keepalive while idle           │
//!                          └──────────Idle(walEnd)─────────▶│ store.commit (fenced)
//!                                                           └▶ confirm(Checkpointed)
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
//! transactions only) → load → checkpoint → confirm; the caller then closes the
//! stream (its last status update carries the final checkpoint).
//!
//! The loop is generic over its three seams — where events come from
//! ([`Events`]: the replication stream), where checkpoints go ([`Checkpoints`]: the
//! checkpoint table) and the [`Sink`] — so the rules above are unit-tested with an
//! in-memory sink and store and a scripted stream.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::status::{SharedState, Stage};
use super::{EngineError, PipelineHandle};
use crate::lsn::Lsn;
use crate::pipeline::batch::Batch;
use crate::pipeline::Batcher;
use crate::sink::{Sink, SinkError};
use crate::source::message::PG_EPOCH_OFFSET_MICROS;
use crate::source::{ConfirmHandle, SourceError, SourceEvent, SourceStream};
use crate::state_store::{Checkpointed, StateStore, StateStoreError};

/// Where the engine reads changes from.
pub trait Events: Send {
    /// The next chunk of events; `None` when the stream ended.
    fn next_chunk(
        &mut self,
    ) -> impl Future<Output = Option<Result<Vec<SourceEvent>, SourceError>>> + Send;

    /// The handle checkpointed LSNs are confirmed through (it also counts the bytes
    /// received).
    fn confirm_handle(&self) -> ConfirmHandle;
}

impl Events for SourceStream {
    fn next_chunk(
        &mut self,
    ) -> impl Future<Output = Option<Result<Vec<SourceEvent>, SourceError>>> + Send {
        SourceStream::next_chunk(self)
    }

    fn confirm_handle(&self) -> ConfirmHandle {
        SourceStream::confirm_handle(self)
    }
}

/// One checkpoint to write: everything of `job` before `lsn` is loaded, as lease
/// epoch `epoch`.
#[derive(Copy, Clone, Debug)]
pub struct CheckpointRow<'a> {
    /// Job id.
    pub job: &'a str,
    /// Replication slot of the job.
    pub slot: &'a str,
    /// The durable LSN.
    pub lsn: Lsn,
    /// Lease epoch of the writer.
    pub epoch: i64,
}

/// Where checkpoints are written (fenced by the lease epoch).
pub trait Checkpoints: Send + Sync + 'static {
    /// Writes `row`; fails when a newer epoch owns it or it would move backwards.
    fn commit(&self, row: CheckpointRow<'_>) -> impl Future<Output = CommitResult> + Send;
}

/// What a checkpoint write gives: the proof the stream may confirm.
pub type CommitResult = Result<Checkpointed, StateStoreError>;

impl Checkpoints for StateStore {
    fn commit(&self, r: CheckpointRow<'_>) -> impl Future<Output = CommitResult> + Send {
        StateStore::commit(self, r.job, r.slot, r.lsn, r.epoch)
    }
}

/// What the loop needs besides its seams.
pub struct FlowSettings {
    /// Job id.
    pub job: String,
    /// Replication slot (recorded with the checkpoint).
    pub slot: String,
    /// Lease epoch the checkpoints are written with.
    pub epoch: i64,
    /// The checkpoint streaming resumed from.
    pub checkpoint: Lsn,
    /// Longest a batch waits before it is loaded.
    pub max_age: Duration,
    /// How often progress is logged (zero: never).
    pub progress_interval: Duration,
}

enum LoaderMsg {
    Batch(Arc<Batch>),
    Idle(Lsn),
}

/// Why the loader stopped before its channel closed.
enum Halt {
    /// Cancelled: not a failure.
    Stopped,
    /// An error ends the run.
    Failed(EngineError),
}

impl From<EngineError> for Halt {
    fn from(e: EngineError) -> Self {
        Halt::Failed(e)
    }
}

impl From<SinkError> for Halt {
    fn from(e: SinkError) -> Self {
        Halt::Failed(e.into())
    }
}

impl From<StateStoreError> for Halt {
    fn from(e: StateStoreError) -> Self {
        Halt::Failed(e.into())
    }
}

struct Loader<S, K> {
    sink: Arc<S>,
    store: K,
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

/// Failed checkpoint writes retried before the error ends the run.
const CHECKPOINT_ATTEMPTS: u32 = 5;

impl<S: Sink, K: Checkpoints> Loader<S, K> {
    async fn run(mut self, mut rx: mpsc::Receiver<LoaderMsg>) -> Result<(), EngineError> {
        while let Some(msg) = rx.recv().await {
            let result = match msg {
                LoaderMsg::Batch(b) => self.load(b).await,
                LoaderMsg::Idle(lsn) if lsn > self.checkpoint => self.checkpoint_at(lsn).await,
                LoaderMsg::Idle(_) => Ok(()),
            };
            match result {
                Ok(()) => {}
                Err(Halt::Stopped) => return Ok(()),
                Err(Halt::Failed(e)) => return Err(e),
            }
        }
        Ok(())
    }

    async fn load(&mut self, b: Arc<Batch>) -> Result<(), Halt> {
        let started = Instant::now();
        let ack = match self.sink.push_batch(b.clone()).await {
            Ok(a) => a,
            Err(SinkError::Cancelled) => return Err(Halt::Stopped),
            Err(e) => return Err(e.into()),
        };
        self.state.flushed_lsn.raise(b.end_lsn);
        fail::fail_point!("loader::after_ack", |a| Err(EngineError::FaultInjected(
            crate::failpoint::hit("loader::after_ack", a)
        )
        .into()));
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

    fn overdue(&self, what: &'static str) -> Halt {
        Halt::Failed(EngineError::LeaseOverdue {
            job: self.job.clone(),
            epoch: self.epoch,
            what,
        })
    }

    /// Writes the checkpoint (fenced), then confirms it to the server.
    async fn checkpoint_at(&mut self, lsn: Lsn) -> Result<(), Halt> {
        let mut attempt = 0u32;
        let proof = loop {
            // Self-fencing (rule 8): with an overdue lease, write nothing. The write
            // itself is fenced by the epoch too; this check keeps a worker that does
            // not know yet that it lost the lease from even trying.
            if !self.handle.lease_valid() {
                return Err(self.overdue("is overdue or lost; not writing the checkpoint"));
            }
            let row = CheckpointRow {
                job: &self.job,
                slot: &self.slot,
                lsn,
                epoch: self.epoch,
            };
            match self.store.commit(row).await {
                Ok(p) => break p,
                Err(StateStoreError::Regression { stored, .. }) => {
                    // Another run of this job got further (a replay): nothing to do.
                    tracing::warn!(%stored, %lsn, "checkpoint already past this batch");
                    return Ok(());
                }
                Err(e) if e.kind() == crate::error::ErrorKind::Transient => {
                    attempt += 1;
                    if attempt > CHECKPOINT_ATTEMPTS {
                        return Err(e.into());
                    }
                    tracing::warn!(error = %e, attempt, "checkpoint write failed; retrying");
                    tokio::select! {
                        _ = self.abort.cancelled() => return Err(Halt::Stopped),
                        _ = tokio::time::sleep(crate::error::backoff(attempt)) => {}
                    }
                }
                Err(e) => return Err(e.into()),
            }
        };
        self.checkpoint = lsn;
        self.state.checkpoint_lsn.raise(lsn);
        fail::fail_point!("loader::after_checkpoint", |a| Err(
            EngineError::FaultInjected(crate::failpoint::hit("loader::after_checkpoint", a)).into()
        ));
        if !self.handle.lease_valid() {
            return Err(self.overdue("ran out while checkpointing; not confirming"));
        }
        self.confirm.confirm(proof);
        self.state.confirmed_lsn.raise(lsn);
        Ok(())
    }
}

/// Streams until drained (`Ok`), aborted (`Ok`) or an error ends the run.
pub async fn run<E, K, S>(
    source: &mut E,
    mut batcher: Batcher,
    sink: Arc<S>,
    store: K,
    settings: FlowSettings,
    handle: &PipelineHandle,
    sink_cancel: &CancellationToken,
) -> Result<(), EngineError>
where
    E: Events,
    K: Checkpoints,
    S: Sink,
{
    let state = &handle.state;
    let (drain, abort) = (&handle.drain, &handle.abort);
    let mut paused = handle.pause_watch();
    let (tx, rx) = mpsc::channel::<LoaderMsg>(1);
    let loader = Loader {
        sink,
        store,
        confirm: source.confirm_handle(),
        state: state.clone(),
        job: settings.job.clone(),
        slot: settings.slot.clone(),
        epoch: settings.epoch,
        checkpoint: settings.checkpoint,
        abort: sink_cancel.clone(),
        handle: handle.clone(),
    };
    let mut loader_task = tokio::spawn(loader.run(rx));

    let tick_every =
        (settings.max_age / 4).clamp(Duration::from_millis(10), Duration::from_millis(250));
    let mut tick = tokio::time::interval(tick_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut progress = Progress::new(settings.progress_interval);
    let mut last_idle = Instant::now();
    let confirm = source.confirm_handle();
    let mut counted_bytes = 0u64;

    // Branch order (biased): an abort wins over everything, a drain over new data,
    // a finished loader (error) over reading more, timers before the next chunk so a
    // busy stream cannot starve time-based flushes.
    let result = loop {
        if *paused.borrow_and_update() {
            // Paused: no reading, no new loads; the batch in flight finishes, the open
            // one waits. The replication connection keeps sending status updates.
            state.set_stage(Stage::Paused);
            tokio::select! {
                biased;
                _ = abort.cancelled() => break Ok(()),
                _ = drain.cancelled() => {}
                r = paused.changed() => {
                    if r.is_err() {
                        break Ok(());
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
            _ = abort.cancelled() => break Ok(()),
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
                    Ok(Ok(())) => Err(EngineError::LoaderStopped),
                    Ok(Err(e)) => Err(e),
                    Err(e) => Err(EngineError::LoaderFailed(e.to_string())),
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
                    None => break Err(EngineError::StreamEnded),
                    Some(Err(e)) => break Err(e.into()),
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
                            failed = Some(Err(e.into()));
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
                if let Some(r) = failed {
                    break r;
                }
            }
        }
    };
    sink_cancel.cancel();
    if !loader_task.is_finished() {
        loader_task.abort();
    }
    result
}

async fn send(tx: &mpsc::Sender<LoaderMsg>, msg: LoaderMsg, abort: &CancellationToken) -> bool {
    tokio::select! {
        r = tx.send(msg) => r.is_ok(),
        _ = abort.cancelled() => false,
    }
}

async fn loader_result(
    task: &mut tokio::task::JoinHandle<Result<(), EngineError>>,
) -> Result<(), EngineError> {
    match task.await {
        Ok(r) => r,
        Err(e) => Err(EngineError::LoaderFailed(e.to_string())),
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
        let rows = state.sink.rows_loaded.load(Ordering::Relaxed);
        let secs = self.last.elapsed().as_secs_f64().max(0.001);
        tracing::info!(
            job = %state.job_id,
            rows_per_s = ((rows - self.last_rows) as f64 / secs).round() as u64,
            rows_total = rows,
            lag_bytes = state.lag_bytes(),
            lag_ms = state.lag_ms(),
            checkpoint = %state.checkpoint_lsn.get(),
            buffered_bytes = batcher.buffered_bytes(),
            "progress"
        );
        self.last = Instant::now();
        self.last_rows = rows;
    }
}
