//! The streaming loop ([`super::flow`]) without any service: a scripted event
//! stream, the in-memory sink and an in-memory checkpoint table. They pin the rules
//! that make dbmazz lossless: batches hold whole transactions, changes to one key
//! fold into the last one, and nothing is checkpointed before the sink acknowledged
//! it nor confirmed before it is checkpointed (and neither with a lost lease).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::flow::{self, CheckpointRow, Checkpoints, CommitResult, Events, FlowSettings};
use super::status::SharedState;
use super::{EngineError, PipelineHandle};
use crate::config::{DeleteMode, TruncateMode};
use crate::error::ErrorKind;
use crate::lease::Fence;
use crate::lsn::Lsn;
use crate::pipeline::batch::fixtures::tuple;
use crate::pipeline::schema_cache::{SchemaCache, TableSpec};
use crate::pipeline::{BatchLimits, Batcher};
use crate::sink::memory::MemoryTables;
use crate::sink::{Sink, SinkConnector};
use crate::source::message::{CdcMessage, Relation, RelationColumn, ReplicaIdentity, Xid};
use crate::source::{ConfirmHandle, SourceError, SourceEvent};
use crate::state_store::memory::MemoryCheckpoints;

const JOB: &str = "job";

/// Hands out its chunks, then reports that it ran dry and waits forever.
struct Scripted {
    chunks: VecDeque<Vec<SourceEvent>>,
    confirm: ConfirmHandle,
    dry: Arc<Notify>,
}

impl Events for Scripted {
    async fn next_chunk(&mut self) -> Option<Result<Vec<SourceEvent>, SourceError>> {
        match self.chunks.pop_front() {
            Some(c) => Some(Ok(c)),
            None => {
                self.dry.notify_one();
                std::future::pending().await
            }
        }
    }

    fn confirm_handle(&self) -> ConfirmHandle {
        self.confirm.clone()
    }
}

impl Checkpoints for MemoryCheckpoints {
    async fn commit(&self, row: CheckpointRow<'_>) -> CommitResult {
        MemoryCheckpoints::commit(self, row.job, row.lsn, row.epoch)
    }
}

fn msg(msg: CdcMessage) -> SourceEvent {
    SourceEvent::Message {
        wal_start: Lsn::ZERO,
        msg,
    }
}

/// The Relation of `public.t (id key, a)`.
fn relation() -> SourceEvent {
    let col = |name: &str, flags| RelationColumn {
        flags,
        name: name.into(),
        type_oid: 25,
        type_modifier: -1,
    };
    msg(CdcMessage::Relation(Relation {
        xid: None,
        id: 1,
        namespace: "public".into(),
        name: "t".into(),
        replica_identity: ReplicaIdentity::Default,
        columns: vec![col("id", 1), col("a", 0)],
    }))
}

/// A committed transaction at `commit` (its end LSN is `commit + 8`) that upserts
/// `(id, a)` rows.
fn txn(commit: u64, rows: &[(&str, &str)]) -> Vec<SourceEvent> {
    let mut out = vec![msg(CdcMessage::Begin {
        final_lsn: Lsn(commit),
        commit_time: 0,
        xid: Xid(7),
    })];
    out.extend(rows.iter().map(|(id, a)| {
        msg(CdcMessage::Insert {
            xid: None,
            rel_id: 1,
            new: tuple(&[Some(id), Some(a)]),
        })
    }));
    out.push(msg(CdcMessage::Commit {
        flags: 0,
        commit_lsn: Lsn(commit),
        end_lsn: Lsn(commit + 8),
        commit_time: 0,
    }));
    out
}

struct Run {
    result: Result<(), EngineError>,
    tables: MemoryTables,
    store: MemoryCheckpoints,
    confirm: ConfirmHandle,
    state: Arc<SharedState>,
}

struct Setup {
    max_changes: usize,
    epoch: i64,
    fence: Option<Arc<Fence>>,
    tables: MemoryTables,
    store: MemoryCheckpoints,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            max_changes: 1000,
            epoch: 1,
            fence: None,
            tables: MemoryTables::new(DeleteMode::Soft, TruncateMode::Apply),
            store: MemoryCheckpoints::default(),
        }
    }
}

