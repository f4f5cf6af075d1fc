//! The control plane steering a real engine: PostgreSQL → dbmazz engine →
//! StarRocks emulator → MariaDB, with the gRPC server and its clients on real
//! sockets.
//!
//! - Pause holds the sink unchanged while the source is written, keeps the same
//!   replication connection past `wal_sender_timeout`, Resume catches up.
//! - DrainAndStop leaves checkpoint == slot confirmed LSN == end of the last commit.
//! - A real setup error shows as NOT_SERVING with its text while the server stays
//!   up, then SERVING once the cause is fixed and the engine has re-checked.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dbmazz::engine::status::Stage;
use dbmazz::engine::Pipelines;
use dbmazz::grpc::pb;
use dbmazz::grpc::pb::control_service_client::ControlServiceClient;
use dbmazz::grpc::pb::health_service_client::HealthServiceClient;
use dbmazz::grpc::pb::status_service_client::StatusServiceClient;
use dbmazz::grpc::{GrpcSettings, PgSlotInspector, SlotInspector};
use dbmazz::lsn::Lsn;
use dbmazz_testkit::engine::Running;
use dbmazz_testkit::stack::{JOB, SLOT};
use dbmazz_testkit::{Stack, StackConfig};

use crate::server::{settings, with_token, Server};
use tonic_health::pb::health_check_response::ServingStatus as Std;
use tonic_health::pb::health_client::HealthClient;

const T: Duration = Duration::from_secs(60);
const TOKEN: &str = "e2e-token";

async fn orders_tables(stack: &Stack, sink_too: bool) {
    stack
        .source_sql("CREATE TABLE orders (id bigint PRIMARY KEY, amount int, note text)")
        .await;
    if sink_too {
        create_sink_orders(stack).await;
    }
}

async fn create_sink_orders(stack: &Stack) {
    stack
        .sink_sql("CREATE TABLE orders (id BIGINT PRIMARY KEY, amount INT, note LONGTEXT)")
        .await;
}

/// The engine plus a control plane whose registry holds it.
async fn start(stack: &Stack) -> (Running, Server) {
    start_with(stack, stack.engine_settings(&["orders"])).await
}

async fn start_with(
    stack: &Stack,
    engine: dbmazz::engine::EngineSettings<dbmazz::sink::starrocks::StarRocksSettings>,
) -> (Running, Server) {
    let run = Running::start(engine);
    let pipelines = Pipelines::new();
    pipelines.insert(run.handle.clone());
    let inspector = Arc::new(PgSlotInspector::new());
    inspector.set_source(JOB, stack.source_url());
    let srv = Server::start_with(
        GrpcSettings {
            control_token: Some(TOKEN.into()),
            ..settings()
        },
        pipelines,
        Some(inspector as Arc<dyn SlotInspector>),
    )
    .await;
    (run, srv)
}

async fn active_pid(stack: &Stack) -> Option<i32> {
    let c = stack.pg().await;
    c.query_opt(
        "SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1",
        &[&SLOT],
    )
    .await
    .expect("slot")
    .and_then(|r| r.get(0))
}

#[derive(Clone, Copy)]
enum Op {
    Pause,
    Resume,
    Drain,
}

