//! The pgoutput parser: one XLogData payload in, one [`CdcMessage`] out.
//!
//! ```text
//! XLogData payload (Bytes, a slice of the socket read buffer)
//!   └─▶ PgOutputParser::parse ─▶ CdcMessage
//!         tuples keep the same Bytes + (kind, offset, len) per column: no copy
//! ```
//!
//! Covers every message of protocol versions 1–4 (see the table in
//! [`CdcMessage`]). Rules this module keeps, because the bytes come from the
//! network:
//!
//! * every length and count is checked against the bytes that remain before it
//!   is used; nothing is allocated with a size taken from the wire unless that
//!   size is first bounded by the remaining input;
//! * a malformed or truncated message is a [`ParseError`] naming the message tag,
//!   the byte offset inside the message and what was wrong: never a panic, never a
//!   skipped message;
//! * every text column (`t`) and every string field is checked to be UTF-8 once,
//!   here (ASCII fast path, then `simdutf8`), so consumers can take `&str` views
//!   without checking again;
//! * trailing bytes after a complete message are an error: they would mean this
//!   parser and the server disagree about the format, and guessing would corrupt
//!   data silently.
//!
//! The parser keeps one bit of state: whether it is inside a Stream Start / Stream
//! Stop block, because inside one every change, Relation, Type and logical
//! Message carries an extra transaction id. Use one parser per replication
//! connection and create a fresh one after reconnecting.

use std::fmt;

use bytes::Bytes;

use super::message::{
    CdcMessage, ColumnKind, ColumnRef, PrepareInfo, Relation, RelationColumn, ReplicaIdentity,
    TupleData, TypeInfo, Xid, MAX_VALUE_LEN,
};
use crate::lsn::Lsn;

/// A pgoutput message tag, printed as the character the protocol documents.
#[derive(Copy, Clone, PartialEq, Eq)]
pub struct Tag(pub u8);

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_ascii_graphic() {
            write!(f, "'{}'", self.0 as char)
        } else {
            write!(f, "0x{:02X}", self.0)
        }
    }
}

impl fmt::Debug for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// What was wrong with a message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseErrorKind {
    /// The payload had no bytes at all.
    #[error("empty message")]
    Empty,
    /// The first byte is not a pgoutput message type.
    #[error("unknown message type")]
    UnknownTag,
    /// A field runs past the end of the message.
    #[error("truncated {field}: needs {needed} bytes, {remaining} left")]
    Truncated {
        /// The field being read.
        field: &'static str,
        /// Bytes it needs.
        needed: u64,
        /// Bytes left in the message.
        remaining: usize,
    },
    /// A NUL-terminated string has no NUL before the end of the message.
    #[error("unterminated string in {field}")]
    Unterminated {
        /// The field being read.
        field: &'static str,
    },
    /// A string field or a text column value is not valid UTF-8.
    #[error("{field} is not valid UTF-8")]
    InvalidUtf8 {
        /// The field (for a column value: "column value").
        field: &'static str,
    },
    /// A length or count is negative.
    #[error("negative {field}: {value}")]
    Negative {
        /// The field being read.
        field: &'static str,
        /// The value on the wire.
        value: i64,
    },
    /// A byte that must be one of a few markers is something else.
    #[error("unexpected {field} byte {found}")]
    UnexpectedByte {
        /// The field being read.
        field: &'static str,
        /// The byte found.
        found: Tag,
    },
    /// A Stream Start inside an open stream block, or a Stream Stop outside one.
    #[error("{0}")]
    StreamState(&'static str),
    /// Bytes left over after a complete message.
    #[error("{0} unexpected trailing bytes")]
    TrailingBytes(usize),
    /// The message is larger than the 4 GiB the tuple offsets can address, or a
    /// column value is larger than PostgreSQL's 1 GiB limit.
    #[error("{0} bytes is too large")]
    TooLarge(usize),
}

/// A malformed pgoutput message: which message, where, and what was wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("malformed pgoutput message {tag} at byte {offset}: {kind}")]
pub struct ParseError {
    /// Message type byte (the first byte of the payload; 0 for an empty payload).
    pub tag: Tag,
    /// Offset inside the message where the problem was found.
    pub offset: usize,
    /// What was wrong.
    pub kind: ParseErrorKind,
}

