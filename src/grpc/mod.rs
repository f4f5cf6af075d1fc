//! The control plane: a gRPC server (and a Prometheus endpoint) that stays up
//! whatever the pipelines do, so operators and orchestrators can see and steer
//! each worker.
//!
//! ```text
//!  engine ──writes──▶ engine::status::SharedState ◀──reads── services ─▶ gRPC :50051
//!     ▲                                          │          ├─ grpc.health.v1.Health
//!     └── PipelineHandle (pause/drain/abort) ◀───┘          ├─ reflection v1 + v1alpha
//!                                                           ├─ dbmazz.v1 Health/Control/Status/Metrics
//!                       SlotCache ─▶ SlotInspector ─▶ pg_replication_slots
//!                                                   prometheus ─▶ HTTP GET /metrics
//! ```
//!
//! - [`services`]: the gRPC handlers; [`view`]: state → health verdicts and status.
//! - [`auth`]: bearer token for control calls (constant-time comparison).
//! - [`slot`]: slot `wal_status` / retained WAL through a pluggable inspector.
//! - [`sampler`], [`process`]: StreamMetrics snapshots, RSS and CPU from `/proc`.
//! - [`prometheus`]: text exposition and its small HTTP server.
//! - [`client`]: the typed client (the `dbmazz` commands built on it live in
//!   `crate::cli`).
//!
//! Start it with [`serve`] (or [`GrpcServer::bind`] then [`GrpcServer::serve`] to
//! learn the bound ports first). It never stops on a pipeline's behalf: only the
//! shutdown future ends it. On shutdown, metrics streams and health watches end,
//! in-flight calls finish, and the listeners close.
//!
//! Process shutdown (SIGTERM) should keep the control plane up while the
//! pipelines drain, so orchestrators see NOT_SERVING (DRAINING) and operators can
//! watch the final checkpoint: cancel every handle's `drain`, wait for the
//! pipelines up to the deadline (then `abort` the rest), and only then complete the
//! shutdown future given to [`serve`].

pub mod auth;
pub mod client;
pub mod process;
pub mod prometheus;
pub mod sampler;
pub mod services;
pub mod slot;
pub mod view;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Identity, Server, ServerTlsConfig};

use crate::config::{Secret, TlsFiles};
use crate::engine::Pipelines;
use auth::TokenGuard;
use services::{Context, ControlSvc, HealthSvc, MetricsSvc, StatusSvc, StdHealthSvc};
pub use slot::{PgSlotInspector, SlotInfo, SlotInspectError, SlotInspector};

/// Code generated from `proto/dbmazz.proto` (package `dbmazz.v1`).
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod pb {
    tonic::include_proto!("dbmazz.v1");

    /// Encoded descriptor set of `dbmazz.v1`, served by reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("dbmazz_descriptor");
}

/// Default gRPC listen address (loopback; containers set `0.0.0.0:50051`).
pub const DEFAULT_GRPC_ADDR: &str = "127.0.0.1:50051";

/// How the control plane listens and whom it lets in (filled from the config).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrpcSettings {
    /// gRPC listen address (`DBMAZZ_GRPC_ADDR`).
    pub addr: SocketAddr,
    /// Bearer token for control calls (`DBMAZZ_CONTROL_TOKEN`).
    pub control_token: Option<Secret>,
    /// Allow control calls without a token when none is configured
    /// (`DBMAZZ_CONTROL_INSECURE=1`).
    pub control_insecure: bool,
    /// Require the token for read-only calls too: Status, Metrics and `/metrics`
    /// (`DBMAZZ_STATUS_REQUIRE_TOKEN`). Health (standard and dbmazz) and reflection
    /// stay open for probes.
    pub status_requires_token: bool,
    /// TLS on the gRPC port.
    pub tls: Option<TlsFiles>,
    /// Prometheus listen address (`DBMAZZ_METRICS_ADDR`); `None`: no endpoint.
    pub metrics_addr: Option<SocketAddr>,
}

impl Default for GrpcSettings {
    fn default() -> Self {
        GrpcSettings {
            addr: SocketAddr::from(([127, 0, 0, 1], 50051)),
            control_token: None,
            control_insecure: false,
            status_requires_token: false,
            tls: None,
            metrics_addr: None,
        }
    }
}

impl GrpcSettings {
    /// The control plane settings of a worker's configuration.
    pub fn from_worker(worker: &crate::config::WorkerConfig) -> Self {
        GrpcSettings {
            addr: worker.grpc_addr,
            control_token: worker.control_token.clone(),
            control_insecure: worker.control_insecure,
            status_requires_token: worker.status_requires_token,
            tls: worker.grpc_tls.clone(),
            metrics_addr: worker.metrics_addr,
        }
    }
}

