//! The source side of a pipeline: the PostgreSQL replication connection, the
//! pgoutput parser and the decoding of column values.
//!
//! - [`config`]: what to stream and how ([`SourceConfig`]);
//! - [`connection`]: the walsender protocol client (TLS, authentication, framing);
//! - [`start`]: server, slot and publication checks, `START_REPLICATION`;
//! - [`stream`]: the streaming loop (status updates, backpressure, reconnects);
//! - [`wal`]: the CopyData envelope (XLogData, keepalive, standby status update);
//! - [`parser`], [`message`], [`values`]: pgoutput decoding, zero copy.
//!
//! Connection strings, TLS and SQL helpers come from [`crate::postgres`].
//!
//! ```text
//! SourceStream::start(SourceConfig) ──▶ Stream<Item = Result<SourceEvent, SourceError>>
//!        │                                   (Message / Keepalive / Reconnected)
//!        └─ confirm_handle() ──▶ ConfirmHandle::confirm(Checkpointed)  (the only flush LSN)
//! ```
//!
//! Messages travel from the connection task in chunks (one `Vec` per socket read)
//! over a bounded channel, so the per-message cost on the hot path is a vector
//! iterator step. [`SourceStream::next_chunk`] hands out whole chunks for
//! consumers that batch anyway.

pub mod config;
pub mod connection;
pub mod error;
pub mod message;
pub mod parser;
pub mod start;
pub mod stream;
pub mod values;
pub mod wal;

use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::Stream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use config::{ReconnectPolicy, ServerInfo, SourceConfig, Streaming};
pub use error::{ServerError, SourceError};
pub use message::{CdcMessage, Xid};
pub use stream::ConfirmHandle;

use crate::lsn::Lsn;
use crate::postgres::ConnParams;
use stream::{connect_and_start, Chunk, Driver};

/// What the replication stream hands to the pipeline.
// Messages are the hot path and the other variants are rare: boxing the message
// would add an allocation per change to save space on keepalives.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceEvent {
    /// One decoded pgoutput message. `wal_start` is the XLogData position, which is
    /// `0/0` for Relation/Type (and a Begin followed by Origin): take positions from
    /// the messages themselves.
    Message {
        /// XLogData `dataStart`.
        wal_start: Lsn,
        /// The decoded message.
        msg: CdcMessage,
    },
    /// A primary keepalive: the server has sent everything before `wal_end`.
    Keepalive {
        /// The walsender's sent pointer.
        wal_end: Lsn,
    },
    /// The connection was lost and re-established. Any transaction that was open
    /// when it dropped is incomplete and must be discarded; the server re-sends
    /// every transaction that commits at or after `resumed_from`.
    Reconnected {
        /// The durable LSN streaming restarted from.
        resumed_from: Lsn,
    },
}

/// A running replication stream.
///
/// Yields events in WAL order; after an `Err` it yields `None`. Dropping it stops
/// the connection task (which sends a last status update with the durable LSN and
/// closes the connection); [`SourceStream::shutdown`] does the same and waits.
pub struct SourceStream {
    rx: mpsc::Receiver<Chunk>,
    current: std::vec::IntoIter<SourceEvent>,
    confirm: ConfirmHandle,
    cancel: CancellationToken,
    task: Option<JoinHandle<()>>,
    info: ServerInfo,
}

impl std::fmt::Debug for SourceStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceStream")
            .field("info", &self.info)
            .field("confirm", &self.confirm)
            .finish()
    }
}

impl SourceStream {
    /// Connects, checks server, slot and publication, and starts streaming from
    /// `config.start_lsn` (or the slot's confirmed position). Errors of this first
    /// connection are returned as they are (see [`SourceError::is_transient`]);
    /// later transient errors are retried inside the stream.
    pub async fn start(config: SourceConfig) -> Result<Self, SourceError> {
        config.validate()?;
        let params = ConnParams::parse(config.url.expose())?;
        let start = config.start_lsn.map(|c| c.lsn()).unwrap_or(Lsn::ZERO);
        let (conn, info) = connect_and_start(&config, &params, start).await?;
        tracing::info!(
            slot = %config.slot,
            start = %start,
            server_version = info.server_version_num,
            proto_version = info.proto_version,
            system_id = %info.system_id,
            "replication started"
        );
        let confirm = ConfirmHandle::new(config.start_lsn);
        let (tx, rx) = mpsc::channel(config.channel_capacity);
        let cancel = CancellationToken::new();
        let driver = Driver {
            config,
            params,
            confirm: confirm.clone(),
            tx,
            cancel: cancel.clone(),
        };
        let task = tokio::spawn(driver.run(conn));
        Ok(SourceStream {
            rx,
            current: Vec::new().into_iter(),
            confirm,
            cancel,
            task: Some(task),
            info,
        })
    }

    /// The handle through which checkpointed LSNs are confirmed.
    pub fn confirm_handle(&self) -> ConfirmHandle {
        self.confirm.clone()
    }

    /// What the server reported when streaming started.
    pub fn server_info(&self) -> &ServerInfo {
        &self.info
    }

    /// The next chunk of events (whatever is left of a partly consumed chunk first).
    /// `None` when the stream has ended.
    pub async fn next_chunk(&mut self) -> Option<Result<Vec<SourceEvent>, SourceError>> {
        let rest: Vec<SourceEvent> = self.current.by_ref().collect();
        if !rest.is_empty() {
            return Some(Ok(rest));
        }
        self.rx.recv().await
    }

    /// Stops streaming: sends a final status update (flush = durable LSN), ends the
    /// copy, closes the connection and waits for the connection task.
    pub async fn shutdown(mut self) {
        self.cancel.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Stream for SourceStream {
    type Item = Result<SourceEvent, SourceError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if let Some(ev) = this.current.next() {
                return Poll::Ready(Some(Ok(ev)));
            }
            match this.rx.poll_recv(cx) {
                Poll::Ready(Some(Ok(chunk))) => this.current = chunk.into_iter(),
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl Drop for SourceStream {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}
