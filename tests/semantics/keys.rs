//! Primary-key changes: an UPDATE that changes the key deletes (or soft-deletes) the
//! old key and upserts the new row, in order, both at the version of the updating
//! transaction — under every replica identity dbmazz accepts.

use dbmazz::config::DeleteMode;
use dbmazz_testkit::engine::Running;

use crate::scenario::{row, run_all, Scenario, NULL};

const DDL: &str = "CREATE TABLE acct (id int PRIMARY KEY, name text, bal int);";
const SINK_DDL: &str = "CREATE TABLE acct (id INT PRIMARY KEY);";

/// The workload every identity variant runs, in three batches.
async fn key_workload(
    s: &Scenario<'_>,
    run: &Running,
) -> [(dbmazz::lsn::Lsn, dbmazz::lsn::Lsn); 2] {
    s.txn("INSERT INTO acct VALUES (1, 'a', 10), (2, 'b', 20), (3, 'c', 30), (4, 'd', 40)")
        .await;
    s.caught_up(run).await;
    let moved = s
        .txn(
            "UPDATE acct SET id = 10 WHERE id = 1;               -- plain key change
             UPDATE acct SET id = 20, bal = 21 WHERE id = 2;     -- key and value
             UPDATE acct SET id = 5 WHERE id = 3;                -- 3 -> 5 -> 3: back home
             UPDATE acct SET id = 3, name = 'c2' WHERE id = 5;",
        )
        .await;
    s.caught_up(run).await;
    let back = s
        .txn(
            "UPDATE acct SET id = 1 WHERE id = 10;               -- the old key comes back
             UPDATE acct SET id = 40 WHERE id = 4;
             INSERT INTO acct VALUES (4, 'd2', 44);              -- a new row under the old key",
        )
        .await;
    s.caught_up(run).await;
    [moved, back]
}

async fn soft_delete_keeps_tombstones_for_old_keys(s: Scenario<'_>) {
    s.sql(DDL).await;
    s.sink_sql(SINK_DDL).await;
    let run = s.start().await;
    s.audit("acct").await;
    let [moved, back] = key_workload(&s, &run).await;
    s.assert_oracle("acct", &["id"]).await;
    let want: Vec<_> = [
        ["1", "a", "10", "1", "0"],
        ["2", "b", "20", "2", "1"],
        ["3", "c2", "30", "1", "0"],
        ["4", "d2", "44", "0", "0"],
        ["5", "c", "30", "2", "1"],
        ["10", "a", "10", "2", "1"],
        ["20", "b", "21", "1", "0"],
        ["40", "d", "40", "1", "0"],
    ]
    .iter()
    .map(|r| row(r))
    .collect();
    s.assert_sink(
        "acct",
        "id, name, bal, dbmazz_op_type, dbmazz_is_deleted",
        "id",
        &want,
    )
    .await;
    // Tombstone and new row carry the version of the transaction that moved them,
    // so a replay of an older load cannot bring the old key back.
    s.assert_version("acct", "id = 2", moved).await;
    s.assert_version("acct", "id = 20", moved).await;
    s.assert_version("acct", "id = 5", moved).await;
    s.assert_version("acct", "id = 10", back).await;
    s.assert_version("acct", "id = 1", back).await;
    s.assert_version("acct", "id = 4", back).await;
    assert_eq!(s.regressions("acct").await, 0);
    s.finish(run).await;
}

async fn hard_delete_removes_old_keys(s: Scenario<'_>) {
    let mut s = s;
    s.settings.sink.delete_mode = DeleteMode::Hard;
    s.sql(DDL).await;
    s.sink_sql(SINK_DDL).await;
    let run = s.start().await;
    let [_, back] = key_workload(&s, &run).await;
    s.assert_oracle("acct", &["id"]).await;
    let want: Vec<_> = [
        ["1", "a", "10", "1", "0"],
        ["3", "c2", "30", "1", "0"],
        ["4", "d2", "44", "0", "0"],
        ["20", "b", "21", "1", "0"],
        ["40", "d", "40", "1", "0"],
    ]
    .iter()
    .map(|r| row(r))
    .collect();
    s.assert_sink(
        "acct",
        "id, name, bal, dbmazz_op_type, dbmazz_is_deleted",
        "id",
        &want,
    )
    .await;
    s.assert_version("acct", "id = 1", back).await;
    s.finish(run).await;
}

/// REPLICA IDENTITY DEFAULT: the old key arrives as a key-only tuple.
async fn default_identity_key_change(s: Scenario<'_>) {
    let mut s = s;
    s.settings.replica_identity_full = false;
    s.sql(DDL).await;
    s.sink_sql(SINK_DDL).await;
    let run = s.start().await;
    key_workload(&s, &run).await;
    s.assert_oracle("acct", &["id"]).await;
    // Soft-deleted old keys keep the values the sink had (only the key is known).
    let want: Vec<_> = [
        ["1", "0"],
        ["2", "1"],
        ["3", "0"],
        ["4", "0"],
        ["5", "1"],
        ["10", "1"],
        ["20", "0"],
        ["40", "0"],
    ]
    .iter()
    .map(|r| row(r))
    .collect();
    s.assert_sink("acct", "id, dbmazz_is_deleted", "id", &want)
        .await;
    s.finish(run).await;
}

