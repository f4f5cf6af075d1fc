//! Logs, traces and metrics.
//!
//! ```text
//! tracing spans/events ─┬─▶ fmt layer ──▶ stderr (human, or JSON with DBMAZZ_LOG_FORMAT=json)
//!                       │     filter: RUST_LOG (default `info`)
//!                       └─▶ OpenTelemetry layer ──▶ batch processor ──▶ OTLP/gRPC exporter
//!                             filter: RUST_LOG minus the exporter's own transport crates
//! opentelemetry::global::meter(..) ──▶ periodic reader ──▶ OTLP/gRPC exporter
//! ```
//!
//! OTLP export is on when the standard `OTEL_EXPORTER_OTLP_ENDPOINT` (both signals),
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT` is
//! set; the other standard variables (`OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`,
//! `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_EXPORTER_OTLP_TIMEOUT`,
//! `OTEL_METRIC_EXPORT_INTERVAL`) are honoured. `https://` endpoints use TLS with the
//! system's root certificates.
//!
//! The SDK's batch span processor and periodic metric reader export from their own
//! threads, while the gRPC client needs a Tokio reactor. Exports therefore run inside a
//! small runtime owned by [`Telemetry`] (one worker thread, only when OTLP is on), so
//! telemetry works the same whether or not the caller has a runtime, and
//! [`Telemetry::shutdown`] can flush from anywhere outside that runtime.
//!
//! Secrets: nothing here formats configuration values; endpoints are printed with
//! their passwords redacted. Spans must not carry row values or secrets (see the
//! style rules); the exporter only sends what spans hold.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::tonic_types::transport::ClientTlsConfig;
use opentelemetry_otlp::{WithExportConfig, WithTonicConfig};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider, Temporality};
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use opentelemetry_sdk::Resource;
use tokio::runtime::{Handle, Runtime};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

use crate::config::{redact_url, LogFormat};

/// Crates whose spans must not be exported: the exporter's own transport would
/// otherwise trace itself in a loop.
const EXPORTER_INTERNALS: &[&str] = &[
    "h2",
    "hyper",
    "hyper_util",
    "tonic",
    "tower",
    "opentelemetry",
    "opentelemetry_sdk",
    "opentelemetry_otlp",
];

/// Telemetry could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// `RUST_LOG` is not a valid filter.
    #[error(
        "RUST_LOG={value:?} is not a valid log filter: {reason}. Accepted: a level (`info`) or \
         directives such as `dbmazz=debug,info`"
    )]
    Filter {
        /// The value.
        value: String,
        /// Parser message.
        reason: String,
    },
    /// An OTLP exporter could not be built (bad endpoint, ...).
    #[error("{variable}={endpoint:?}: cannot export OTLP there: {reason}")]
    Exporter {
        /// The variable naming the endpoint.
        variable: &'static str,
        /// Endpoint (password redacted).
        endpoint: String,
        /// Why.
        reason: String,
    },
    /// The export runtime could not be started.
    #[error("cannot start the telemetry export thread: {0}")]
    Runtime(#[source] std::io::Error),
    /// A global subscriber is already installed.
    #[error("a tracing subscriber is already installed in this process")]
    AlreadyInstalled,
    /// Flushing at shutdown failed (collector unreachable, timeout).
    #[error("telemetry shutdown: {0}")]
    Shutdown(String),
}

/// Where and how to export OTLP.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct OtlpSettings {
    /// gRPC endpoint for traces (`None`: no trace export).
    pub traces_endpoint: Option<Endpoint>,
    /// gRPC endpoint for metrics (`None`: no metric export).
    pub metrics_endpoint: Option<Endpoint>,
    /// `service.name` resource attribute.
    pub service_name: String,
    /// Interval between metric exports (`None`: the SDK's, from
    /// `OTEL_METRIC_EXPORT_INTERVAL` or 60 s).
    pub metrics_interval: Option<Duration>,
}

