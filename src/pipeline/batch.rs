//! Batches: the unit that is loaded, acknowledged and checkpointed as a whole.
//!
//! A batch holds whole transactions only (design rule 3). Inside it, changes are
//! grouped per table into segments that the sink applies in order:
//!
//! ```text
//! TableBatch(public.orders): [Rows(schema g0) ─ Truncate ─ Rows(schema g0) ─ Rows(schema g1)]
//! ```
//!
//! Within one `Rows` segment every key appears once: later changes to a key are
//! folded into the earlier entry (design rule 4), so the sink never depends on how
//! StarRocks orders equal keys inside one load, and different keys are independent,
//! which lets the sink split a segment into loads by row shape in any order.
//!
//! Folding keeps values correct for unchanged TOAST columns (`u`): a row whose image
//! lacks a column keeps a short chain of earlier images of the same key (the old
//! row of a REPLICA IDENTITY FULL update, earlier rows of the batch) that supply it.
//! A column no image can supply stays *absent*, and the sink sends a partial update
//! that leaves the stored value alone — exactly what PostgreSQL did.

use std::sync::Arc;

use rustc_hash::FxHashMap;
use smallvec::SmallVec;

use super::schema_cache::TableSchema;
use crate::lsn::Lsn;
use crate::source::message::{ColumnKind, TupleData};

/// The kind of change a row represents.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum RowOp {
    /// INSERT.
    Insert,
    /// UPDATE.
    Update,
    /// DELETE.
    Delete,
}

/// The value of one column of a row, as far as the change stream tells.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ColumnValue<'a> {
    /// SQL NULL.
    Null,
    /// Text representation.
    Text(&'a str),
    /// Binary representation (only with `binary` output).
    Binary(&'a [u8]),
    /// Not known from the stream (unchanged TOAST without an older image, or a
    /// non-key column of a key-only delete): leave the stored value alone.
    Absent,
}

/// One folded change of one key.
#[derive(Clone, Debug)]
pub struct Row {
    /// Last operation on the key in this segment.
    pub op: RowOp,
    /// Commit LSN of the transaction of that operation (`dbmazz_cdc_version`).
    pub version: Lsn,
    image: TupleData,
    key_only: bool,
    fill: Vec<TupleData>,
}

impl Row {
    /// A new row image (INSERT/UPDATE new tuple, or the old row of a DELETE).
    ///
    /// `key_only` marks an old-key (`K`) tuple, whose non-identity columns carry
    /// no data.
    pub fn new(op: RowOp, version: Lsn, image: TupleData, key_only: bool) -> Self {
        Row {
            op,
            version,
            image,
            key_only,
            fill: Vec::new(),
        }
    }

    /// Adds an older image of the same row as a source for absent columns
    /// (e.g. the `O` tuple of a REPLICA IDENTITY FULL update).
    pub fn with_fill(mut self, older: TupleData) -> Self {
        self.fill.push(older);
        self
    }

    /// Value of column `i`.
    #[inline]
    pub fn value<'a>(&'a self, schema: &TableSchema, i: usize) -> ColumnValue<'a> {
        let own = if self.key_only && !schema.columns.get(i).is_some_and(|c| c.identity) {
            None
        } else {
            direct(&self.image, i)
        };
        if let Some(v) = own {
            return v;
        }
        for t in &self.fill {
            if let Some(v) = direct(t, i) {
                return v;
            }
        }
        ColumnValue::Absent
    }

    /// True when every column has a known value.
    pub fn is_complete(&self, schema: &TableSchema) -> bool {
        (0..schema.columns.len()).all(|i| self.value(schema, i) != ColumnValue::Absent)
    }

    /// The frame bytes this row keeps alive (approximate, for the memory budget).
    pub fn retained_bytes(&self) -> usize {
        tuple_bytes(&self.image) + self.fill.iter().map(tuple_bytes).sum::<usize>()
    }

    /// Images that can supply columns to a later change of the same key.
    fn sources(&self) -> impl Iterator<Item = &TupleData> {
        let own = (self.op != RowOp::Delete && !self.key_only).then_some(&self.image);
        own.into_iter().chain(self.fill.iter())
    }

    /// Keeps only the fill images that supply a column this row lacks.
    fn compact(&mut self, schema: &TableSchema, candidates: &[TupleData]) {
        let n = schema.columns.len();
        let mut missing: SmallVec<[usize; 8]> = SmallVec::new();
        for i in 0..n {
            let own_ok =
                (!self.key_only || schema.columns[i].identity) && direct(&self.image, i).is_some();
            if !own_ok {
                missing.push(i);
            }
        }
        let mut kept: Vec<TupleData> = Vec::new();
        if !missing.is_empty() {
            for t in self.fill.iter().chain(candidates.iter()) {
                let before = missing.len();
                missing.retain(|i| direct(t, *i).is_none());
                if missing.len() != before {
                    kept.push(t.clone());
                }
                if missing.is_empty() {
                    break;
                }
            }
        }
        self.fill = kept;
    }
}