async fn control(srv: &Server, op: Op, wait_ms: u32) -> pb::ControlResult {
    let mut c = ControlServiceClient::new(srv.channel().await);
    let req = with_token(
        pb::ControlRequest {
            job_id: JOB.into(),
            wait_ms,
        },
        TOKEN,
    );
    let r = match op {
        Op::Pause => c.pause(req).await,
        Op::Resume => c.resume(req).await,
        Op::Drain => c.drain_and_stop(req).await,
    };
    let r = r.expect("control call").into_inner();
    r.pipelines.into_iter().next().expect("one pipeline")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pause_holds_the_sink_and_keeps_the_connection_then_resume_catches_up() {
    // A short wal_sender_timeout: a paused pipeline that stopped answering the
    // server would lose its connection within the pause below.
    let stack = Stack::start_with(
        StackConfig::default()
            .pg(dbmazz_testkit::PgConfig::default().setting("wal_sender_timeout", "10s")),
    )
    .await
    .expect("start the stack");
    orders_tables(&stack, true).await;
    let (run, srv) = start(&stack).await;
    run.wait_stage(Stage::Cdc, T).await;
    let pg = stack.pg().await;
    for i in 0..100i64 {
        pg.batch_execute(&format!("INSERT INTO orders VALUES ({i}, {i}, 'a')"))
            .await
            .expect("insert");
    }
    stack.wait_equal("orders", &["id"], T).await;
    let pid_before = active_pid(&stack).await.expect("walsender attached");

    let r = control(&srv, Op::Pause, 10_000).await;
    assert!(r.reached, "{r:?}");
    assert_eq!(r.stage, pb::Stage::Paused as i32);
    let state = run.state().clone();
    let loads_before = state
        .sink
        .loads_ok
        .load(std::sync::atomic::Ordering::Relaxed);
    let checkpoint_before = stack.checkpoint(JOB).await;
    let count_before = stack.sink_count("orders").await;
    assert_eq!(count_before, 100);

    // Written while paused: nothing reaches the sink, nothing is checkpointed.
    for i in 100..400i64 {
        pg.batch_execute(&format!(
            "INSERT INTO orders VALUES ({i}, {i}, 'b'); UPDATE orders SET amount = amount + 1 WHERE id = {}",
            i - 100
        ))
        .await
        .expect("write while paused");
    }
    let pause_started = Instant::now();
    let mut checks = 0;
    while pause_started.elapsed() < Duration::from_secs(14) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(
            stack.sink_count("orders").await,
            count_before,
            "sink moved while paused"
        );
        assert_eq!(
            stack.checkpoint(JOB).await,
            checkpoint_before,
            "checkpoint moved while paused"
        );
        checks += 1;
    }
    assert!(checks >= 20);
    assert_eq!(
        state
            .sink
            .loads_ok
            .load(std::sync::atomic::Ordering::Relaxed),
        loads_before
    );
    // Healthy while paused on purpose, and the same walsender is still attached
    // after more than wal_sender_timeout: status updates continued.
    let h = HealthClient::new(srv.channel().await)
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("health")
        .into_inner();
    assert_eq!(h.status, Std::Serving as i32);
    let status = StatusServiceClient::new(srv.channel().await)
        .get_status(pb::GetStatusRequest::default())
        .await
        .expect("status")
        .into_inner();
    assert!(status.paused);
    assert_eq!(status.stage, pb::Stage::Paused as i32);
    let slot = status.slot_status.expect("slot");
    assert!(slot.known && slot.active, "{slot:?}");
    assert_eq!(slot.wal_status, "reserved");
    assert_eq!(
        active_pid(&stack).await,
        Some(pid_before),
        "replication connection was replaced"
    );

    let r = control(&srv, Op::Resume, 10_000).await;
    assert!(r.reached, "{r:?}");
    stack.wait_equal("orders", &["id"], T).await;
    assert_eq!(stack.sink_count("orders").await, 400);
    run.drain().await.expect("drain");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn drain_and_stop_leaves_checkpoint_confirmed_and_last_commit_equal() {
    let stack = Stack::start().await.expect("start the stack");
    orders_tables(&stack, true).await;
    // Batches that only a drain closes: no size or age limit is reached here.
    let mut engine = stack.engine_settings(&["orders"]);
    engine.limits.max_changes = 1_000_000;
    engine.limits.max_age = Duration::from_secs(600);
    let (run, srv) = start_with(&stack, engine).await;
    run.wait_stage(Stage::Cdc, T).await;
    // An independent view of the commits: a test_decoding slot fed by the same
    // writes.
    stack
        .source_sql("SELECT pg_create_logical_replication_slot('oracle', 'test_decoding')")
        .await;
    let pg = stack.pg().await;
    for i in 0..300i64 {
        pg.batch_execute(&format!(
            "BEGIN; INSERT INTO orders VALUES ({i}, {i}, 'x'); UPDATE orders SET note = 'y' WHERE id = {}; COMMIT;",
            i / 2
        ))
        .await
        .expect("write");
    }
    let last_commit: String = pg
        .query_one(
            "SELECT lsn::text FROM pg_logical_slot_peek_changes('oracle', NULL, NULL) \
             WHERE data LIKE 'COMMIT%' ORDER BY lsn DESC LIMIT 1",
            &[],
        )
        .await
        .expect("oracle")
        .get(0);
    let last_commit: Lsn = last_commit.parse().expect("lsn");
    // Everything is received (read), nothing is loaded yet: the drain has work.
    let state = run.state().clone();
    assert!(
        crate::server::eventually(60, || state.pipeline.received_lsn.get() >= last_commit).await,
        "the engine did not receive up to {last_commit}"
    );
    let before: Option<Lsn> = stack.checkpoint(JOB).await.map(|c| c.parse().expect("lsn"));
    assert!(
        before < Some(last_commit),
        "checkpoint {before:?} already at the end"
    );
    assert_eq!(stack.sink_count("orders").await, 0);

    let r = control(&srv, Op::Drain, 30_000).await;
    assert!(r.reached, "{r:?}");
    assert_eq!(r.stage, pb::Stage::Stopped as i32);
    run.task
        .await
        .expect("engine task")
        .expect("engine stopped cleanly");

    let checkpoint: Lsn = stack
        .checkpoint(JOB)
        .await
        .expect("checkpoint")
        .parse()
        .expect("lsn");
    let confirmed: Lsn = stack
        .confirmed(SLOT)
        .await
        .expect("confirmed")
        .parse()
        .expect("lsn");
    assert_eq!(
        checkpoint, confirmed,
        "slot confirmed exactly to the checkpoint"
    );
    assert_eq!(
        checkpoint, last_commit,
        "checkpoint at the end of the last commit"
    );
    let cp = r.checkpoint_lsn.expect("checkpoint in the response");
    let cf = r.confirmed_lsn.expect("confirmed in the response");
    assert_eq!((cp.value, cf.value), (checkpoint.0, confirmed.0));
    stack
        .wait_equal("orders", &["id"], Duration::from_secs(5))
        .await;
    stack
        .source_sql("SELECT pg_drop_replication_slot('oracle')")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_setup_error_is_not_serving_with_its_text_until_fixed_and_retried() {
    let stack = Stack::start().await.expect("start the stack");
    // The StarRocks table is missing: a setup error an operator must fix.
    orders_tables(&stack, false).await;
    let (run, srv) = start(&stack).await;
    let mut health = HealthServiceClient::new(srv.channel().await);
    let deadline = Instant::now() + T;
    let r = loop {
        let r = health
            .check(pb::HealthCheckRequest::default())
            .await
            .expect("the server answers during setup")
            .into_inner();
        if r.stage == pb::Stage::Failed as i32 {
            break r;
        }
        assert_eq!(r.status, pb::ServingStatus::NotServing as i32);
        assert!(
            Instant::now() < deadline,
            "no setup error after {T:?}: {r:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(r.status, pb::ServingStatus::NotServing as i32);
    assert!(
        r.error_detail
            .starts_with("Table 'sink.orders' not found in StarRocks"),
        "{}",
        r.error_detail
    );
    assert!(
        r.error_detail.contains("PRIMARY KEY"),
        "names the fix: {}",
        r.error_detail
    );
    let std = HealthClient::new(srv.channel().await)
        .check(tonic_health::pb::HealthCheckRequest {
            service: format!("dbmazz.job.{}", JOB),
        })
        .await
        .expect("standard health")
        .into_inner();
    assert_eq!(std.status, Std::NotServing as i32);
    let status = StatusServiceClient::new(srv.channel().await)
        .get_status(pb::GetStatusRequest::default())
        .await
        .expect("status")
        .into_inner();
    let err = status.last_error.expect("last error");
    assert_eq!(err.message, r.error_detail);
    assert!(err.unix_ms > 0);
    assert!(!err.message.contains("postgres://"), "no URL in errors");

    // The operator creates the table; the engine re-checks on its own.
    create_sink_orders(&stack).await;
    let fixed = Instant::now();
    let r = loop {
        let r = health
            .check(pb::HealthCheckRequest::default())
            .await
            .expect("check")
            .into_inner();
        if r.status == pb::ServingStatus::Serving as i32 {
            break r;
        }
        assert!(
            fixed.elapsed() < Duration::from_secs(90),
            "still not serving 90 s after the fix: {r:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(r.stage, pb::Stage::Cdc as i32);
    assert!(r.error_detail.is_empty());
    stack
        .source_sql("INSERT INTO orders VALUES (1, 1, 'after the fix')")
        .await;
    stack.wait_equal("orders", &["id"], T).await;
    run.drain().await.expect("drain");
}
