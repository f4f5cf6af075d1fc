//! Schema evolution driven by Relation messages, applied before the first row that
//! needs it (policy in docs/change-semantics.md):
//! - ADD COLUMN → `ALTER TABLE … ADD COLUMN` with the mapped type, then rows carry
//!   it — also when the column is added and filled in the same transaction;
//! - DROP COLUMN → the sink column stays and gets NULL in rows written afterwards;
//! - RENAME COLUMN → the new name is added; the old column keeps what was written
//!   before the rename;
//! - a type change → the sink column keeps its type; a value it cannot hold stops
//!   the pipeline naming the column, and widening the column is the manual step.

use crate::scenario::{row, run_all, Scenario, NULL};

const DDL: &str = "CREATE TABLE t (id int PRIMARY KEY, a text, b int)";
const SINK_DDL: &str = "CREATE TABLE t (id INT PRIMARY KEY)";

async fn sink_column_type(s: &Scenario<'_>, column: &str) -> Option<String> {
    use mysql_async::prelude::Queryable;
    let mut c = s.sink.get_conn().await.expect("sink");
    c.exec_first(
        "SELECT COLUMN_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = 't' AND COLUMN_NAME = ?",
        (s.name.clone(), column.to_owned()),
    )
    .await
    .expect("column type")
}

async fn added_columns_reach_the_sink_before_their_rows(s: Scenario<'_>) {
    s.sql(DDL).await;
    s.sink_sql(SINK_DDL).await;
    let run = s.start().await;
    s.txn("INSERT INTO t VALUES (1, 'a1', 1)").await;
    s.caught_up(&run).await;
    s.sql("ALTER TABLE t ADD COLUMN n bigint").await;
    s.txn("INSERT INTO t VALUES (2, 'a2', 2, 20); UPDATE t SET n = 10 WHERE id = 1")
        .await;
    // Added and filled in the same transaction, two columns at once, then a row of
    // another shape in the same batch.
    s.txn(
        "ALTER TABLE t ADD COLUMN d numeric(10,2), ADD COLUMN j jsonb;
         INSERT INTO t VALUES (3, 'a3', 3, 30, 3.25, '{\"k\": [1, 2]}');
         UPDATE t SET d = 1.50, j = '{}' WHERE id = 2;",
    )
    .await;
    s.txn("UPDATE t SET a = 'a1b' WHERE id = 1").await;
    s.caught_up(&run).await;
    s.assert_oracle("t", &["id"]).await;
    assert_eq!(
        sink_column_type(&s, "n").await.as_deref(),
        Some("bigint(20)")
    );
    assert_eq!(
        sink_column_type(&s, "d").await.as_deref(),
        Some("decimal(10,2)")
    );
    let want = vec![
        row(&["1", "a1b", "10", NULL, "1"]),
        row(&["2", "a2", "20", "1.50", "1"]),
        row(&["3", "a3", "30", "3.25", "0"]),
    ];
    s.assert_sink("t", "id, a, n, d, dbmazz_op_type", "id", &want)
        .await;
    s.finish(run).await;
}

async fn dropped_columns_stay_and_get_null_from_then_on(s: Scenario<'_>) {
    s.sql(DDL).await;
    s.sink_sql(SINK_DDL).await;
    let run = s.start().await;
    s.txn("INSERT INTO t VALUES (1, 'a1', 1), (2, 'a2', 2), (3, 'a3', 3)")
        .await;
    s.caught_up(&run).await;
    s.txn("ALTER TABLE t DROP COLUMN b; INSERT INTO t VALUES (4, 'a4'); UPDATE t SET a = 'a1b' WHERE id = 1")
        .await;
    s.txn("DELETE FROM t WHERE id = 3").await;
    s.caught_up(&run).await;
    s.assert_oracle("t", &["id"]).await;
    let want = vec![
        row(&["1", "a1b", NULL, "0"]),
        row(&["2", "a2", "2", "0"]),
        row(&["3", "a3", NULL, "1"]),
        row(&["4", "a4", NULL, "0"]),
    ];
    s.assert_sink("t", "id, a, b, dbmazz_is_deleted", "id", &want)
        .await;
    s.finish(run).await;
}

