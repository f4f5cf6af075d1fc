//! The streaming loop of one replication connection: read CopyData, decode
//! pgoutput, hand chunks of events to the pipeline, report positions back, and
//! reconnect after transient errors.
//!
//! ```text
//!            socket read (≥256 KiB) ──▶ frames ──▶ PgOutputParser ──▶ Vec<SourceEvent>
//!                                                                      │ bounded channel
//!   status update ◀── every status_interval, on keepalive               ▼ (backpressure)
//!   (flush = durable) ◀── ConfirmHandle::confirm(Checkpointed)     SourceStream (pipeline)
//! ```
//!
//! Invariants kept here:
//! * the flush LSN sent to the server is only ever the resume point or a
//!   [`Checkpointed`] LSN handed to [`ConfirmHandle::confirm`] (or 0/0, "no
//!   claim", see [`super::wal`]); keepalives with "reply requested" are answered
//!   at once;
//! * when the consumer is slow the loop stops reading the socket (the server
//!   blocks on its send buffer) but keeps sending periodic status updates, so
//!   `wal_sender_timeout` never ends the connection;
//! * after a transient error (connection reset, server restart, administrator
//!   shutdown, walsender still holding the slot) it reconnects with exponential
//!   backoff and jitter from the durable LSN and emits
//!   [`SourceEvent::Reconnected`] before any message of the new connection;
//!   definite errors end the stream with the typed error.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, Notify};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::config::{ServerInfo, SourceConfig};
use super::connection::ReplicationConnection;
use super::error::{ServerError, SourceError};
use super::parser::PgOutputParser;
use super::wal::{Feedback, ReplicationMessage};
use super::SourceEvent;
use crate::lsn::Lsn;
use crate::postgres::ConnParams;
use crate::state_store::Checkpointed;

/// Upper bound of events per chunk, so one huge socket read does not become one
/// enormous allocation.
const MAX_CHUNK_EVENTS: usize = 4096;

/// What the driver sends to the stream.
pub(crate) type Chunk = Result<Vec<SourceEvent>, SourceError>;

pub(crate) struct Shared {
    feedback: Feedback,
    notify: Notify,
    /// XLogData payload bytes received (for throughput figures).
    bytes: std::sync::atomic::AtomicU64,
}

/// Confirms durable progress to the server. Cheap to clone; usable from any task.
///
/// The only input is a [`Checkpointed`], which only the checkpoint store creates
/// after writing the checkpoint row: the stream cannot be made to confirm anything
/// that is not recorded (design rule 1).
#[derive(Clone)]
pub struct ConfirmHandle {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for ConfirmHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfirmHandle")
            .field("durable", &self.durable())
            .field("received", &self.received())
            .finish()
    }
}

impl ConfirmHandle {
    pub(crate) fn new(resume: Option<Checkpointed>) -> Self {
        ConfirmHandle {
            shared: Arc::new(Shared {
                bytes: std::sync::atomic::AtomicU64::new(0),
                feedback: Feedback::new(resume),
                notify: Notify::new(),
            }),
        }
    }

    /// Reports `proof.lsn()` as flushed from now on (it never moves backwards) and
    /// sends a status update promptly.
    pub fn confirm(&self, proof: Checkpointed) {
        if self.shared.feedback.confirm(proof) {
            self.shared.notify.notify_one();
        }
    }

    /// The LSN currently reported as flushed.
    pub fn durable(&self) -> Lsn {
        self.shared.feedback.durable()
    }