#[inline]
fn direct(t: &TupleData, i: usize) -> Option<ColumnValue<'_>> {
    match t.kind(i)? {
        ColumnKind::Null => Some(ColumnValue::Null),
        ColumnKind::Text => t.text(i).map(ColumnValue::Text),
        ColumnKind::Binary => t.raw(i).map(ColumnValue::Binary),
        ColumnKind::UnchangedToast => None,
    }
}

fn tuple_bytes(t: &TupleData) -> usize {
    (0..t.len())
        .map(|i| t.raw(i).map_or(0, <[u8]>::len) + 8)
        .sum()
}

/// Errors while folding changes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FoldError {
    /// A key column has no value in the change.
    #[error(
        "table '{table}': key column '{column}' has no value in a {op:?} (unchanged TOAST or \
         missing from the old-key tuple); set REPLICA IDENTITY FULL on the table so the old \
         row carries it"
    )]
    KeyUnavailable {
        /// Table.
        table: String,
        /// Column.
        column: String,
        /// Operation.
        op: RowOp,
    },
    /// An unchanged TOAST value of a key-changing update cannot be resolved.
    #[error(
        "table '{table}': an UPDATE changed the primary key and left the TOASTed column \
         '{column}' unchanged, but no older image of the row carries its value; set REPLICA \
         IDENTITY FULL on the table (ALTER TABLE {table} REPLICA IDENTITY FULL) and restart"
    )]
    ToastOnKeyChange {
        /// Table.
        table: String,
        /// Column.
        column: String,
    },
}

type KeyBuf = SmallVec<[u8; 32]>;

fn key_of(schema: &TableSchema, row: &Row) -> Result<KeyBuf, FoldError> {
    let mut k = KeyBuf::new();
    for &i in &schema.key {
        match row.value(schema, i) {
            ColumnValue::Text(s) => {
                k.extend_from_slice(&(s.len() as u32).to_le_bytes());
                k.extend_from_slice(s.as_bytes());
            }
            ColumnValue::Binary(b) => {
                k.extend_from_slice(&(b.len() as u32 | 0x8000_0000).to_le_bytes());
                k.extend_from_slice(b);
            }
            ColumnValue::Null => k.extend_from_slice(&u32::MAX.to_le_bytes()),
            ColumnValue::Absent => {
                return Err(FoldError::KeyUnavailable {
                    table: schema.spec.qualified(),
                    column: schema.columns[i].name.clone(),
                    op: row.op,
                })
            }
        }
    }
    Ok(k)
}

/// Folded rows of one table under one schema.
#[derive(Debug)]
pub struct RowsSegment {
    /// Schema of every row here.
    pub schema: Arc<TableSchema>,
    /// One entry per key, in first-seen order.
    pub rows: Vec<Row>,
    index: FxHashMap<KeyBuf, u32>,
}

impl RowsSegment {
    fn new(schema: Arc<TableSchema>) -> Self {
        RowsSegment {
            schema,
            rows: Vec::new(),
            index: FxHashMap::default(),
        }
    }

