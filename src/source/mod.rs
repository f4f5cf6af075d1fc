//! The source side of a pipeline: the PostgreSQL replication connection, the
//! pgoutput parser and the decoding of column values.

pub mod message;

pub use message::{CdcMessage, Lsn, Xid};

/// What the replication stream hands to the pipeline.
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
