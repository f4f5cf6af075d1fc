//! Client side of the control plane, for the `dbmazz status`, `pause`, `resume`,
//! `drain`, `stop` and `healthcheck` commands.
//!
//! Each `run_*` function does one command end to end and returns the text to
//! print plus what the exit code should say; the CLI only parses flags and prints.
//! Errors name the address and what to check, never the token.

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tonic::{Code, Request};

use crate::grpc::pb;

/// Where and how to reach a worker's control plane.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientOptions {
    /// `host:port` or a URL (`http://…`, `https://…`). `0.0.0.0`/`[::]` (a
    /// container's bind address) is reached through loopback.
    pub addr: String,
    /// Bearer token for control calls (and read calls where required).
    pub token: Option<String>,
    /// CA certificate (PEM) that signed the server's certificate; implies TLS.
    pub tls_ca: Option<PathBuf>,
    /// Name to verify in the server certificate (default: the address's host).
    pub tls_domain: Option<String>,
    /// Connect and per-call timeout.
    pub timeout: Duration,
}

impl std::fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientOptions")
            .field("addr", &self.addr)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("tls_ca", &self.tls_ca)
            .field("tls_domain", &self.tls_domain)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl ClientOptions {
    /// Options for `addr` with no token, no TLS and a 5 s timeout.
    pub fn new(addr: impl Into<String>) -> Self {
        ClientOptions {
            addr: addr.into(),
            token: None,
            tls_ca: None,
            tls_domain: None,
            timeout: Duration::from_secs(5),
        }
    }
}

/// Why a command could not do its job.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The address is not usable.
    #[error("invalid control plane address '{addr}': {detail}")]
    Address {
        /// What was given.
        addr: String,
        /// Why it is wrong.
        detail: String,
    },
    /// The CA file could not be read.
    #[error("cannot read the CA certificate '{path}': {detail}")]
    Tls {
        /// Path.
        path: String,
        /// Why.
        detail: String,
    },
    /// No connection.
    #[error("cannot reach the dbmazz control plane at {addr}: {detail}. Is dbmazz running there, and do the address (DBMAZZ_GRPC_ADDR) and TLS settings match?")]
    Connect {
        /// Address.
        addr: String,
        /// Transport message.
        detail: String,
    },
    /// The server answered with an error.
    #[error("{call} failed ({code:?}): {message}{hint}")]
    Rpc {
        /// Which call.
        call: &'static str,
        /// gRPC code.
        code: Code,
        /// Server message.
        message: String,
        /// What to do about it.
        hint: &'static str,
    },
    /// JSON output could not be produced.
    #[error("cannot encode the status as JSON: {0}")]
    Json(String),
}

impl ClientError {
    fn rpc(call: &'static str, s: tonic::Status) -> Self {
        let hint = match s.code() {
            Code::Unauthenticated => {
                " — pass the worker's token with --token or DBMAZZ_CONTROL_TOKEN"
            }
            Code::PermissionDenied => " — the worker accepts no control calls as configured",
            Code::Unavailable => " — is dbmazz running at that address?",
            _ => "",
        };
        ClientError::Rpc {
            call,
            code: s.code(),
            message: s.message().to_owned(),
            hint,
        }
    }
}

/// A control plane operation.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ControlAction {
    /// `Pause`.
    Pause,
    /// `Resume`.
    Resume,
    /// `DrainAndStop`.
    Drain,
    /// `Stop`.
    Stop,
}

impl ControlAction {
    fn verb(self) -> &'static str {
        match self {
            ControlAction::Pause => "pause",
            ControlAction::Resume => "resume",
            ControlAction::Drain => "drain",
            ControlAction::Stop => "stop",
        }
    }

    fn goal(self) -> &'static str {
        match self {
            ControlAction::Pause => "PAUSED",
            ControlAction::Resume => "CDC",
            ControlAction::Drain | ControlAction::Stop => "STOPPED",
        }
    }
}