/// REPLICA IDENTITY USING INDEX on a unique index that holds the key (and more).
async fn using_index_identity_key_change(s: Scenario<'_>) {
    let mut s = s;
    s.settings.replica_identity_full = false;
    s.sql(
        "CREATE TABLE acct (id int PRIMARY KEY, name text NOT NULL, bal int);
         CREATE UNIQUE INDEX acct_ident ON acct (name, id);
         ALTER TABLE acct REPLICA IDENTITY USING INDEX acct_ident;",
    )
    .await;
    s.sink_sql(SINK_DDL).await;
    let run = s.start().await;
    key_workload(&s, &run).await;
    // Identity changes that keep the primary key are plain updates.
    s.txn("UPDATE acct SET name = 'renamed' WHERE id = 20; DELETE FROM acct WHERE id = 40")
        .await;
    s.caught_up(&run).await;
    s.assert_oracle("acct", &["id"]).await;
    let want: Vec<_> = [
        ["1", "a", "0"],
        ["2", "b", "1"],
        ["3", "c2", "0"],
        ["4", "d2", "0"],
        ["5", "c", "1"],
        ["10", "a", "1"],
        ["20", "renamed", "0"],
        ["40", "d", "1"],
    ]
    .iter()
    .map(|r| row(r))
    .collect();
    s.assert_sink("acct", "id, name, dbmazz_is_deleted", "id", &want)
        .await;
    s.finish(run).await;
}

/// Composite keys: changing one part of the key moves the row.
async fn composite_key_change(s: Scenario<'_>) {
    s.sql("CREATE TABLE line (o int, l int, qty int, PRIMARY KEY (o, l))")
        .await;
    s.sink_sql("CREATE TABLE line (o INT, l INT, PRIMARY KEY (o, l))")
        .await;
    let run = s.start().await;
    s.txn("INSERT INTO line VALUES (1, 1, 5), (1, 2, 6)").await;
    s.caught_up(&run).await;
    s.txn("UPDATE line SET l = 3 WHERE o = 1 AND l = 2; UPDATE line SET o = 2 WHERE l = 1")
        .await;
    s.caught_up(&run).await;
    s.assert_oracle("line", &["o", "l"]).await;
    let want: Vec<_> = [
        ["1", "1", "5", "1"],
        ["1", "2", "6", "1"],
        ["1", "3", "6", "0"],
        ["2", "1", "5", "0"],
    ]
    .iter()
    .map(|r| row(r))
    .collect();
    s.assert_sink("line", "o, l, qty, dbmazz_is_deleted", "o, l", &want)
        .await;
    s.finish(run).await;
}

/// REPLICA IDENTITY DEFAULT and a key change that leaves a TOASTed column
/// unchanged: the new row's value is nowhere in the stream. dbmazz stops with a
/// message naming the column and the fix instead of writing NULL.
async fn key_change_with_unchanged_toast_needs_full_identity(s: Scenario<'_>) {
    let mut s = s;
    s.settings.replica_identity_full = false;
    s.sql(
        "CREATE TABLE acct (id int PRIMARY KEY, name text, big text);
         ALTER TABLE acct ALTER COLUMN big SET STORAGE EXTERNAL;",
    )
    .await;
    s.sink_sql(SINK_DDL).await;
    let run = s.start().await;
    s.txn("INSERT INTO acct VALUES (1, 'a', repeat('x', 5000))")
        .await;
    s.caught_up(&run).await;
    let before = s.checkpoint().await.expect("checkpoint");
    s.txn("UPDATE acct SET id = 2 WHERE id = 1").await;
    let err = s.failed(&run).await;
    assert!(
        err.contains("'big'") && err.contains("REPLICA IDENTITY FULL"),
        "[{}] error names column and fix: {err}",
        s.name
    );
    assert_eq!(
        s.checkpoint().await,
        Some(before),
        "nothing confirmed past the change"
    );
    let want = vec![row(&["1", "a", "0"])];
    s.assert_sink("acct", "id, name, dbmazz_is_deleted", "id", &want)
        .await;
    let _ = NULL;
    run.abort().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn primary_key_updates_move_rows_under_every_identity() {
    let stack = crate::scenario::stack().await;
    let a = Scenario::new(&stack, "key_soft", &["acct"]).await;
    let b = Scenario::new(&stack, "key_hard", &["acct"]).await;
    let c = Scenario::new(&stack, "key_default", &["acct"]).await;
    let d = Scenario::new(&stack, "key_index", &["acct"]).await;
    let e = Scenario::new(&stack, "key_composite", &["line"]).await;
    let f = Scenario::new(&stack, "key_toast", &["acct"]).await;
    run_all(vec![
        (
            "soft_delete_keeps_tombstones_for_old_keys",
            Box::pin(soft_delete_keeps_tombstones_for_old_keys(a)),
        ),
        (
            "hard_delete_removes_old_keys",
            Box::pin(hard_delete_removes_old_keys(b)),
        ),
        (
            "default_identity_key_change",
            Box::pin(default_identity_key_change(c)),
        ),
        (
            "using_index_identity_key_change",
            Box::pin(using_index_identity_key_change(d)),
        ),
        ("composite_key_change", Box::pin(composite_key_change(e))),
        (
            "key_change_with_unchanged_toast_needs_full_identity",
            Box::pin(key_change_with_unchanged_toast_needs_full_identity(f)),
        ),
    ])
    .await;
}
