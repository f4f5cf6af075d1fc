//! Bad data: a value the sink column cannot hold stops the pipeline FAILED with
//! table, column, key and a prefix of the value in the message. Nothing of the
//! rejected batch is applied, nothing after the previous checkpoint is confirmed,
//! and once the column is widened a restart delivers the row.

use crate::scenario::{row, run_all, Scenario};

/// Runs `bad` after a good first transaction; expects FAILED with every `needle`
/// in the message and the sink unchanged; widens with `fix` and restarts.
async fn rejected(s: Scenario<'_>, sink_ddl: &str, bad: &str, needles: &[&str], fix: &str) {
    s.sql(
        "CREATE TABLE t (id int PRIMARY KEY, code text, amount numeric(12,2), n bigint, f float8)",
    )
    .await;
    s.sink_sql(sink_ddl).await;
    let run = s.start().await;
    s.txn("INSERT INTO t VALUES (1, 'ok', 1.50, 1, 1.5)").await;
    s.caught_up(&run).await;
    let before = s.checkpoint().await.expect("checkpoint");
    s.txn(&format!(
        "INSERT INTO t VALUES (2, 'fine', 2, 2, 2); UPDATE t SET n = 10 WHERE id = 1; {bad}"
    ))
    .await;
    let err = s.failed(&run).await;
    for n in needles {
        assert!(
            err.contains(n),
            "[{}] the error should contain {n:?}: {err}",
            s.name
        );
    }
    assert!(
        !err.contains("much too long value"),
        "only a prefix of the value: {err}"
    );
    assert_eq!(
        s.checkpoint().await,
        Some(before),
        "[{}] checkpoint moved",
        s.name
    );
    assert!(
        s.confirmed().await <= Some(before),
        "[{}] slot confirmed past the checkpoint",
        s.name
    );
    // The whole transaction is held back: the good row and the update too.
    s.assert_sink(
        "t",
        "id, code, n, dbmazz_op_type",
        "id",
        &[row(&["1", "ok", "1", "0"])],
    )
    .await;
    run.abort().await;

    // The manual step the message names, then a restart: everything arrives.
    s.sink_sql(fix).await;
    let run = s.start().await;
    s.caught_up(&run).await;
    s.assert_oracle("t", &["id"]).await;
    s.finish(run).await;
}

const SINK: &str = "CREATE TABLE t (id INT PRIMARY KEY, code VARCHAR(5), amount DECIMAL(12,2), n BIGINT, f DOUBLE)";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn values_the_sink_cannot_hold_stop_the_pipeline_with_a_precise_error() {
    let stack = crate::scenario::stack().await;
    let a = Scenario::new(&stack, "bad_varchar", &["t"]).await;
    let b = Scenario::new(&stack, "bad_decimal", &["t"]).await;
    let c = Scenario::new(&stack, "bad_int", &["t"]).await;
    let d = Scenario::new(&stack, "bad_float", &["t"]).await;
    run_all(vec![
        (
            "string_longer_than_the_varchar",
            Box::pin(rejected(
                a,
                SINK,
                "INSERT INTO t VALUES (3, 'much too long value', 3, 3, 3)",
                &[
                    "public.t",
                    "'code'",
                    "id=3",
                    "VARCHAR(5)",
                    "\"much too long va\"",
                ],
                "ALTER TABLE t MODIFY code VARCHAR(100)",
            )),
        ),
        (
            "numeric_overflowing_the_decimal",
            Box::pin(rejected(
                b,
                "CREATE TABLE t (id INT PRIMARY KEY, code VARCHAR(50), amount DECIMAL(5,2), n BIGINT, f DOUBLE)",
                "INSERT INTO t VALUES (3, 'x', 123456.78, 3, 3)",
                &["public.t", "'amount'", "id=3", "DECIMAL(5,2)", "\"123456.78\""],
                "ALTER TABLE t MODIFY amount DECIMAL(12,2)",
            )),
        ),
        (
            "bigint_overflowing_an_int_column",
            Box::pin(rejected(
                c,
                "CREATE TABLE t (id INT PRIMARY KEY, code VARCHAR(50), amount DECIMAL(12,2), n INT, f DOUBLE)",
                "UPDATE t SET n = 1099511627776 WHERE id = 2",
                &["public.t", "'n'", "id=2", "INT"],
                "ALTER TABLE t MODIFY n BIGINT",
            )),
        ),
        (
            "nan_into_a_double_column",
            Box::pin(rejected(
                d,
                "CREATE TABLE t (id INT PRIMARY KEY, code VARCHAR(50), amount DECIMAL(12,2), n BIGINT, f DOUBLE)",
                "INSERT INTO t VALUES (3, 'x', 3, 3, 'NaN')",
                &["public.t", "'f'", "id=3", "NaN"],
                "ALTER TABLE t MODIFY f VARCHAR(40)",
            )),
        ),
    ])
    .await;
}
