//! The pipeline: turns the replication stream into batches of whole transactions.
//!
//! ```text
//! SourceEvent ──▶ Batcher ──(Transaction buffer)──▶ Batch (folded, per table) ──▶ loader
//!                   │  Relation/Type ─▶ SchemaCache
//!                   └─ Keepalive with nothing open ─▶ idle position (lets the slot advance)
//! ```
//!
//! Rules kept here:
//! - A batch holds whole transactions only; it is cut after a Commit when it reaches
//!   `FLUSH_SIZE` changes or the byte budget, or when `FLUSH_INTERVAL_MS` passed since
//!   its first transaction (design rule 3). A single transaction larger than the
//!   budget is handed on whole.
//! - A transaction is buffered until its Commit, so a connection lost in the middle
//!   of one discards exactly that transaction; the server re-sends it.
//! - Transactions whose commit record starts before the resume point (the
//!   checkpoint) are skipped, with the same strict `<` comparison the server uses for
//!   `confirmed_flush_lsn`; after a reconnect, transactions already received in this
//!   session are skipped by commit LSN.
//! - Nothing is dropped silently: changes of tables that are not configured are
//!   ignored by design (the publication may carry other tables), every other
//!   unexpected message is an error.

pub mod batch;
pub mod metrics;
pub mod schema_cache;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use batch::{Batch, Change, FoldError, Row, RowOp, Transaction};
use metrics::PipelineMetrics;
use schema_cache::{RelationUpdate, SchemaCache, SchemaError, TableSchema};

use crate::config::TruncateMode;
use crate::error::ErrorKind;
use crate::lsn::Lsn;
use crate::source::message::{CdcMessage, TupleData};
use crate::source::SourceEvent;

/// Batching limits.
#[derive(Clone, Debug)]
pub struct BatchLimits {
    /// Cut after this many changes.
    pub max_changes: usize,
    /// Cut after this many retained bytes.
    pub max_bytes: usize,
    /// Cut when the oldest transaction in the batch is this old.
    pub max_age: Duration,
}

/// Errors of the pipeline (all definite: the stream is not what dbmazz can apply).
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// Folding failed.
    #[error(transparent)]
    Fold(#[from] FoldError),
    /// A Relation message cannot be applied.
    #[error(transparent)]
    Schema(#[from] SchemaError),
    /// A message arrived where the protocol does not allow it.
    #[error("replication protocol violation: {0}")]
    Protocol(String),
    /// TRUNCATE with `DBMAZZ_TRUNCATE_MODE=fail`.
    #[error(
        "TRUNCATE of {tables} at commit {lsn} and DBMAZZ_TRUNCATE_MODE=fail: the pipeline stops \
         here (nothing after the previous checkpoint is confirmed). Truncate the sink table(s) \
         yourself and restart with DBMAZZ_TRUNCATE_MODE=apply, or choose soft"
    )]
    TruncateRejected {
        /// Tables named by the TRUNCATE.
        tables: String,
        /// Commit LSN of the transaction.
        lsn: Lsn,
    },
}

impl PipelineError {
    /// Always [`ErrorKind::Definite`]: replaying the same stream gives the same error.
    pub fn kind(&self) -> ErrorKind {
        ErrorKind::Definite
    }
}

/// The batcher state machine (no I/O; the engine drives it).
pub struct Batcher {
    cache: SchemaCache,
    limits: BatchLimits,
    truncate: TruncateMode,
    metrics: Arc<PipelineMetrics>,
    resume_from: Lsn,
    last_seen_commit: Lsn,
    txn: Option<OpenTxn>,
    batch: Batch,
    batch_started: Option<Instant>,
    next_seq: u64,
    warned_unconfigured: rustc_hash::FxHashSet<u32>,
}

struct OpenTxn {
    skip: bool,
    txn: Transaction,
}

impl Batcher {
    /// A batcher that resumes after `resume_from` (the checkpoint LSN).
    pub fn new(
        cache: SchemaCache,
        limits: BatchLimits,
        truncate: TruncateMode,
        resume_from: Lsn,
        metrics: Arc<PipelineMetrics>,
    ) -> Self {
        Batcher {
            cache,
            limits,
            truncate,
            metrics,
            resume_from,
            last_seen_commit: Lsn::ZERO,
            txn: None,
            batch: Batch::new(0),
            batch_started: None,
            next_seq: 1,
            warned_unconfigured: Default::default(),
        }
    }