/// Streams `events` (one chunk) through the loop, then drains; returns what the
/// loop returned and what it left behind.
async fn run(setup: Setup, events: Vec<SourceEvent>) -> Run {
    let state = Arc::new(SharedState::new(JOB, "slot", "pub"));
    let mut handle = PipelineHandle::new(state.clone());
    if let Some(f) = setup.fence {
        handle = handle.with_fence(f);
    }
    let spec = TableSpec {
        schema: "public".into(),
        name: "t".into(),
        sink_table: "t".into(),
        key_columns: vec!["id".into()],
    };
    let limits = BatchLimits {
        max_changes: setup.max_changes,
        max_bytes: usize::MAX,
        max_age: Duration::from_secs(3600),
    };
    let batcher = Batcher::new(
        SchemaCache::new([spec]),
        limits.clone(),
        setup.tables.truncate_mode(),
        Lsn::ZERO,
        state.pipeline.clone(),
    );
    let cancel = handle.abort.child_token();
    let sink = setup
        .tables
        .connect(state.sink.clone(), cancel.clone())
        .await
        .expect("memory sink");
    sink.prepare(&[]).await.expect("prepare");
    let dry = Arc::new(Notify::new());
    let confirm = ConfirmHandle::new(None);
    let mut source = Scripted {
        chunks: VecDeque::from([events]),
        confirm: confirm.clone(),
        dry: dry.clone(),
    };
    let drain = handle.drain.clone();
    let drainer = tokio::spawn(async move {
        dry.notified().await;
        drain.cancel();
    });
    let result = tokio::time::timeout(
        Duration::from_secs(30),
        flow::run(
            &mut source,
            batcher,
            Arc::new(sink),
            setup.store.clone(),
            FlowSettings {
                job: JOB.into(),
                slot: "slot".into(),
                epoch: setup.epoch,
                checkpoint: Lsn::ZERO,
                max_age: limits.max_age,
                progress_interval: Duration::ZERO,
            },
            &handle,
            &cancel,
        ),
    )
    .await
    .expect("the loop ends");
    drainer.abort();
    Run {
        result,
        tables: setup.tables,
        store: setup.store,
        confirm,
        state,
    }
}

fn stream(txns: &[Vec<SourceEvent>]) -> Vec<SourceEvent> {
    let mut out = vec![relation()];
    for t in txns {
        out.extend(t.iter().cloned());
    }
    out
}

#[tokio::test]
async fn batches_hold_whole_transactions_and_each_is_checkpointed_then_confirmed() {
    let mut events = stream(&[
        txn(0x100, &[("1", "a"), ("2", "a")]),
        txn(0x200, &[("3", "a")]),
        txn(0x300, &[("4", "a"), ("5", "a")]),
    ]);
    // A transaction still open when the drain comes: never loaded, never confirmed.
    let open = txn(0x400, &[("6", "open")]);
    events.extend(open[..open.len() - 1].iter().cloned());
    let r = run(
        Setup {
            max_changes: 2,
            ..Setup::default()
        },
        events,
    )
    .await;
    r.result.expect("drained");
    let pushes = r.tables.pushes();
    assert_eq!(pushes.len(), 2, "{pushes:?}");
    assert_eq!(
        (pushes[0].transactions, pushes[0].end_lsn),
        (1, Lsn(0x108)),
        "cut after the transaction that reached FLUSH_SIZE"
    );
    assert_eq!(
        (pushes[1].transactions, pushes[1].end_lsn),
        (2, Lsn(0x308)),
        "two whole transactions, never a part of one"
    );
    assert_eq!(r.store.get(JOB), Some((Lsn(0x308), 1)));
    assert_eq!(r.confirm.durable(), Lsn(0x308));
    assert_eq!(r.state.confirmed_lsn.get(), Lsn(0x308));
    let rows = r.tables.rows("t");
    assert_eq!(rows.len(), 5);
    assert!(
        !rows.contains_key("id=6"),
        "open transaction loaded: {rows:?}"
    );
}