/// Turns a bind address or `host:port` into a URI to dial.
fn dial_uri(addr: &str, tls: bool) -> Result<String, ClientError> {
    let bad = |detail: &str| ClientError::Address {
        addr: addr.to_owned(),
        detail: detail.to_owned(),
    };
    let (scheme, rest) = match addr.split_once("://") {
        Some(("http", r)) => ("http", r),
        Some(("https", r)) => ("https", r),
        Some((other, _)) => {
            return Err(bad(&format!(
                "unsupported scheme '{other}': use http or https"
            )))
        }
        None => (if tls { "https" } else { "http" }, addr),
    };
    let rest = rest.trim_end_matches('/');
    if rest.is_empty() {
        return Err(bad("expected host:port"));
    }
    // A wildcard bind address is reachable on loopback from the same host.
    let rest = if let Some(port) = rest.strip_prefix("0.0.0.0:") {
        format!("127.0.0.1:{port}")
    } else if let Some(port) = rest.strip_prefix("[::]:") {
        format!("[::1]:{port}")
    } else {
        rest.to_owned()
    };
    Ok(format!("{scheme}://{rest}"))
}

/// A connection to one worker.
#[derive(Debug, Clone)]
pub struct Client {
    channel: Channel,
    token: Option<MetadataValue<Ascii>>,
    timeout: Duration,
}

impl Client {
    /// Connects (eagerly, so an unreachable worker is reported at once).
    pub async fn connect(opts: &ClientOptions) -> Result<Client, ClientError> {
        let uri = dial_uri(&opts.addr, opts.tls_ca.is_some())?;
        let mut endpoint =
            Endpoint::from_shared(uri.clone()).map_err(|e| ClientError::Address {
                addr: opts.addr.clone(),
                detail: e.to_string(),
            })?;
        endpoint = endpoint
            .connect_timeout(opts.timeout)
            .timeout(opts.timeout)
            .tcp_nodelay(true);
        if let Some(ca) = &opts.tls_ca {
            let pem = std::fs::read(ca).map_err(|e| ClientError::Tls {
                path: ca.display().to_string(),
                detail: e.to_string(),
            })?;
            let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem));
            if let Some(d) = &opts.tls_domain {
                tls = tls.domain_name(d.clone());
            }
            endpoint = endpoint.tls_config(tls).map_err(|e| ClientError::Tls {
                path: ca.display().to_string(),
                detail: e.to_string(),
            })?;
        }
        let channel = endpoint.connect().await.map_err(|e| ClientError::Connect {
            addr: uri,
            detail: error_chain(&e),
        })?;
        let token = match &opts.token {
            Some(t) => Some(
                format!("Bearer {t}")
                    .parse()
                    .map_err(|_| ClientError::Address {
                        addr: opts.addr.clone(),
                        detail: "the token must be visible ASCII characters".into(),
                    })?,
            ),
            None => None,
        };
        Ok(Client {
            channel,
            token,
            timeout: opts.timeout,
        })
    }

    fn request<T>(&self, msg: T) -> Request<T> {
        let mut r = Request::new(msg);
        if let Some(t) = &self.token {
            r.metadata_mut().insert("authorization", t.clone());
        }
        r
    }

    /// `StatusService.ListPipelines`.
    pub async fn list_pipelines(&self) -> Result<pb::ListPipelinesResponse, ClientError> {
        pb::status_service_client::StatusServiceClient::new(self.channel.clone())
            .list_pipelines(self.request(pb::ListPipelinesRequest {}))
            .await
            .map(|r| r.into_inner())
            .map_err(|s| ClientError::rpc("ListPipelines", s))
    }

    /// `StatusService.GetStatus`.
    pub async fn get_status(&self, job_id: &str) -> Result<pb::PipelineStatus, ClientError> {
        pb::status_service_client::StatusServiceClient::new(self.channel.clone())
            .get_status(self.request(pb::GetStatusRequest {
                job_id: job_id.to_owned(),
            }))
            .await
            .map(|r| r.into_inner())
            .map_err(|s| ClientError::rpc("GetStatus", s))
    }

    /// `HealthService.Check` (empty `job_id`: the whole worker).
    pub async fn health(&self, job_id: &str) -> Result<pb::HealthCheckResponse, ClientError> {
        pb::health_service_client::HealthServiceClient::new(self.channel.clone())
            .check(self.request(pb::HealthCheckRequest {
                job_id: job_id.to_owned(),
            }))
            .await
            .map(|r| r.into_inner())
            .map_err(|s| ClientError::rpc("Check", s))
    }

    /// A control call; `job_id` empty means every pipeline. `wait` is how long the
    /// worker waits for the pipelines to get there.
    pub async fn control(
        &self,
        action: ControlAction,
        job_id: &str,
        wait: Duration,
    ) -> Result<pb::ControlResponse, ClientError> {
        let wait_ms = u32::try_from(wait.as_millis()).unwrap_or(u32::MAX);
        let mut req = self.request(pb::ControlRequest {
            job_id: job_id.to_owned(),
            wait_ms,
        });
        // The call itself may take as long as the wait.
        req.set_timeout(self.timeout + wait);
        let mut c = pb::control_service_client::ControlServiceClient::new(self.channel.clone());
        let r = match action {
            ControlAction::Pause => c.pause(req).await,
            ControlAction::Resume => c.resume(req).await,
            ControlAction::Drain => c.drain_and_stop(req).await,
            ControlAction::Stop => c.stop(req).await,
        };
        let call = match action {
            ControlAction::Pause => "Pause",
            ControlAction::Resume => "Resume",
            ControlAction::Drain => "DrainAndStop",
            ControlAction::Stop => "Stop",
        };
        r.map(|r| r.into_inner())
            .map_err(|s| ClientError::rpc(call, s))
    }

    /// `MetricsService.StreamMetrics`; the stream has no call timeout.
    pub async fn stream_metrics(
        &self,
        interval: Duration,
        job_id: &str,
    ) -> Result<tonic::Streaming<pb::MetricsSnapshot>, ClientError> {
        let mut req = self.request(pb::StreamMetricsRequest {
            interval_ms: u32::try_from(interval.as_millis()).unwrap_or(u32::MAX),
            job_id: job_id.to_owned(),
        });
        req.set_timeout(Duration::from_secs(u64::from(u32::MAX)));
        pb::metrics_service_client::MetricsServiceClient::new(self.channel.clone())
            .stream_metrics(req)
            .await
            .map(|r| r.into_inner())
            .map_err(|s| ClientError::rpc("StreamMetrics", s))
    }

    /// The per-call timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        let t = s.to_string();
        if !out.contains(&t) {
            out.push_str(": ");
            out.push_str(&t);
        }
        src = s.source();
    }
    out
}

