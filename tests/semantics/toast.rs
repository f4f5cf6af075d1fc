//! Unchanged TOAST values: an UPDATE that leaves a large text/jsonb/bytea alone does
//! not carry it (`u` in pgoutput). dbmazz must never write NULL for it: it sends a
//! partial update listing exactly the columns present (rows of different shapes in
//! different loads), or fills the value from an older image (the old row of
//! REPLICA IDENTITY FULL, or an earlier change of the same key in the batch).

use crate::scenario::{row, run_all, Scenario};

/// Columns stored out of line and uncompressed, so a few KiB are TOASTed.
const DDL: &str = "
    CREATE TABLE docs (id int PRIMARY KEY, title text, body text, meta jsonb, blob bytea);
    ALTER TABLE docs ALTER COLUMN body SET STORAGE EXTERNAL,
                     ALTER COLUMN meta SET STORAGE EXTERNAL,
                     ALTER COLUMN blob SET STORAGE EXTERNAL;
    CREATE TABLE notes (id int PRIMARY KEY, n int, doc text);
    ALTER TABLE notes ALTER COLUMN doc SET STORAGE EXTERNAL;";

const SINK_DDL: &str = "
    CREATE TABLE docs (id INT PRIMARY KEY);
    CREATE TABLE notes (id INT PRIMARY KEY);";

/// A big value that differs per `tag`.
fn big(tag: &str, n: usize) -> String {
    format!("repeat('{tag}', {n})")
}

fn big_json(tag: &str) -> String {
    format!("jsonb_build_object('tag', '{tag}', 'pad', repeat('{tag}', 6000))")
}

fn big_bytes(tag: u8) -> String {
    format!("decode(repeat('{tag:02x}', 5000), 'hex')")
}

async fn insert_initial(s: &Scenario<'_>) {
    let mut sql = String::new();
    for i in 1..=4 {
        sql.push_str(&format!(
            "INSERT INTO docs VALUES ({i}, 't{i}', {}, {}, {});",
            big(&format!("b{i}"), 3000),
            big_json(&format!("m{i}")),
            big_bytes(i as u8)
        ));
        sql.push_str(&format!(
            "INSERT INTO notes VALUES ({i}, {i}, {});",
            big(&format!("n{i}"), 4000)
        ));
    }
    s.txn(&sql).await;
}

/// One transaction mixing full rows and rows missing one, two or three TOAST
/// columns, over two tables; then a second transaction in the same batch.
async fn mixed_updates(s: &Scenario<'_>) {
    s.txn(&format!(
        "UPDATE docs SET title = 'T1' WHERE id = 1;                  -- body, meta, blob unchanged
         UPDATE docs SET body = {} WHERE id = 2;                     -- meta, blob unchanged
         UPDATE docs SET title = 'T3', meta = {} WHERE id = 3;       -- body, blob unchanged
         INSERT INTO docs VALUES (5, 't5', {}, {}, {});
         UPDATE notes SET n = 10 WHERE id = 1;                       -- doc unchanged
         UPDATE notes SET doc = {} WHERE id = 2;
         UPDATE notes SET n = n + 1 WHERE id IN (3, 4);",
        big("B2", 2500),
        big_json("M3"),
        big("b5", 3000),
        big_json("m5"),
        big_bytes(5),
        big("N2", 3000),
    ))
    .await;
    s.txn(
        "UPDATE docs SET title = 'T5' WHERE id = 5;   -- folds onto the insert above
         UPDATE docs SET title = 'T1b' WHERE id = 1;  -- still without its TOAST columns
         UPDATE notes SET n = 30 WHERE id = 3;",
    )
    .await;
}

