//! Typed pgoutput messages as they come off the wire.
//!
//! Row values are never copied out of the received frame: a [`TupleData`] keeps the
//! frame's [`Bytes`] and a compact table of `(kind, offset, len)` entries, and hands
//! out `&[u8]`/`&str`/`Bytes` views of it. Relation and Type messages are rare, so
//! their names are owned `String`s.

use std::fmt;

use bytes::Bytes;
use smallvec::SmallVec;

use crate::lsn::Lsn;

/// A PostgreSQL transaction id.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Xid(pub u32);

impl fmt::Display for Xid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Microseconds since 2000-01-01 00:00:00 UTC (the PostgreSQL epoch).
pub type PgTimestamp = i64;

/// Microseconds between the Unix epoch and the PostgreSQL epoch.
pub const PG_EPOCH_OFFSET_MICROS: i64 = 946_684_800_000_000;

/// `relreplident` of a Relation message.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ReplicaIdentity {
    /// `d`: the primary key.
    Default,
    /// `n`: nothing.
    Nothing,
    /// `f`: the whole row.
    Full,
    /// `i`: a unique index.
    Index,
}

/// One column of a Relation message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelationColumn {
    /// Bit 0 set: the column is part of the replica identity key.
    pub flags: u8,
    /// Column name.
    pub name: String,
    /// Type OID (for user types, a preceding Type message names it).
    pub type_oid: u32,
    /// `atttypmod` (e.g. varchar length + 4, numeric precision/scale).
    pub type_modifier: i32,
}

impl RelationColumn {
    /// True when the column belongs to the replica identity key.
    pub fn is_key(&self) -> bool {
        self.flags & 1 == 1
    }
}

/// Relation (`R`): the schema of a table as the publication sends it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Relation {
    /// Sub-transaction id inside a streamed block.
    pub xid: Option<Xid>,
    /// Relation OID.
    pub id: u32,
    /// Schema name (`pg_catalog` when the wire carried an empty string).
    pub namespace: String,
    /// Table name.
    pub name: String,
    /// Replica identity setting.
    pub replica_identity: ReplicaIdentity,
    /// Columns in tuple order.
    pub columns: Vec<RelationColumn>,
}

/// Type (`Y`): names a non-builtin type used by a following Relation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TypeInfo {
    /// Sub-transaction id inside a streamed block.
    pub xid: Option<Xid>,
    /// Type OID.
    pub oid: u32,
    /// Schema name (`pg_catalog` when the wire carried an empty string).
    pub namespace: String,
    /// Type name (for a domain, the base type's name).
    pub name: String,
}

/// What one column of a [`TupleData`] holds.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ColumnKind {
    /// `n`: SQL NULL.
    Null = 0,
    /// `u`: an unchanged TOASTed value that the server did not send. Not NULL.
    UnchangedToast = 1,
    /// `t`: the type's text output (UTF-8, validated by the parser).
    Text = 2,
    /// `b`: the type's binary send format.
    Binary = 3,
}

/// Where one column's value sits inside the frame: 8 bytes, the kind packed into
/// the two top bits of the length (values are at most 1 GiB - 1 bytes, PostgreSQL's
/// own limit, which the parser checks).
#[derive(Copy, Clone, PartialEq, Eq)]
pub struct ColumnRef {
    start: u32,
    len_kind: u32,
}

const LEN_MASK: u32 = 0x3FFF_FFFF;

/// Longest column value a [`ColumnRef`] can describe.
pub const MAX_VALUE_LEN: usize = LEN_MASK as usize;

impl ColumnRef {
    /// A column without a value (`n` or `u`).
    pub(crate) fn empty(kind: ColumnKind) -> Self {
        ColumnRef {
            start: 0,
            len_kind: (kind as u32) << 30,
        }
    }

    /// A column whose value is `buf[start..start + len]`; `len` must be at most
    /// [`MAX_VALUE_LEN`].
    pub(crate) fn value(kind: ColumnKind, start: u32, len: u32) -> Self {
        ColumnRef {
            start,
            len_kind: ((kind as u32) << 30) | (len & LEN_MASK),
        }
    }

    /// The column's kind.
    #[inline]
    pub fn kind(&self) -> ColumnKind {
        match self.len_kind >> 30 {
            0 => ColumnKind::Null,
            1 => ColumnKind::UnchangedToast,
            2 => ColumnKind::Text,
            _ => ColumnKind::Binary,
        }
    }

    /// Length of the value in bytes (0 for NULL and unchanged TOAST).
    #[inline]
    pub fn len(&self) -> usize {
        (self.len_kind & LEN_MASK) as usize
    }