    /// XLogData payload bytes received by this stream so far.
    pub fn received_bytes(&self) -> u64 {
        self.shared.bytes.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The highest WAL position received from the server (for lag reporting).
    pub fn received(&self) -> Lsn {
        self.shared.feedback.received()
    }
}

/// Opens a replication connection and starts streaming from `start`.
pub(crate) async fn connect_and_start(
    config: &SourceConfig,
    params: &ConnParams,
    start: Lsn,
) -> Result<(ReplicationConnection, ServerInfo), SourceError> {
    let mut conn = ReplicationConnection::connect(
        params,
        &config.slot,
        &config.publication,
        config.connect_timeout,
    )
    .await?;
    let info = tokio::time::timeout(
        config.connect_timeout,
        conn.start_replication(config, start),
    )
    .await
    .map_err(|_| SourceError::Timeout {
        what: "starting replication",
        secs: config.connect_timeout.as_secs(),
    })??;
    Ok((conn, info))
}

enum Flow {
    Continue,
    Stop,
}

/// Owns the connection; runs as one task per stream.
pub(crate) struct Driver {
    pub(crate) config: SourceConfig,
    pub(crate) params: ConnParams,
    pub(crate) confirm: ConfirmHandle,
    pub(crate) tx: mpsc::Sender<Chunk>,
    pub(crate) cancel: CancellationToken,
}

impl Driver {
    fn feedback(&self) -> &Feedback {
        &self.confirm.shared.feedback
    }

    pub(crate) async fn run(self, mut conn: ReplicationConnection) {
        let mut first = Vec::new();
        loop {
            match self.stream(&mut conn, first).await {
                Ok(()) => {
                    let _ = conn.send(&self.feedback().final_status_update()).await;
                    conn.close().await;
                    return;
                }
                Err(e) if e.is_transient() => {
                    tracing::warn!(
                        error = %e,
                        durable = %self.feedback().durable(),
                        slot = %self.config.slot,
                        "replication connection interrupted; reconnecting"
                    );
                    drop(conn);
                    match self.reconnect(e).await {
                        Some(Ok((c, resumed_from))) => {
                            conn = c;
                            first = vec![SourceEvent::Reconnected { resumed_from }];
                        }
                        Some(Err(e)) => {
                            let _ = self.tx.send(Err(e)).await;
                            return;
                        }
                        None => return,
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, slot = %self.config.slot, "replication stopped");
                    let _ = self.tx.send(Err(e)).await;
                    conn.close().await;
                    return;
                }
            }
        }
    }

    async fn send_status(
        &self,
        conn: &mut ReplicationConnection,
        reported: &mut Lsn,
    ) -> Result<(), SourceError> {
        if self.feedback().durable() > *reported {
            fail::fail_point!("replication::before_status_update", |a| Err(
                SourceError::Protocol(crate::failpoint::hit(
                    "replication::before_status_update",
                    a
                ))
            ));
        }
        conn.send(&self.feedback().status_update(reported, false))
            .await
    }

    async fn stream(
        &self,
        conn: &mut ReplicationConnection,
        mut chunk: Vec<SourceEvent>,
    ) -> Result<(), SourceError> {
        let mut parser = PgOutputParser::new();
        // What this connection last reported as flushed (see super::wal).
        let mut reported = Lsn::ZERO;
        let period = self.config.status_interval;
        let mut ticker = tokio::time::interval_at(Instant::now() + period, period);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            let mut reply = false;
            while chunk.len() < MAX_CHUNK_EVENTS {
                let Some((tag, body)) = conn.try_frame()? else {
                    break;
                };
                match tag {
                    b'd' => match ReplicationMessage::parse(body)? {
                        ReplicationMessage::XLogData {
                            wal_start,
                            wal_end,
                            data,
                            ..
                        } => {
                            let msg = parser
                                .parse(&data)
                                .map_err(|error| SourceError::Parse { error, wal_start })?;
                            self.feedback().received_up_to(wal_end);
                            self.confirm
                                .shared
                                .bytes
                                .fetch_add(data.len() as u64, std::sync::atomic::Ordering::Relaxed);
                            chunk.push(SourceEvent::Message { wal_start, msg });
                        }
                        ReplicationMessage::Keepalive {
                            wal_end,
                            reply_requested,
                            ..
                        } => {
                            self.feedback().received_up_to(wal_end);
                            reply |= reply_requested;
                            chunk.push(SourceEvent::Keepalive { wal_end });
                        }
                    },
                    // CopyDone, or CommandComplete straight away when a walsender shuts down.
                    b'c' | b'C' | b'Z' => {
                        return Err(SourceError::Closed("the server ended the stream"))
                    }
                    b'E' => return Err(conn.server_error(&body)),
                    b'N' => {
                        let notice = ServerError::parse(&body);
                        tracing::info!(code = %notice.code, message = %notice.message, "server notice");
                    }
                    b'S' => {}
                    other => {
                        return Err(SourceError::Protocol(format!(
                            "unexpected message '{}' while streaming",
                            other as char
                        )))
                    }
                }
            }
            if reply {
                self.send_status(conn, &mut reported).await?;
            }
            if !chunk.is_empty() {
                let full = std::mem::replace(&mut chunk, Vec::with_capacity(256));
                match self.deliver(conn, full, &mut ticker, &mut reported).await? {
                    Flow::Continue => continue,
                    Flow::Stop => return Ok(()),
                }
            }
            // The branch order is deliberate: shutdown first, then the consumer
            // going away, then confirmations and the status timer (both cheap and
            // time-sensitive), and only then more input.
            tokio::select! {
                biased;
                _ = self.cancel.cancelled() => return Ok(()),
                _ = self.tx.closed() => return Ok(()),
                _ = self.confirm.shared.notify.notified() => {
                    self.send_status(conn, &mut reported).await?
                }
                _ = ticker.tick() => self.send_status(conn, &mut reported).await?,
                r = conn.fill() => r?,
            }
        }
    }