async fn expect_final(s: &Scenario<'_>) {
    s.assert_oracle("docs", &["id"]).await;
    s.assert_oracle("notes", &["id"]).await;
    let docs = [
        ["1", "T1b", "1", "0"],
        ["2", "t2", "1", "0"],
        ["3", "T3", "1", "0"],
        ["4", "t4", "0", "0"],
        ["5", "T5", "1", "0"],
    ];
    let docs: Vec<_> = docs.iter().map(|r| row(r)).collect();
    s.assert_sink(
        "docs",
        "id, title, dbmazz_op_type, dbmazz_is_deleted",
        "id",
        &docs,
    )
    .await;
    let notes = [
        ["1", "10", "1", "0"],
        ["2", "2", "1", "0"],
        ["3", "30", "1", "0"],
        ["4", "5", "1", "0"],
    ];
    let notes: Vec<_> = notes.iter().map(|r| row(r)).collect();
    s.assert_sink(
        "notes",
        "id, n, dbmazz_op_type, dbmazz_is_deleted",
        "id",
        &notes,
    )
    .await;
    // The TOAST values are the originals, not NULL and not truncated.
    let lens = s
        .sink_select(
            "docs",
            "id, LENGTH(body), LEFT(body, 4), JSON_VALUE(meta, '$.tag'), LENGTH(`blob`)",
            "id",
        )
        .await;
    let want: Vec<_> = [
        ["1", "6000", "b1b1", "m1", "10000"],
        ["2", "5000", "B2B2", "m2", "10000"],
        ["3", "6000", "b3b3", "M3", "10000"],
        ["4", "6000", "b4b4", "m4", "10000"],
        ["5", "6000", "b5b5", "m5", "10000"],
    ]
    .iter()
    .map(|r| row(r))
    .collect();
    assert_eq!(lens, want, "[{}] TOAST values in the sink", s.name);
}

/// REPLICA IDENTITY DEFAULT: the old row is not sent, so unchanged TOAST columns
/// are absent and the sink must leave them as stored (partial update).
async fn default_identity_sends_partial_updates_that_keep_toast(s: Scenario<'_>) {
    let mut s = s;
    s.settings.replica_identity_full = false;
    s.sql(DDL).await;
    s.sink_sql(SINK_DDL).await;
    let run = s.start().await;
    insert_initial(&s).await;
    // The inserts land in an earlier batch than the updates, so no image of the
    // batch can supply the unchanged values.
    s.caught_up(&run).await;
    mixed_updates(&s).await;
    s.caught_up(&run).await;
    expect_final(&s).await;
    s.finish(run).await;
}

/// REPLICA IDENTITY FULL: the old row carries the TOASTed values, so every row is
/// complete.
async fn full_identity_fills_toast_from_the_old_row(s: Scenario<'_>) {
    s.sql(DDL).await;
    s.sink_sql(SINK_DDL).await;
    let run = s.start().await;
    insert_initial(&s).await;
    s.caught_up(&run).await;
    mixed_updates(&s).await;
    s.caught_up(&run).await;
    expect_final(&s).await;
    s.finish(run).await;
}

/// Insert and updates of the same keys in one batch: the insert's image supplies the
/// unchanged values even without FULL identity.
async fn toast_in_one_batch_is_filled_from_the_insert(s: Scenario<'_>) {
    let mut s = s;
    s.settings.replica_identity_full = false;
    s.settings.limits.max_age = std::time::Duration::from_secs(2);
    s.sql(DDL).await;
    s.sink_sql(SINK_DDL).await;
    let run = s.start().await;
    insert_initial(&s).await;
    mixed_updates(&s).await;
    s.caught_up(&run).await;
    expect_final(&s).await;
    s.finish(run).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unchanged_toast_values_are_never_nulled() {
    let stack = crate::scenario::stack().await;
    let a = Scenario::new(&stack, "toast_default", &["docs", "notes"]).await;
    let b = Scenario::new(&stack, "toast_full", &["docs", "notes"]).await;
    let c = Scenario::new(&stack, "toast_one_batch", &["docs", "notes"]).await;
    run_all(vec![
        (
            "default_identity_sends_partial_updates_that_keep_toast",
            Box::pin(default_identity_sends_partial_updates_that_keep_toast(a)),
        ),
        (
            "full_identity_fills_toast_from_the_old_row",
            Box::pin(full_identity_fills_toast_from_the_old_row(b)),
        ),
        (
            "toast_in_one_batch_is_filled_from_the_insert",
            Box::pin(toast_in_one_batch_is_filled_from_the_insert(c)),
        ),
    ])
    .await;
}