/// Stateful pgoutput decoder for one replication connection.
#[derive(Clone, Debug, Default)]
pub struct PgOutputParser {
    in_stream: bool,
}

type Result<T> = std::result::Result<T, ParseError>;

/// Bounds-checked big-endian reader over one message.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    tag: u8,
}

impl<'a> Reader<'a> {
    #[inline]
    fn err(&self, kind: ParseErrorKind) -> ParseError {
        ParseError {
            tag: Tag(self.tag),
            offset: self.pos,
            kind,
        }
    }

    #[inline]
    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    #[inline]
    fn truncated(&self, field: &'static str, needed: u64) -> ParseError {
        self.err(ParseErrorKind::Truncated {
            field,
            needed,
            remaining: self.remaining(),
        })
    }

    #[inline]
    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N]> {
        match self
            .buf
            .get(self.pos..)
            .and_then(|rest| rest.first_chunk::<N>())
        {
            Some(a) => {
                self.pos += N;
                Ok(*a)
            }
            None => Err(self.truncated(field, N as u64)),
        }
    }

    #[inline]
    fn u8(&mut self, field: &'static str) -> Result<u8> {
        match self.buf.get(self.pos) {
            Some(b) => {
                self.pos += 1;
                Ok(*b)
            }
            None => Err(self.truncated(field, 1)),
        }
    }

    #[inline]
    fn i16(&mut self, field: &'static str) -> Result<i16> {
        self.array::<2>(field).map(i16::from_be_bytes)
    }

    #[inline]
    fn u32(&mut self, field: &'static str) -> Result<u32> {
        self.array::<4>(field).map(u32::from_be_bytes)
    }

    #[inline]
    fn i32(&mut self, field: &'static str) -> Result<i32> {
        self.array::<4>(field).map(i32::from_be_bytes)
    }

    #[inline]
    fn u64(&mut self, field: &'static str) -> Result<u64> {
        self.array::<8>(field).map(u64::from_be_bytes)
    }

    #[inline]
    fn i64(&mut self, field: &'static str) -> Result<i64> {
        self.array::<8>(field).map(i64::from_be_bytes)
    }

    #[inline]
    fn lsn(&mut self, field: &'static str) -> Result<Lsn> {
        self.u64(field).map(Lsn)
    }

    #[inline]
    fn xid(&mut self, field: &'static str) -> Result<Xid> {
        self.u32(field).map(Xid)
    }

    /// A non-negative Int32 length or count.
    #[inline]
    fn len32(&mut self, field: &'static str) -> Result<usize> {
        let at = self.pos;
        let v = self.i32(field)?;
        usize::try_from(v).map_err(|_| ParseError {
            tag: Tag(self.tag),
            offset: at,
            kind: ParseErrorKind::Negative {
                field,
                value: i64::from(v),
            },
        })
    }

    /// A non-negative Int16 count.
    #[inline]
    fn len16(&mut self, field: &'static str) -> Result<usize> {
        let at = self.pos;
        let v = self.i16(field)?;
        usize::try_from(v).map_err(|_| ParseError {
            tag: Tag(self.tag),
            offset: at,
            kind: ParseErrorKind::Negative {
                field,
                value: i64::from(v),
            },
        })
    }

    /// `n` bytes; returns the start offset.
    #[inline]
    fn skip(&mut self, n: usize, field: &'static str) -> Result<usize> {
        if n > self.remaining() {
            return Err(self.truncated(field, n as u64));
        }
        let start = self.pos;
        self.pos += n;
        Ok(start)
    }

    /// A NUL-terminated UTF-8 string.
    fn cstr(&mut self, field: &'static str) -> Result<&'a str> {
        let rest = self.buf.get(self.pos..).unwrap_or_default();
        let Some(nul) = memchr::memchr(0, rest) else {
            return Err(self.err(ParseErrorKind::Unterminated { field }));
        };
        let bytes = &rest[..nul];
        let s =
            validate_utf8(bytes).ok_or_else(|| self.err(ParseErrorKind::InvalidUtf8 { field }))?;
        self.pos += nul + 1;
        Ok(s)
    }

    fn finish(&self) -> Result<()> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(self.err(ParseErrorKind::TrailingBytes(n))),
        }
    }
}

