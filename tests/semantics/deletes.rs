//! Deletes in both modes: `soft` (default: the row stays with
//! `dbmazz_is_deleted = true` and `dbmazz_op_type = 2`) and `hard` (`__op = 1`, the
//! row is removed). Delete-then-reinsert of one key, in one transaction or across
//! transactions and batches, ends as the source did.

use dbmazz::config::DeleteMode;
use dbmazz_testkit::engine::Running;

use crate::scenario::{row, run_all, Scenario, NULL};

const DDL: &str = "CREATE TABLE item (id int PRIMARY KEY, v text, n int);";
const SINK_DDL: &str = "CREATE TABLE item (id INT PRIMARY KEY);";

async fn delete_workload(s: &Scenario<'_>, run: &Running) {
    s.txn("INSERT INTO item SELECT i, 'v' || i, i FROM generate_series(1, 8) i")
        .await;
    s.caught_up(run).await;
    s.txn(
        "DELETE FROM item WHERE id = 2;
         DELETE FROM item WHERE id = 3; INSERT INTO item VALUES (3, 'again', 33);
         INSERT INTO item VALUES (9, 'short-lived', 9); DELETE FROM item WHERE id = 9;
         UPDATE item SET v = 'changed' WHERE id = 5; DELETE FROM item WHERE id = 5;
         DELETE FROM item WHERE id = 4;",
    )
    .await;
    s.caught_up(run).await;
    // Reinsert across transactions and batches.
    s.txn("INSERT INTO item VALUES (4, 'back', 44)").await;
    s.caught_up(run).await;
    s.txn("DELETE FROM item WHERE id = 6").await;
    s.txn("INSERT INTO item VALUES (6, 'six', 66)").await;
    s.txn("DELETE FROM item WHERE id = 7").await;
    s.caught_up(run).await;
}

async fn soft_delete_keeps_marked_rows(s: Scenario<'_>) {
    s.sql(DDL).await;
    s.sink_sql(SINK_DDL).await;
    let run = s.start().await;
    s.audit("item").await;
    delete_workload(&s, &run).await;
    s.assert_oracle("item", &["id"]).await;
    let want: Vec<_> = [
        ["1", "v1", "1", "0", "0"],
        ["2", "v2", "2", "2", "1"],
        ["3", "again", "33", "0", "0"],
        ["4", "back", "44", "0", "0"],
        ["5", "changed", "5", "2", "1"],
        ["6", "six", "66", "0", "0"],
        ["7", "v7", "7", "2", "1"],
        ["8", "v8", "8", "0", "0"],
        ["9", "short-lived", "9", "2", "1"],
    ]
    .iter()
    .map(|r| row(r))
    .collect();
    s.assert_sink(
        "item",
        "id, v, n, dbmazz_op_type, dbmazz_is_deleted",
        "id",
        &want,
    )
    .await;
    assert_eq!(s.regressions("item").await, 0);
    s.finish(run).await;
}

async fn hard_delete_removes_rows(s: Scenario<'_>) {
    let mut s = s;
    s.settings.sink.delete_mode = DeleteMode::Hard;
    s.sql(DDL).await;
    s.sink_sql(SINK_DDL).await;
    let run = s.start().await;
    delete_workload(&s, &run).await;
    s.assert_oracle("item", &["id"]).await;
    let want: Vec<_> = [
        ["1", "v1", "1", "0", "0"],
        ["3", "again", "33", "0", "0"],
        ["4", "back", "44", "0", "0"],
        ["6", "six", "66", "0", "0"],
        ["8", "v8", "8", "0", "0"],
    ]
    .iter()
    .map(|r| row(r))
    .collect();
    s.assert_sink(
        "item",
        "id, v, n, dbmazz_op_type, dbmazz_is_deleted",
        "id",
        &want,
    )
    .await;
    s.finish(run).await;
}

/// REPLICA IDENTITY DEFAULT: a delete carries only the key; the soft-deleted row
/// keeps the values the sink had (a partial update of the audit columns).
async fn key_only_soft_delete_keeps_stored_values(s: Scenario<'_>) {
    let mut s = s;
    s.settings.replica_identity_full = false;
    s.sql(DDL).await;
    s.sink_sql(SINK_DDL).await;
    let run = s.start().await;
    delete_workload(&s, &run).await;
    s.assert_oracle("item", &["id"]).await;
    let want: Vec<_> = [
        ["1", "v1", "1", "0", "0"],
        ["2", "v2", "2", "2", "1"],
        ["3", "again", "33", "0", "0"],
        ["4", "back", "44", "0", "0"],
        ["5", "changed", "5", "2", "1"],
        ["6", "six", "66", "0", "0"],
        ["7", "v7", "7", "2", "1"],
        ["8", "v8", "8", "0", "0"],
        ["9", "short-lived", "9", "2", "1"],
    ]
    .iter()
    .map(|r| row(r))
    .collect();
    s.assert_sink(
        "item",
        "id, v, n, dbmazz_op_type, dbmazz_is_deleted",
        "id",
        &want,
    )
    .await;
    let _ = NULL;
    s.finish(run).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deletes_and_reinserts_end_as_in_the_source() {
    let stack = crate::scenario::stack().await;
    let a = Scenario::new(&stack, "del_soft", &["item"]).await;
    let b = Scenario::new(&stack, "del_hard", &["item"]).await;
    let c = Scenario::new(&stack, "del_keyonly", &["item"]).await;
    run_all(vec![
        (
            "soft_delete_keeps_marked_rows",
            Box::pin(soft_delete_keeps_marked_rows(a)),
        ),
        (
            "hard_delete_removes_rows",
            Box::pin(hard_delete_removes_rows(b)),
        ),
        (
            "key_only_soft_delete_keeps_stored_values",
            Box::pin(key_only_soft_delete_keeps_stored_values(c)),
        ),
    ])
    .await;
}
