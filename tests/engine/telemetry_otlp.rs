//! OpenTelemetry export over OTLP/gRPC.
//!
//! - What `dbmazz run` itself sends to a collector configured through the standard
//!   `OTEL_*` variables: the real process against the in-test collector, under a real
//!   replication workload. dbmazz creates no span and no OpenTelemetry instrument of
//!   its own yet, so the collector must receive exactly nothing — the test pins that
//!   down and fails as soon as the process sends anything, so whoever adds the first
//!   span or instrument states here what must arrive. It also fails when `run` stops
//!   building the exporter from `OTEL_EXPORTER_OTLP_ENDPOINT` (a malformed endpoint
//!   must stop the run) or when the exporter keeps a drain from ending.
//! - The export pipeline `dbmazz run` installs (`dbmazz::telemetry::init`): resource
//!   attributes, the filter that keeps the exporter's own transport out of the
//!   traces, and the flush at shutdown. dbmazz has no span to carry through it yet,
//!   so this test sends a probe span and metric of its own; it proves the pipeline,
//!   not that dbmazz emits anything.

use std::time::{Duration, Instant};

use dbmazz::config::LogFormat;
use dbmazz::telemetry::{self, Endpoint, OtlpSettings, TelemetrySettings};
use dbmazz_testkit::stack::{JOB, SLOT};
use dbmazz_testkit::{dbmazz_bin, set_var, DbmazzProcess, Job, OtlpCollector, Stack};
use opentelemetry::KeyValue;

const T: Duration = Duration::from_secs(60);

/// Export interval asked of the process: a metric instrument, if dbmazz had one,
/// would be exported several times during the run below.
const METRIC_INTERVAL_MS: u64 = 200;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn run_with_otlp_configured_exports_exactly_what_dbmazz_emits() {
    let collector = OtlpCollector::start().expect("collector");
    let stack = Stack::start().await.expect("start the stack");
    stack.create_kv_table("t").await;
    let mut env = stack.dbmazz_env(&Job::test(&["t"]));
    set_var(&mut env, "OTEL_SERVICE_NAME", "dbmazz-under-test");
    set_var(
        &mut env,
        "OTEL_METRIC_EXPORT_INTERVAL",
        &METRIC_INTERVAL_MS.to_string(),
    );

    // The run reads the endpoint and builds the exporter from it: a malformed one
    // stops the run before anything starts.
    let mut bad = env.clone();
    set_var(&mut bad, "OTEL_EXPORTER_OTLP_ENDPOINT", "http://[::1");
    let mut p = DbmazzProcess::spawn(dbmazz_bin!(), &["run"], &bad).expect("spawn dbmazz");
    let status = p.wait_exit(T).expect("a malformed endpoint stops the run");
    assert_eq!(status.code(), Some(1), "{}", p.log());
    assert!(
        p.log().contains("OTEL_EXPORTER_OTLP_ENDPOINT"),
        "{}",
        p.log()
    );
    assert!(
        stack.confirmed(SLOT).await.is_none(),
        "the run set up a slot"
    );

    set_var(
        &mut env,
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        &collector.endpoint(),
    );
    let mut p = DbmazzProcess::spawn(dbmazz_bin!(), &["run"], &env).expect("spawn dbmazz");
    let start = Instant::now();
    while stack.checkpoint(JOB).await.is_none() {
        assert!(start.elapsed() < T, "no setup within {T:?}\n{}", p.log());
        assert!(p.try_status().is_none(), "dbmazz exited\n{}", p.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Every path a span or metric would come from: setup, loads, checkpoints,
    // confirmations, deletes, and (below) the drain.
    stack
        .source_sql(
            "INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 500) g;
             UPDATE t SET v = 'u' WHERE id % 5 = 0;
             DELETE FROM t WHERE id % 7 = 0;",
        )
        .await;
    stack.wait_equal("t", &["id"], T).await;
    // Several metric export intervals with the pipeline busy, then idle.
    tokio::time::sleep(Duration::from_millis(5 * METRIC_INTERVAL_MS)).await;
    p.sigterm();
    let status = p.wait_exit(T).expect("dbmazz drains and exits");
    assert!(status.success(), "exit {status:?}\n{}", p.log());

    // What dbmazz emits over OTLP today: no span, no metric, so no export request
    // (the SDK sends nothing when it has nothing). When dbmazz gets its spans and
    // instruments, list here what must reach the collector.
    let spans: Vec<String> = collector.spans().into_iter().map(|s| s.name).collect();
    let metrics: Vec<String> = collector.metrics().into_iter().map(|m| m.name).collect();
    assert!(
        spans.is_empty() && metrics.is_empty(),
        "dbmazz now exports spans {spans:?} and metrics {metrics:?}: assert here what they must be"
    );
    assert_eq!(collector.request_counts(), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_pipeline_carries_spans_and_metrics_and_shutdown_flushes() {
    let collector = OtlpCollector::start().expect("collector");
    let endpoint = Endpoint {
        url: collector.endpoint(),
        variable: "OTEL_EXPORTER_OTLP_ENDPOINT",
    };
    let settings = TelemetrySettings {
        log_format: LogFormat::Json,
        log_filter: Some("info".into()),
        otlp: OtlpSettings {
            traces_endpoint: Some(endpoint.clone()),
            metrics_endpoint: Some(endpoint),
            service_name: "dbmazz-under-test".into(),
            // Longer than the test: only the shutdown flush can deliver the metric.
            metrics_interval: Some(Duration::from_secs(3600)),
        },
    };
    let telemetry = telemetry::init(&settings).expect("telemetry");
    assert!(telemetry.exports_traces() && telemetry.exports_metrics());

    // A probe on the caller's runtime, as the worker's own spans will be.
    tokio::spawn(async {
        let span = tracing::info_span!("probe", job = "orders", table = "public.orders");
        let _g = span.enter();
        tracing::info!(rows = 3, "probe event");
    })
    .await
    .expect("task");
    let rows = opentelemetry::global::meter("dbmazz")
        .u64_counter("probe_rows")
        .build();
    rows.add(3, &[KeyValue::new("table", "public.orders")]);
    rows.add(4, &[KeyValue::new("table", "public.orders")]);

    // Shutdown blocks until the exporters are flushed.
    tokio::task::spawn_blocking(move || telemetry.shutdown())
        .await
        .expect("join")
        .expect("flush");

    let span = collector
        .wait_for_span("probe", Duration::from_secs(10))
        .expect("span exported");
    assert_eq!(span.service_name(), Some("dbmazz-under-test"));
    assert_eq!(
        span.attributes.get("job").map(String::as_str),
        Some("orders")
    );
    assert_eq!(
        span.attributes.get("table").map(String::as_str),
        Some("public.orders")
    );
    assert!(span.events.iter().any(|e| e == "probe event"), "{span:?}");
    assert_eq!(span.scope, "dbmazz");
    assert_eq!(
        span.resource.get("service.version").map(String::as_str),
        Some(env!("CARGO_PKG_VERSION"))
    );
    // The exporter's own gRPC traffic is not traced: the probe is the only span.
    let names: Vec<String> = collector.spans().into_iter().map(|s| s.name).collect();
    assert_eq!(names, ["probe"]);

    let metric = collector
        .wait_for_metric("probe_rows", Duration::from_secs(10))
        .expect("metric exported");
    assert_eq!(metric.kind, "sum");
    assert_eq!(metric.points.len(), 1);
    assert_eq!(metric.points[0].value, 7.0);
    assert_eq!(
        metric.points[0].attributes.get("table").map(String::as_str),
        Some("public.orders")
    );
}
