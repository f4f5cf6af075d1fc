//! An OTLP/gRPC collector that keeps what it receives in memory, so tests can assert
//! on the spans and metrics dbmazz exports.
//!
//! It implements the standard `TraceService` and `MetricsService` (from
//! `opentelemetry-proto`) with tonic on a random loopback port, on its own thread and
//! runtime (it serves sync and async tests alike and stops on drop). Received data is
//! flattened into [`RecordedSpan`] and [`RecordedMetric`] for easy queries; the
//! `wait_for_*` helpers poll until something arrives or a timeout passes, because
//! exporters send in batches.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{metric, number_data_point};
use opentelemetry_proto::tonic::resource::v1::Resource;
use tokio::sync::oneshot;

use crate::process::ServiceError;

/// One received span, flattened.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordedSpan {
    /// Span name.
    pub name: String,
    /// Trace id, lower-case hex.
    pub trace_id: String,
    /// Span id, lower-case hex.
    pub span_id: String,
    /// Parent span id, lower-case hex (empty for a root span).
    pub parent_span_id: String,
    /// Span attributes, values rendered as text.
    pub attributes: BTreeMap<String, String>,
    /// Names of the span's events (tracing events inside the span).
    pub events: Vec<String>,
    /// Resource attributes of the exporting process (`service.name`, ...).
    pub resource: BTreeMap<String, String>,
    /// Instrumentation scope name.
    pub scope: String,
}

impl RecordedSpan {
    /// `service.name` of the exporter.
    pub fn service_name(&self) -> Option<&str> {
        self.resource.get("service.name").map(String::as_str)
    }
}

/// One data point of a metric.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordedPoint {
    /// Point attributes, values rendered as text.
    pub attributes: BTreeMap<String, String>,
    /// The value: gauge/sum value, or a histogram's sum.
    pub value: f64,
    /// A histogram's count (`None` for gauges and sums).
    pub count: Option<u64>,
}

/// One received metric (of one export request), flattened.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordedMetric {
    /// Metric name.
    pub name: String,
    /// Unit.
    pub unit: String,
    /// `gauge`, `sum`, `histogram`, `exponential_histogram` or `summary`.
    pub kind: &'static str,
    /// Data points.
    pub points: Vec<RecordedPoint>,
    /// Resource attributes of the exporting process.
    pub resource: BTreeMap<String, String>,
}

#[derive(Debug, Default)]
struct Store {
    spans: Vec<RecordedSpan>,
    metrics: Vec<RecordedMetric>,
    trace_requests: usize,
    metric_requests: usize,
}

