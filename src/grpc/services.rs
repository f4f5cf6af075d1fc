//! The gRPC services: dbmazz.v1 Health, Control, Status and Metrics, and the
//! standard `grpc.health.v1.Health`.
//!
//! Every handler reads the pipeline registry and the pipelines' [`SharedState`]
//! (atomics, a few small locks never held across an await), so the control plane
//! answers whatever the pipelines are doing, including while one is stuck in setup.
//!
//! Standard health service names:
//! - `""` and `dbmazz.v1.HealthService`: the worker (every pipeline), the same
//!   verdict as `dbmazz.v1.HealthService/Check` with an empty job id;
//! - `dbmazz.job.<job_id>`: one pipeline;
//! - the other services this server offers (`dbmazz.v1.ControlService`, …, reflection,
//!   `grpc.health.v1.Health`): SERVING while the server runs, since they answer
//!   whatever the pipelines do;
//! - anything else: NOT_FOUND (Check) / SERVICE_UNKNOWN (Watch), as the health
//!   protocol specifies.
//!
//! [`SharedState`]: crate::engine::status::SharedState

use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::Stream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};
use tonic_health::pb::health_check_response::ServingStatus as StdServing;
use tonic_health::pb::{
    HealthCheckRequest as StdCheckRequest, HealthCheckResponse as StdCheckResponse,
};

use crate::engine::status::Stage;
use crate::engine::{PipelineHandle, Pipelines};
use crate::grpc::pb;
use crate::grpc::sampler::Sampler;
use crate::grpc::slot::SlotCache;
use crate::grpc::view;

/// Prefix of per-pipeline names in the standard health service.
pub const JOB_HEALTH_PREFIX: &str = "dbmazz.job.";

/// Shortest StreamMetrics interval.
pub const MIN_METRICS_INTERVAL_MS: u32 = 100;
/// Longest StreamMetrics interval.
pub const MAX_METRICS_INTERVAL_MS: u32 = 3_600_000;
/// StreamMetrics interval when the request says 0.
pub const DEFAULT_METRICS_INTERVAL_MS: u32 = 1000;
/// Longest a control call may wait for its pipelines.
pub const MAX_CONTROL_WAIT_MS: u32 = 600_000;
/// How often waits and health watches look at the pipelines again.
const POLL: Duration = Duration::from_millis(20);
const WATCH_POLL: Duration = Duration::from_millis(250);

/// What every service shares.
#[derive(Debug)]
pub struct Context {
    /// The pipelines of this process.
    pub pipelines: Pipelines,
    /// dbmazz version shown in status.
    pub version: String,
    /// Cached slot inspections.
    pub slots: SlotCache,
    /// When the control plane started.
    pub started: Instant,
    /// Cancelled when the server shuts down: ends streams and waits.
    pub shutdown: CancellationToken,
}

impl Context {
    /// The pipelines `job_id` designates: every pipeline when empty.
    fn select(&self, job_id: &str) -> Result<Vec<PipelineHandle>, Status> {
        if job_id.is_empty() {
            return Ok(self.pipelines.all());
        }
        self.pipelines
            .get(job_id)
            .map(|h| vec![h])
            .ok_or_else(|| self.unknown_job(job_id))
    }

    fn unknown_job(&self, job_id: &str) -> Status {
        let known: Vec<String> = self
            .pipelines
            .all()
            .into_iter()
            .map(|h| h.state.job_id.clone())
            .collect();
        Status::not_found(if known.is_empty() {
            format!("no pipeline '{job_id}' in this worker: it runs none")
        } else {
            format!(
                "no pipeline '{job_id}' in this worker; it runs: {}",
                known.join(", ")
            )
        })
    }

    async fn status_of(&self, h: &PipelineHandle) -> pb::PipelineStatus {
        let report = self.slots.get(&h.state.job_id, &h.state.slot).await;
        view::pipeline_status(h, view::slot_pb(&report), &self.version)
    }

    /// Verdict of the standard health service for `name`; `None` when unknown.
    pub fn std_health(&self, name: &str) -> Option<bool> {
        if name.is_empty() || name == SERVICE_HEALTH {
            let pipes = self.pipelines.all();
            return Some(pipes.iter().all(|h| view::is_serving(h.state.stage())));
        }
        if let Some(job) = name.strip_prefix(JOB_HEALTH_PREFIX) {
            return self
                .pipelines
                .get(job)
                .map(|h| view::is_serving(h.state.stage()));
        }
        ALWAYS_SERVING.contains(&name).then_some(true)
    }
}

const SERVICE_HEALTH: &str = "dbmazz.v1.HealthService";
const ALWAYS_SERVING: &[&str] = &[
    "dbmazz.v1.ControlService",
    "dbmazz.v1.StatusService",
    "dbmazz.v1.MetricsService",
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
];

// ------------------------------------------------------------------ dbmazz health