impl PgSlotInspector {
    /// An inspector that knows the source database of every job of `jobs`.
    pub fn for_jobs(jobs: &[crate::config::JobConfig]) -> Self {
        let inspector = PgSlotInspector::new();
        for job in jobs {
            inspector.set_source(&job.id, Secret::from(&job.source_url));
        }
        inspector
    }
}

/// Why the control plane could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum GrpcError {
    /// A listen address could not be bound.
    #[error("cannot listen for {what} on {addr}: {source}. Choose a free address with {variable}")]
    Bind {
        /// "gRPC" or "Prometheus metrics".
        what: &'static str,
        /// The address.
        addr: SocketAddr,
        /// Variable that sets it.
        variable: &'static str,
        /// OS error.
        source: std::io::Error,
    },
    /// The settings contradict each other or hold an unusable value.
    #[error("{0}")]
    Settings(String),
    /// A TLS file could not be read or used.
    #[error("TLS for the gRPC server: {0}")]
    Tls(String),
    /// Reflection could not load the descriptors (a build problem).
    #[error("gRPC reflection: {0}")]
    Reflection(String),
    /// The server failed while running.
    #[error("gRPC server: {0}")]
    Serve(#[from] tonic::transport::Error),
}

fn check_token(token: &str) -> Result<(), GrpcError> {
    if token.is_empty() {
        return Err(GrpcError::Settings(format!(
            "{} is set but empty: set a token (e.g. 32 random characters) or unset it",
            auth::TOKEN_VARIABLE
        )));
    }
    // Clients send it as an HTTP/2 header value, so it must be visible ASCII.
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(GrpcError::Settings(format!(
            "{} must consist of visible ASCII characters (no spaces or control characters), \
             since clients send it in the 'authorization' header",
            auth::TOKEN_VARIABLE
        )));
    }
    Ok(())
}

/// A bound, not yet serving, control plane.
pub struct GrpcServer {
    settings: GrpcSettings,
    grpc: TcpListener,
    metrics: Option<TcpListener>,
    tls: Option<ServerTlsConfig>,
    ctx: Arc<Context>,
}

impl std::fmt::Debug for GrpcServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcServer")
            .field("settings", &self.settings)
            .field("grpc", &self.grpc.local_addr().ok())
            .field(
                "metrics",
                &self.metrics.as_ref().and_then(|l| l.local_addr().ok()),
            )
            .finish_non_exhaustive()
    }
}

impl GrpcServer {
    /// Checks the settings and binds the listeners (port 0 picks a free port).
    ///
    /// `slots` answers slot `wal_status` / retained WAL questions (e.g. a
    /// [`PgSlotInspector`]); `None` reports them as not inspected.
    pub async fn bind(
        settings: GrpcSettings,
        pipelines: Pipelines,
        version: impl Into<String>,
        slots: Option<Arc<dyn SlotInspector>>,
    ) -> Result<GrpcServer, GrpcError> {
        if let Some(t) = &settings.control_token {
            check_token(t.expose())?;
        }
        if settings.status_requires_token && settings.control_token.is_none() {
            return Err(GrpcError::Settings(format!(
                "read-only calls are configured to require a token, but {} is not set",
                auth::TOKEN_VARIABLE
            )));
        }
        // Read and check the certificate now: a bad file is a start-up error.
        let tls = match &settings.tls {
            Some(files) => {
                // tonic builds its server TLS config with the process-wide rustls
                // provider, which rustls cannot pick by itself when more than one is
                // compiled in (OTLP brings aws-lc-rs, dbmazz uses ring): choose ring
                // unless someone already chose.
                let _ = rustls::crypto::ring::default_provider().install_default();
                let cfg = Self::tls_config(files)?;
                Server::builder()
                    .tls_config(cfg.clone())
                    .map_err(|e| GrpcError::Tls(format!("unusable certificate or key: {e}")))?;
                Some(cfg)
            }
            None => None,
        };
        let grpc = TcpListener::bind(settings.addr)
            .await
            .map_err(|source| GrpcError::Bind {
                what: "gRPC",
                addr: settings.addr,
                variable: "DBMAZZ_GRPC_ADDR",
                source,
            })?;
        let metrics = match settings.metrics_addr {
            Some(addr) => {
                Some(
                    TcpListener::bind(addr)
                        .await
                        .map_err(|source| GrpcError::Bind {
                            what: "Prometheus metrics",
                            addr,
                            variable: "DBMAZZ_METRICS_ADDR",
                            source,
                        })?,
                )
            }
            None => None,
        };
        let ctx = Arc::new(Context {
            pipelines,
            version: version.into(),
            slots: slot::SlotCache::new(slots, slot::DEFAULT_SLOT_TTL, slot::DEFAULT_SLOT_DEADLINE),
            started: Instant::now(),
            shutdown: CancellationToken::new(),
        });
        Ok(GrpcServer {
            settings,
            grpc,
            metrics,
            tls,
            ctx,
        })
    }