/// An endpoint and the variable it came from (for error messages).
#[derive(Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The URL (`http://collector:4317`).
    pub url: String,
    /// The variable that set it.
    pub variable: &'static str,
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.variable, redacted_endpoint(&self.url))
    }
}

fn redacted_endpoint(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => redact_url(&u),
        Err(_) => crate::config::hidden(url),
    }
}

impl OtlpSettings {
    /// Reads the standard `OTEL_*` variables of the process.
    pub fn from_env() -> Self {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads the standard `OTEL_*` variables through `get`.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Self {
        let non_empty = |k: &'static str| {
            get(k).filter(|v| !v.trim().is_empty()).map(|url| Endpoint {
                url: url.trim().to_owned(),
                variable: k,
            })
        };
        let both = non_empty("OTEL_EXPORTER_OTLP_ENDPOINT");
        let traces = non_empty("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").or_else(|| both.clone());
        let metrics = non_empty("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT").or(both);
        let from_attributes = get("OTEL_RESOURCE_ATTRIBUTES").and_then(|attrs| {
            attrs.split(',').find_map(|kv| {
                let (k, v) = kv.split_once('=')?;
                (k.trim() == "service.name" && !v.trim().is_empty()).then(|| v.trim().to_owned())
            })
        });
        let service_name = get("OTEL_SERVICE_NAME")
            .filter(|s| !s.trim().is_empty())
            .or(from_attributes)
            .unwrap_or_else(|| "dbmazz".to_owned());
        OtlpSettings {
            traces_endpoint: traces,
            metrics_endpoint: metrics,
            service_name,
            metrics_interval: None,
        }
    }

    /// True when anything is exported.
    pub fn enabled(&self) -> bool {
        self.traces_endpoint.is_some() || self.metrics_endpoint.is_some()
    }
}

/// Everything telemetry needs.
#[derive(Clone, Debug)]
pub struct TelemetrySettings {
    /// Log line format.
    pub log_format: LogFormat,
    /// Log filter directives (`RUST_LOG`); `None` means `info`.
    pub log_filter: Option<String>,
    /// OTLP export.
    pub otlp: OtlpSettings,
}

impl TelemetrySettings {
    /// Settings from the worker's log format and the process's `RUST_LOG`/`OTEL_*`.
    pub fn from_env(log_format: LogFormat) -> Self {
        TelemetrySettings {
            log_format,
            log_filter: std::env::var("RUST_LOG").ok(),
            otlp: OtlpSettings::from_env(),
        }
    }
}

/// Owns the exporters; [`Telemetry::shutdown`] (or drop) flushes them.
pub struct Telemetry {
    tracer_provider: Option<SdkTracerProvider>,
    meter_provider: Option<SdkMeterProvider>,
    runtime: Option<Runtime>,
}

impl fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Telemetry")
            .field("traces", &self.tracer_provider.is_some())
            .field("metrics", &self.meter_provider.is_some())
            .finish()
    }
}

impl Telemetry {
    /// True when traces are exported.
    pub fn exports_traces(&self) -> bool {
        self.tracer_provider.is_some()
    }

    /// True when metrics are exported.
    pub fn exports_metrics(&self) -> bool {
        self.meter_provider.is_some()
    }

    /// Exports everything still buffered and stops the exporters. Blocks (up to the
    /// exporters' timeouts); call it from outside async code, or through
    /// `spawn_blocking`.
    pub fn shutdown(mut self) -> Result<(), TelemetryError> {
        self.shutdown_inner()
    }

    fn shutdown_inner(&mut self) -> Result<(), TelemetryError> {
        let mut errors = Vec::new();
        if let Some(p) = self.tracer_provider.take() {
            if let Err(e) = p.shutdown() {
                errors.push(format!("traces: {e}"));
            }
        }
        if let Some(p) = self.meter_provider.take() {
            if let Err(e) = p.shutdown() {
                errors.push(format!("metrics: {e}"));
            }
        }
        if let Some(rt) = self.runtime.take() {
            // Exports are finished; do not block (this may run inside async code).
            rt.shutdown_background();
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(TelemetryError::Shutdown(errors.join("; ")))
        }
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown_inner() {
            eprintln!("dbmazz: {e}");
        }
    }
}