async fn renamed_columns_are_added_under_the_new_name(s: Scenario<'_>) {
    s.sql(DDL).await;
    s.sink_sql(SINK_DDL).await;
    let run = s.start().await;
    s.txn("INSERT INTO t VALUES (1, 'a1', 1), (2, 'a2', 2)")
        .await;
    s.caught_up(&run).await;
    s.txn("ALTER TABLE t RENAME COLUMN a TO a_new; INSERT INTO t VALUES (3, 'a3', 3); UPDATE t SET b = 20 WHERE id = 2")
        .await;
    s.caught_up(&run).await;
    assert_eq!(
        sink_column_type(&s, "a_new").await.as_deref(),
        Some("longtext")
    );
    // The old column keeps what was written before the rename; rows written after
    // it carry the new column (a full-row upsert leaves the old one NULL).
    let want = vec![
        row(&["1", "a1", NULL, "1"]),
        row(&["2", NULL, "a2", "20"]),
        row(&["3", NULL, "a3", "3"]),
    ];
    s.assert_sink("t", "id, a, a_new, b", "id", &want).await;
    // The documented merge step restores the source's view.
    s.sink_sql("UPDATE t SET a_new = a WHERE a_new IS NULL")
        .await;
    s.assert_oracle("t", &["id"]).await;
    s.finish(run).await;
}

async fn type_changes_keep_the_sink_column_and_check_values(s: Scenario<'_>) {
    s.sql(DDL).await;
    s.sink_sql(SINK_DDL).await;
    let run = s.start().await;
    s.txn("INSERT INTO t VALUES (1, 'a1', 1)").await;
    s.caught_up(&run).await;
    // int -> bigint: values that still fit the sink's INT keep flowing.
    s.txn("ALTER TABLE t ALTER COLUMN b TYPE bigint; INSERT INTO t VALUES (2, 'a2', 2)")
        .await;
    s.caught_up(&run).await;
    s.assert_oracle("t", &["id"]).await;
    assert_eq!(sink_column_type(&s, "b").await.as_deref(), Some("int(11)"));
    let before = s.checkpoint().await.expect("checkpoint");
    s.txn("INSERT INTO t VALUES (3, 'a3', 5000000000)").await;
    let err = s.failed(&run).await;
    assert!(
        err.contains("'b'") && err.contains("id=3") && err.contains("INT"),
        "[{}] error names the column, the key and the sink type: {err}",
        s.name
    );
    assert_eq!(s.checkpoint().await, Some(before));
    run.abort().await;
    // The manual step: widen the sink column, restart.
    s.sink_sql("ALTER TABLE t MODIFY b BIGINT").await;
    let run = s.start().await;
    s.caught_up(&run).await;
    s.assert_oracle("t", &["id"]).await;
    s.finish(run).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn schema_changes_are_applied_before_the_rows_that_need_them() {
    let stack = crate::scenario::stack().await;
    let a = Scenario::new(&stack, "schema_add", &["t"]).await;
    let b = Scenario::new(&stack, "schema_drop", &["t"]).await;
    let c = Scenario::new(&stack, "schema_rename", &["t"]).await;
    let d = Scenario::new(&stack, "schema_retype", &["t"]).await;
    run_all(vec![
        (
            "added_columns_reach_the_sink_before_their_rows",
            Box::pin(added_columns_reach_the_sink_before_their_rows(a)),
        ),
        (
            "dropped_columns_stay_and_get_null_from_then_on",
            Box::pin(dropped_columns_stay_and_get_null_from_then_on(b)),
        ),
        (
            "renamed_columns_are_added_under_the_new_name",
            Box::pin(renamed_columns_are_added_under_the_new_name(c)),
        ),
        (
            "type_changes_keep_the_sink_column_and_check_values",
            Box::pin(type_changes_keep_the_sink_column_and_check_values(d)),
        ),
    ])
    .await;
}
