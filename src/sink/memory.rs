//! A sink that keeps its tables in memory, applying batches with the rules of a
//! StarRocks Primary Key table under dbmazz's load settings:
//!
//! - every row carries its commit LSN as version, and a change older than the stored
//!   row is ignored (`merge_condition` on `dbmazz_cdc_version`, design rule 4);
//! - soft delete keeps the row marked deleted (an upsert), hard delete removes it
//!   (and, as in StarRocks, ignores the version);
//! - absent columns (unchanged TOAST without an earlier image) keep their stored
//!   value, like a partial update;
//! - TRUNCATE empties the table (`apply`), marks the rows not newer than it deleted
//!   (`soft`), or is refused (`fail`).
//!
//! It has no durability, so it is no destination for production data: it serves the
//! engine's unit tests (batch boundaries, folding, checkpoint rules without any
//! service) and trying a pipeline out. [`MemoryTables`] is its
//! [`SinkConnector`]: every sink it opens shares the same tables, which the caller
//! inspects. A failure can be scheduled for the next push to exercise error
//! handling.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio_util::sync::CancellationToken;

use super::metrics::{SinkMetrics, TableCounters};
use super::{Sink, SinkAck, SinkConnector, SinkError};
use crate::config::{DeleteMode, TruncateMode};
use crate::error::ErrorKind;
use crate::lsn::Lsn;
use crate::pipeline::batch::{Batch, ColumnValue, Row, RowOp, Segment};
use crate::pipeline::schema_cache::{SourceTable, TableSchema};

/// A row as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredRow {
    /// Commit LSN of the change that wrote it (`dbmazz_cdc_version`).
    pub version: Lsn,
    /// The operation that wrote it.
    pub op: RowOp,
    /// Marked deleted (soft delete, soft TRUNCATE).
    pub deleted: bool,
    /// Column values by name (`None` is NULL).
    pub values: BTreeMap<String, Option<String>>,
}

/// One acknowledged batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushRecord {
    /// Batch sequence number.
    pub seq: u64,
    /// Commit LSN of its first transaction.
    pub first_commit: Lsn,
    /// Commit LSN of its last transaction.
    pub last_commit: Lsn,
    /// End LSN of its last transaction (what the checkpoint moves to).
    pub end_lsn: Lsn,
    /// Transactions in it.
    pub transactions: u64,
    /// Rows sent (after folding).
    pub rows: u64,
}

#[derive(Debug, Default)]
struct State {
    tables: BTreeMap<String, BTreeMap<String, StoredRow>>,
    prepared: Vec<String>,
    pushes: Vec<PushRecord>,
    failures: VecDeque<ErrorKind>,
}

/// Tables in memory, shared by every sink opened from this connector.
#[derive(Clone, Debug)]
pub struct MemoryTables {
    state: Arc<Mutex<State>>,
    delete_mode: DeleteMode,
    truncate: TruncateMode,
}

/// A failure scheduled with [`MemoryTables::fail_next_push`].
#[derive(Debug, thiserror::Error)]
#[error("memory sink: scheduled {0:?} failure")]
pub struct ScheduledFailure(ErrorKind);

/// A batch the memory sink cannot apply.
#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    /// A TRUNCATE arrived with [`TruncateMode::Fail`].
    #[error("TRUNCATE of {0} reached the sink with DBMAZZ_TRUNCATE_MODE=fail")]
    TruncateRejected(String),
    /// A binary column value (dbmazz requests text output).
    #[error("table '{table}', column '{column}': binary values are not supported")]
    Binary {
        /// Table.
        table: String,
        /// Column.
        column: String,
    },
}