// ------------------------------------------------------------------ commands

/// `dbmazz status`: a table of every pipeline, or JSON.
pub async fn run_status(opts: &ClientOptions, json: bool) -> Result<String, ClientError> {
    let client = Client::connect(opts).await?;
    let resp = client.list_pipelines().await?;
    if json {
        status_json(&resp)
    } else {
        Ok(render_status_table(
            &resp,
            crate::grpc::state::unix_micros() / 1000,
        ))
    }
}

/// Result of a control command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlOutcome {
    /// Text to print.
    pub text: String,
    /// True when every pipeline reached the requested stage (or no wait was
    /// asked for).
    pub ok: bool,
}

/// `dbmazz pause|resume|drain|stop [--job J]`.
pub async fn run_control(
    opts: &ClientOptions,
    action: ControlAction,
    job_id: Option<&str>,
    wait: Duration,
) -> Result<ControlOutcome, ClientError> {
    let client = Client::connect(opts).await?;
    let resp = client.control(action, job_id.unwrap_or(""), wait).await?;
    Ok(render_control(action, &resp, !wait.is_zero()))
}

/// Result of `dbmazz healthcheck`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthOutcome {
    /// True only when the worker answered SERVING.
    pub serving: bool,
    /// One line to print.
    pub text: String,
}