    /// True when no transaction is open and no committed one is waiting in a batch:
    /// everything received so far has been handed on.
    pub fn is_idle(&self) -> bool {
        self.txn.is_none() && self.batch.is_empty()
    }

    /// Retained bytes of the open transaction and batch.
    pub fn buffered_bytes(&self) -> usize {
        self.batch.bytes + self.txn.as_ref().map_or(0, |t| t.txn.bytes)
    }

    /// Handles one event; returns a batch when one is complete.
    pub fn handle(&mut self, ev: SourceEvent) -> Result<Option<Batch>, PipelineError> {
        match ev {
            SourceEvent::Message { msg, .. } => {
                self.metrics.events.fetch_add(1, Ordering::Relaxed);
                self.on_message(msg)
            }
            SourceEvent::Keepalive { wal_end } => {
                self.metrics.server_wal_lsn.raise(wal_end);
                Ok(None)
            }
            SourceEvent::Reconnected { resumed_from } => {
                if self.txn.take().is_some() {
                    tracing::info!(%resumed_from, "connection lost inside a transaction; it will be re-sent");
                }
                self.cache.reset_session();
                Ok(None)
            }
        }
    }

    /// Cuts the batch if it is older than the interval.
    pub fn on_tick(&mut self) -> Option<Batch> {
        match self.batch_started {
            Some(t) if t.elapsed() >= self.limits.max_age => self.take_batch(),
            _ => None,
        }
    }

    /// Hands on whatever complete transactions are buffered (drain).
    pub fn flush(&mut self) -> Option<Batch> {
        self.take_batch()
    }