/// Installs the global subscriber (logs to stderr, optional OTLP export) and the
/// global meter provider. Keep the returned [`Telemetry`] alive; shut it down last.
pub fn init(settings: &TelemetrySettings) -> Result<Telemetry, TelemetryError> {
    use std::io::IsTerminal as _;
    // Colours only for a person at a terminal (and never with NO_COLOR set).
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let (subscriber, telemetry) = build(settings, std::io::stderr, ansi)?;
    tracing::subscriber::set_global_default(subscriber)
        .map_err(|_| TelemetryError::AlreadyInstalled)?;
    if let Some(mp) = &telemetry.meter_provider {
        opentelemetry::global::set_meter_provider(mp.clone());
    }
    if let Some(tp) = &telemetry.tracer_provider {
        opentelemetry::global::set_tracer_provider(tp.clone());
    }
    Ok(telemetry)
}

fn filter(settings: &TelemetrySettings, extra: &[&str]) -> Result<EnvFilter, TelemetryError> {
    let base = settings
        .log_filter
        .as_deref()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or("info");
    let mut f = EnvFilter::builder()
        .parse(base)
        .map_err(|e| TelemetryError::Filter {
            value: base.to_owned(),
            reason: e.to_string(),
        })?;
    for target in extra {
        let directive = format!("{target}=off");
        let d = directive.parse().map_err(|e| TelemetryError::Filter {
            value: directive.clone(),
            reason: format!("{e}"),
        })?;
        f = f.add_directive(d);
    }
    Ok(f)
}

/// Builds the subscriber without installing it, writing logs to `writer` (with ANSI
/// colours when `ansi`); tests use this with a buffer and
/// `tracing::subscriber::with_default`.
pub fn build<W>(
    settings: &TelemetrySettings,
    writer: W,
    ansi: bool,
) -> Result<(impl tracing::Subscriber + Send + Sync + 'static, Telemetry), TelemetryError>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let log_filter = filter(settings, &[])?;
    let fmt_layer = match settings.log_format {
        LogFormat::Human => tracing_subscriber::fmt::layer()
            .with_writer(writer)
            .with_ansi(ansi)
            .with_target(true)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_ansi(false)
            .with_writer(writer)
            .boxed(),
    }
    .with_filter(log_filter);

    let mut telemetry = Telemetry {
        tracer_provider: None,
        meter_provider: None,
        runtime: None,
    };
    let otel_layer = if settings.otlp.enabled() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("dbmazz-otlp")
            .enable_all()
            .build()
            .map_err(TelemetryError::Runtime)?;
        let handle = rt.handle().clone();
        telemetry.runtime = Some(rt);
        let resource = Resource::builder()
            .with_service_name(settings.otlp.service_name.clone())
            .with_attribute(opentelemetry::KeyValue::new(
                "service.version",
                env!("CARGO_PKG_VERSION"),
            ))
            .build();
        // The exporters' channels must be created inside the export runtime.
        let _entered = handle.enter();
        if let Some(ep) = &settings.otlp.metrics_endpoint {
            let exporter = opentelemetry_otlp::MetricExporter::builder()
                .with_tonic()
                .with_endpoint(ep.url.clone())
                .with_tls_config_if_https(ep)
                .build()
                .map_err(|e| exporter_error(ep, &e))?;
            let mut reader = PeriodicReader::builder(InRuntime {
                inner: exporter,
                handle: handle.clone(),
            });
            if let Some(i) = settings.otlp.metrics_interval {
                reader = reader.with_interval(i);
            }
            telemetry.meter_provider = Some(
                SdkMeterProvider::builder()
                    .with_reader(reader.build())
                    .with_resource(resource.clone())
                    .build(),
            );
        }
        match &settings.otlp.traces_endpoint {
            Some(ep) => {
                let exporter = opentelemetry_otlp::SpanExporter::builder()
                    .with_tonic()
                    .with_endpoint(ep.url.clone())
                    .with_tls_config(ClientTlsConfig::new().with_native_roots())
                    .build()
                    .map_err(|e| exporter_error(ep, &e))?;
                let provider = SdkTracerProvider::builder()
                    .with_batch_exporter(InRuntime {
                        inner: exporter,
                        handle: handle.clone(),
                    })
                    .with_resource(resource)
                    .build();
                let tracer = provider.tracer("dbmazz");
                telemetry.tracer_provider = Some(provider);
                Some(
                    tracing_opentelemetry::layer()
                        .with_tracer(tracer)
                        .with_filter(filter(settings, EXPORTER_INTERNALS)?),
                )
            }
            None => None,
        }
    } else {
        None
    };
    let subscriber = tracing_subscriber::registry()
        .with(fmt_layer)
        .with(otel_layer);
    Ok((subscriber, telemetry))
}

