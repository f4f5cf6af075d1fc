//! Prometheus text exposition (format 0.0.4) on `GET /metrics`.
//!
//! The figures are the ones `StatusService` reports, read from the same
//! [`SharedState`](crate::engine::status::SharedState) at scrape time; nothing is
//! accumulated here, so a scrape costs a few atomic loads per pipeline plus a
//! cached slot inspection. Labels are `job` and, for per-table counters, `table`:
//! nothing else, so the number of series stays bounded by the configuration.
//! Every metric is documented in `docs/metrics.md`.
//!
//! The HTTP side is a bare hyper HTTP/1 server: one route, a header read
//! timeout against idle connections, a cap on concurrent connections, and the same
//! optional bearer token as the read-only gRPC services.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW, AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::grpc::auth::TokenGuard;
use crate::grpc::process;
use crate::grpc::services::Context;
use crate::grpc::slot::SlotReport;
use crate::grpc::view;

/// Pipelines registered in this worker.
pub const PIPELINES: &str = "dbmazz_pipelines";
/// Seconds since the control plane started.
pub const UPTIME_SECONDS: &str = "dbmazz_uptime_seconds";
/// Stage code of a pipeline (the `dbmazz.v1.Stage` numbers).
pub const PIPELINE_STAGE: &str = "dbmazz_pipeline_stage";
/// 1 while a pipeline streams or is paused on purpose.
pub const PIPELINE_SERVING: &str = "dbmazz_pipeline_serving";
/// 1 while an operator's pause is in force.
pub const PIPELINE_PAUSED: &str = "dbmazz_pipeline_paused";
/// Seconds since the pipeline was registered.
pub const PIPELINE_UPTIME_SECONDS: &str = "dbmazz_pipeline_uptime_seconds";
/// pgoutput messages received.
pub const EVENTS_TOTAL: &str = "dbmazz_events_total";
/// WAL payload bytes received.
pub const RECEIVED_BYTES_TOTAL: &str = "dbmazz_received_bytes_total";
/// Transactions received.
pub const TRANSACTIONS_TOTAL: &str = "dbmazz_transactions_total";
/// Batches loaded and checkpointed.
pub const BATCHES_TOTAL: &str = "dbmazz_batches_total";
/// Rows sent to StarRocks.
pub const ROWS_LOADED_TOTAL: &str = "dbmazz_rows_loaded_total";
/// Stream Loads that succeeded.
pub const LOADS_OK_TOTAL: &str = "dbmazz_loads_ok_total";
/// Stream Load attempts retried.
pub const LOADS_RETRIED_TOTAL: &str = "dbmazz_loads_retried_total";
/// Stream Loads that failed for good.
pub const LOADS_FAILED_TOTAL: &str = "dbmazz_loads_failed_total";
/// Inserted rows loaded, per table.
pub const TABLE_INSERTS_TOTAL: &str = "dbmazz_table_inserts_total";
/// Updated rows loaded, per table.
pub const TABLE_UPDATES_TOTAL: &str = "dbmazz_table_updates_total";
/// Deleted rows loaded, per table.
pub const TABLE_DELETES_TOTAL: &str = "dbmazz_table_deletes_total";
/// Truncates applied, per table.
pub const TABLE_TRUNCATES_TOTAL: &str = "dbmazz_table_truncates_total";
/// End of the last message received.
pub const RECEIVED_LSN: &str = "dbmazz_received_lsn";
/// End of the last transaction acknowledged by StarRocks.
pub const FLUSHED_LSN: &str = "dbmazz_flushed_lsn";
/// Position recorded in `dbmazz_checkpoints`.
pub const CHECKPOINT_LSN: &str = "dbmazz_checkpoint_lsn";
/// Flush position last reported to PostgreSQL.
pub const CONFIRMED_LSN: &str = "dbmazz_confirmed_lsn";
/// Server WAL position last seen.
pub const SERVER_WAL_LSN: &str = "dbmazz_server_wal_lsn";
/// Server WAL position minus confirmed LSN.
pub const LAG_BYTES: &str = "dbmazz_replication_lag_bytes";
/// Now minus the commit time of the last acknowledged transaction.
pub const LAG_SECONDS: &str = "dbmazz_replication_lag_seconds";
/// Commit time of the last acknowledged transaction.
pub const LAST_COMMIT_TIMESTAMP_SECONDS: &str = "dbmazz_last_commit_timestamp_seconds";
/// Time of the last recorded error (absent when none).
pub const LAST_ERROR_TIMESTAMP_SECONDS: &str = "dbmazz_last_error_timestamp_seconds";
/// Lease epoch the pipeline runs under.
pub const LEASE_EPOCH: &str = "dbmazz_lease_epoch";
/// Lease expiry by the lease backend's clock (absent without a lease).
pub const LEASE_EXPIRES_TIMESTAMP_SECONDS: &str = "dbmazz_lease_expires_timestamp_seconds";
/// 1 when the last slot inspection succeeded.
pub const SLOT_INSPECTION_OK: &str = "dbmazz_slot_inspection_ok";
/// Slot state code: 0 unknown, 1 reserved, 2 extended, 3 unreserved, 4 lost, 5 missing.
pub const SLOT_WAL_STATUS: &str = "dbmazz_slot_wal_status";
/// WAL kept on disk for the slot.
pub const SLOT_RETAINED_WAL_BYTES: &str = "dbmazz_slot_retained_wal_bytes";
/// 1 when a walsender is attached to the slot.
pub const SLOT_ACTIVE: &str = "dbmazz_slot_active";
/// Resident memory of the process.
pub const PROCESS_RESIDENT_MEMORY_BYTES: &str = "process_resident_memory_bytes";
/// CPU seconds used by the process.
pub const PROCESS_CPU_SECONDS_TOTAL: &str = "process_cpu_seconds_total";
/// Threads of the process.
pub const PROCESS_THREADS: &str = "process_threads";

