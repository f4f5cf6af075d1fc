//! Self-fencing inside one pipeline: once its lease is no longer valid (overdue by
//! the worker's own clock, or revoked), the loader writes no checkpoint and confirms
//! nothing, even with loads still arriving, and the engine ends as fenced.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dbmazz::engine::status::{SharedState, Stage};
use dbmazz::engine::{self, EngineError, PipelineHandle};
use dbmazz::lease::Fence;
use dbmazz_testkit::stack::{JOB, SLOT};
use dbmazz_testkit::Stack;

const T: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_overdue_lease_stops_the_pipeline_without_moving_the_checkpoint() {
    let stack = Stack::start().await.expect("start the stack");
    stack.create_kv_table("t").await;
    let mut settings = stack.engine_settings(&["t"]);
    settings.epoch = 7;
    // A lease that is valid for a while; the test then lets it run out without a
    // renewal, the way a frozen or partitioned worker would.
    let ttl = Duration::from_secs(4);
    let fence = Arc::new(Fence::new(ttl, Instant::now()));
    let state = Arc::new(SharedState::new(JOB, &settings.slot, &settings.publication));
    let handle = PipelineHandle::new(state.clone()).with_fence(fence.clone());
    let task = tokio::spawn(engine::run(settings, handle.clone()));
    let start = Instant::now();
    while state.stage() != Stage::Cdc {
        assert!(start.elapsed() < T, "no CDC: {:?}", state.last_error());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stack
        .source_sql("INSERT INTO t SELECT g, 'a' FROM generate_series(1, 100) g")
        .await;
    stack.wait_equal("t", &["id"], T).await;
    // Wait for the lease to be overdue, then keep writing.
    while fence.is_valid() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let frozen = stack.checkpoint(JOB).await;
    let confirmed = stack.confirmed(SLOT).await;
    stack
        .source_sql("INSERT INTO t SELECT g, 'b' FROM generate_series(101, 200) g")
        .await;
    let end = tokio::time::timeout(T, task)
        .await
        .expect("engine stops")
        .expect("engine task");
    match end {
        Err(e @ EngineError::LeaseOverdue { .. }) => {
            assert!(e.to_string().contains("overdue"), "{e}")
        }
        other => panic!("expected a fenced stop, got {other:?}"),
    }
    assert_eq!(stack.checkpoint(JOB).await, frozen, "checkpoint moved");
    assert_eq!(
        stack.confirmed(SLOT).await,
        confirmed,
        "slot confirmed further"
    );
    let c = stack.pg().await;
    let epoch: i64 = c
        .query_one(
            "SELECT epoch FROM dbmazz.dbmazz_checkpoints WHERE job_id = $1",
            &[&JOB],
        )
        .await
        .expect("row")
        .get(0);
    assert_eq!(epoch, 7, "checkpoints carry the lease epoch");
}