fn exporter_error(ep: &Endpoint, e: &dyn std::error::Error) -> TelemetryError {
    let shown = redacted_endpoint(&ep.url);
    TelemetryError::Exporter {
        variable: ep.variable,
        // The SDK's message quotes the endpoint as given, password included.
        reason: e.to_string().replace(&ep.url, &shown),
        endpoint: shown,
    }
}

/// TLS (system roots) for `https://` endpoints only.
trait TlsIfHttps: Sized {
    fn with_tls_config_if_https(self, ep: &Endpoint) -> Self;
}

impl<T: WithTonicConfig> TlsIfHttps for T {
    fn with_tls_config_if_https(self, ep: &Endpoint) -> Self {
        if ep.url.starts_with("https://") {
            self.with_tls_config(ClientTlsConfig::new().with_native_roots())
        } else {
            self
        }
    }
}

/// An exporter whose export futures run with the export runtime entered, so the gRPC
/// client finds its reactor whichever thread the SDK polls them from.
#[derive(Debug)]
struct InRuntime<E> {
    inner: E,
    handle: Handle,
}

/// A future polled with a runtime entered.
struct Entered<F> {
    fut: Pin<Box<F>>,
    handle: Handle,
}

impl<F: Future> Future for Entered<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let _entered = self.handle.enter();
        self.fut.as_mut().poll(cx)
    }
}