    fn take_batch(&mut self) -> Option<Batch> {
        if self.batch.is_empty() {
            return None;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.batch_started = None;
        Some(std::mem::replace(&mut self.batch, Batch::new(seq)))
    }

    fn open(&mut self, what: &str) -> Result<&mut OpenTxn, PipelineError> {
        self.txn
            .as_mut()
            .ok_or_else(|| PipelineError::Protocol(format!("{what} outside a transaction")))
    }

    fn schema_for(&mut self, rel_id: u32) -> Option<Arc<TableSchema>> {
        match self.cache.get(rel_id) {
            Some(s) => Some(s.clone()),
            None => {
                if self.warned_unconfigured.insert(rel_id) {
                    tracing::debug!(
                        rel_id,
                        "ignoring changes of a relation that is not in TABLES"
                    );
                }
                None
            }
        }
    }

    fn on_message(&mut self, msg: CdcMessage) -> Result<Option<Batch>, PipelineError> {
        match msg {
            CdcMessage::Begin {
                final_lsn,
                commit_time,
                ..
            } => {
                if self.txn.is_some() {
                    return Err(PipelineError::Protocol(format!(
                        "Begin {final_lsn} while a transaction is open"
                    )));
                }
                let skip = final_lsn < self.resume_from || final_lsn <= self.last_seen_commit;
                self.txn = Some(OpenTxn {
                    skip,
                    txn: Transaction {
                        commit_lsn: final_lsn,
                        commit_time,
                        ..Default::default()
                    },
                });
                Ok(None)
            }
            CdcMessage::Commit {
                commit_lsn,
                end_lsn,
                commit_time,
                ..
            } => {
                let Some(open) = self.txn.take() else {
                    return Err(PipelineError::Protocol(format!(
                        "Commit {commit_lsn} without Begin"
                    )));
                };
                if open.txn.commit_lsn != commit_lsn {
                    return Err(PipelineError::Protocol(format!(
                        "Commit {commit_lsn} does not match Begin {}",
                        open.txn.commit_lsn
                    )));
                }
                self.metrics.received_lsn.raise(end_lsn);
                self.last_seen_commit = self.last_seen_commit.max(commit_lsn);
                if open.skip {
                    return Ok(None);
                }
                self.metrics.transactions.fetch_add(1, Ordering::Relaxed);
                let mut txn = open.txn;
                txn.end_lsn = end_lsn;
                txn.commit_time = commit_time;
                if txn.changes.is_empty() {
                    // Nothing of ours inside (e.g. changes of other tables only): it still
                    // moves the position the batch may checkpoint.
                    if self.batch.is_empty() {
                        return Ok(None);
                    }
                }
                if self.batch.is_empty() {
                    self.batch_started = Some(Instant::now());
                }
                self.batch.add_transaction(txn)?;
                if self.batch.changes as usize >= self.limits.max_changes
                    || self.batch.bytes >= self.limits.max_bytes
                {
                    return Ok(self.take_batch());
                }
                Ok(None)
            }
            CdcMessage::Relation(r) => {
                match self.cache.apply_relation(&r)? {
                    RelationUpdate::Changed { diff, new, .. } => {
                        schema_change_notice(&new, &diff);
                    }
                    RelationUpdate::Unchanged(_) | RelationUpdate::NotConfigured => {}
                }
                Ok(None)
            }
            CdcMessage::Type(t) => {
                self.cache.apply_type(&t);
                Ok(None)
            }
            CdcMessage::Insert { rel_id, new, .. } => {
                let Some(schema) = self.schema_for(rel_id) else {
                    return self.open("Insert").map(|_| None);
                };
                let open = self.open("Insert")?;
                if !open.skip {
                    let row = Row::new(RowOp::Insert, open.txn.commit_lsn, new, false);
                    push(open, Change::Row { schema, row });
                }
                Ok(None)
            }
            CdcMessage::Update {
                rel_id,
                old_key,
                old,
                new,
                ..
            } => {
                let Some(schema) = self.schema_for(rel_id) else {
                    return self.open("Update").map(|_| None);
                };
                let open = self.open("Update")?;
                if !open.skip {
                    let change = update_change(schema, open.txn.commit_lsn, old_key, old, new);
                    push(open, change);
                }
                Ok(None)
            }
            CdcMessage::Delete {
                rel_id,
                old_key,
                old,
                ..
            } => {
                let Some(schema) = self.schema_for(rel_id) else {
                    return self.open("Delete").map(|_| None);
                };
                let open = self.open("Delete")?;
                if !open.skip {
                    let (image, key_only) = match (old, old_key) {
                        (Some(o), _) => (o, false),
                        (None, Some(k)) => (k, true),
                        (None, None) => {
                            return Err(PipelineError::Protocol(format!(
                                "Delete on {} carries neither an old key nor an old row",
                                schema.spec.qualified()
                            )))
                        }
                    };
                    let row = Row::new(RowOp::Delete, open.txn.commit_lsn, image, key_only);
                    push(open, Change::Row { schema, row });
                }
                Ok(None)
            }
            CdcMessage::Truncate {
                options, rel_ids, ..
            } => {
                let schemas: Vec<Arc<TableSchema>> = rel_ids
                    .iter()
                    .filter_map(|id| self.cache.get(*id).cloned())
                    .collect();
                let truncate = self.truncate;
                let open = self.open("Truncate")?;
                if open.skip || schemas.is_empty() {
                    return Ok(None);
                }
                if truncate == TruncateMode::Fail {
                    let tables: Vec<String> = schemas.iter().map(|s| s.spec.qualified()).collect();
                    return Err(PipelineError::TruncateRejected {
                        tables: tables.join(", "),
                        lsn: open.txn.commit_lsn,
                    });
                }
                for schema in schemas {
                    push(
                        open,
                        Change::Truncate {
                            schema,
                            cascade: options & 1 != 0,
                            restart_identity: options & 2 != 0,
                        },
                    );
                }
                Ok(None)
            }
            CdcMessage::Origin { .. } | CdcMessage::Message { .. } => Ok(None),
            other @ (CdcMessage::StreamStart { .. }
            | CdcMessage::StreamStop
            | CdcMessage::StreamCommit { .. }
            | CdcMessage::StreamAbort { .. }
            | CdcMessage::BeginPrepare(_)
            | CdcMessage::Prepare(_)
            | CdcMessage::StreamPrepare(_)
            | CdcMessage::CommitPrepared { .. }
            | CdcMessage::RollbackPrepared { .. }) => Err(PipelineError::Protocol(format!(
                "unexpected {} message: dbmazz starts replication with streaming and two_phase off",
                message_name(&other)
            ))),
        }
    }
}

/// Logs a schema change and what the sink will do about it (policy in
/// `docs/change-semantics.md`): added columns are added to the sink before the first
/// row that carries them; dropped columns stay in the sink and get NULL in rows
/// written from now on; a rename is an add plus a drop; a type change keeps the sink
/// column, whose values are checked against it on every load.
fn schema_change_notice(new: &TableSchema, diff: &schema_cache::SchemaDiff) {
    let table = new.spec.qualified();
    let names = |v: &[String]| v.join(", ");
    tracing::info!(
        %table,
        added = %diff.added.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", "),
        dropped = %names(&diff.dropped),
        "schema change received"
    );
    for (from, to) in &diff.renamed {
        tracing::warn!(
            %table,
            from = %from,
            to = %to,
            "column renamed: the sink gets a new column '{to}' filled from now on, and \
             '{from}' keeps the values written before the rename. To merge them run on \
             StarRocks: UPDATE <sink table> SET `{to}` = `{from}` WHERE `{to}` IS NULL"
        );
    }
    for (old, now) in &diff.retyped {
        tracing::warn!(
            %table,
            column = %now.name,
            from = %old.pg_type.name(),
            to = %now.pg_type.name(),
            "column type changed: the sink column keeps its type; a value it cannot hold \
             stops the pipeline naming the column (widen it with ALTER TABLE … MODIFY COLUMN)"
        );
    }
}

