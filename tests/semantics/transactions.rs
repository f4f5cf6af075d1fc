//! Transactions: only committed work arrives, whole, at the version of its commit.
//! Multi-table transactions, savepoints rolled back inside a committed transaction,
//! aborted transactions, interleaved transactions committed in a different order
//! than they began, prepared transactions committed and rolled back, and one
//! transaction larger than the batch limit.

use crate::scenario::{row, run_all, Scenario};

const DDL: &str = "
    CREATE TABLE a (id int PRIMARY KEY, v text);
    CREATE TABLE b (id int PRIMARY KEY, v text);";
const SINK_DDL: &str = "
    CREATE TABLE a (id INT PRIMARY KEY);
    CREATE TABLE b (id INT PRIMARY KEY);";

async fn only_committed_work_arrives(s: Scenario<'_>) {
    s.sql(DDL).await;
    s.sink_sql(SINK_DDL).await;
    let run = s.start().await;
    s.audit("a").await;
    s.audit("b").await;
    // Multi-table transaction.
    let multi = s
        .txn("INSERT INTO a VALUES (1, 'a1'), (2, 'a2'); INSERT INTO b VALUES (1, 'b1');")
        .await;
    // Savepoints: the rolled-back parts must not appear, the rest must.
    s.txn(
        "INSERT INTO a VALUES (3, 'a3');
         SAVEPOINT s1;
         INSERT INTO a VALUES (4, 'rolled back');
         UPDATE a SET v = 'rolled back' WHERE id = 1;
         DELETE FROM b WHERE id = 1;
         SAVEPOINT s2;
         INSERT INTO b VALUES (9, 'rolled back too');
         ROLLBACK TO SAVEPOINT s1;
         INSERT INTO b VALUES (2, 'b2');
         SAVEPOINT s3;
         UPDATE a SET v = 'a2 kept' WHERE id = 2;
         RELEASE SAVEPOINT s3;",
    )
    .await;
    // Aborted transaction.
    s.sql("BEGIN; INSERT INTO a VALUES (50, 'aborted'); UPDATE b SET v = 'aborted'; ROLLBACK;")
        .await;
    // Interleaved: t1 begins first and commits last.
    let c1 = s.pg_conn().await;
    let c2 = s.pg_conn().await;
    c1.batch_execute("BEGIN; INSERT INTO a VALUES (10, 'first begun'); UPDATE b SET v = 'b1 by t1' WHERE id = 1;")
        .await
        .expect("t1");
    c2.batch_execute("BEGIN; INSERT INTO a VALUES (11, 'second begun'); UPDATE a SET v = 'a3 by t2' WHERE id = 3;")
        .await
        .expect("t2");
    c2.batch_execute("COMMIT").await.expect("t2 commit");
    let mid = s.wal_lsn().await;
    c1.batch_execute("COMMIT").await.expect("t1 commit");
    let end = s.wal_lsn().await;
    // Prepared transactions (decoded at COMMIT PREPARED; a rolled-back one never).
    s.sql("BEGIN; INSERT INTO a VALUES (20, 'prepared'); PREPARE TRANSACTION 'p_commit';")
        .await;
    s.sql("BEGIN; INSERT INTO a VALUES (21, 'prepared, rolled back'); UPDATE a SET v = 'x' WHERE id = 1; PREPARE TRANSACTION 'p_rollback';")
        .await;
    s.sql("ROLLBACK PREPARED 'p_rollback'").await;
    s.sql("COMMIT PREPARED 'p_commit'").await;
    s.caught_up(&run).await;

    s.assert_oracle("a", &["id"]).await;
    s.assert_oracle("b", &["id"]).await;
    let cols = "id, v, dbmazz_op_type, dbmazz_is_deleted";
    let a: Vec<_> = [
        ["1", "a1", "0", "0"],
        ["2", "a2 kept", "1", "0"],
        ["3", "a3 by t2", "1", "0"],
        ["10", "first begun", "0", "0"],
        ["11", "second begun", "0", "0"],
        ["20", "prepared", "0", "0"],
    ]
    .iter()
    .map(|r| row(r))
    .collect();
    s.assert_sink("a", cols, "id", &a).await;
    let b: Vec<_> = [["1", "b1 by t1", "1", "0"], ["2", "b2", "0", "0"]]
        .iter()
        .map(|r| row(r))
        .collect();
    s.assert_sink("b", cols, "id", &b).await;
    // Versions follow commit order, not begin order.
    s.assert_version("a", "id = 1", multi).await;
    s.assert_version("b", "id = 1", (mid, end)).await;
    s.assert_version("a", "id = 10", (mid, end)).await;
    let v11 = s.sink_select("a", "dbmazz_cdc_version", "id").await;
    let (v10, v11) = (v11[3][0].clone(), v11[4][0].clone());
    let parse = |v: Option<String>| v.expect("version").parse::<i64>().expect("number");
    assert!(parse(v11) < parse(v10), "t2 committed first");
    assert_eq!(s.regressions("a").await, 0);
    assert_eq!(s.regressions("b").await, 0);
    s.finish(run).await;
}

/// One transaction of 5,000 changes with a batch limit of 100: handed on whole.
async fn a_transaction_larger_than_a_batch_arrives_whole(s: Scenario<'_>) {
    let mut s = s;
    s.settings.limits.max_changes = 100;
    s.sql(DDL).await;
    s.sink_sql(SINK_DDL).await;
    let run = s.start().await;
    s.txn(
        "INSERT INTO a SELECT i, 'v' || i FROM generate_series(1, 3000) i;
         UPDATE a SET v = 'u' || id WHERE id % 2 = 0;
         DELETE FROM a WHERE id % 5 = 0;
         INSERT INTO b SELECT i, 'b' FROM generate_series(1, 500) i;",
    )
    .await;
    s.caught_up(&run).await;
    s.assert_oracle("a", &["id"]).await;
    s.assert_oracle("b", &["id"]).await;
    assert_eq!(s.sink_count("a").await, 3000);
    s.finish(run).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn transactions_arrive_whole_and_only_when_committed() {
    let stack = crate::scenario::stack().await;
    let a = Scenario::new(&stack, "txn_mix", &["a", "b"]).await;
    let b = Scenario::new(&stack, "txn_big", &["a", "b"]).await;
    run_all(vec![
        (
            "only_committed_work_arrives",
            Box::pin(only_committed_work_arrives(a)),
        ),
        (
            "a_transaction_larger_than_a_batch_arrives_whole",
            Box::pin(a_transaction_larger_than_a_batch_arrives_whole(b)),
        ),
    ])
    .await;
}