/// `dbmazz.v1.HealthService`.
#[derive(Debug, Clone)]
pub struct HealthSvc(pub Arc<Context>);

#[tonic::async_trait]
impl pb::health_service_server::HealthService for HealthSvc {
    async fn check(
        &self,
        request: Request<pb::HealthCheckRequest>,
    ) -> Result<Response<pb::HealthCheckResponse>, Status> {
        let pipes = self.0.select(&request.get_ref().job_id)?;
        Ok(Response::new(view::health(&pipes)))
    }
}

// ------------------------------------------------------------------ control

/// `dbmazz.v1.ControlService`.
#[derive(Debug, Clone)]
pub struct ControlSvc(pub Arc<Context>);

#[derive(Clone, Copy, Debug)]
enum Action {
    Pause,
    Resume,
    Drain,
    Stop,
}

impl Action {
    fn name(self) -> &'static str {
        match self {
            Action::Pause => "pause",
            Action::Resume => "resume",
            Action::Drain => "drain",
            Action::Stop => "stop",
        }
    }

    fn apply(self, h: &PipelineHandle) {
        match self {
            Action::Pause => h.set_paused(true),
            Action::Resume => h.set_paused(false),
            Action::Drain => h.drain.cancel(),
            Action::Stop => h.abort.cancel(),
        }
    }

    fn reached(self, stage: Stage) -> bool {
        match self {
            Action::Pause => stage == Stage::Paused,
            Action::Resume => stage == Stage::Cdc,
            Action::Drain | Action::Stop => matches!(stage, Stage::Stopped | Stage::Failed),
        }
    }
}

impl ControlSvc {
    async fn act(
        &self,
        action: Action,
        request: Request<pb::ControlRequest>,
    ) -> Result<Response<pb::ControlResponse>, Status> {
        let peer = request.remote_addr();
        let req = request.into_inner();
        if req.wait_ms > MAX_CONTROL_WAIT_MS {
            return Err(Status::invalid_argument(format!(
                "wait_ms {} is too long: at most {MAX_CONTROL_WAIT_MS}",
                req.wait_ms
            )));
        }
        let targets = self.0.select(&req.job_id)?;
        let before: Vec<Stage> = targets.iter().map(|h| h.state.stage()).collect();
        for h in &targets {
            tracing::info!(job = %h.state.job_id, action = action.name(), peer = ?peer, "control request");
            action.apply(h);
        }
        let deadline = tokio::time::Instant::now() + Duration::from_millis(u64::from(req.wait_ms));
        while req.wait_ms > 0
            && !targets.iter().all(|h| action.reached(h.state.stage()))
            && tokio::time::Instant::now() < deadline
        {
            tokio::select! {
                _ = self.0.shutdown.cancelled() => break,
                _ = tokio::time::sleep(POLL) => {}
            }
        }
        let pipelines = targets
            .iter()
            .zip(before)
            .map(|(h, before)| {
                let s = &h.state;
                let stage = s.stage();
                pb::ControlResult {
                    job_id: s.job_id.clone(),
                    stage_before: view::stage_pb(before) as i32,
                    stage: view::stage_pb(stage) as i32,
                    reached: action.reached(stage),
                    checkpoint_lsn: Some(view::lsn_pb(s.checkpoint_lsn.get().0)),
                    confirmed_lsn: Some(view::lsn_pb(s.confirmed_lsn.get().0)),
                }
            })
            .collect();
        Ok(Response::new(pb::ControlResponse { pipelines }))
    }
}

#[tonic::async_trait]
impl pb::control_service_server::ControlService for ControlSvc {
    async fn pause(
        &self,
        request: Request<pb::ControlRequest>,
    ) -> Result<Response<pb::ControlResponse>, Status> {
        self.act(Action::Pause, request).await
    }

    async fn resume(
        &self,
        request: Request<pb::ControlRequest>,
    ) -> Result<Response<pb::ControlResponse>, Status> {
        self.act(Action::Resume, request).await
    }

    async fn drain_and_stop(
        &self,
        request: Request<pb::ControlRequest>,
    ) -> Result<Response<pb::ControlResponse>, Status> {
        self.act(Action::Drain, request).await
    }

    async fn stop(
        &self,
        request: Request<pb::ControlRequest>,
    ) -> Result<Response<pb::ControlResponse>, Status> {
        self.act(Action::Stop, request).await
    }
}

// ------------------------------------------------------------------ status

/// `dbmazz.v1.StatusService`.
#[derive(Debug, Clone)]
pub struct StatusSvc(pub Arc<Context>);

