//! `dbmazz run` as a process: streams, drains on SIGTERM with exit 0, and exits
//! non-zero (never 0) when a pipeline fails for good.

use std::time::{Duration, Instant};

use dbmazz_testkit::stack::{JOB, SLOT};
use dbmazz_testkit::{dbmazz_bin, DbmazzProcess, Job, Stack};

const T: Duration = Duration::from_secs(60);

async fn wait_for<F, Fut>(what: &str, timeout: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !f().await {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn run_streams_and_drains_on_sigterm_with_exit_zero() {
    let stack = Stack::start().await.expect("start the stack");
    stack
        .source_sql("CREATE TABLE t (id int PRIMARY KEY, v text, n numeric(10,3))")
        .await;
    stack
        .sink_sql("CREATE TABLE t (id INT PRIMARY KEY, v LONGTEXT, n DECIMAL(10,3))")
        .await;
    let mut p = DbmazzProcess::spawn(
        dbmazz_bin!(),
        &["run"],
        &stack.dbmazz_env(&Job::test(&["t"])),
    )
    .expect("spawn dbmazz");
    wait_for("the slot", T, || async {
        stack.confirmed(SLOT).await.is_some()
    })
    .await;
    stack
        .source_sql(
            "INSERT INTO t SELECT g, 'v' || g, g / 7.0 FROM generate_series(1, 2000) g;
             UPDATE t SET v = NULL WHERE id % 10 = 0;
             DELETE FROM t WHERE id % 13 = 0;",
        )
        .await;
    stack.wait_equal("t", &["id"], T).await;
    p.sigterm();
    let status = p.wait_exit(T).expect("dbmazz exits after SIGTERM");
    assert!(status.success(), "exit {status:?}\n{}", p.log());
    assert_eq!(
        stack.checkpoint(JOB).await,
        stack.confirmed(SLOT).await,
        "{}",
        p.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_permanent_sink_error_fails_the_run_with_a_non_zero_exit() {
    let stack = Stack::start().await.expect("start the stack");
    stack
        .source_sql("CREATE TABLE t (id int PRIMARY KEY, code varchar(20))")
        .await;
    // The sink column is narrower than the source one: a longer value is filtered
    // by the sink, which must stop the pipeline instead of losing the row.
    stack
        .sink_sql("CREATE TABLE t (id INT PRIMARY KEY, code VARCHAR(4))")
        .await;
    let mut p = DbmazzProcess::spawn(
        dbmazz_bin!(),
        &["run"],
        &stack.dbmazz_env(&Job::test(&["t"])),
    )
    .expect("spawn dbmazz");
    wait_for("the slot", T, || async {
        stack.confirmed(SLOT).await.is_some()
    })
    .await;
    let before = stack.checkpoint(JOB).await;
    stack
        .source_sql("INSERT INTO t VALUES (1, 'ok'), (2, 'much too long')")
        .await;
    let status = p
        .wait_exit(T)
        .expect("dbmazz exits after a permanent error");
    assert!(!status.success(), "must not exit 0\n{}", p.log());
    let log = p.log();
    assert!(log.contains("FAILED"), "{log}");
    assert!(
        log.contains("filtered") || log.contains("too long"),
        "{log}"
    );
    // Nothing was confirmed past the failure.
    assert_eq!(stack.checkpoint(JOB).await, before);
    let lsn = |s: Option<String>| -> dbmazz::lsn::Lsn { s.expect("lsn").parse().expect("lsn") };
    assert!(lsn(stack.confirmed(SLOT).await) <= lsn(before));
    eprintln!("{log}");
}