    /// True when the value is empty (or absent).
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    #[inline]
    fn range(&self) -> std::ops::Range<usize> {
        let start = self.start as usize;
        start..start + self.len()
    }
}

impl fmt::Debug for ColumnRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}({})", self.kind(), self.len())
    }
}

/// A row image: the frame it came from plus the position of every column.
///
/// Invariant kept by the parser (the only producer): every `Text` column's bytes are
/// valid UTF-8 and every range lies inside `buf`.
#[derive(Clone, PartialEq, Eq)]
pub struct TupleData {
    buf: Bytes,
    cols: SmallVec<[ColumnRef; 16]>,
}

impl TupleData {
    /// An empty tuple over `buf`, for the parser to fill in place through
    /// [`TupleData::columns_mut`].
    pub(crate) fn empty(buf: Bytes) -> Self {
        TupleData {
            buf,
            cols: SmallVec::new(),
        }
    }

    /// The column table, for the parser to fill in place. Every `Text` entry added
    /// must be a range of `buf` holding valid UTF-8: [`TupleData::text`] relies on it.
    pub(crate) fn columns_mut(&mut self) -> &mut SmallVec<[ColumnRef; 16]> {
        &mut self.cols
    }

    /// Number of columns.
    pub fn len(&self) -> usize {
        self.cols.len()
    }

    /// True when the tuple has no columns.
    pub fn is_empty(&self) -> bool {
        self.cols.is_empty()
    }

    /// Kind of column `i`, `None` past the end.
    pub fn kind(&self, i: usize) -> Option<ColumnKind> {
        self.cols.get(i).map(ColumnRef::kind)
    }

    /// Raw bytes of column `i` (text or binary); `None` for NULL, unchanged TOAST or past the end.
    pub fn raw(&self, i: usize) -> Option<&[u8]> {
        let c = self.cols.get(i)?;
        match c.kind() {
            ColumnKind::Text | ColumnKind::Binary => self.buf.get(c.range()),
            ColumnKind::Null | ColumnKind::UnchangedToast => None,
        }
    }

    /// Text value of column `i`; `None` unless the column is a `t` value.
    pub fn text(&self, i: usize) -> Option<&str> {
        let c = self.cols.get(i)?;
        if c.kind() != ColumnKind::Text {
            return None;
        }
        let bytes = self.raw(i)?;
        // SAFETY: `columns_mut` is crate-private and its only caller outside tests is
        // the parser, which adds a `Text` entry only after checking that exact range
        // of `buf` is valid UTF-8 (`parser::validate_utf8`); `buf` is immutable
        // `Bytes`, and `raw` returned the range only if it lies inside `buf`. So the bytes are valid UTF-8. Skipping the second check keeps the
        // sink's per-value cost at one validation (measured in benches/parser.rs).
        Some(unsafe { std::str::from_utf8_unchecked(bytes) })
    }

    /// Zero-copy `Bytes` view of column `i`'s value.
    pub fn bytes(&self, i: usize) -> Option<Bytes> {
        let c = self.cols.get(i)?;
        match c.kind() {
            ColumnKind::Text | ColumnKind::Binary => {
                let r = c.range();
                (r.end <= self.buf.len()).then(|| self.buf.slice(r))
            }
            ColumnKind::Null | ColumnKind::UnchangedToast => None,
        }
    }

    /// Column descriptors in order.
    pub fn columns(&self) -> &[ColumnRef] {
        &self.cols
    }
}

impl fmt::Debug for TupleData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Row values never go to logs: print shapes only.
        f.debug_list().entries(self.cols.iter()).finish()
    }
}