impl MemoryTables {
    /// Empty tables with the given delete and TRUNCATE handling.
    pub fn new(delete_mode: DeleteMode, truncate: TruncateMode) -> Self {
        MemoryTables {
            state: Arc::default(),
            delete_mode,
            truncate,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Plain data: a panic while holding the lock leaves nothing half-applied that
        // a later reader could misread as durable (a push applies under one lock).
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The rows of `table`, by key (`col=value, …`).
    pub fn rows(&self, table: &str) -> BTreeMap<String, StoredRow> {
        self.lock().tables.get(table).cloned().unwrap_or_default()
    }

    /// Every acknowledged batch, in order.
    pub fn pushes(&self) -> Vec<PushRecord> {
        self.lock().pushes.clone()
    }

    /// The tables [`Sink::prepare`] was asked for, in order (every start appends).
    pub fn prepared(&self) -> Vec<String> {
        self.lock().prepared.clone()
    }

    /// Makes the next push fail with an error of `kind` (without applying anything);
    /// several calls queue several failures.
    pub fn fail_next_push(&self, kind: ErrorKind) {
        self.lock().failures.push_back(kind);
    }

    /// Applies `batch` under one lock: all of it or, on an error, nothing.
    fn apply(&self, batch: &Batch) -> Result<u64, SinkError> {
        let mut st = self.lock();
        if let Some(kind) = st.failures.pop_front() {
            return Err(SinkError::new(kind, ScheduledFailure(kind)));
        }
        let mut tables = st.tables.clone();
        let mut rows = 0u64;
        for tb in &batch.tables {
            let table = tables.entry(tb.sink_table.clone()).or_default();
            for seg in &tb.segments {
                match seg {
                    Segment::Rows(rs) => {
                        for row in &rs.rows {
                            self.apply_row(table, &rs.schema, row)?;
                            rows += 1;
                        }
                    }
                    Segment::Truncate { version, .. } => match self.truncate {
                        TruncateMode::Apply => table.clear(),
                        TruncateMode::Soft => {
                            for r in table.values_mut().filter(|r| r.version <= *version) {
                                r.deleted = true;
                            }
                        }
                        TruncateMode::Fail => {
                            return Err(SinkError::new(
                                ErrorKind::Definite,
                                MemoryError::TruncateRejected(tb.table.clone()),
                            ))
                        }
                    },
                }
            }
        }
        st.tables = tables;
        st.pushes.push(PushRecord {
            seq: batch.seq,
            first_commit: batch.first_commit,
            last_commit: batch.last_commit,
            end_lsn: batch.end_lsn,
            transactions: batch.transactions,
            rows,
        });
        Ok(rows)
    }

    fn apply_row(
        &self,
        table: &mut BTreeMap<String, StoredRow>,
        schema: &TableSchema,
        row: &Row,
    ) -> Result<(), SinkError> {
        let key = key_of(schema, row);
        if row.op == RowOp::Delete && self.delete_mode == DeleteMode::Hard {
            table.remove(&key);
            return Ok(());
        }
        if table.get(&key).is_some_and(|old| old.version > row.version) {
            return Ok(());
        }
        let stored = table.entry(key).or_insert_with(|| StoredRow {
            version: row.version,
            op: row.op,
            deleted: false,
            values: BTreeMap::new(),
        });
        for (i, c) in schema.columns.iter().enumerate() {
            let v = match row.value(schema, i) {
                ColumnValue::Absent => continue,
                ColumnValue::Null => None,
                ColumnValue::Text(t) => Some(t.to_owned()),
                ColumnValue::Binary(_) => {
                    return Err(SinkError::new(
                        ErrorKind::Definite,
                        MemoryError::Binary {
                            table: schema.spec.qualified(),
                            column: c.name.clone(),
                        },
                    ))
                }
            };
            stored.values.insert(c.name.clone(), v);
        }
        stored.version = row.version;
        stored.op = row.op;
        stored.deleted = row.op == RowOp::Delete;
        Ok(())
    }
}

/// `col=value, …` over the key columns.
fn key_of(schema: &TableSchema, row: &Row) -> String {
    schema
        .key
        .iter()
        .map(|&i| {
            let name = schema.columns.get(i).map_or("?", |c| c.name.as_str());
            match row.value(schema, i) {
                ColumnValue::Text(t) => format!("{name}={t}"),
                _ => format!("{name}=NULL"),
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A sink over [`MemoryTables`].
#[derive(Debug)]
pub struct MemorySink {
    tables: MemoryTables,
    metrics: Arc<SinkMetrics>,
    cancel: CancellationToken,
}

impl SinkConnector for MemoryTables {
    type Sink = MemorySink;

    async fn connect(
        &self,
        metrics: Arc<SinkMetrics>,
        cancel: CancellationToken,
    ) -> Result<MemorySink, SinkError> {
        Ok(MemorySink {
            tables: self.clone(),
            metrics,
            cancel,
        })
    }

    fn truncate_mode(&self) -> TruncateMode {
        self.truncate
    }
}

impl Sink for MemorySink {
    async fn prepare(&self, tables: &[SourceTable]) -> Result<(), SinkError> {
        let mut st = self.tables.lock();
        for t in tables {
            st.tables.entry(t.spec.sink_table.clone()).or_default();
            st.prepared.push(t.spec.sink_table.clone());
        }
        Ok(())
    }

    async fn push_batch(&self, batch: Arc<Batch>) -> Result<SinkAck, SinkError> {
        if self.cancel.is_cancelled() {
            return Err(SinkError::Cancelled);
        }
        let rows = match self.tables.apply(&batch) {
            Ok(r) => r,
            Err(e) => {
                self.metrics.loads_failed.fetch_add(1, Ordering::Relaxed);
                return Err(e);
            }
        };
        self.metrics.loads_ok.fetch_add(1, Ordering::Relaxed);
        self.metrics.rows_loaded.fetch_add(rows, Ordering::Relaxed);
        for tb in &batch.tables {
            self.metrics
                .add_table_counts(&tb.table, &TableCounters::from(&tb.counts));
        }
        Ok(SinkAck {
            loads: 1,
            rows,
            retries: 0,
        })
    }

    async fn apply_schema(&self, _schema: &Arc<TableSchema>) -> Result<(), SinkError> {
        // Rows are stored by column name: any schema fits.
        Ok(())
    }
}