    /// Folds one change into the segment. Returns the change in retained bytes.
    fn push(&mut self, mut row: Row) -> Result<isize, FoldError> {
        let key = key_of(&self.schema, &row)?;
        match self.index.get(&key) {
            None => {
                let added = row.retained_bytes() as isize;
                row.compact(&self.schema, &[]);
                self.index.insert(key, self.rows.len() as u32);
                self.rows.push(row);
                Ok(added)
            }
            Some(&j) => {
                let prev = &self.rows[j as usize];
                let before = prev.retained_bytes() as isize;
                if row.op != RowOp::Insert {
                    let cands: SmallVec<[TupleData; 4]> = prev.sources().cloned().collect();
                    row.compact(&self.schema, &cands);
                } else {
                    row.compact(&self.schema, &[]);
                }
                let after = row.retained_bytes() as isize;
                self.rows[j as usize] = row;
                Ok(after - before)
            }
        }
    }

    /// Earlier images of the key `row` names (for a key-changing update).
    fn sources_for(&self, row: &Row) -> Result<SmallVec<[TupleData; 4]>, FoldError> {
        let key = key_of(&self.schema, row)?;
        Ok(self
            .index
            .get(&key)
            .map(|&j| self.rows[j as usize].sources().cloned().collect())
            .unwrap_or_default())
    }
}

/// A step the sink applies to one table, in order.
#[derive(Debug)]
pub enum Segment {
    /// Folded row changes.
    Rows(RowsSegment),
    /// TRUNCATE of the table.
    Truncate {
        /// Commit LSN of the truncating transaction.
        version: Lsn,
        /// TRUNCATE … CASCADE.
        cascade: bool,
        /// TRUNCATE … RESTART IDENTITY.
        restart_identity: bool,
    },
}

/// Per-table counts of the changes received (before folding).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct OpCounts {
    /// Inserts.
    pub inserts: u64,
    /// Updates.
    pub updates: u64,
    /// Deletes.
    pub deletes: u64,
    /// Truncates.
    pub truncates: u64,
}

/// All segments of one table in a batch.
#[derive(Debug)]
pub struct TableBatch {
    /// Qualified PostgreSQL name.
    pub table: String,
    /// Sink table name.
    pub sink_table: String,
    /// Segments in stream order.
    pub segments: Vec<Segment>,
    /// Changes received for this table.
    pub counts: OpCounts,
}

impl TableBatch {
    fn rows_segment(&mut self, schema: &Arc<TableSchema>) -> &mut RowsSegment {
        let reuse = matches!(self.segments.last(), Some(Segment::Rows(r)) if Arc::ptr_eq(&r.schema, schema));
        if !reuse {
            self.segments
                .push(Segment::Rows(RowsSegment::new(schema.clone())));
        }
        match self.segments.last_mut() {
            Some(Segment::Rows(r)) => r,
            // Just pushed above when it was not a Rows segment.
            _ => unreachable!("rows segment was just ensured"),
        }
    }

    /// True when a TRUNCATE appears in this batch (loads after it must not be
    /// short-circuited by label de-duplication on a replay).
    pub fn has_truncate(&self) -> bool {
        self.segments
            .iter()
            .any(|s| matches!(s, Segment::Truncate { .. }))
    }
}

/// A batch of whole transactions, ready for the sink.
#[derive(Debug, Default)]
pub struct Batch {
    /// Sequence number within this process.
    pub seq: u64,
    /// Commit LSN of the first transaction.
    pub first_commit: Lsn,
    /// Commit LSN of the last transaction.
    pub last_commit: Lsn,
    /// End LSN of the last transaction's commit record: the checkpoint once loaded.
    pub end_lsn: Lsn,
    /// Commit time (PostgreSQL epoch µs) of the last transaction.
    pub last_commit_time: i64,
    /// Tables in first-touched order.
    pub tables: Vec<TableBatch>,
    /// Transactions in the batch.
    pub transactions: u64,
    /// Changes received (before folding).
    pub changes: u64,
    /// Approximate bytes retained.
    pub bytes: usize,
    table_index: FxHashMap<u32, usize>,
}

impl Batch {
    /// An empty batch.
    pub fn new(seq: u64) -> Self {
        Batch {
            seq,
            ..Default::default()
        }
    }

    /// True when no transaction was added.
    pub fn is_empty(&self) -> bool {
        self.transactions == 0
    }

    /// Rows after folding.
    pub fn rows(&self) -> usize {
        self.tables
            .iter()
            .flat_map(|t| &t.segments)
            .map(|s| match s {
                Segment::Rows(r) => r.rows.len(),
                Segment::Truncate { .. } => 0,
            })
            .sum()
    }

