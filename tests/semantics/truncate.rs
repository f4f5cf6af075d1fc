//! TRUNCATE is never ignored: `apply` empties the sink table at the same point of
//! the stream (after the changes before it, before the changes after it), `soft`
//! marks every row written before it deleted, `fail` stops the pipeline with a clear
//! error and confirms nothing past the previous checkpoint. Multi-table TRUNCATE and
//! CASCADE reach every configured table they touch.

use dbmazz::config::TruncateMode;
use dbmazz_testkit::engine::Running;

use crate::scenario::{row, run_all, Scenario};

const DDL: &str = "
    CREATE TABLE parent (id int PRIMARY KEY, v text);
    CREATE TABLE child (id int PRIMARY KEY, parent_id int REFERENCES parent (id), v text);
    CREATE TABLE other (id int PRIMARY KEY, v text);";
const SINK_DDL: &str = "
    CREATE TABLE parent (id INT PRIMARY KEY);
    CREATE TABLE child (id INT PRIMARY KEY);
    CREATE TABLE other (id INT PRIMARY KEY);";
const TABLES: [&str; 3] = ["parent", "child", "other"];

async fn truncate_workload(s: &Scenario<'_>, run: &Running) {
    s.txn(
        "INSERT INTO parent VALUES (1, 'p1'), (2, 'p2');
         INSERT INTO child VALUES (10, 1, 'c10'), (11, 2, 'c11');
         INSERT INTO other VALUES (100, 'o100'), (101, 'o101');",
    )
    .await;
    s.caught_up(run).await;
    // One transaction: changes before the TRUNCATE (same batch), the TRUNCATE of two
    // tables with CASCADE reaching the third, and rows written after it.
    s.txn(
        "INSERT INTO parent VALUES (3, 'p3');
         UPDATE other SET v = 'o100b' WHERE id = 100;
         TRUNCATE parent, other CASCADE;
         INSERT INTO parent VALUES (1, 'new1');
         INSERT INTO other VALUES (102, 'o102');",
    )
    .await;
    s.txn("INSERT INTO child VALUES (12, 1, 'c12')").await;
    s.caught_up(run).await;
}

async fn apply_truncates_the_sink_in_stream_order(s: Scenario<'_>) {
    s.sql(DDL).await;
    s.sink_sql(SINK_DDL).await;
    let run = s.start().await;
    truncate_workload(&s, &run).await;
    for t in TABLES {
        s.assert_oracle(t, &["id"]).await;
    }
    let cols = "id, v, dbmazz_op_type, dbmazz_is_deleted";
    s.assert_sink("parent", cols, "id", &[row(&["1", "new1", "0", "0"])])
        .await;
    s.assert_sink("child", cols, "id", &[row(&["12", "c12", "0", "0"])])
        .await;
    s.assert_sink("other", cols, "id", &[row(&["102", "o102", "0", "0"])])
        .await;
    s.finish(run).await;
}

async fn soft_truncate_marks_earlier_rows_deleted(s: Scenario<'_>) {
    let mut s = s;
    s.settings.sink.truncate = TruncateMode::Soft;
    s.sql(DDL).await;
    s.sink_sql(SINK_DDL).await;
    let run = s.start().await;
    truncate_workload(&s, &run).await;
    for t in TABLES {
        s.assert_oracle(t, &["id"]).await;
    }
    let cols = "id, v, dbmazz_op_type, dbmazz_is_deleted";
    let parent: Vec<_> = [
        ["1", "new1", "0", "0"],
        ["2", "p2", "2", "1"],
        ["3", "p3", "2", "1"],
    ]
    .iter()
    .map(|r| row(r))
    .collect();
    s.assert_sink("parent", cols, "id", &parent).await;
    let child: Vec<_> = [
        ["10", "c10", "2", "1"],
        ["11", "c11", "2", "1"],
        ["12", "c12", "0", "0"],
    ]
    .iter()
    .map(|r| row(r))
    .collect();
    s.assert_sink("child", cols, "id", &child).await;
    let other: Vec<_> = [
        ["100", "o100b", "2", "1"],
        ["101", "o101", "2", "1"],
        ["102", "o102", "0", "0"],
    ]
    .iter()
    .map(|r| row(r))
    .collect();
    s.assert_sink("other", cols, "id", &other).await;
    s.finish(run).await;
}

async fn fail_mode_stops_before_the_truncate(s: Scenario<'_>) {
    let mut s = s;
    s.settings.sink.truncate = TruncateMode::Fail;
    s.sql(DDL).await;
    s.sink_sql(SINK_DDL).await;
    let run = s.start().await;
    s.txn("INSERT INTO parent VALUES (1, 'p1'); INSERT INTO other VALUES (100, 'o')")
        .await;
    s.caught_up(&run).await;
    let before = s.checkpoint().await.expect("checkpoint");
    s.txn("INSERT INTO other VALUES (101, 'x'); TRUNCATE parent CASCADE")
        .await;
    let err = s.failed(&run).await;
    assert!(
        err.contains("TRUNCATE")
            && err.contains("public.parent")
            && err.contains("DBMAZZ_TRUNCATE_MODE"),
        "[{}] error names the tables and the setting: {err}",
        s.name
    );
    assert_eq!(s.checkpoint().await, Some(before));
    assert!(s.confirmed().await <= Some(before));
    let cols = "id, v, dbmazz_is_deleted";
    s.assert_sink("parent", cols, "id", &[row(&["1", "p1", "0"])])
        .await;
    // The rest of the rejected transaction is not applied either.
    s.assert_sink("other", cols, "id", &[row(&["100", "o", "0"])])
        .await;
    run.abort().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn truncate_is_applied_marked_or_rejected_never_ignored() {
    let stack = crate::scenario::stack().await;
    let a = Scenario::new(&stack, "trunc_apply", &TABLES).await;
    let b = Scenario::new(&stack, "trunc_soft", &TABLES).await;
    let c = Scenario::new(&stack, "trunc_fail", &TABLES).await;
    run_all(vec![
        (
            "apply_truncates_the_sink_in_stream_order",
            Box::pin(apply_truncates_the_sink_in_stream_order(a)),
        ),
        (
            "soft_truncate_marks_earlier_rows_deleted",
            Box::pin(soft_truncate_marks_earlier_rows_deleted(b)),
        ),
        (
            "fail_mode_stops_before_the_truncate",
            Box::pin(fail_mode_stops_before_the_truncate(c)),
        ),
    ])
    .await;
}
