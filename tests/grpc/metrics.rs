//! MetricsService.StreamMetrics and the Prometheus endpoint over real sockets:
//! snapshots follow the counters, the exposition parses with a Prometheus text
//! parser and agrees with StatusService, and every metric is documented.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::server::{http_get, settings, Server};
use dbmazz::engine::status::Stage;
use dbmazz::grpc::pb;
use dbmazz::grpc::pb::metrics_service_client::MetricsServiceClient;
use dbmazz::grpc::pb::status_service_client::StatusServiceClient;
use dbmazz::grpc::prometheus as prom;
use dbmazz::lsn::Lsn;
use dbmazz::sink::metrics::TableCounters;
use tokio_stream::StreamExt;
use tonic::Code;

async fn next_snapshot(s: &mut tonic::Streaming<pb::MetricsSnapshot>) -> pb::MetricsSnapshot {
    tokio::time::timeout(Duration::from_secs(5), s.next())
        .await
        .expect("a snapshot within 5 s")
        .expect("stream open")
        .expect("snapshot")
}

#[tokio::test]
async fn stream_metrics_snapshots_follow_the_work_done() {
    let srv = Server::start(settings()).await;
    let h = srv.add("orders", Stage::Cdc);
    let other = srv.add("other", Stage::Cdc);
    other
        .state
        .pipeline
        .events
        .store(1_000_000, Ordering::Relaxed);
    let mut client = MetricsServiceClient::new(srv.channel().await);
    let mut stream = client
        .stream_metrics(pb::StreamMetricsRequest {
            interval_ms: 100,
            job_id: "orders".into(),
        })
        .await
        .expect("StreamMetrics")
        .into_inner();

    let first = next_snapshot(&mut stream).await;
    assert_eq!(first.pipelines.len(), 1, "filtered to the requested job");
    let p = &first.pipelines[0];
    assert_eq!(
        (p.job_id.as_str(), p.events_total, p.bytes_total),
        ("orders", 0, 0)
    );
    assert_eq!(p.stage, pb::Stage::Cdc as i32);
    let proc_ = first.process.expect("process metrics");
    assert!(
        proc_.available && proc_.rss_bytes > 0 && proc_.threads > 0,
        "{proc_:?}"
    );

    // Work happens in three steps; each snapshot shows the totals reached so far.
    let s = &h.state;
    let mut seen = Vec::new();
    for step in 1..=3u64 {
        s.pipeline.events.fetch_add(500, Ordering::Relaxed);
        s.bytes.fetch_add(64_000, Ordering::Relaxed);
        s.batches.fetch_add(2, Ordering::Relaxed);
        s.pipeline.transactions.fetch_add(10, Ordering::Relaxed);
        s.sink.rows_loaded.fetch_add(400, Ordering::Relaxed);
        s.sink.loads_ok.fetch_add(3, Ordering::Relaxed);
        s.pipeline.server_wal_lsn.raise(Lsn(step * 10_000));
        loop {
            let snap = next_snapshot(&mut stream).await;
            let p = snap.pipelines[0].clone();
            if p.events_total == 500 * step {
                assert_eq!(p.bytes_total, 64_000 * step);
                assert_eq!(p.batches_total, 2 * step);
                assert_eq!(p.transactions_total, 10 * step);
                assert_eq!(p.rows_loaded_total, 400 * step);
                assert_eq!(p.loads_ok_total, 3 * step);
                assert_eq!(p.lag_bytes, step * 10_000);
                assert!(snap.period_ms >= 50, "period {}", snap.period_ms);
                // The rate covers this snapshot's period.
                let expected = 500.0 / (snap.period_ms as f64 / 1000.0);
                assert!(
                    (p.events_per_second - expected).abs() <= expected * 0.05,
                    "events/s {} vs {expected}",
                    p.events_per_second
                );
                assert!(p.bytes_per_second > 0.0 && p.batches_per_second > 0.0);
                seen.push(p);
                break;
            }
            assert_eq!(p.events_total, 500 * (step - 1), "no counter jumps ahead");
        }
    }
    assert_eq!(seen.len(), 3);

    // All pipelines when no job is named; rates are zero while idle.
    let mut all = client
        .stream_metrics(pb::StreamMetricsRequest {
            interval_ms: 100,
            job_id: String::new(),
        })
        .await
        .expect("StreamMetrics all")
        .into_inner();
    next_snapshot(&mut all).await;
    let snap = next_snapshot(&mut all).await;
    let by_job: HashMap<_, _> = snap
        .pipelines
        .iter()
        .map(|p| (p.job_id.as_str(), p))
        .collect();
    assert_eq!(by_job["other"].events_total, 1_000_000);
    assert_eq!(by_job["other"].events_per_second, 0.0);
    assert_eq!(by_job["orders"].events_total, 1500);

    for (interval_ms, code) in [
        (50, Code::InvalidArgument),
        (3_600_001, Code::InvalidArgument),
    ] {
        let e = client
            .stream_metrics(pb::StreamMetricsRequest {
                interval_ms,
                job_id: String::new(),
            })
            .await
            .expect_err("interval out of range");
        assert_eq!(e.code(), code);
        assert!(e.message().contains("100..=3600000"), "{}", e.message());
    }
    let e = client
        .stream_metrics(pb::StreamMetricsRequest {
            interval_ms: 0,
            job_id: "nope".into(),
        })
        .await
        .expect_err("unknown job");
    assert_eq!(e.code(), Code::NotFound);
}

