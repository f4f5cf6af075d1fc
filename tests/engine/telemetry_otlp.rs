//! dbmazz's telemetry setup exports spans and metrics over OTLP/gRPC to a collector,
//! and `Telemetry::shutdown` flushes what is still buffered. One test per file: the
//! tracing subscriber and meter provider are process-global.

use std::time::Duration;

use dbmazz::config::LogFormat;
use dbmazz::telemetry::{self, Endpoint, OtlpSettings, TelemetrySettings};
use dbmazz_testkit::OtlpCollector;
use opentelemetry::KeyValue;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_and_metrics_reach_the_collector_and_shutdown_flushes() {
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

    // Work on the caller's runtime, as the worker will do.
    tokio::spawn(async {
        let span = tracing::info_span!("load_batch", job = "orders", table = "public.orders");
        let _g = span.enter();
        tracing::info!(rows = 3, "stream load finished");
    })
    .await
    .expect("task");
    let rows = opentelemetry::global::meter("dbmazz")
        .u64_counter("dbmazz_rows_loaded")
        .build();
    rows.add(3, &[KeyValue::new("table", "public.orders")]);
    rows.add(4, &[KeyValue::new("table", "public.orders")]);

    // Shutdown blocks until the exporters are flushed.
    tokio::task::spawn_blocking(move || telemetry.shutdown())
        .await
        .expect("join")
        .expect("flush");

    let span = collector
        .wait_for_span("load_batch", Duration::from_secs(10))
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
    assert!(
        span.events.iter().any(|e| e == "stream load finished"),
        "{span:?}"
    );
    assert_eq!(span.scope, "dbmazz");
    assert_eq!(
        span.resource.get("service.version").map(String::as_str),
        Some(env!("CARGO_PKG_VERSION"))
    );
    // The exporter's own gRPC traffic is not traced.
    assert!(
        collector
            .spans()
            .iter()
            .all(|s| !s.name.contains("h2") && !s.name.contains("Connection")),
        "{:?}",
        collector.spans()
    );

    let metric = collector
        .wait_for_metric("dbmazz_rows_loaded", Duration::from_secs(10))
        .expect("metric exported");
    assert_eq!(metric.kind, "sum");
    assert_eq!(metric.points.len(), 1);
    assert_eq!(metric.points[0].value, 7.0);
    assert_eq!(
        metric.points[0].attributes.get("table").map(String::as_str),
        Some("public.orders")
    );
}
