//! End to end: real PostgreSQL → dbmazz engine → StarRocks emulator → MariaDB.

use std::time::Duration;

use dbmazz::engine::status::Stage;
use dbmazz_testkit::chaos::ConfirmWatch;
use dbmazz_testkit::engine::Running;
use dbmazz_testkit::stack::{CHECKPOINT_SCHEMA, JOB, SLOT};
use dbmazz_testkit::Stack;

const T: Duration = Duration::from_secs(60);

/// Samples the test job's slot and checkpoint: the slot must never be ahead.
fn confirm_watch(stack: &Stack) -> ConfirmWatch {
    ConfirmWatch::start(
        stack.source_conn(),
        CHECKPOINT_SCHEMA,
        vec![(JOB.to_owned(), SLOT.to_owned())],
    )
}

async fn orders_schema(stack: &Stack) {
    stack
        .source_sql(
            "CREATE TABLE customers (id bigint PRIMARY KEY, name text NOT NULL, vip boolean, since timestamp);
             CREATE TABLE orders (id bigint PRIMARY KEY, customer_id bigint, amount numeric(12,2), note text, created_at timestamptz DEFAULT now());
             CREATE TABLE items (order_id bigint, line int, sku varchar(32), qty int, PRIMARY KEY (order_id, line));",
        )
        .await;
    stack
        .sink_sql(
            "CREATE TABLE customers (id BIGINT PRIMARY KEY, name LONGTEXT NOT NULL, vip BOOLEAN, since DATETIME(6));
             CREATE TABLE orders (id BIGINT PRIMARY KEY, customer_id BIGINT, amount DECIMAL(12,2), note LONGTEXT, created_at DATETIME(6));
             CREATE TABLE items (order_id BIGINT, line INT, sku VARCHAR(32), qty INT, PRIMARY KEY (order_id, line));",
        )
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mixed_transactions_over_several_tables_arrive_exactly() {
    let stack = Stack::start().await.expect("start the stack");
    orders_schema(&stack).await;
    let run = Running::start(stack.engine_settings(&["customers", "orders", "items"]));
    run.wait_stage(Stage::Cdc, T).await;
    for t in ["customers", "orders", "items"] {
        stack.audit(t).await;
    }
    let watch = confirm_watch(&stack);
    let c = stack.pg().await;
    for i in 0..200i64 {
        c.batch_execute(&format!(
            "BEGIN;
             INSERT INTO customers VALUES ({i}, 'c{i}', {vip}, '2024-01-01 10:00:00'::timestamp + interval '{i} minutes');
             INSERT INTO orders (id, customer_id, amount, note) VALUES ({i}, {i}, {i}.25, 'n''{i}');
             INSERT INTO items VALUES ({i}, 1, 'sku-{i}', 1), ({i}, 2, 'x', 2);
             COMMIT;",
            vip = i % 2 == 0
        ))
        .await
        .expect("insert txn");
        if i % 3 == 0 {
            c.batch_execute(&format!(
                "BEGIN;
                 UPDATE orders SET amount = amount * 2, note = NULL WHERE id = {i};
                 UPDATE items SET qty = qty + 10 WHERE order_id = {i};
                 DELETE FROM items WHERE order_id = {i} AND line = 2;
                 COMMIT;"
            ))
            .await
            .expect("update txn");
        }
        if i % 7 == 0 {
            c.batch_execute(&format!("DELETE FROM customers WHERE id = {i}"))
                .await
                .expect("delete");
        }
    }
    stack.wait_equal("customers", &["id"], T).await;
    stack.wait_equal("orders", &["id"], T).await;
    stack.wait_equal("items", &["order_id", "line"], T).await;

    // Audit columns: soft-deleted customers are kept and marked; op types follow
    // the last operation; versions are LSNs.
    let mut sink = stack.sink.get_conn().await.expect("sink");
    use mysql_async::prelude::Queryable;
    let deleted: Vec<(i64, i8, bool)> = sink
        .query("SELECT id, dbmazz_op_type, dbmazz_is_deleted FROM customers WHERE dbmazz_is_deleted ORDER BY id")
        .await
        .expect("deleted rows");
    assert_eq!(deleted.len(), (0..200).filter(|i| i % 7 == 0).count());
    assert!(deleted
        .iter()
        .all(|(id, op, del)| id % 7 == 0 && *op == 2 && *del));
    let ops: Vec<(i64, i8)> = sink
        .query("SELECT id, dbmazz_op_type FROM orders ORDER BY id")
        .await
        .expect("orders ops");
    for (id, op) in ops {
        assert_eq!(op, if id % 3 == 0 { 1 } else { 0 }, "op type of order {id}");
    }
    let bad: Option<i64> = sink
        .query_first("SELECT COUNT(*) FROM orders WHERE dbmazz_cdc_version IS NULL OR dbmazz_cdc_version <= 0 OR dbmazz_synced_at IS NULL")
        .await
        .expect("audit values");
    assert_eq!(bad, Some(0));
    drop(sink);

    let state = run.state().clone();
    run.drain().await.expect("drain");
    assert_eq!(state.stage(), Stage::Stopped);
    let (samples, violations) = watch.finish().await;
    assert!(samples > 0, "the watch took no sample");
    assert!(violations.is_empty(), "{violations:?}");
    for t in ["customers", "orders", "items"] {
        assert_eq!(stack.regressions(t).await, 0, "version regressions in {t}");
    }
    // After a drain the slot is confirmed exactly to the checkpoint.
    assert_eq!(stack.checkpoint(JOB).await, stack.confirmed(SLOT).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn restart_in_the_middle_resumes_from_the_checkpoint_without_loss() {
    let stack = Stack::start().await.expect("start the stack");
    orders_schema(&stack).await;
    let mut settings = stack.engine_settings(&["orders"]);
    settings.limits.max_changes = 100;
    // The slot exists from the first start on; rows written before it are not
    // part of the stream.
    let run = Running::start(settings.clone());
    run.wait_stage(Stage::Cdc, T).await;
    stack.audit("orders").await;
    let watch = confirm_watch(&stack);
    let writer = {
        let url = stack.source_conn();
        tokio::spawn(async move {
            let (c, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .expect("connect");
            tokio::spawn(conn);
            for i in 0..3000i64 {
                c.batch_execute(&format!(
                    "INSERT INTO orders (id, customer_id, amount) VALUES ({i}, {i}, 1);
                     UPDATE orders SET amount = amount + 1 WHERE id = {};",
                    i / 2
                ))
                .await
                .expect("write");
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    run.abort().await;
    for round in 0..3 {
        let run = Running::start(settings.clone());
        run.wait_stage(Stage::Cdc, T).await;
        tokio::time::sleep(Duration::from_millis(400 + 300 * round)).await;
        // An abort is what a crash looks like to the database: nothing drained.
        run.abort().await;
    }
    writer.await.expect("writer");
    let run = Running::start(settings);
    stack.wait_equal("orders", &["id"], T).await;
    run.drain().await.expect("drain");
    let (samples, violations) = watch.finish().await;
    assert!(samples > 0 && violations.is_empty(), "{violations:?}");
    assert_eq!(stack.regressions("orders").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idle_published_tables_do_not_pin_wal() {
    let stack = Stack::start().await.expect("start the stack");
    orders_schema(&stack).await;
    stack
        .source_sql("CREATE TABLE busy (id serial PRIMARY KEY, v text)")
        .await;
    let run = Running::start(stack.engine_settings(&["orders"]));
    run.wait_stage(Stage::Cdc, T).await;
    let before = stack.confirmed(SLOT).await.expect("slot");
    let c = stack.pg().await;
    for _ in 0..50 {
        c.batch_execute(
            "INSERT INTO busy (v) SELECT repeat('x', 100) FROM generate_series(1, 100)",
        )
        .await
        .expect("busy writes");
    }
    let current: String = c
        .query_one("SELECT pg_current_wal_lsn()::text", &[])
        .await
        .expect("lsn")
        .get(0);
    let target: dbmazz::lsn::Lsn = current.parse().expect("lsn");
    let start = std::time::Instant::now();
    loop {
        let confirmed: dbmazz::lsn::Lsn = stack
            .confirmed(SLOT)
            .await
            .expect("slot")
            .parse()
            .expect("lsn");
        if confirmed >= target {
            break;
        }
        assert!(
            start.elapsed() < T,
            "slot stuck at {confirmed} (was {before}), server at {target}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    run.drain().await.expect("drain");
}