    fn table(&mut self, schema: &TableSchema) -> &mut TableBatch {
        let idx = match self.table_index.get(&schema.rel_id) {
            Some(&i) => i,
            None => {
                // A table may appear under a second OID after DROP/CREATE; key by name.
                let name = schema.spec.qualified();
                let i = match self.tables.iter().position(|t| t.table == name) {
                    Some(i) => i,
                    None => {
                        self.tables.push(TableBatch {
                            table: name,
                            sink_table: schema.spec.sink_table.clone(),
                            segments: Vec::new(),
                            counts: OpCounts::default(),
                        });
                        self.tables.len() - 1
                    }
                };
                self.table_index.insert(schema.rel_id, i);
                i
            }
        };
        &mut self.tables[idx]
    }

    /// Adds one committed transaction.
    pub fn add_transaction(&mut self, txn: Transaction) -> Result<(), FoldError> {
        if self.transactions == 0 {
            self.first_commit = txn.commit_lsn;
        }
        self.last_commit = txn.commit_lsn;
        self.end_lsn = txn.end_lsn;
        self.last_commit_time = txn.commit_time;
        self.transactions += 1;
        for change in txn.changes {
            self.changes += 1;
            match change {
                Change::Row { schema, row } => {
                    let t = self.table(&schema);
                    match row.op {
                        RowOp::Insert => t.counts.inserts += 1,
                        RowOp::Update => t.counts.updates += 1,
                        RowOp::Delete => t.counts.deletes += 1,
                    }
                    let delta = t.rows_segment(&schema).push(row)?;
                    self.bytes = self.bytes.saturating_add_signed(delta);
                }
                Change::KeyChange { schema, rows } => {
                    let (old, mut new) = *rows;
                    let t = self.table(&schema);
                    t.counts.updates += 1;
                    let seg = t.rows_segment(&schema);
                    for s in seg.sources_for(&old)? {
                        new.fill.push(s);
                    }
                    let d1 = seg.push(old)?;
                    // The sink row under the new key is not this logical row, so a
                    // value the stream does not carry cannot be left "as stored".
                    let missing = (0..schema.columns.len())
                        .find(|&i| new.value(&schema, i) == ColumnValue::Absent);
                    if let Some(i) = missing {
                        return Err(FoldError::ToastOnKeyChange {
                            table: schema.spec.qualified(),
                            column: schema.columns[i].name.clone(),
                        });
                    }
                    let d2 = seg.push(new)?;
                    self.bytes = self.bytes.saturating_add_signed(d1 + d2);
                }
                Change::Truncate {
                    schema,
                    cascade,
                    restart_identity,
                } => {
                    let version = self.last_commit;
                    let t = self.table(&schema);
                    t.counts.truncates += 1;
                    t.segments.push(Segment::Truncate {
                        version,
                        cascade,
                        restart_identity,
                    });
                }
            }
        }
        Ok(())
    }
}

/// One change inside a transaction, before folding.
#[derive(Debug)]
pub enum Change {
    /// An INSERT, an UPDATE that keeps its key, or a DELETE.
    Row {
        /// Table schema at the time of the change.
        schema: Arc<TableSchema>,
        /// The change.
        row: Row,
    },
    /// An UPDATE that changed the key: delete the old key (first row), upsert the
    /// new row (second). Boxed: rare, and twice the size of the other variants.
    KeyChange {
        /// Table schema.
        schema: Arc<TableSchema>,
        /// Delete of the old key, then the new row.
        rows: Box<(Row, Row)>,
    },
    /// TRUNCATE of one table.
    Truncate {
        /// Table schema.
        schema: Arc<TableSchema>,
        /// CASCADE given.
        cascade: bool,
        /// RESTART IDENTITY given.
        restart_identity: bool,
    },
}

/// A transaction being received.
#[derive(Debug, Default)]
pub struct Transaction {
    /// Commit LSN (Begin's final LSN).
    pub commit_lsn: Lsn,
    /// End of the commit record.
    pub end_lsn: Lsn,
    /// Commit time.
    pub commit_time: i64,
    /// Changes in order.
    pub changes: Vec<Change>,
    /// Approximate retained bytes.
    pub bytes: usize,
}

#[cfg(test)]
pub(crate) mod fixtures;

#[cfg(test)]
mod tests;
