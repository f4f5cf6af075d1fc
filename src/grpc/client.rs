//! The typed client of the control plane: one connection to a worker and one method
//! per call (`ListPipelines`, `GetStatus`, `Check`, the control calls,
//! `StreamMetrics`). The `dbmazz` commands built on it, and their rendering, are in
//! `crate::cli`. Errors name the address and what to check, never the token.

use std::path::PathBuf;
use std::time::Duration;

use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tonic::{Code, Request};

use crate::config::Secret;
use crate::grpc::pb;

/// Where and how to reach a worker's control plane.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientOptions {
    /// `host:port` or a URL (`http://…`, `https://…`). `0.0.0.0`/`[::]` (a
    /// container's bind address) is reached through loopback.
    pub addr: String,
    /// Bearer token for control calls (and read calls where required).
    pub token: Option<Secret>,
    /// CA certificate (PEM) that signed the server's certificate; implies TLS.
    pub tls_ca: Option<PathBuf>,
    /// Name to verify in the server certificate (default: the address's host).
    pub tls_domain: Option<String>,
    /// Connect and per-call timeout.
    pub timeout: Duration,
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
    /// The command's name: `pause`, `resume`, `drain`, `stop`.
    pub fn verb(self) -> &'static str {
        match self {
            ControlAction::Pause => "pause",
            ControlAction::Resume => "resume",
            ControlAction::Drain => "drain",
            ControlAction::Stop => "stop",
        }
    }

    /// The stage the action leads to.
    pub fn goal(self) -> &'static str {
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
            Some(t) => Some(format!("Bearer {}", t.expose()).parse().map_err(|_| {
                ClientError::Address {
                    addr: opts.addr.clone(),
                    detail: "the token must be visible ASCII characters".into(),
                }
            })?),
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
}