fn push(open: &mut OpenTxn, change: Change) {
    open.txn.bytes += match &change {
        Change::Row { row, .. } => row.retained_bytes(),
        Change::KeyChange { rows, .. } => rows.0.retained_bytes() + rows.1.retained_bytes(),
        Change::Truncate { .. } => 0,
    };
    open.txn.changes.push(change);
}

fn key_changed(schema: &TableSchema, old: &Row, new: &Row) -> bool {
    use batch::ColumnValue::Absent;
    schema.key.iter().any(|&i| {
        let n = new.value(schema, i);
        // An unchanged TOAST key column in the new row means the key did not change.
        n != Absent && old.value(schema, i) != n
    })
}

fn update_change(
    schema: Arc<TableSchema>,
    version: Lsn,
    old_key: Option<TupleData>,
    old: Option<TupleData>,
    new: TupleData,
) -> Change {
    let new_row = Row::new(RowOp::Update, version, new, false);
    let (old_image, key_only) = match (old, old_key) {
        (Some(o), _) => (o, false),
        (None, Some(k)) => (k, true),
        (None, None) => {
            return Change::Row {
                schema,
                row: new_row,
            }
        }
    };
    let old_row = Row::new(RowOp::Delete, version, old_image.clone(), key_only);
    if key_changed(&schema, &old_row, &new_row) {
        let new_row = if key_only {
            new_row
        } else {
            new_row.with_fill(old_image)
        };
        Change::KeyChange {
            schema,
            rows: Box::new((old_row, new_row)),
        }
    } else if key_only {
        Change::Row {
            schema,
            row: new_row,
        }
    } else {
        Change::Row {
            schema,
            row: new_row.with_fill(old_image),
        }
    }
}

fn message_name(m: &CdcMessage) -> &'static str {
    match m {
        CdcMessage::StreamStart { .. } => "Stream Start",
        CdcMessage::StreamStop => "Stream Stop",
        CdcMessage::StreamCommit { .. } => "Stream Commit",
        CdcMessage::StreamAbort { .. } => "Stream Abort",
        CdcMessage::BeginPrepare(_) => "Begin Prepare",
        CdcMessage::Prepare(_) => "Prepare",
        CdcMessage::StreamPrepare(_) => "Stream Prepare",
        CdcMessage::CommitPrepared { .. } => "Commit Prepared",
        CdcMessage::RollbackPrepared { .. } => "Rollback Prepared",
        _ => "pgoutput",
    }
}
