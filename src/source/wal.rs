//! The CopyData envelope of a logical replication stream.
//!
//! ```text
//! server ─▶ CopyData 'w' XLogData  {wal_start, wal_end, send_time, pgoutput payload}
//!        ─▶ CopyData 'k' keepalive {wal_end, send_time, reply_requested}
//! client ◀─ CopyData 'r' standby status update {written, flushed, applied, time, reply}
//! ```
//!
//! The flush LSN is the one number in this protocol that cannot be taken back:
//! the server turns it into the slot's `confirmed_flush_lsn` and may then discard
//! WAL. [`Feedback`] therefore only ever reports a flush LSN taken from a
//! [`Checkpointed`] (which only the checkpoint store can create, after the
//! checkpoint row is written) or the resume point the stream was started from.
//! The written LSN is the last position received (informational for logical
//! slots); the applied LSN equals the flush field.
//!
//! The flush field carries the durable LSN in the first status update after it
//! moved (and in the first one of every connection), and 0/0 ("no claim") in the
//! others. For a logical slot the server only ever moves `confirmed_flush_lsn`
//! forward, so 0/0 never takes anything back. The reason: during a fast or smart
//! shutdown a walsender waits until the client's reported flush position (or,
//! when that is 0/0, its write position) reaches everything it sent, and our
//! status updates keep resetting `wal_sender_timeout`. Repeating a durable LSN
//! that lags behind (the sink is slow, or the pipeline holds an open transaction)
//! would therefore block the server's shutdown indefinitely; reporting 0/0 lets it
//! finish as soon as everything was received, and the next connection resumes from
//! the durable LSN anyway.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{BufMut, Bytes, BytesMut};

use super::message::{PgTimestamp, PG_EPOCH_OFFSET_MICROS};
use crate::lsn::Lsn;
use crate::state_store::Checkpointed;

/// One CopyData message from the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplicationMessage {
    /// `w`: one pgoutput message.
    XLogData {
        /// `dataStart` (0/0 for Relation, Type and a Begin followed by Origin).
        wal_start: Lsn,
        /// `walEnd`.
        wal_end: Lsn,
        /// Server clock when sent.
        send_time: PgTimestamp,
        /// The pgoutput payload (a zero-copy slice of the received bytes).
        data: Bytes,
    },
    /// `k`: primary keepalive.
    Keepalive {
        /// The walsender's sent pointer.
        wal_end: Lsn,
        /// Server clock when sent.
        send_time: PgTimestamp,
        /// The server asks for a status update right away.
        reply_requested: bool,
    },
}

/// A CopyData payload the client does not understand.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The payload is empty.
    #[error("empty CopyData message in the replication stream")]
    Empty,
    /// Unknown sub-message type.
    #[error("unknown replication message type 0x{0:02X} in CopyData")]
    UnknownType(u8),
    /// Shorter than its fixed header.
    #[error("replication message '{tag}' has {len} bytes, needs at least {needed}")]
    Short {
        /// Sub-message type.
        tag: char,
        /// Bytes received.
        len: usize,
        /// Bytes required.
        needed: usize,
    },
}

const XLOG_HEADER: usize = 1 + 8 + 8 + 8;
const KEEPALIVE_LEN: usize = 1 + 8 + 8 + 1;

fn be_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    if let Some(s) = b.get(at..at + 8) {
        a.copy_from_slice(s);
    }
    u64::from_be_bytes(a)
}

impl ReplicationMessage {
    /// Decodes one CopyData payload (the bytes after the `d` message header).
    pub fn parse(payload: Bytes) -> Result<Self, FrameError> {
        let Some(&tag) = payload.first() else {
            return Err(FrameError::Empty);
        };
        match tag {
            b'w' => {
                if payload.len() < XLOG_HEADER {
                    return Err(FrameError::Short {
                        tag: 'w',
                        len: payload.len(),
                        needed: XLOG_HEADER,
                    });
                }
                Ok(ReplicationMessage::XLogData {
                    wal_start: Lsn(be_u64(&payload, 1)),
                    wal_end: Lsn(be_u64(&payload, 9)),
                    send_time: be_u64(&payload, 17) as i64,
                    data: payload.slice(XLOG_HEADER..),
                })
            }
            b'k' => {
                // Exactly the fixed size; newer servers appending fields would still parse.
                if payload.len() < KEEPALIVE_LEN {
                    return Err(FrameError::Short {
                        tag: 'k',
                        len: payload.len(),
                        needed: KEEPALIVE_LEN,
                    });
                }
                Ok(ReplicationMessage::Keepalive {
                    wal_end: Lsn(be_u64(&payload, 1)),
                    send_time: be_u64(&payload, 9) as i64,
                    reply_requested: payload.get(17).is_some_and(|b| *b != 0),
                })
            }
            other => Err(FrameError::UnknownType(other)),
        }
    }
}

/// Now in microseconds since 2000-01-01 UTC.
pub fn pg_now() -> PgTimestamp {
    let unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0);
    unix - PG_EPOCH_OFFSET_MICROS
}

/// Encodes a standby status update as a complete CopyData protocol message.
pub fn standby_status_update(
    written: Lsn,
    flushed: Lsn,
    applied: Lsn,
    now: PgTimestamp,
    reply_requested: bool,
) -> Bytes {
    let mut b = BytesMut::with_capacity(1 + 4 + 34);
    b.put_u8(b'd');
    b.put_i32(4 + 34);
    b.put_u8(b'r');
    b.put_u64(written.0);
    b.put_u64(flushed.0);
    b.put_u64(applied.0);
    b.put_i64(now);
    b.put_u8(u8::from(reply_requested));
    b.freeze()
}