/// One decoded pgoutput message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CdcMessage {
    /// `B`
    Begin {
        /// LSN of the commit record.
        final_lsn: Lsn,
        /// Commit timestamp.
        commit_time: PgTimestamp,
        /// Transaction id.
        xid: Xid,
    },
    /// `C`
    Commit {
        /// Flags (0).
        flags: u8,
        /// LSN of the commit record (equals Begin's `final_lsn`).
        commit_lsn: Lsn,
        /// End of the commit record: the position to confirm once durable.
        end_lsn: Lsn,
        /// Commit timestamp.
        commit_time: PgTimestamp,
    },
    /// `O`
    Origin {
        /// Commit LSN on the origin server.
        commit_lsn: Lsn,
        /// Origin name.
        name: String,
    },
    /// `R`
    Relation(Relation),
    /// `Y`
    Type(TypeInfo),
    /// `I`
    Insert {
        /// Sub-transaction id inside a streamed block.
        xid: Option<Xid>,
        /// Relation OID.
        rel_id: u32,
        /// New row.
        new: TupleData,
    },
    /// `U`
    Update {
        /// Sub-transaction id inside a streamed block.
        xid: Option<Xid>,
        /// Relation OID.
        rel_id: u32,
        /// `K`: old key (DEFAULT/INDEX identity, only when the key changed).
        old_key: Option<TupleData>,
        /// `O`: old full row (FULL identity).
        old: Option<TupleData>,
        /// New row; unchanged TOAST columns are `u`.
        new: TupleData,
    },
    /// `D`
    Delete {
        /// Sub-transaction id inside a streamed block.
        xid: Option<Xid>,
        /// Relation OID.
        rel_id: u32,
        /// `K`: old key.
        old_key: Option<TupleData>,
        /// `O`: old full row.
        old: Option<TupleData>,
    },
    /// `T`
    Truncate {
        /// Sub-transaction id inside a streamed block.
        xid: Option<Xid>,
        /// Bit 0 CASCADE, bit 1 RESTART IDENTITY.
        options: u8,
        /// Truncated relations, including those reached by CASCADE.
        rel_ids: Vec<u32>,
    },
    /// `M`
    Message {
        /// Sub-transaction id inside a streamed block.
        xid: Option<Xid>,
        /// Sent inside a transaction (bit 0 of the flags).
        transactional: bool,
        /// LSN of the message.
        lsn: Lsn,
        /// Prefix given to `pg_logical_emit_message`.
        prefix: String,
        /// Content (zero-copy).
        content: Bytes,
    },
    /// `S`
    StreamStart {
        /// Top-level transaction id.
        xid: Xid,
        /// First chunk of this transaction.
        first_segment: bool,
    },
    /// `E`
    StreamStop,
    /// `c`
    StreamCommit {
        /// Top-level transaction id.
        xid: Xid,
        /// Flags (0).
        flags: u8,
        /// LSN of the commit record.
        commit_lsn: Lsn,
        /// End of the commit record.
        end_lsn: Lsn,
        /// Commit timestamp.
        commit_time: PgTimestamp,
    },
    /// `A`
    StreamAbort {
        /// Top-level transaction id.
        xid: Xid,
        /// Aborted sub-transaction (equals `xid` when the whole transaction aborted).
        subxid: Xid,
        /// Abort LSN (protocol 4 with `streaming=parallel` only).
        abort_lsn: Option<Lsn>,
        /// Abort time (protocol 4 with `streaming=parallel` only).
        abort_time: Option<PgTimestamp>,
    },
    /// `b`
    BeginPrepare(PrepareInfo),
    /// `P`
    Prepare(PrepareInfo),
    /// `p`
    StreamPrepare(PrepareInfo),
    /// `K`
    CommitPrepared {
        /// Flags (0).
        flags: u8,
        /// LSN of the commit-prepared record.
        commit_lsn: Lsn,
        /// End of the commit-prepared record.
        end_lsn: Lsn,
        /// Commit timestamp.
        commit_time: PgTimestamp,
        /// Transaction id.
        xid: Xid,
        /// Global transaction id given to PREPARE TRANSACTION.
        gid: String,
    },
    /// `r`
    RollbackPrepared {
        /// Flags (0).
        flags: u8,
        /// End LSN of the prepared transaction.
        prepare_end_lsn: Lsn,
        /// End LSN of the rollback record.
        rollback_end_lsn: Lsn,
        /// Prepare timestamp.
        prepare_time: PgTimestamp,
        /// Rollback timestamp.
        rollback_time: PgTimestamp,
        /// Transaction id.
        xid: Xid,
        /// Global transaction id.
        gid: String,
    },
}

/// Fields shared by Begin Prepare, Prepare and Stream Prepare.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrepareInfo {
    /// Flags (0; absent on the wire for Begin Prepare).
    pub flags: u8,
    /// LSN of the prepare record.
    pub prepare_lsn: Lsn,
    /// End LSN of the prepared transaction.
    pub end_lsn: Lsn,
    /// Prepare timestamp.
    pub prepare_time: PgTimestamp,
    /// Transaction id.
    pub xid: Xid,
    /// Global transaction id.
    pub gid: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tuple_views_do_not_escape_the_frame() {
        let buf = Bytes::from_static(b"hello");
        let cols = SmallVec::from_slice(&[
            ColumnRef::value(ColumnKind::Text, 0, 5),
            ColumnRef::empty(ColumnKind::Null),
            ColumnRef::value(ColumnKind::Text, 3, 9),
        ]);
        let mut t = TupleData::empty(buf);
        *t.columns_mut() = cols;
        assert_eq!(t.text(0), Some("hello"));
        assert_eq!(t.raw(1), None);
        assert_eq!(t.raw(2), None);
        assert_eq!(t.bytes(2), None);
        assert_eq!(t.kind(3), None);
    }
}