/// `dbmazz healthcheck`: SERVING or not; unreachable counts as not serving.
pub async fn run_healthcheck(opts: &ClientOptions, job_id: Option<&str>) -> HealthOutcome {
    let resp = match Client::connect(opts).await {
        Ok(c) => c.health(job_id.unwrap_or("")).await,
        Err(e) => Err(e),
    };
    match resp {
        Ok(r) if r.status == pb::ServingStatus::Serving as i32 => HealthOutcome {
            serving: true,
            text: format!("SERVING ({})", stage_name(r.stage)),
        },
        Ok(r) => HealthOutcome {
            serving: false,
            text: format!(
                "NOT_SERVING ({}): {}",
                stage_name(r.stage),
                if r.error_detail.is_empty() {
                    "no detail"
                } else {
                    &r.error_detail
                }
            ),
        },
        Err(e) => HealthOutcome {
            serving: false,
            text: format!("UNREACHABLE: {e}"),
        },
    }
}

// ------------------------------------------------------------------ rendering

/// Upper-case stage name of a wire stage value.
pub fn stage_name(stage: i32) -> &'static str {
    match pb::Stage::try_from(stage) {
        Ok(pb::Stage::Init) => "INIT",
        Ok(pb::Stage::Setup) => "SETUP",
        Ok(pb::Stage::Cdc) => "CDC",
        Ok(pb::Stage::Paused) => "PAUSED",
        Ok(pb::Stage::Draining) => "DRAINING",
        Ok(pb::Stage::Stopped) => "STOPPED",
        Ok(pb::Stage::Failed) => "FAILED",
        Ok(pb::Stage::Unspecified) | Err(_) => "-",
    }
}

fn lsn_text(l: &Option<pb::Lsn>) -> String {
    l.as_ref()
        .map(|l| l.text.clone())
        .unwrap_or_else(|| "-".into())
}

/// 1536 → "1.5 KiB".
pub fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < UNITS.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}

/// 850 → "850ms", 3200 → "3.2s", 312000 → "5m12s", 7380000 → "2h03m".
pub fn human_ms(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else if ms < 3_600_000 {
        format!("{}m{:02}s", ms / 60_000, (ms / 1000) % 60)
    } else if ms < 86_400_000 {
        format!("{}h{:02}m", ms / 3_600_000, (ms / 60_000) % 60)
    } else {
        format!("{}d{:02}h", ms / 86_400_000, (ms / 3_600_000) % 24)
    }
}

fn slot_text(p: &pb::PipelineStatus) -> String {
    match &p.slot_status {
        Some(s) if s.missing => format!("{} (MISSING)", p.slot),
        Some(s) if s.known => format!(
            "{} ({}, {})",
            p.slot,
            if s.wal_status.is_empty() {
                "?"
            } else {
                &s.wal_status
            },
            human_bytes(s.retained_wal_bytes)
        ),
        _ => format!("{} (?)", p.slot),
    }
}

fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(|r| r.len()).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, cell)| {
                let w = widths.get(i).copied().unwrap_or(0);
                format!("{cell:<w$}")
            })
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// The human-readable `dbmazz status` output; `now_ms` is the current Unix time in
/// milliseconds (for "… ago").
pub fn render_status_table(resp: &pb::ListPipelinesResponse, now_ms: i64) -> String {
    let mut out = format!(
        "dbmazz {} · control plane up {} · {} pipeline{}\n",
        resp.version,
        human_ms(resp.uptime_seconds.saturating_mul(1000)),
        resp.pipelines.len(),
        if resp.pipelines.len() == 1 { "" } else { "s" }
    );
    if resp.pipelines.is_empty() {
        out.push_str("\nno pipeline runs in this worker (waiting for a lease?)\n");
        return out;
    }
    let mut rows = vec![[
        "JOB",
        "STAGE",
        "LAG",
        "LAG BYTES",
        "RECEIVED",
        "CHECKPOINT",
        "CONFIRMED",
        "SLOT (WAL)",
        "ROWS",
        "LOADS OK/RETRY/FAIL",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect::<Vec<_>>()];
    for p in &resp.pipelines {
        rows.push(vec![
            p.job_id.clone(),
            stage_name(p.stage).to_owned(),
            if p.last_commit_unix_ms > 0 {
                human_ms(p.lag_ms)
            } else {
                "-".into()
            },
            human_bytes(p.lag_bytes),
            lsn_text(&p.received_lsn),
            lsn_text(&p.checkpoint_lsn),
            lsn_text(&p.confirmed_lsn),
            slot_text(p),
            p.rows_loaded.to_string(),
            format!("{}/{}/{}", p.loads_ok, p.loads_retried, p.loads_failed),
        ]);
    }
    out.push('\n');
    out.push_str(&table(&rows));
    for p in &resp.pipelines {
        let mut lines = Vec::new();
        if !p.tables.is_empty() {
            let mut t = vec![vec![
                "  TABLE".to_owned(),
                "INSERTS".to_owned(),
                "UPDATES".to_owned(),
                "DELETES".to_owned(),
                "TRUNCATES".to_owned(),
            ]];
            for r in &p.tables {
                t.push(vec![
                    format!("  {}", r.table),
                    r.inserts.to_string(),
                    r.updates.to_string(),
                    r.deletes.to_string(),
                    r.truncates.to_string(),
                ]);
            }
            lines.push(table(&t));
        }
        if let Some(s) = &p.slot_status {
            if !s.known && !s.error.is_empty() {
                lines.push(format!("  slot: unknown ({})\n", s.error));
            }
        }
        if !p.lease_holder.is_empty() {
            let left = p.lease_expires_unix_ms.saturating_sub(now_ms);
            lines.push(format!(
                "  lease: {} (epoch {}, expires in {})\n",
                p.lease_holder,
                p.lease_epoch,
                human_ms(u64::try_from(left).unwrap_or(0))
            ));
        }
        if let Some(e) = &p.last_error {
            let ago = u64::try_from(now_ms.saturating_sub(e.unix_ms)).unwrap_or(0);
            lines.push(format!(
                "  last error ({} ago): {}\n",
                human_ms(ago),
                e.message
            ));
        }
        if !lines.is_empty() {
            out.push_str(&format!("\n{}:\n", p.job_id));
            for l in lines {
                out.push_str(&l);
            }
        }
    }
    out
}

#[derive(Serialize)]
struct LsnJson {
    value: u64,
    text: String,
}

fn lsn_json(l: &Option<pb::Lsn>) -> Option<LsnJson> {
    l.as_ref().map(|l| LsnJson {
        value: l.value,
        text: l.text.clone(),
    })
}

#[derive(Serialize)]
struct SlotJson {
    known: bool,
    missing: bool,
    wal_status: String,
    retained_wal_bytes: u64,
    active: bool,
    restart_lsn: Option<LsnJson>,
    confirmed_flush_lsn: Option<LsnJson>,
    checked_unix_ms: i64,
    error: String,
}

#[derive(Serialize)]
struct TableJson {
    table: String,
    inserts: u64,
    updates: u64,
    deletes: u64,
    truncates: u64,
}

#[derive(Serialize)]
struct ErrorJson {
    message: String,
    unix_ms: i64,
}

#[derive(Serialize)]
struct PipelineJson {
    job_id: String,
    stage: &'static str,
    paused: bool,
    slot: String,
    publication: String,
    received_lsn: Option<LsnJson>,
    flushed_lsn: Option<LsnJson>,
    checkpoint_lsn: Option<LsnJson>,
    confirmed_lsn: Option<LsnJson>,
    server_wal_lsn: Option<LsnJson>,
    lag_bytes: u64,
    lag_ms: u64,
    last_commit_unix_ms: i64,
    slot_status: Option<SlotJson>,
    tables: Vec<TableJson>,
    events: u64,
    bytes: u64,
    transactions: u64,
    batches: u64,
    rows_loaded: u64,
    loads_ok: u64,
    loads_retried: u64,
    loads_failed: u64,
    last_error: Option<ErrorJson>,
    uptime_seconds: u64,
    lease_holder: String,
    lease_epoch: i64,
    lease_expires_unix_ms: i64,
}

#[derive(Serialize)]
struct StatusJson {
    version: String,
    uptime_seconds: u64,
    pipelines: Vec<PipelineJson>,
}

/// The `dbmazz status --json` document (stable field names, stages as text).
pub fn status_json(resp: &pb::ListPipelinesResponse) -> Result<String, ClientError> {
    let doc = StatusJson {
        version: resp.version.clone(),
        uptime_seconds: resp.uptime_seconds,
        pipelines: resp
            .pipelines
            .iter()
            .map(|p| PipelineJson {
                job_id: p.job_id.clone(),
                stage: stage_name(p.stage),
                paused: p.paused,
                slot: p.slot.clone(),
                publication: p.publication.clone(),
                received_lsn: lsn_json(&p.received_lsn),
                flushed_lsn: lsn_json(&p.flushed_lsn),
                checkpoint_lsn: lsn_json(&p.checkpoint_lsn),
                confirmed_lsn: lsn_json(&p.confirmed_lsn),
                server_wal_lsn: lsn_json(&p.server_wal_lsn),
                lag_bytes: p.lag_bytes,
                lag_ms: p.lag_ms,
                last_commit_unix_ms: p.last_commit_unix_ms,
                slot_status: p.slot_status.as_ref().map(|s| SlotJson {
                    known: s.known,
                    missing: s.missing,
                    wal_status: s.wal_status.clone(),
                    retained_wal_bytes: s.retained_wal_bytes,
                    active: s.active,
                    restart_lsn: lsn_json(&s.restart_lsn),
                    confirmed_flush_lsn: lsn_json(&s.confirmed_flush_lsn),
                    checked_unix_ms: s.checked_unix_ms,
                    error: s.error.clone(),
                }),
                tables: p
                    .tables
                    .iter()
                    .map(|t| TableJson {
                        table: t.table.clone(),
                        inserts: t.inserts,
                        updates: t.updates,
                        deletes: t.deletes,
                        truncates: t.truncates,
                    })
                    .collect(),
                events: p.events,
                bytes: p.bytes,
                transactions: p.transactions,
                batches: p.batches,
                rows_loaded: p.rows_loaded,
                loads_ok: p.loads_ok,
                loads_retried: p.loads_retried,
                loads_failed: p.loads_failed,
                last_error: p.last_error.as_ref().map(|e| ErrorJson {
                    message: e.message.clone(),
                    unix_ms: e.unix_ms,
                }),
                uptime_seconds: p.uptime_seconds,
                lease_holder: p.lease_holder.clone(),
                lease_epoch: p.lease_epoch,
                lease_expires_unix_ms: p.lease_expires_unix_ms,
            })
            .collect(),
    };
    sonic_rs::to_string_pretty(&doc).map_err(|e| ClientError::Json(e.to_string()))
}

/// Text for a control response.
pub fn render_control(
    action: ControlAction,
    resp: &pb::ControlResponse,
    waited: bool,
) -> ControlOutcome {
    if resp.pipelines.is_empty() {
        return ControlOutcome {
            text: format!("{}: no pipeline runs in this worker\n", action.verb()),
            ok: true,
        };
    }
    let mut ok = true;
    let mut text = String::new();
    for r in &resp.pipelines {
        let state = if !waited {
            format!(
                "requested ({} → {})",
                stage_name(r.stage_before),
                action.goal()
            )
        } else if r.reached {
            format!("{} → {}", stage_name(r.stage_before), stage_name(r.stage))
        } else {
            ok = false;
            format!(
                "NOT {} within the wait: now {}",
                action.goal(),
                stage_name(r.stage)
            )
        };
        text.push_str(&format!(
            "{} {}: {} (checkpoint {}, confirmed {})\n",
            action.verb(),
            r.job_id,
            state,
            lsn_text(&r.checkpoint_lsn),
            lsn_text(&r.confirmed_lsn)
        ));
    }
    ControlOutcome { text, ok }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dial_uri_handles_bind_addresses_and_schemes() {
        assert_eq!(
            dial_uri("127.0.0.1:50051", false).ok(),
            Some("http://127.0.0.1:50051".into())
        );
        assert_eq!(
            dial_uri("0.0.0.0:50051", false).ok(),
            Some("http://127.0.0.1:50051".into())
        );
        assert_eq!(
            dial_uri("[::]:1", true).ok(),
            Some("https://[::1]:1".into())
        );
        assert_eq!(
            dial_uri("https://h:1/", false).ok(),
            Some("https://h:1".into())
        );
        assert!(dial_uri("ftp://h:1", false).is_err());
        assert!(dial_uri("", false).is_err());
    }

    #[test]
    fn human_units() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(16 * 1024 * 1024), "16.0 MiB");
        assert_eq!(human_ms(850), "850ms");
        assert_eq!(human_ms(3200), "3.2s");
        assert_eq!(human_ms(312_000), "5m12s");
        assert_eq!(human_ms(7_380_000), "2h03m");
        assert_eq!(human_ms(90_000_000), "1d01h");
    }

    fn sample() -> pb::ListPipelinesResponse {
        pb::ListPipelinesResponse {
            version: "0.1.0".into(),
            uptime_seconds: 7380,
            pipelines: vec![pb::PipelineStatus {
                job_id: "orders".into(),
                stage: pb::Stage::Failed as i32,
                slot: "dbmazz_orders".into(),
                received_lsn: Some(crate::grpc::view::lsn_pb(0x1_0000_0010)),
                slot_status: Some(pb::SlotStatus {
                    known: true,
                    wal_status: "reserved".into(),
                    retained_wal_bytes: 2048,
                    ..Default::default()
                }),
                tables: vec![pb::TableRows {
                    table: "public.orders".into(),
                    inserts: 10,
                    ..Default::default()
                }],
                last_error: Some(pb::ErrorInfo {
                    message: "Table 'public.orders' has no primary key.".into(),
                    unix_ms: 1_000,
                }),
                ..Default::default()
            }],
        }
    }

    #[test]
    fn table_shows_every_pipeline_and_its_error() {
        let t = render_status_table(&sample(), 13_000);
        assert!(t.contains("orders"), "{t}");
        assert!(t.contains("FAILED"), "{t}");
        assert!(t.contains("1/10"), "{t}");
        assert!(t.contains("dbmazz_orders (reserved, 2.0 KiB)"), "{t}");
        assert!(t.contains("public.orders"), "{t}");
        assert!(
            t.contains("last error (12.0s ago): Table 'public.orders' has no primary key."),
            "{t}"
        );
    }

    #[test]
    fn json_is_parseable_with_text_stages() {
        let j = status_json(&sample()).expect("json");
        let v: sonic_rs::Value = sonic_rs::from_str(&j).expect("parse");
        use sonic_rs::JsonValueTrait;
        assert_eq!(v["pipelines"][0]["stage"].as_str(), Some("FAILED"));
        assert_eq!(
            v["pipelines"][0]["received_lsn"]["text"].as_str(),
            Some("1/10")
        );
        assert_eq!(v["pipelines"][0]["tables"][0]["inserts"].as_u64(), Some(10));
    }

    #[test]
    fn control_text_reports_unreached_goals() {
        let resp = pb::ControlResponse {
            pipelines: vec![pb::ControlResult {
                job_id: "a".into(),
                stage_before: pb::Stage::Cdc as i32,
                stage: pb::Stage::Draining as i32,
                reached: false,
                ..Default::default()
            }],
        };
        let o = render_control(ControlAction::Drain, &resp, true);
        assert!(!o.ok);
        assert!(o.text.contains("NOT STOPPED"), "{}", o.text);
        let o = render_control(ControlAction::Drain, &resp, false);
        assert!(o.ok);
    }
}