impl<E: SpanExporter> SpanExporter for InRuntime<E> {
    fn export(&self, batch: Vec<SpanData>) -> impl Future<Output = OTelSdkResult> + Send {
        Entered {
            fut: Box::pin(self.inner.export(batch)),
            handle: self.handle.clone(),
        }
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        let _entered = self.handle.enter();
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        let _entered = self.handle.enter();
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

impl<E: PushMetricExporter> PushMetricExporter for InRuntime<E> {
    fn export(&self, metrics: &ResourceMetrics) -> impl Future<Output = OTelSdkResult> + Send {
        Entered {
            fut: Box::pin(self.inner.export(metrics)),
            handle: self.handle.clone(),
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        let _entered = self.handle.enter();
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        let _entered = self.handle.enter();
        self.inner.shutdown_with_timeout(timeout)
    }

    fn temporality(&self) -> Temporality {
        self.inner.temporality()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buf {
        type Writer = Buf;
        fn make_writer(&'a self) -> Buf {
            self.clone()
        }
    }

    impl Buf {
        fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.lock().expect("lock")).into_owned()
        }
    }

    fn settings(format: LogFormat, filter: Option<&str>) -> TelemetrySettings {
        TelemetrySettings {
            log_format: format,
            log_filter: filter.map(str::to_owned),
            otlp: OtlpSettings::default(),
        }
    }

    fn capture(s: &TelemetrySettings) -> String {
        let buf = Buf::default();
        let (sub, telemetry) = build(s, buf.clone(), false).expect("build");
        assert!(!telemetry.exports_traces());
        tracing::subscriber::with_default(sub, || {
            let span = tracing::info_span!("batch", job = "orders");
            let _g = span.enter();
            tracing::info!(rows = 3, "loaded");
            tracing::debug!("details");
        });
        buf.text()
    }

    #[test]
    fn human_logs_by_default_at_info() {
        let out = capture(&settings(LogFormat::Human, None));
        assert!(out.contains("INFO"), "{out}");
        assert!(out.contains("loaded"), "{out}");
        assert!(out.contains("rows=3"), "{out}");
        assert!(!out.contains("details"), "debug is filtered: {out}");
        assert!(!out.trim_start().starts_with('{'), "{out}");
    }

    #[test]
    fn json_logs_are_one_object_per_line() {
        let out = capture(&settings(LogFormat::Json, Some("debug")));
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 2, "{out}");
        for l in &lines {
            let v: sonic_rs::Value = sonic_rs::from_str(l).expect("json line");
            assert!(sonic_rs::JsonValueTrait::get(&v, "level").is_some(), "{l}");
        }
        assert!(lines[0].contains("\"message\":\"loaded\""), "{out}");
        assert!(lines[0].contains("\"rows\":3"), "{out}");
        assert!(
            lines[0].contains("\"job\":\"orders\""),
            "span fields: {out}"
        );
    }

    #[test]
    fn rust_log_filters_by_target() {
        let out = capture(&settings(LogFormat::Human, Some("warn,dbmazz=debug")));
        assert!(out.contains("details"), "{out}");
        let out = capture(&settings(LogFormat::Human, Some("warn")));
        assert!(out.is_empty(), "{out}");
    }

    #[test]
    fn invalid_rust_log_is_a_clear_error() {
        let e = build(
            &settings(LogFormat::Human, Some("dbmazz=loud")),
            Buf::default(),
            false,
        )
        .err()
        .expect("error");
        let text = e.to_string();
        assert!(text.contains("RUST_LOG=\"dbmazz=loud\""), "{text}");
    }

    #[test]
    fn otlp_settings_from_standard_variables() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        let s = OtlpSettings::from_lookup(vars(&[]));
        assert!(!s.enabled());
        assert_eq!(s.service_name, "dbmazz");
        let s =
            OtlpSettings::from_lookup(vars(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317")]));
        assert_eq!(
            s.traces_endpoint.as_ref().map(|e| e.url.as_str()),
            Some("http://c:4317")
        );
        assert_eq!(
            s.metrics_endpoint.as_ref().map(|e| e.url.as_str()),
            Some("http://c:4317")
        );
        let s = OtlpSettings::from_lookup(vars(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://t:4317"),
            ("OTEL_SERVICE_NAME", "cdc-eu"),
        ]));
        assert_eq!(
            s.traces_endpoint.as_ref().map(|e| e.url.as_str()),
            Some("http://t:4317")
        );
        assert_eq!(
            s.metrics_endpoint.as_ref().map(|e| e.url.as_str()),
            Some("http://c:4317")
        );
        assert_eq!(s.service_name, "cdc-eu");
        let s = OtlpSettings::from_lookup(vars(&[
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://t:4317"),
            ("OTEL_RESOURCE_ATTRIBUTES", "team=data,service.name=cdc"),
        ]));
        assert!(s.metrics_endpoint.is_none());
        assert_eq!(s.service_name, "cdc");
    }

    #[test]
    fn bad_endpoint_names_the_variable_and_hides_passwords() {
        let mut s = settings(LogFormat::Human, None);
        s.otlp.traces_endpoint = Some(Endpoint {
            url: "http://user:hunter2@[bad".into(),
            variable: "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        });
        let e = build(&s, Buf::default(), false)
            .err()
            .expect("error")
            .to_string();
        assert!(e.contains("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"), "{e}");
        assert!(!e.contains("hunter2"), "{e}");
    }
}