    /// Hands a chunk to the consumer, waiting for room while keeping the connection
    /// alive with status updates.
    async fn deliver(
        &self,
        conn: &mut ReplicationConnection,
        chunk: Vec<SourceEvent>,
        ticker: &mut tokio::time::Interval,
        reported: &mut Lsn,
    ) -> Result<Flow, SourceError> {
        loop {
            tokio::select! {
                biased;
                _ = self.cancel.cancelled() => return Ok(Flow::Stop),
                permit = self.tx.reserve() => {
                    return match permit {
                        Ok(p) => {
                            p.send(Ok(chunk));
                            Ok(Flow::Continue)
                        }
                        Err(_) => Ok(Flow::Stop),
                    };
                }
                _ = self.confirm.shared.notify.notified() => self.send_status(conn, reported).await?,
                _ = ticker.tick() => self.send_status(conn, reported).await?,
            }
        }
    }

    /// Reconnects with exponential backoff and jitter. `None` when cancelled.
    async fn reconnect(
        &self,
        first: SourceError,
    ) -> Option<Result<(ReplicationConnection, Lsn), SourceError>> {
        let policy = self.config.reconnect;
        let started = Instant::now();
        let mut delay = policy.initial_backoff;
        let mut last = first;
        let mut attempt = 0u32;
        loop {
            if started.elapsed() >= policy.give_up_after {
                tracing::error!(
                    error = %last,
                    secs = policy.give_up_after.as_secs(),
                    "giving up reconnecting"
                );
                return Some(Err(last));
            }
            let jittered = delay.mul_f64(rand::random_range(0.5..=1.0));
            tokio::select! {
                biased;
                _ = self.cancel.cancelled() => return None,
                _ = self.tx.closed() => return None,
                _ = tokio::time::sleep(jittered) => {}
            }
            attempt += 1;
            let from = self.feedback().durable();
            let result = tokio::select! {
                biased;
                _ = self.cancel.cancelled() => return None,
                r = connect_and_start(&self.config, &self.params, from) => r,
            };
            match result {
                Ok((conn, info)) => {
                    tracing::info!(
                        attempt,
                        resumed_from = %from,
                        server_version = info.server_version_num,
                        "replication reconnected"
                    );
                    return Some(Ok((conn, from)));
                }
                Err(e) if e.is_transient() => {
                    tracing::warn!(attempt, error = %e, "reconnect attempt failed");
                    last = e;
                }
                Err(e) => return Some(Err(e)),
            }
            delay = (delay * 2)
                .min(policy.max_backoff)
                .max(Duration::from_millis(1));
        }
    }
}