#[tonic::async_trait]
impl pb::status_service_server::StatusService for StatusSvc {
    async fn get_status(
        &self,
        request: Request<pb::GetStatusRequest>,
    ) -> Result<Response<pb::PipelineStatus>, Status> {
        let job = &request.get_ref().job_id;
        let handle = if job.is_empty() {
            let all = self.0.pipelines.all();
            match all.as_slice() {
                [one] => one.clone(),
                [] => return Err(Status::not_found("this worker runs no pipeline")),
                many => {
                    return Err(Status::invalid_argument(format!(
                        "this worker runs {} pipelines ({}); name one with job_id",
                        many.len(),
                        many.iter()
                            .map(|h| h.state.job_id.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )))
                }
            }
        } else {
            self.0
                .pipelines
                .get(job)
                .ok_or_else(|| self.0.unknown_job(job))?
        };
        Ok(Response::new(self.0.status_of(&handle).await))
    }

    async fn list_pipelines(
        &self,
        _request: Request<pb::ListPipelinesRequest>,
    ) -> Result<Response<pb::ListPipelinesResponse>, Status> {
        let all = self.0.pipelines.all();
        let pipelines =
            futures_util::future::join_all(all.iter().map(|h| self.0.status_of(h))).await;
        Ok(Response::new(pb::ListPipelinesResponse {
            pipelines,
            version: self.0.version.clone(),
            uptime_seconds: self.0.started.elapsed().as_secs(),
        }))
    }
}

// ------------------------------------------------------------------ metrics

/// `dbmazz.v1.MetricsService`.
#[derive(Debug, Clone)]
pub struct MetricsSvc(pub Arc<Context>);

type SnapshotStream = Pin<Box<dyn Stream<Item = Result<pb::MetricsSnapshot, Status>> + Send>>;

#[tonic::async_trait]
impl pb::metrics_service_server::MetricsService for MetricsSvc {
    type StreamMetricsStream = SnapshotStream;

    async fn stream_metrics(
        &self,
        request: Request<pb::StreamMetricsRequest>,
    ) -> Result<Response<Self::StreamMetricsStream>, Status> {
        let req = request.into_inner();
        let interval_ms = match req.interval_ms {
            0 => DEFAULT_METRICS_INTERVAL_MS,
            ms @ MIN_METRICS_INTERVAL_MS..=MAX_METRICS_INTERVAL_MS => ms,
            other => {
                return Err(Status::invalid_argument(format!(
                    "interval_ms {other} is out of range: use {MIN_METRICS_INTERVAL_MS}..={MAX_METRICS_INTERVAL_MS} (0 means {DEFAULT_METRICS_INTERVAL_MS})"
                )))
            }
        };
        // Validate the job now so a typo fails the call instead of streaming nothing.
        self.0.select(&req.job_id)?;
        let ctx = self.0.clone();
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(async move {
            let mut sampler = Sampler::new();
            let mut tick = tokio::time::interval(Duration::from_millis(u64::from(interval_ms)));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    biased;
                    _ = ctx.shutdown.cancelled() => break,
                    _ = tx.closed() => break,
                    _ = tick.tick() => {}
                }
                let pipes = if req.job_id.is_empty() {
                    ctx.pipelines.all()
                } else {
                    ctx.pipelines.get(&req.job_id).into_iter().collect()
                };
                let snap = sampler.snapshot(&pipes);
                if tx.send(Ok(snap)).await.is_err() {
                    break;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

// ------------------------------------------------------------------ grpc.health.v1

/// The standard `grpc.health.v1.Health`, answering from the live pipeline state.
#[derive(Debug, Clone)]
pub struct StdHealthSvc(pub Arc<Context>);

fn std_status(v: Option<bool>) -> StdServing {
    match v {
        Some(true) => StdServing::Serving,
        Some(false) => StdServing::NotServing,
        None => StdServing::ServiceUnknown,
    }
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<StdCheckResponse, Status>> + Send>>;

#[tonic::async_trait]
impl tonic_health::pb::health_server::Health for StdHealthSvc {
    async fn check(
        &self,
        request: Request<StdCheckRequest>,
    ) -> Result<Response<StdCheckResponse>, Status> {
        let name = &request.get_ref().service;
        match self.0.std_health(name) {
            Some(v) => Ok(Response::new(StdCheckResponse {
                status: std_status(Some(v)) as i32,
            })),
            None => Err(Status::not_found(format!("unknown service '{name}'"))),
        }
    }

    type WatchStream = WatchStream;

    async fn watch(
        &self,
        request: Request<StdCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let name = request.into_inner().service;
        let ctx = self.0.clone();
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(async move {
            let mut last = None;
            loop {
                let now = std_status(ctx.std_health(&name));
                if last != Some(now) {
                    last = Some(now);
                    let msg = StdCheckResponse { status: now as i32 };
                    if tx.send(Ok(msg)).await.is_err() {
                        break;
                    }
                }
                tokio::select! {
                    biased;
                    _ = ctx.shutdown.cancelled() => break,
                    _ = tx.closed() => break,
                    _ = tokio::time::sleep(WATCH_POLL) => {}
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}