/// UTF-8 check: ASCII fast path (most values are short ASCII), then SIMD.
#[inline]
fn validate_utf8(bytes: &[u8]) -> Option<&str> {
    if bytes.is_ascii() {
        // SAFETY: ASCII is valid UTF-8.
        return Some(unsafe { std::str::from_utf8_unchecked(bytes) });
    }
    simdutf8::basic::from_utf8(bytes).ok()
}

impl PgOutputParser {
    /// A parser outside any stream block.
    pub fn new() -> Self {
        Self::default()
    }

    /// True between a Stream Start and its Stream Stop.
    pub fn in_stream(&self) -> bool {
        self.in_stream
    }

    /// Decodes one XLogData payload. Tuple values stay slices of `data`.
    pub fn parse(&mut self, data: &Bytes) -> Result<CdcMessage> {
        let buf: &[u8] = data;
        let Some(&tag) = buf.first() else {
            return Err(ParseError {
                tag: Tag(0),
                offset: 0,
                kind: ParseErrorKind::Empty,
            });
        };
        let mut r = Reader { buf, pos: 1, tag };
        if buf.len() > u32::MAX as usize {
            return Err(r.err(ParseErrorKind::TooLarge(buf.len())));
        }
        let msg = match tag {
            // Row changes are built in place: the message is large (three tuples
            // for an Update) and moving it around costs more than parsing a column.
            b'I' => {
                let xid = self.stream_xid(&mut r)?;
                let rel_id = r.u32("relation id")?;
                let marker = r.u8("tuple marker")?;
                if marker != b'N' {
                    return Err(unexpected(&r, "Insert tuple marker", marker));
                }
                let mut msg = CdcMessage::Insert {
                    xid,
                    rel_id,
                    new: TupleData::empty(data.clone()),
                };
                if let CdcMessage::Insert { new, .. } = &mut msg {
                    tuple_into(&mut r, new)?;
                }
                msg
            }
            b'U' => {
                let xid = self.stream_xid(&mut r)?;
                let rel_id = r.u32("relation id")?;
                let mut msg = CdcMessage::Update {
                    xid,
                    rel_id,
                    old_key: None,
                    old: None,
                    new: TupleData::empty(data.clone()),
                };
                if let CdcMessage::Update {
                    old_key, old, new, ..
                } = &mut msg
                {
                    let mut marker = r.u8("tuple marker")?;
                    let before = match marker {
                        b'K' => Some(old_key.insert(TupleData::empty(data.clone()))),
                        b'O' => Some(old.insert(TupleData::empty(data.clone()))),
                        _ => None,
                    };
                    if let Some(t) = before {
                        tuple_into(&mut r, t)?;
                        marker = r.u8("tuple marker")?;
                    }
                    if marker != b'N' {
                        return Err(unexpected(&r, "Update tuple marker", marker));
                    }
                    tuple_into(&mut r, new)?;
                }
                msg
            }
            b'D' => {
                let xid = self.stream_xid(&mut r)?;
                let rel_id = r.u32("relation id")?;
                let marker = r.u8("tuple marker")?;
                let mut msg = CdcMessage::Delete {
                    xid,
                    rel_id,
                    old_key: None,
                    old: None,
                };
                if let CdcMessage::Delete { old_key, old, .. } = &mut msg {
                    let t = match marker {
                        b'K' => old_key.insert(TupleData::empty(data.clone())),
                        b'O' => old.insert(TupleData::empty(data.clone())),
                        _ => return Err(unexpected(&r, "Delete tuple marker", marker)),
                    };
                    tuple_into(&mut r, t)?;
                }
                msg
            }
            b'B' => CdcMessage::Begin {
                final_lsn: r.lsn("final LSN")?,
                commit_time: r.i64("commit timestamp")?,
                xid: r.xid("xid")?,
            },
            b'C' => CdcMessage::Commit {
                flags: r.u8("flags")?,
                commit_lsn: r.lsn("commit LSN")?,
                end_lsn: r.lsn("end LSN")?,
                commit_time: r.i64("commit timestamp")?,
            },
            b'O' => CdcMessage::Origin {
                commit_lsn: r.lsn("origin commit LSN")?,
                name: r.cstr("origin name")?.to_owned(),
            },
            b'R' => {
                let xid = self.stream_xid(&mut r)?;
                let id = r.u32("relation id")?;
                let namespace = namespace(r.cstr("namespace")?);
                let name = r.cstr("relation name")?.to_owned();
                let ident = r.u8("replica identity")?;
                let replica_identity = match ident {
                    b'd' => ReplicaIdentity::Default,
                    b'n' => ReplicaIdentity::Nothing,
                    b'f' => ReplicaIdentity::Full,
                    b'i' => ReplicaIdentity::Index,
                    _ => return Err(unexpected(&r, "replica identity", ident)),
                };
                let ncols = r.len16("column count")?;
                // Each column takes at least 10 bytes: flags, an empty name's NUL,
                // type OID, type modifier.
                let mut columns = Vec::with_capacity(ncols.min(r.remaining() / 10));
                for _ in 0..ncols {
                    columns.push(RelationColumn {
                        flags: r.u8("column flags")?,
                        name: r.cstr("column name")?.to_owned(),
                        type_oid: r.u32("column type")?,
                        type_modifier: r.i32("column type modifier")?,
                    });
                }
                CdcMessage::Relation(Relation {
                    xid,
                    id,
                    namespace,
                    name,
                    replica_identity,
                    columns,
                })
            }
            b'Y' => {
                let xid = self.stream_xid(&mut r)?;
                CdcMessage::Type(TypeInfo {
                    xid,
                    oid: r.u32("type id")?,
                    namespace: namespace(r.cstr("namespace")?),
                    name: r.cstr("type name")?.to_owned(),
                })
            }
            b'T' => {
                let xid = self.stream_xid(&mut r)?;
                let nrels = r.len32("relation count")?;
                let options = r.u8("truncate options")?;
                let needed = (nrels as u64) * 4;
                if needed > r.remaining() as u64 {
                    return Err(r.truncated("truncated relation ids", needed));
                }
                let mut rel_ids = Vec::with_capacity(nrels);
                for _ in 0..nrels {
                    rel_ids.push(r.u32("relation id")?);
                }
                CdcMessage::Truncate {
                    xid,
                    options,
                    rel_ids,
                }
            }
            b'M' => {
                let xid = self.stream_xid(&mut r)?;
                let flags = r.u8("flags")?;
                let lsn = r.lsn("message LSN")?;
                let prefix = r.cstr("message prefix")?.to_owned();
                let len = r.len32("content length")?;
                let start = r.skip(len, "message content")?;
                CdcMessage::Message {
                    xid,
                    transactional: flags & 1 == 1,
                    lsn,
                    prefix,
                    content: data.slice(start..start + len),
                }
            }
            b'S' => {
                if self.in_stream {
                    return Err(r.err(ParseErrorKind::StreamState(
                        "Stream Start inside an open stream block",
                    )));
                }
                let xid = r.xid("xid")?;
                let first = r.u8("first segment flag")?;
                r.finish()?;
                self.in_stream = true;
                return Ok(CdcMessage::StreamStart {
                    xid,
                    first_segment: first == 1,
                });
            }
            b'E' => {
                if !self.in_stream {
                    return Err(r.err(ParseErrorKind::StreamState(
                        "Stream Stop outside a stream block",
                    )));
                }
                r.finish()?;
                self.in_stream = false;
                return Ok(CdcMessage::StreamStop);
            }
            b'c' => CdcMessage::StreamCommit {
                xid: r.xid("xid")?,
                flags: r.u8("flags")?,
                commit_lsn: r.lsn("commit LSN")?,
                end_lsn: r.lsn("end LSN")?,
                commit_time: r.i64("commit timestamp")?,
            },
            b'A' => {
                let xid = r.xid("xid")?;
                let subxid = r.xid("subtransaction xid")?;
                // Protocol 4 with streaming=parallel appends the abort LSN and time.
                let (abort_lsn, abort_time) = if r.remaining() == 0 {
                    (None, None)
                } else {
                    (Some(r.lsn("abort LSN")?), Some(r.i64("abort timestamp")?))
                };
                CdcMessage::StreamAbort {
                    xid,
                    subxid,
                    abort_lsn,
                    abort_time,
                }
            }
            b'b' => CdcMessage::BeginPrepare(PrepareInfo {
                flags: 0,
                prepare_lsn: r.lsn("prepare LSN")?,
                end_lsn: r.lsn("end LSN")?,
                prepare_time: r.i64("prepare timestamp")?,
                xid: r.xid("xid")?,
                gid: r.cstr("gid")?.to_owned(),
            }),
            b'P' => CdcMessage::Prepare(prepare(&mut r)?),
            b'p' => CdcMessage::StreamPrepare(prepare(&mut r)?),
            b'K' => CdcMessage::CommitPrepared {
                flags: r.u8("flags")?,
                commit_lsn: r.lsn("commit LSN")?,
                end_lsn: r.lsn("end LSN")?,
                commit_time: r.i64("commit timestamp")?,
                xid: r.xid("xid")?,
                gid: r.cstr("gid")?.to_owned(),
            },
            b'r' => CdcMessage::RollbackPrepared {
                flags: r.u8("flags")?,
                prepare_end_lsn: r.lsn("prepare end LSN")?,
                rollback_end_lsn: r.lsn("rollback end LSN")?,
                prepare_time: r.i64("prepare timestamp")?,
                rollback_time: r.i64("rollback timestamp")?,
                xid: r.xid("xid")?,
                gid: r.cstr("gid")?.to_owned(),
            },
            _ => {
                r.pos = 0;
                return Err(r.err(ParseErrorKind::UnknownTag));
            }
        };
        r.finish()?;
        Ok(msg)
    }