/// Content type of the exposition.
pub const CONTENT_TYPE_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Code of a slot's `wal_status` for [`SLOT_WAL_STATUS`].
pub fn wal_status_code(report: &SlotReport) -> u8 {
    match &report.result {
        Ok(info) if !info.exists => 5,
        Ok(info) => match info.wal_status.as_deref() {
            Some("reserved") => 1,
            Some("extended") => 2,
            Some("unreserved") => 3,
            Some("lost") => 4,
            _ => 0,
        },
        Err(_) => 0,
    }
}

/// Escapes a label value (backslash, double quote, line feed).
fn escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Builds the text, one family after another.
struct Text {
    out: String,
}

impl Text {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape(v));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }
}

struct Row<'a> {
    h: &'a crate::engine::PipelineHandle,
    slot: SlotReport,
}

/// Renders every metric for the pipelines of `ctx`.
pub async fn render(ctx: &Context) -> String {
    let pipes = ctx.pipelines.all();
    let reports = futures_util::future::join_all(
        pipes
            .iter()
            .map(|h| ctx.slots.get(&h.state.job_id, &h.state.slot)),
    )
    .await;
    let rows: Vec<Row<'_>> = pipes
        .iter()
        .zip(reports)
        .map(|(h, slot)| Row { h, slot })
        .collect();
    let mut t = Text {
        out: String::with_capacity(4096 + rows.len() * 4096),
    };

    t.family(PIPELINES, "gauge", "Pipelines registered in this worker.");
    t.sample(PIPELINES, &[], rows.len());
    t.family(
        UPTIME_SECONDS,
        "gauge",
        "Seconds since the control plane started.",
    );
    t.sample(UPTIME_SECONDS, &[], ctx.started.elapsed().as_secs_f64());

    type Gauge = fn(&Row<'_>) -> Option<String>;
    let per_job: &[(&str, &str, &str, Gauge)] = &[
        (PIPELINE_STAGE, "gauge", "Stage code of the pipeline: 1 INIT, 2 SETUP, 3 CDC, 4 PAUSED, 5 DRAINING, 6 STOPPED, 7 FAILED.",
            |r| Some((view::stage_pb(r.h.state.stage()) as i32).to_string())),
        (PIPELINE_SERVING, "gauge", "1 while the pipeline streams (CDC) or is paused on purpose, else 0.",
            |r| Some(u8::from(view::is_serving(r.h.state.stage())).to_string())),
        (PIPELINE_PAUSED, "gauge", "1 while an operator's pause is in force.",
            |r| Some(u8::from(r.h.is_paused()).to_string())),
        (PIPELINE_UPTIME_SECONDS, "gauge", "Seconds since the pipeline was registered.",
            |r| Some(r.h.state.uptime().as_secs_f64().to_string())),
        (EVENTS_TOTAL, "counter", "pgoutput messages received from PostgreSQL.",
            |r| Some(r.h.state.pipeline.events.load(Ordering::Relaxed).to_string())),
        (RECEIVED_BYTES_TOTAL, "counter", "WAL payload bytes received from PostgreSQL.",
            |r| Some(r.h.state.bytes.load(Ordering::Relaxed).to_string())),
        (TRANSACTIONS_TOTAL, "counter", "Transactions received from PostgreSQL.",
            |r| Some(r.h.state.pipeline.transactions.load(Ordering::Relaxed).to_string())),
        (BATCHES_TOTAL, "counter", "Batches loaded into StarRocks and checkpointed.",
            |r| Some(r.h.state.batches.load(Ordering::Relaxed).to_string())),
        (ROWS_LOADED_TOTAL, "counter", "Rows sent to StarRocks (after folding changes to the same key).",
            |r| Some(r.h.state.sink.rows_loaded.load(Ordering::Relaxed).to_string())),
        (LOADS_OK_TOTAL, "counter", "Stream Load requests that succeeded.",
            |r| Some(r.h.state.sink.loads_ok.load(Ordering::Relaxed).to_string())),
        (LOADS_RETRIED_TOTAL, "counter", "Stream Load attempts that were retried.",
            |r| Some(r.h.state.sink.loads_retried.load(Ordering::Relaxed).to_string())),
        (LOADS_FAILED_TOTAL, "counter", "Stream Load requests that failed for good.",
            |r| Some(r.h.state.sink.loads_failed.load(Ordering::Relaxed).to_string())),
        (RECEIVED_LSN, "gauge", "End LSN of the last message received (as a number).",
            |r| Some(r.h.state.pipeline.received_lsn.get().0.to_string())),
        (FLUSHED_LSN, "gauge", "End LSN of the last transaction acknowledged by StarRocks.",
            |r| Some(r.h.state.flushed_lsn.get().0.to_string())),
        (CHECKPOINT_LSN, "gauge", "LSN recorded in dbmazz_checkpoints.",
            |r| Some(r.h.state.checkpoint_lsn.get().0.to_string())),
        (CONFIRMED_LSN, "gauge", "Flush LSN last reported to PostgreSQL.",
            |r| Some(r.h.state.confirmed_lsn.get().0.to_string())),
        (SERVER_WAL_LSN, "gauge", "Server WAL position last seen.",
            |r| Some(r.h.state.pipeline.server_wal_lsn.get().0.to_string())),
        (LAG_BYTES, "gauge", "Server WAL position minus the confirmed LSN, in bytes.",
            |r| Some(r.h.state.lag_bytes().to_string())),
        (LAG_SECONDS, "gauge", "Seconds between now and the commit time of the last acknowledged transaction (0 before the first).",
            |r| Some((r.h.state.lag_ms() as f64 / 1000.0).to_string())),
        (LAST_COMMIT_TIMESTAMP_SECONDS, "gauge", "Commit time of the last acknowledged transaction, Unix seconds (0 before the first).",
            |r| Some((r.h.state.last_commit_unix_us.load(Ordering::Relaxed) as f64 / 1e6).to_string())),
        (LAST_ERROR_TIMESTAMP_SECONDS, "gauge", "Time of the last recorded error, Unix seconds; absent while none is recorded.",
            |r| r.h.state.last_error().map(|e| (view::unix_ms(e.at) as f64 / 1000.0).to_string())),
        (LEASE_EPOCH, "gauge", "Lease epoch (fencing token) the pipeline runs under; 0 without leases.",
            |r| Some(r.h.state.lease_epoch.load(Ordering::Relaxed).to_string())),
        (LEASE_EXPIRES_TIMESTAMP_SECONDS, "gauge", "Expiry of the lease this worker holds for the pipeline, Unix seconds by the lease backend's clock; absent without a lease.",
            |r| r.h.state.holder().map(|_| (r.h.state.lease_expires_unix_ms.load(Ordering::Relaxed) as f64 / 1000.0).to_string())),
        (SLOT_INSPECTION_OK, "gauge", "1 when PostgreSQL answered the last slot inspection, else 0.",
            |r| Some(u8::from(r.slot.result.is_ok()).to_string())),
        (SLOT_WAL_STATUS, "gauge", "Replication slot wal_status: 0 unknown, 1 reserved, 2 extended, 3 unreserved, 4 lost, 5 slot missing.",
            |r| Some(wal_status_code(&r.slot).to_string())),
        (SLOT_RETAINED_WAL_BYTES, "gauge", "WAL kept on the server for the slot (current WAL position minus restart_lsn); absent when unknown.",
            |r| r.slot.result.as_ref().ok().and_then(|i| i.retained_wal_bytes).map(|b| b.to_string())),
        (SLOT_ACTIVE, "gauge", "1 when a walsender is attached to the slot; absent when unknown.",
            |r| r.slot.result.as_ref().ok().filter(|i| i.exists).map(|i| u8::from(i.active).to_string())),
    ];
    for (name, kind, help, get) in per_job {
        t.family(name, kind, help);
        for r in &rows {
            if let Some(v) = get(r) {
                t.sample(name, &[("job", &r.h.state.job_id)], v);
            }
        }
    }

    let tables: Vec<_> = rows
        .iter()
        .map(|r| (r.h.state.job_id.as_str(), r.h.state.sink.table_counts()))
        .collect();
    type TableGet = fn(&crate::sink::metrics::TableCounters) -> u64;
    let per_table: &[(&str, &str, TableGet)] = &[
        (
            TABLE_INSERTS_TOTAL,
            "Inserted rows loaded into StarRocks, per table.",
            |c| c.inserts,
        ),
        (
            TABLE_UPDATES_TOTAL,
            "Updated rows loaded into StarRocks, per table.",
            |c| c.updates,
        ),
        (
            TABLE_DELETES_TOTAL,
            "Deleted rows applied in StarRocks, per table.",
            |c| c.deletes,
        ),
        (
            TABLE_TRUNCATES_TOTAL,
            "TRUNCATEs applied, per table.",
            |c| c.truncates,
        ),
    ];
    for (name, help, get) in per_table {
        t.family(name, "counter", help);
        for (job, counts) in &tables {
            for (table, c) in counts {
                t.sample(name, &[("job", job), ("table", table)], get(c));
            }
        }
    }

    let p = process::sample();
    if p.available {
        t.family(
            PROCESS_RESIDENT_MEMORY_BYTES,
            "gauge",
            "Resident memory size in bytes.",
        );
        t.sample(PROCESS_RESIDENT_MEMORY_BYTES, &[], p.rss_bytes);
        t.family(
            PROCESS_CPU_SECONDS_TOTAL,
            "counter",
            "User and system CPU time spent in seconds.",
        );
        t.sample(PROCESS_CPU_SECONDS_TOTAL, &[], p.cpu_seconds);
        t.family(PROCESS_THREADS, "gauge", "Threads of the process.");
        t.sample(PROCESS_THREADS, &[], p.threads);
    }
    t.out
}

/// Concurrent scrape connections accepted at once.
const MAX_CONNECTIONS: usize = 64;
/// How long a client may take to send its request headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

fn text_response(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

async fn handle(
    req: Request<Incoming>,
    ctx: Arc<Context>,
    guard: TokenGuard,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.uri().path() != "/metrics" {
        return Ok(text_response(
            StatusCode::NOT_FOUND,
            "not found: dbmazz serves Prometheus metrics at /metrics\n",
        ));
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = text_response(StatusCode::METHOD_NOT_ALLOWED, "use GET /metrics\n");
        r.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return Ok(r);
    }
    if let Err(e) = guard.check_header(req.headers().get(AUTHORIZATION).map(|v| v.as_bytes())) {
        let status = match e.code() {
            tonic::Code::PermissionDenied => StatusCode::FORBIDDEN,
            _ => StatusCode::UNAUTHORIZED,
        };
        let mut r = text_response(status, format!("{}\n", e.message()));
        r.headers_mut()
            .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return Ok(r);
    }
    let body = render(&ctx).await;
    let mut r = text_response(StatusCode::OK, body);
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE_TEXT));
    Ok(r)
}

/// Serves `/metrics` on `listener` until `ctx.shutdown` is cancelled; open
/// connections finish their current request.
pub async fn serve(listener: TcpListener, ctx: Arc<Context>, guard: TokenGuard) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let permit = tokio::select! {
            biased;
            _ = ctx.shutdown.cancelled() => break,
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            biased;
            _ = ctx.shutdown.cancelled() => break,
            r = listener.accept() => match r {
                Ok(s) => s,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little, keep serving.
                    tracing::warn!(error = %e, "metrics endpoint: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let ctx = ctx.clone();
        let guard = guard.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let svc_ctx = ctx.clone();
            let svc =
                hyper::service::service_fn(move |req| handle(req, svc_ctx.clone(), guard.clone()));
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT);
            let conn = builder.serve_connection(TokioIo::new(stream), svc);
            tokio::pin!(conn);
            let result = tokio::select! {
                r = conn.as_mut() => r,
                _ = ctx.shutdown.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = result {
                tracing::debug!(peer = %peer, error = %e, "metrics connection ended with an error");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(escape("x\ny"), "x\\ny");
    }
}