#[tokio::test]
async fn changes_to_one_key_in_a_batch_fold_into_the_last() {
    let r = run(
        Setup::default(),
        stream(&[
            txn(0x100, &[("1", "x")]),
            txn(0x200, &[("1", "y"), ("2", "y")]),
            txn(0x300, &[("1", "z")]),
        ]),
    )
    .await;
    r.result.expect("drained");
    let pushes = r.tables.pushes();
    assert_eq!(pushes.len(), 1);
    assert_eq!(pushes[0].rows, 2, "three changes of id=1 travel as one row");
    let row = &r.tables.rows("t")["id=1"];
    assert_eq!(row.values["a"].as_deref(), Some("z"));
    assert_eq!(
        row.version,
        Lsn(0x300),
        "the version is the last commit LSN"
    );
    assert_eq!(r.confirm.durable(), Lsn(0x308));
}

#[tokio::test]
async fn a_failed_load_writes_no_checkpoint_and_confirms_nothing() {
    for kind in [ErrorKind::Transient, ErrorKind::Definite] {
        let setup = Setup::default();
        setup.tables.fail_next_push(kind);
        let r = run(setup, stream(&[txn(0x100, &[("1", "a")])])).await;
        let e = r.result.expect_err("the load failed");
        assert_eq!(e.kind(), kind, "{e}");
        assert_eq!(
            r.store.commits(),
            0,
            "checkpoint written for an unloaded batch"
        );
        assert_eq!(r.confirm.durable(), Lsn::ZERO);
        assert_eq!(r.state.checkpoint_lsn.get(), Lsn::ZERO);
    }
}

#[tokio::test]
async fn a_checkpoint_owned_by_a_newer_epoch_fences_and_confirms_nothing() {
    let setup = Setup {
        epoch: 3,
        ..Setup::default()
    };
    setup.store.set(JOB, Lsn(0x10), 5);
    let r = run(setup, stream(&[txn(0x100, &[("1", "a")])])).await;
    let e = r.result.expect_err("fenced");
    assert_eq!(e.kind(), ErrorKind::Fenced, "{e}");
    assert_eq!(
        r.store.get(JOB),
        Some((Lsn(0x10), 5)),
        "the newer row stays"
    );
    assert_eq!(r.confirm.durable(), Lsn::ZERO);
}

#[tokio::test]
async fn an_overdue_lease_neither_writes_nor_confirms() {
    let fence = Arc::new(Fence::new(Duration::from_secs(10), Instant::now()));
    fence.revoke();
    let r = run(
        Setup {
            fence: Some(fence),
            ..Setup::default()
        },
        stream(&[txn(0x100, &[("1", "a")])]),
    )
    .await;
    let e = r.result.expect_err("fenced by its own lease");
    assert!(matches!(e, EngineError::LeaseOverdue { .. }), "{e}");
    assert_eq!(e.kind(), ErrorKind::Fenced);
    assert_eq!(r.store.commits(), 0, "a stale worker tried to write");
    assert_eq!(r.confirm.durable(), Lsn::ZERO);
}

#[tokio::test]
async fn an_unreachable_checkpoint_store_is_retried_then_given_up_as_transient() {
    let setup = Setup::default();
    setup.store.fail_next(2);
    let r = run(setup, stream(&[txn(0x100, &[("1", "a")])])).await;
    r.result.expect("two failed writes are retried");
    assert_eq!(r.store.commits(), 3);
    assert_eq!(r.confirm.durable(), Lsn(0x108));

    let setup = Setup::default();
    setup.store.fail_next(100);
    let r = run(setup, stream(&[txn(0x100, &[("1", "a")])])).await;
    let e = r.result.expect_err("gives up");
    assert_eq!(e.kind(), ErrorKind::Transient, "{e}");
    assert_eq!(r.confirm.durable(), Lsn::ZERO);
}