fn sample_value(v: &prometheus_parse::Value) -> f64 {
    match v {
        prometheus_parse::Value::Counter(x)
        | prometheus_parse::Value::Gauge(x)
        | prometheus_parse::Value::Untyped(x) => *x,
        other => panic!("unexpected sample kind {other:?}"),
    }
}

/// Every metric name constant of `dbmazz::grpc::prometheus`.
const ALL_METRICS: &[&str] = &[
    prom::PIPELINES,
    prom::UPTIME_SECONDS,
    prom::PIPELINE_STAGE,
    prom::PIPELINE_SERVING,
    prom::PIPELINE_PAUSED,
    prom::PIPELINE_UPTIME_SECONDS,
    prom::EVENTS_TOTAL,
    prom::RECEIVED_BYTES_TOTAL,
    prom::TRANSACTIONS_TOTAL,
    prom::BATCHES_TOTAL,
    prom::ROWS_LOADED_TOTAL,
    prom::LOADS_OK_TOTAL,
    prom::LOADS_RETRIED_TOTAL,
    prom::LOADS_FAILED_TOTAL,
    prom::TABLE_INSERTS_TOTAL,
    prom::TABLE_UPDATES_TOTAL,
    prom::TABLE_DELETES_TOTAL,
    prom::TABLE_TRUNCATES_TOTAL,
    prom::RECEIVED_LSN,
    prom::FLUSHED_LSN,
    prom::CHECKPOINT_LSN,
    prom::CONFIRMED_LSN,
    prom::SERVER_WAL_LSN,
    prom::LAG_BYTES,
    prom::LAG_SECONDS,
    prom::LAST_COMMIT_TIMESTAMP_SECONDS,
    prom::LAST_ERROR_TIMESTAMP_SECONDS,
    prom::LEASE_EPOCH,
    prom::LEASE_EXPIRES_TIMESTAMP_SECONDS,
    prom::SLOT_INSPECTION_OK,
    prom::SLOT_WAL_STATUS,
    prom::SLOT_RETAINED_WAL_BYTES,
    prom::SLOT_ACTIVE,
    prom::PROCESS_RESIDENT_MEMORY_BYTES,
    prom::PROCESS_CPU_SECONDS_TOTAL,
    prom::PROCESS_THREADS,
];