    /// The gRPC address actually bound.
    pub fn grpc_addr(&self) -> std::io::Result<SocketAddr> {
        self.grpc.local_addr()
    }

    /// The Prometheus address actually bound, if any.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().and_then(|l| l.local_addr().ok())
    }

    fn tls_config(tls: &TlsFiles) -> Result<ServerTlsConfig, GrpcError> {
        let read = |p: &PathBuf, what: &str| {
            std::fs::read(p).map_err(|e| {
                GrpcError::Tls(format!(
                    "cannot read the {what} file '{}': {e}",
                    p.display()
                ))
            })
        };
        let cert = read(&tls.cert, "certificate")?;
        let key = read(&tls.key, "private key")?;
        Ok(ServerTlsConfig::new().identity(Identity::from_pem(cert, key)))
    }

    /// Serves until `shutdown` completes.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), GrpcError> {
        let GrpcServer {
            settings,
            grpc,
            metrics,
            tls,
            ctx,
        } = self;
        let token = settings.control_token.as_ref().map(Secret::expose);
        let control_guard = TokenGuard::control(token, settings.control_insecure);
        let read_guard = TokenGuard::read_only(token, settings.status_requires_token);
        if token.is_none() && settings.control_insecure {
            tracing::warn!(
                "control calls are accepted without a token ({}=1): anyone who reaches the gRPC port can pause or stop pipelines",
                auth::INSECURE_VARIABLE
            );
        }

        // Each reflection version adds its own descriptor; register the other one so
        // both list every service this server offers.
        let reflection = |b: tonic_reflection::server::Builder<'static>| {
            b.register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        };
        let reflection_v1 = reflection(tonic_reflection::server::Builder::configure())
            .register_encoded_file_descriptor_set(
                tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
            )
            .build_v1()
            .map_err(|e| GrpcError::Reflection(e.to_string()))?;
        let reflection_v1alpha = reflection(tonic_reflection::server::Builder::configure())
            .register_encoded_file_descriptor_set(tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET)
            .build_v1alpha()
            .map_err(|e| GrpcError::Reflection(e.to_string()))?;

        let mut builder = Server::builder()
            // Detect clients that vanished (e.g. a metrics stream behind a dead NAT).
            .http2_keepalive_interval(Some(Duration::from_secs(30)))
            .http2_keepalive_timeout(Some(Duration::from_secs(10)))
            .concurrency_limit_per_connection(64);
        if let Some(tls) = tls {
            builder = builder
                .tls_config(tls)
                .map_err(|e| GrpcError::Tls(format!("unusable certificate or key: {e}")))?;
        }
        use pb::control_service_server::ControlServiceServer;
        use pb::health_service_server::HealthServiceServer;
        use pb::metrics_service_server::MetricsServiceServer;
        use pb::status_service_server::StatusServiceServer;
        let router = builder
            .add_service(tonic_health::pb::health_server::HealthServer::new(
                StdHealthSvc(ctx.clone()),
            ))
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            // Health stays open like the standard service: probes carry no token.
            .add_service(HealthServiceServer::new(HealthSvc(ctx.clone())))
            .add_service(StatusServiceServer::with_interceptor(
                StatusSvc(ctx.clone()),
                read_guard.clone(),
            ))
            .add_service(MetricsServiceServer::with_interceptor(
                MetricsSvc(ctx.clone()),
                read_guard.clone(),
            ))
            .add_service(ControlServiceServer::with_interceptor(
                ControlSvc(ctx.clone()),
                control_guard,
            ));

        let grpc_addr = grpc.local_addr().ok();
        let metrics_task = metrics.map(|l| {
            tracing::info!(addr = ?l.local_addr().ok(), "Prometheus metrics at /metrics");
            tokio::spawn(prometheus::serve(l, ctx.clone(), read_guard))
        });
        tracing::info!(addr = ?grpc_addr, tls = settings.tls.is_some(), "gRPC control plane listening");

        let stop = ctx.shutdown.clone();
        let incoming = TcpIncoming::from(grpc).with_nodelay(Some(true));
        let result = router
            .serve_with_incoming_shutdown(incoming, async move {
                shutdown.await;
                // End streams and waits first so the graceful shutdown can finish.
                stop.cancel();
            })
            .await;
        ctx.shutdown.cancel();
        if let Some(t) = metrics_task {
            let _ = t.await;
        }
        tracing::info!("gRPC control plane stopped");
        result.map_err(GrpcError::from)
    }
}

/// Binds and serves the control plane until `shutdown` completes.
///
/// `dbmazz run` binds it next to the worker loop, with the same [`Pipelines`]
/// registry the engines are inserted into.
pub async fn serve(
    settings: GrpcSettings,
    pipelines: Pipelines,
    version: impl Into<String>,
    slots: Option<Arc<dyn SlotInspector>>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), GrpcError> {
    GrpcServer::bind(settings, pipelines, version, slots)
        .await?
        .serve(shutdown)
        .await
}