#[derive(Clone, Debug, Default)]
struct Shared(Arc<Mutex<Store>>);

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Store> {
        // A panicking test thread must not hide what was recorded.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn text(v: &Option<AnyValue>) -> String {
    match v.as_ref().and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(any_value::Value::BytesValue(b)) => hex(b),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

fn attrs(kvs: &[KeyValue]) -> BTreeMap<String, String> {
    kvs.iter()
        .map(|kv| (kv.key.clone(), text(&kv.value)))
        .collect()
}

fn resource_attrs(r: &Option<Resource>) -> BTreeMap<String, String> {
    r.as_ref().map(|r| attrs(&r.attributes)).unwrap_or_default()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[tonic::async_trait]
impl TraceService for Shared {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let req = request.into_inner();
        let mut store = self.lock();
        store.trace_requests += 1;
        for rs in &req.resource_spans {
            let resource = resource_attrs(&rs.resource);
            for ss in &rs.scope_spans {
                let scope = ss
                    .scope
                    .as_ref()
                    .map(|s| s.name.clone())
                    .unwrap_or_default();
                for s in &ss.spans {
                    store.spans.push(RecordedSpan {
                        name: s.name.clone(),
                        trace_id: hex(&s.trace_id),
                        span_id: hex(&s.span_id),
                        parent_span_id: hex(&s.parent_span_id),
                        attributes: attrs(&s.attributes),
                        events: s.events.iter().map(|e| e.name.clone()).collect(),
                        resource: resource.clone(),
                        scope: scope.clone(),
                    });
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

fn number(v: &Option<number_data_point::Value>) -> f64 {
    match v {
        Some(number_data_point::Value::AsDouble(d)) => *d,
        // Test values are small; the conversion is exact for them.
        #[allow(clippy::cast_precision_loss)]
        Some(number_data_point::Value::AsInt(i)) => *i as f64,
        None => f64::NAN,
    }
}

#[tonic::async_trait]
impl MetricsService for Shared {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        let req = request.into_inner();
        let mut store = self.lock();
        store.metric_requests += 1;
        for rm in &req.resource_metrics {
            let resource = resource_attrs(&rm.resource);
            for sm in &rm.scope_metrics {
                for m in &sm.metrics {
                    let (kind, points) = match &m.data {
                        Some(metric::Data::Gauge(g)) => ("gauge", number_points(&g.data_points)),
                        Some(metric::Data::Sum(s)) => ("sum", number_points(&s.data_points)),
                        Some(metric::Data::Histogram(h)) => (
                            "histogram",
                            h.data_points
                                .iter()
                                .map(|p| RecordedPoint {
                                    attributes: attrs(&p.attributes),
                                    value: p.sum.unwrap_or(f64::NAN),
                                    count: Some(p.count),
                                })
                                .collect(),
                        ),
                        Some(metric::Data::ExponentialHistogram(h)) => (
                            "exponential_histogram",
                            h.data_points
                                .iter()
                                .map(|p| RecordedPoint {
                                    attributes: attrs(&p.attributes),
                                    value: p.sum.unwrap_or(f64::NAN),
                                    count: Some(p.count),
                                })
                                .collect(),
                        ),
                        Some(metric::Data::Summary(s)) => (
                            "summary",
                            s.data_points
                                .iter()
                                .map(|p| RecordedPoint {
                                    attributes: attrs(&p.attributes),
                                    value: p.sum,
                                    count: Some(p.count),
                                })
                                .collect(),
                        ),
                        None => ("none", Vec::new()),
                    };
                    store.metrics.push(RecordedMetric {
                        name: m.name.clone(),
                        unit: m.unit.clone(),
                        kind,
                        points,
                        resource: resource.clone(),
                    });
                }
            }
        }
        Ok(tonic::Response::new(ExportMetricsServiceResponse {
            partial_success: None,
        }))
    }
}

fn number_points(
    points: &[opentelemetry_proto::tonic::metrics::v1::NumberDataPoint],
) -> Vec<RecordedPoint> {
    points
        .iter()
        .map(|p| RecordedPoint {
            attributes: attrs(&p.attributes),
            value: number(&p.value),
            count: None,
        })
        .collect()
}

/// A running in-memory OTLP/gRPC collector.
#[derive(Debug)]
pub struct OtlpCollector {
    addr: SocketAddr,
    store: Shared,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl OtlpCollector {
    /// Starts a collector on a random loopback port.
    pub fn start() -> Result<Self, ServiceError> {
        let store = Shared::default();
        let (ready_tx, ready_rx) = mpsc::channel::<Result<SocketAddr, ServiceError>>();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let served = store.clone();
        let thread = std::thread::Builder::new()
            .name("otlp-collector".into())
            .spawn(move || serve(served, ready_tx, stop_rx))
            .map_err(ServiceError::io("starting the OTLP collector thread"))?;
        let addr = ready_rx.recv().map_err(|_| ServiceError::Failed {
            what: "starting the OTLP collector".into(),
            detail: "the collector thread exited before listening".into(),
        })??;
        Ok(OtlpCollector {
            addr,
            store,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    /// Listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>`, for `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<RecordedSpan> {
        self.store.lock().spans.clone()
    }

    /// Spans with this name.
    pub fn spans_named(&self, name: &str) -> Vec<RecordedSpan> {
        self.store
            .lock()
            .spans
            .iter()
            .filter(|s| s.name == name)
            .cloned()
            .collect()
    }

    /// Every metric received so far (one entry per metric per export).
    pub fn metrics(&self) -> Vec<RecordedMetric> {
        self.store.lock().metrics.clone()
    }

    /// The most recently received export of the metric `name`.
    pub fn latest_metric(&self, name: &str) -> Option<RecordedMetric> {
        self.store
            .lock()
            .metrics
            .iter()
            .rev()
            .find(|m| m.name == name)
            .cloned()
    }

    /// Number of trace and metric export requests received.
    pub fn request_counts(&self) -> (usize, usize) {
        let s = self.store.lock();
        (s.trace_requests, s.metric_requests)
    }

    /// Forgets everything received so far.
    pub fn clear(&self) {
        let mut s = self.store.lock();
        s.spans.clear();
        s.metrics.clear();
    }

    /// Blocks until `ready(self)` holds or `timeout` passes; returns whether it held.
    pub fn wait_until(&self, timeout: Duration, ready: impl Fn(&Self) -> bool) -> bool {
        let start = Instant::now();
        loop {
            if ready(self) {
                return true;
            }
            if start.elapsed() >= timeout {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Async version of [`OtlpCollector::wait_until`], for use inside a runtime.
    pub async fn wait_until_async(&self, timeout: Duration, ready: impl Fn(&Self) -> bool) -> bool {
        let start = Instant::now();
        loop {
            if ready(self) {
                return true;
            }
            if start.elapsed() >= timeout {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits for a span named `name` (blocking).
    pub fn wait_for_span(&self, name: &str, timeout: Duration) -> Option<RecordedSpan> {
        self.wait_until(timeout, |c| !c.spans_named(name).is_empty());
        self.spans_named(name).into_iter().next()
    }

    /// Waits for a metric named `name` (blocking); returns its latest export.
    pub fn wait_for_metric(&self, name: &str, timeout: Duration) -> Option<RecordedMetric> {
        self.wait_until(timeout, |c| c.latest_metric(name).is_some());
        self.latest_metric(name)
    }
}

impl Drop for OtlpCollector {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(
    store: Shared,
    ready: mpsc::Sender<Result<SocketAddr, ServiceError>>,
    stop: oneshot::Receiver<()>,
) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = ready.send(Err(ServiceError::Io {
                context: "building the OTLP collector runtime".into(),
                source: e,
            }));
            return;
        }
    };
    rt.block_on(async move {
        let listener =
            match tokio::net::TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0)).await {
                Ok(l) => l,
                Err(e) => {
                    let _ = ready.send(Err(ServiceError::Io {
                        context: "binding the OTLP collector".into(),
                        source: e,
                    }));
                    return;
                }
            };
        match listener.local_addr() {
            Ok(a) => {
                let _ = ready.send(Ok(a));
            }
            Err(e) => {
                let _ = ready.send(Err(ServiceError::Io {
                    context: "reading the OTLP collector address".into(),
                    source: e,
                }));
                return;
            }
        }
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        let result = tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(store.clone()))
            .add_service(MetricsServiceServer::new(store))
            .serve_with_incoming_shutdown(incoming, async {
                let _ = stop.await;
            })
            .await;
        if let Err(e) = result {
            eprintln!("otlp collector stopped with an error: {e}");
        }
    });
}