/// The positions a replication connection reports back.
///
/// `durable` only moves through [`Feedback::confirm`] with a [`Checkpointed`] proof, and
/// never backwards; `received` is bookkeeping of what came off the wire.
#[derive(Debug)]
pub struct Feedback {
    durable: AtomicU64,
    received: AtomicU64,
}

impl Feedback {
    /// Starts at the resume point (the last checkpoint) or 0/0 for a fresh slot.
    pub fn new(resume: Option<Checkpointed>) -> Self {
        let start = resume.map(|c| c.lsn().0).unwrap_or(0);
        Feedback {
            durable: AtomicU64::new(start),
            received: AtomicU64::new(start),
        }
    }

    /// Records a checkpointed LSN; returns true when the durable LSN moved forward.
    pub fn confirm(&self, proof: Checkpointed) -> bool {
        let lsn = proof.lsn().0;
        self.durable.fetch_max(lsn, Ordering::AcqRel) < lsn
    }

    /// The LSN reported as flushed.
    pub fn durable(&self) -> Lsn {
        Lsn(self.durable.load(Ordering::Acquire))
    }

    /// Notes a position received from the server.
    pub fn received_up_to(&self, lsn: Lsn) {
        self.received.fetch_max(lsn.0, Ordering::AcqRel);
    }

    /// The highest position received.
    pub fn received(&self) -> Lsn {
        Lsn(self.received.load(Ordering::Acquire))
    }

    /// The status update to send now on a connection that last reported
    /// `reported` as flushed (0/0 for a new connection).
    ///
    /// The flush field carries the durable LSN when it is ahead of what this
    /// connection already reported, and 0/0 ("no claim") otherwise; see the module
    /// docs for why.
    pub fn status_update(&self, reported: &mut Lsn, reply_requested: bool) -> Bytes {
        let durable = self.durable();
        let flush = if durable > *reported {
            *reported = durable;
            durable
        } else {
            Lsn::ZERO
        };
        let written = self.received().max(durable);
        standby_status_update(written, flush, flush, pg_now(), reply_requested)
    }

    /// A status update that reports the durable LSN whatever was reported before
    /// (the last message of a connection).
    pub fn final_status_update(&self) -> Bytes {
        let durable = self.durable();
        let written = self.received().max(durable);
        standby_status_update(written, durable, durable, pg_now(), false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xlogdata_is_sliced_without_copy() {
        let mut b = BytesMut::new();
        b.put_u8(b'w');
        b.put_u64(0x10);
        b.put_u64(0x20);
        b.put_i64(-5);
        b.put_slice(b"Bxyz");
        let frame = b.freeze();
        let msg = ReplicationMessage::parse(frame.clone()).expect("valid");
        let ReplicationMessage::XLogData {
            wal_start,
            wal_end,
            send_time,
            data,
        } = msg
        else {
            panic!("not xlogdata")
        };
        assert_eq!((wal_start, wal_end, send_time), (Lsn(0x10), Lsn(0x20), -5));
        assert_eq!(&data[..], b"Bxyz");
        assert_eq!(data.as_ptr(), frame[25..].as_ptr());
    }

    #[test]
    fn keepalive_and_errors() {
        let mut b = BytesMut::new();
        b.put_u8(b'k');
        b.put_u64(0x99);
        b.put_i64(1);
        b.put_u8(1);
        assert_eq!(
            ReplicationMessage::parse(b.freeze()),
            Ok(ReplicationMessage::Keepalive {
                wal_end: Lsn(0x99),
                send_time: 1,
                reply_requested: true
            })
        );
        assert_eq!(
            ReplicationMessage::parse(Bytes::new()),
            Err(FrameError::Empty)
        );
        assert_eq!(
            ReplicationMessage::parse(Bytes::from_static(b"x")),
            Err(FrameError::UnknownType(b'x'))
        );
        assert!(matches!(
            ReplicationMessage::parse(Bytes::from_static(b"wabc")),
            Err(FrameError::Short { tag: 'w', .. })
        ));
        assert!(matches!(
            ReplicationMessage::parse(Bytes::from_static(b"k1234567812345678")),
            Err(FrameError::Short { tag: 'k', .. })
        ));
    }

    #[test]
    fn status_update_layout() {
        let m = standby_status_update(Lsn(1), Lsn(2), Lsn(3), 4, true);
        assert_eq!(m.len(), 1 + 4 + 34);
        assert_eq!(m[0], b'd');
        assert_eq!(&m[1..5], &38i32.to_be_bytes());
        assert_eq!(m[5], b'r');
        assert_eq!(&m[6..14], &1u64.to_be_bytes());
        assert_eq!(&m[14..22], &2u64.to_be_bytes());
        assert_eq!(&m[22..30], &3u64.to_be_bytes());
        assert_eq!(&m[30..38], &4i64.to_be_bytes());
        assert_eq!(m[38], 1);
    }

    #[test]
    fn fresh_feedback_reports_zero_flush_and_received_as_written() {
        let f = Feedback::new(None);
        f.received_up_to(Lsn(500));
        let mut reported = Lsn::ZERO;
        let m = f.status_update(&mut reported, false);
        assert_eq!(&m[6..14], &500u64.to_be_bytes());
        assert_eq!(&m[14..22], &0u64.to_be_bytes());
        assert_eq!(&m[22..30], &0u64.to_be_bytes());
        assert_eq!(reported, Lsn::ZERO);
    }
}