#[tokio::test]
async fn prometheus_scrape_parses_and_agrees_with_status() {
    let srv = Server::start(settings()).await;
    let h = srv.add("orders", Stage::Cdc);
    let s = &h.state;
    s.pipeline.received_lsn.raise(Lsn(0x2_0000_1000));
    s.flushed_lsn.raise(Lsn(0x2_0000_0F00));
    s.checkpoint_lsn.raise(Lsn(0x2_0000_0F00));
    s.confirmed_lsn.raise(Lsn(0x2_0000_0E00));
    s.pipeline.server_wal_lsn.raise(Lsn(0x2_0000_2000));
    s.pipeline.events.store(4321, Ordering::Relaxed);
    s.bytes.store(765_432, Ordering::Relaxed);
    s.pipeline.transactions.store(55, Ordering::Relaxed);
    s.batches.store(9, Ordering::Relaxed);
    s.sink.rows_loaded.store(3000, Ordering::Relaxed);
    s.sink.loads_ok.store(18, Ordering::Relaxed);
    s.sink.loads_retried.store(4, Ordering::Relaxed);
    s.sink.loads_failed.store(1, Ordering::Relaxed);
    s.set_lease(
        "worker-a",
        3,
        1_900_000_000_500,
        std::time::Instant::now() + std::time::Duration::from_secs(600),
    );
    s.last_commit_unix_us
        .store(dbmazz::clock::unix_micros() - 2_000_000, Ordering::Relaxed);
    s.sink.add_table_counts(
        "public.orders",
        &TableCounters {
            inserts: 2000,
            updates: 700,
            deletes: 300,
            truncates: 0,
        },
    );
    // A table name that needs escaping in a label value.
    s.sink.add_table_counts(
        "public.\"odd\\name\"",
        &TableCounters {
            inserts: 1,
            ..TableCounters::default()
        },
    );
    s.record_error("first load timed out; retried");
    let failed = srv.add("billing", Stage::Failed);
    failed
        .state
        .record_error("Table 'public.billing' not found in PostgreSQL.");
    h.set_paused(false);

    let metrics = srv.metrics.expect("metrics endpoint");
    let (code, head, body) = http_get(metrics, "GET", "/metrics", None).await;
    assert_eq!(code, 200, "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    let status = StatusServiceClient::new(srv.channel().await)
        .get_status(pb::GetStatusRequest {
            job_id: "orders".into(),
        })
        .await
        .expect("GetStatus")
        .into_inner();

    let scrape = prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_owned())))
        .expect("the exposition parses");
    let get = |name: &str, job: &str, table: Option<&str>| -> Option<f64> {
        scrape
            .samples
            .iter()
            .find(|s| {
                s.metric == name
                    && s.labels.get("job") == Some(job)
                    && s.labels.get("table") == table
            })
            .map(|s| sample_value(&s.value))
    };
    let orders = |name: &str| get(name, "orders", None).unwrap_or_else(|| panic!("{name} missing"));
    let lsn = |l: &Option<pb::Lsn>| l.as_ref().expect("lsn").value as f64;
    assert_eq!(orders(prom::EVENTS_TOTAL), status.events as f64);
    assert_eq!(orders(prom::RECEIVED_BYTES_TOTAL), status.bytes as f64);
    assert_eq!(orders(prom::TRANSACTIONS_TOTAL), status.transactions as f64);
    assert_eq!(orders(prom::BATCHES_TOTAL), status.batches as f64);
    assert_eq!(orders(prom::ROWS_LOADED_TOTAL), status.rows_loaded as f64);
    assert_eq!(orders(prom::LOADS_OK_TOTAL), status.loads_ok as f64);
    assert_eq!(
        orders(prom::LOADS_RETRIED_TOTAL),
        status.loads_retried as f64
    );
    assert_eq!(orders(prom::LOADS_FAILED_TOTAL), status.loads_failed as f64);
    assert_eq!(orders(prom::RECEIVED_LSN), lsn(&status.received_lsn));
    assert_eq!(orders(prom::FLUSHED_LSN), lsn(&status.flushed_lsn));
    assert_eq!(orders(prom::CHECKPOINT_LSN), lsn(&status.checkpoint_lsn));
    assert_eq!(orders(prom::CONFIRMED_LSN), lsn(&status.confirmed_lsn));
    assert_eq!(orders(prom::SERVER_WAL_LSN), lsn(&status.server_wal_lsn));
    assert_eq!(orders(prom::LAG_BYTES), status.lag_bytes as f64);
    let lag_s = orders(prom::LAG_SECONDS);
    assert!(
        (lag_s - status.lag_ms as f64 / 1000.0).abs() < 1.0,
        "{lag_s} vs {}",
        status.lag_ms
    );
    assert_eq!(
        orders(prom::LAST_COMMIT_TIMESTAMP_SECONDS).floor(),
        (status.last_commit_unix_ms / 1000) as f64
    );
    let err_ts = orders(prom::LAST_ERROR_TIMESTAMP_SECONDS);
    let err_ms = status.last_error.as_ref().expect("error").unix_ms;
    assert!((err_ts - err_ms as f64 / 1000.0).abs() < 0.001);
    assert_eq!(orders(prom::LEASE_EPOCH), status.lease_epoch as f64);
    assert_eq!(status.lease_holder, "worker-a");
    assert_eq!(status.lease_expires_unix_ms, 1_900_000_000_500);
    assert_eq!(
        orders(prom::LEASE_EXPIRES_TIMESTAMP_SECONDS),
        status.lease_expires_unix_ms as f64 / 1000.0
    );
    assert_eq!(orders(prom::PIPELINE_STAGE), pb::Stage::Cdc as i32 as f64);
    assert_eq!(orders(prom::PIPELINE_SERVING), 1.0);
    assert_eq!(orders(prom::PIPELINE_PAUSED), 0.0);
    assert_eq!(get(prom::PIPELINE_SERVING, "billing", None), Some(0.0));
    assert_eq!(
        get(prom::PIPELINE_STAGE, "billing", None),
        Some(pb::Stage::Failed as i32 as f64)
    );
    // Without a slot inspector the slot is unknown: no retained-WAL sample at all.
    assert_eq!(orders(prom::SLOT_INSPECTION_OK), 0.0);
    assert_eq!(orders(prom::SLOT_WAL_STATUS), 0.0);
    assert_eq!(get(prom::SLOT_RETAINED_WAL_BYTES, "orders", None), None);
    assert_eq!(status.tables.len(), 2);
    let plain = status
        .tables
        .iter()
        .find(|t| t.table == "public.orders")
        .expect("public.orders");
    let table = Some("public.orders");
    assert_eq!(
        get(prom::TABLE_INSERTS_TOTAL, "orders", table),
        Some(plain.inserts as f64)
    );
    assert_eq!(
        get(prom::TABLE_UPDATES_TOTAL, "orders", table),
        Some(plain.updates as f64)
    );
    assert_eq!(
        get(prom::TABLE_DELETES_TOTAL, "orders", table),
        Some(plain.deletes as f64)
    );
    assert_eq!(
        get(prom::TABLE_TRUNCATES_TOTAL, "orders", table),
        Some(plain.truncates as f64)
    );
    // prometheus-parse does not unescape label values, so check the escaped form in
    // the text itself: backslash and double quote are escaped as the format says.
    assert!(
        body.contains(r#"dbmazz_table_inserts_total{job="orders",table="public.\"odd\\name\""} 1"#),
        "{body}"
    );
    let pipelines = scrape
        .samples
        .iter()
        .find(|s| s.metric == prom::PIPELINES)
        .expect("pipelines");
    assert_eq!(sample_value(&pipelines.value), 2.0);
    let rss = scrape
        .samples
        .iter()
        .find(|s| s.metric == prom::PROCESS_RESIDENT_MEMORY_BYTES)
        .expect("rss");
    assert!(sample_value(&rss.value) > 1e6);

    // Only the job and table labels, and every metric documented.
    for s in &scrape.samples {
        for (k, _) in s.labels.iter() {
            assert!(k == "job" || k == "table", "label {k} on {}", s.metric);
        }
    }
    let docs = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/metrics.md"))
        .expect("docs/metrics.md");
    for name in ALL_METRICS {
        assert!(
            docs.contains(&format!("`{name}`")),
            "{name} is not documented"
        );
        assert!(
            body.contains(&format!("# TYPE {name} ")),
            "{name} is not exposed"
        );
    }
    let exposed: std::collections::BTreeSet<&str> = body
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(
        exposed.len(),
        ALL_METRICS.len(),
        "a metric without a constant: {exposed:?}"
    );

    // Other paths and methods.
    let (code, _, body) = http_get(metrics, "GET", "/", None).await;
    assert_eq!(code, 404);
    assert!(body.contains("/metrics"));
    let (code, head, _) = http_get(metrics, "POST", "/metrics", None).await;
    assert_eq!(code, 405);
    assert!(
        head.to_ascii_lowercase().contains("allow: get, head"),
        "{head}"
    );
    let (code, _, body) = http_get(metrics, "HEAD", "/metrics", None).await;
    assert_eq!(code, 200);
    assert!(body.is_empty());
}

#[tokio::test]
async fn metrics_endpoint_stops_with_the_server() {
    let srv = Server::start(settings()).await;
    let metrics = srv.metrics.expect("metrics endpoint");
    let (code, _, _) = http_get(metrics, "GET", "/metrics", None).await;
    assert_eq!(code, 200);
    srv.shutdown().await.expect("clean stop");
    let refused = tokio::net::TcpStream::connect(metrics).await;
    assert!(
        refused.is_err(),
        "the metrics port is closed after shutdown"
    );
}
