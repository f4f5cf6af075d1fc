//! Helpers shared by the control plane integration tests: a server on random
//! loopback ports, pipelines registered the way the engine registers them, a
//! stand-in that reacts to a handle's pause/drain/abort like the engine's loop,
//! and a plain HTTP GET for the Prometheus endpoint.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use dbmazz::engine::status::{SharedState, Stage};
use dbmazz::engine::{PipelineHandle, Pipelines};
use dbmazz::grpc::{GrpcError, GrpcServer, GrpcSettings, SlotInspector};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

pub const VERSION: &str = "9.9.9-test";

/// Settings on random loopback ports with a Prometheus endpoint.
pub fn settings() -> GrpcSettings {
    GrpcSettings {
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        metrics_addr: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
        ..GrpcSettings::default()
    }
}

/// A running control plane.
pub struct Server {
    pub pipelines: Pipelines,
    pub grpc: SocketAddr,
    pub metrics: Option<SocketAddr>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), GrpcError>>>,
}

impl Server {
    pub async fn start(settings: GrpcSettings) -> Server {
        Self::start_with(settings, Pipelines::new(), None).await
    }

    pub async fn start_with(
        settings: GrpcSettings,
        pipelines: Pipelines,
        slots: Option<Arc<dyn SlotInspector>>,
    ) -> Server {
        let server = GrpcServer::bind(settings, pipelines.clone(), VERSION, slots)
            .await
            .expect("bind the control plane");
        let grpc = server.grpc_addr().expect("grpc addr");
        let metrics = server.metrics_addr();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(server.serve(async move {
            let _ = rx.await;
        }));
        Server {
            pipelines,
            grpc,
            metrics,
            stop: Some(tx),
            task: Some(task),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.grpc)
    }

    pub async fn channel(&self) -> Channel {
        Channel::from_shared(self.url())
            .expect("uri")
            .connect()
            .await
            .expect("connect to the control plane")
    }

    /// Registers a pipeline in `stage`.
    pub fn add(&self, job: &str, stage: Stage) -> PipelineHandle {
        let state = Arc::new(SharedState::new(
            job,
            &format!("slot_{job}"),
            &format!("pub_{job}"),
        ));
        state.set_stage(stage);
        let h = PipelineHandle::new(state);
        self.pipelines.insert(h.clone());
        h
    }

    /// Triggers shutdown and returns what `serve` returned.
    pub async fn shutdown(mut self) -> Result<(), GrpcError> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        let task = self.task.take().expect("task");
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("the server stops within 10 s")
            .expect("server task")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// Reacts to a handle like the engine's CDC loop: PAUSED while paused, CDC
/// otherwise; a drain moves the checkpoint and the confirmed LSN to what was
/// received, then STOPPED; an abort stops at once.
pub fn react_like_engine(h: PipelineHandle) -> JoinHandle<()> {
    tokio::spawn(async move {
        let st = h.state.clone();
        let mut paused = h.pause_watch();
        loop {
            let p = *paused.borrow_and_update();
            st.set_stage(if p { Stage::Paused } else { Stage::Cdc });
            tokio::select! {
                biased;
                _ = h.abort.cancelled() => {
                    st.set_stage(Stage::Stopped);
                    return;
                }
                _ = h.drain.cancelled() => {
                    st.set_stage(Stage::Draining);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    let end = st.pipeline.received_lsn.get();
                    st.flushed_lsn.raise(end);
                    st.checkpoint_lsn.raise(end);
                    st.confirmed_lsn.raise(end);
                    st.set_stage(Stage::Stopped);
                    return;
                }
                r = paused.changed() => {
                    if r.is_err() {
                        return;
                    }
                }
            }
        }
    })
}

/// Adds `authorization: Bearer <token>`.
pub fn with_token<T>(msg: T, token: &str) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    r.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("ascii token"),
    );
    r
}

/// A plain HTTP/1.1 GET; returns (status code, headers, body).
pub async fn http_get(
    addr: SocketAddr,
    method: &str,
    path: &str,
    auth: Option<&str>,
) -> (u16, String, String) {
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect to /metrics");
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(a) = auth {
        req.push_str(&format!("Authorization: {a}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await.expect("send");
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf))
        .await
        .expect("response within 10 s")
        .expect("read");
    let text = String::from_utf8(buf).expect("utf-8 response");
    let (head, body) = text.split_once("\r\n\r\n").expect("header/body separator");
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status code");
    (status, head.to_owned(), body.to_owned())
}

/// Waits until `f` holds, polling every 20 ms, for at most `secs` seconds.
pub async fn eventually(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while tokio::time::Instant::now() < deadline {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    f()
}