    #[inline]
    fn stream_xid(&self, r: &mut Reader<'_>) -> Result<Option<Xid>> {
        if self.in_stream {
            r.xid("streamed transaction xid").map(Some)
        } else {
            Ok(None)
        }
    }
}

fn unexpected(r: &Reader<'_>, field: &'static str, found: u8) -> ParseError {
    ParseError {
        tag: Tag(r.tag),
        offset: r.pos.saturating_sub(1),
        kind: ParseErrorKind::UnexpectedByte {
            field,
            found: Tag(found),
        },
    }
}

fn namespace(s: &str) -> String {
    if s.is_empty() {
        "pg_catalog".to_owned()
    } else {
        s.to_owned()
    }
}

fn prepare(r: &mut Reader<'_>) -> Result<PrepareInfo> {
    Ok(PrepareInfo {
        flags: r.u8("flags")?,
        prepare_lsn: r.lsn("prepare LSN")?,
        end_lsn: r.lsn("end LSN")?,
        prepare_time: r.i64("prepare timestamp")?,
        xid: r.xid("xid")?,
        gid: r.cstr("gid")?.to_owned(),
    })
}

/// TupleData: Int16 column count, then per column a kind byte and, for `t`/`b`, an
/// Int32 length and the value. Fills `t` (an empty tuple over the message) in place.
#[inline]
fn tuple_into(r: &mut Reader<'_>, t: &mut TupleData) -> Result<()> {
    let ncols = r.len16("column count")?;
    // Every column takes at least its kind byte: bound the allocation by the input.
    if ncols > r.remaining() {
        return Err(r.truncated("tuple columns", ncols as u64));
    }
    let cols = t.columns_mut();
    cols.reserve_exact(ncols);
    for _ in 0..ncols {
        let kind = r.u8("column kind")?;
        match kind {
            b't' | b'b' => {
                let len = r.len32("column length")?;
                if len > MAX_VALUE_LEN {
                    return Err(r.err(ParseErrorKind::TooLarge(len)));
                }
                let start = r.skip(len, "column value")?;
                let kind = if kind == b't' {
                    let bytes = &r.buf[start..start + len];
                    if validate_utf8(bytes).is_none() {
                        return Err(ParseError {
                            tag: Tag(r.tag),
                            offset: start,
                            kind: ParseErrorKind::InvalidUtf8 {
                                field: "text column value",
                            },
                        });
                    }
                    ColumnKind::Text
                } else {
                    ColumnKind::Binary
                };
                // The message is at most u32::MAX bytes (checked on entry).
                cols.push(ColumnRef::value(kind, start as u32, len as u32));
            }
            b'n' => cols.push(ColumnRef::empty(ColumnKind::Null)),
            b'u' => cols.push(ColumnRef::empty(ColumnKind::UnchangedToast)),
            other => return Err(unexpected(r, "column kind", other)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
