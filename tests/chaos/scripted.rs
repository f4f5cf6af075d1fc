//! Scripted scenarios: one fault at a chosen point, then the same oracle (source =
//! sink row by row, no version ever going back, slot never confirmed beyond the
//! checkpoint, nothing applied twice).

use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

use dbmazz_testkit::chaos::run::{catch_up, wait_for_checkpoints};
use dbmazz_testkit::chaos::workers::{peak_rss_kib, rss_kib};
use dbmazz_testkit::chaos::{ConfirmWatch, History, TableDiff, Workload};
use dbmazz_testkit::stack::CHECKPOINT_SCHEMA;
use dbmazz_testkit::{dbmazz_bin, DbmazzProcess, Job, Stack, StopMode};

const T: Duration = Duration::from_secs(90);

/// One pipeline over one workload, with the oracle around it.
struct Scenario {
    env: Stack,
    workload: Workload,
    job: Job,
    watch: Option<ConfirmWatch>,
}

impl Scenario {
    async fn start(seed: u64) -> Scenario {
        let env = Stack::start().await.expect("services");
        let workload = Workload::new("w", seed);
        workload.create(&env).await.expect("tables");
        let job = Job::new("job1", workload.tables());
        Scenario {
            env,
            workload,
            job,
            watch: None,
        }
    }

    fn spawn(&self, extra: &[(&str, &str)]) -> DbmazzProcess {
        let mut env = self.env.dbmazz_env(&self.job);
        env.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        DbmazzProcess::spawn(dbmazz_bin!(), &["run"], &env).expect("spawn dbmazz")
    }

    /// Waits for setup (checkpoint row), installs the history triggers and starts
    /// the slot/checkpoint sampler.
    async fn ready(&mut self, p: &DbmazzProcess) {
        if let Err(e) = wait_for_checkpoints(&self.env, std::slice::from_ref(&self.job), T).await {
            panic!("{e}\n{}", p.log());
        }
        let tables: Vec<(String, Vec<&str>)> = self
            .workload
            .tables()
            .into_iter()
            .map(|t| (t.clone(), self.workload.key_columns(&t)))
            .collect();
        History::install(&self.env.sink, self.env.sink_db(), &tables)
            .await
            .expect("history triggers");
        if self.watch.is_none() {
            self.watch = Some(ConfirmWatch::start(
                self.env.source_conn(),
                CHECKPOINT_SCHEMA,
                vec![(self.job.id.clone(), self.job.slot.clone())],
            ));
        }
    }

    /// Runs the random writer for `d`.
    async fn write_for(&self, d: Duration) -> u64 {
        let (stop, rx) = tokio::sync::watch::channel(false);
        let w = self.workload.spawn_writer(self.env.source_conn(), rx);
        tokio::time::sleep(d).await;
        let _ = stop.send(true);
        w.await.expect("writer").rows()
    }

    /// Source = sink, no version regression, slot never ahead of the checkpoint;
    /// returns the number of re-applied versions.
    async fn verify(&mut self, p: &DbmazzProcess) -> u64 {
        let diffs = catch_up(&self.env, std::slice::from_ref(&self.workload), T).await;
        assert!(
            diffs.iter().all(TableDiff::is_equal),
            "{diffs:#?}\n{}",
            p.log()
        );
        let h = History::check(&self.env.sink).await.expect("history");
        assert!(h.regressions.is_empty(), "{:?}", h.regressions);
        if let Some(w) = self.watch.take() {
            let (samples, violations) = w.finish().await;
            assert!(samples > 0);
            assert!(violations.is_empty(), "{violations:?}");
        }
        h.reapplied
    }

    async fn checkpoint(&self) -> Option<String> {
        self.env.checkpoint(&self.job.id).await
    }

    async fn confirmed(&self) -> Option<String> {
        self.env.confirmed(&self.job.slot).await
    }
}

fn drain(mut p: DbmazzProcess) {
    p.sigterm();
    let st = p.wait_exit(T).expect("dbmazz drains");
    assert!(st.success(), "drain exit {st:?}\n{}", p.log());
}

fn assert_killed_at(p: &mut DbmazzProcess, point: &str) {
    let st = p
        .wait_exit(T)
        .unwrap_or_else(|| panic!("fail point {point} never reached\n{}", p.log()));
    assert_eq!(st.signal(), Some(libc::SIGKILL), "{st:?}\n{}", p.log());
    assert!(
        p.log().contains(&format!("fail point {point}: crash")),
        "{}",
        p.log()
    );
}

/// Crashes (SIGKILL) at `point` while data flows, restarts without fault points,
/// and checks the oracle.
async fn crash_while_streaming(point: &str, action: &str) {
    let mut s = Scenario::start(11).await;
    let fp = format!("{point}={action}");
    let mut p = s.spawn(&[("FAILPOINTS", &fp)]);
    s.ready(&p).await;
    let (stop, rx) = tokio::sync::watch::channel(false);
    let writer = s.workload.spawn_writer(s.env.source_conn(), rx);
    assert_killed_at(&mut p, point);
    let p = s.spawn(&[]);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _ = stop.send(true);
    assert!(writer.await.expect("writer").rows() > 0);
    s.verify(&p).await;
    drain(p);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn crash_between_load_ack_and_checkpoint_loses_nothing() {
    crash_while_streaming("loader::after_ack", "return(crash)").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn crash_between_checkpoint_and_confirm_loses_nothing() {
    crash_while_streaming("loader::after_checkpoint", "return(crash)").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn crash_before_the_status_update_carrying_a_checkpoint_loses_nothing() {
    // The first status update of a connection reports the resume point; crash on a
    // later one, i.e. one that carries a checkpoint written by this run.
    crash_while_streaming("replication::before_status_update", "1*off->return(crash)").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn crash_mid_batch_with_some_loads_applied_loses_nothing() {
    crash_while_streaming("sink::between_loads", "return(crash)").await;
}

/// Crashes during setup (first start), writes while dbmazz is down, restarts.
async fn crash_during_setup(point: &str) {
    let mut s = Scenario::start(12).await;
    let fp = format!("{point}=return(crash)");
    let mut p = s.spawn(&[("FAILPOINTS", &fp)]);
    assert_killed_at(&mut p, point);
    assert_eq!(
        s.checkpoint().await,
        None,
        "no checkpoint before setup ended"
    );
    let slot_before = s.confirmed().await;
    if point == "setup::after_slot" {
        // The slot exists: what is written now must arrive after the restart.
        assert!(slot_before.is_some());
    }
    let p = s.spawn(&[]);
    s.ready(&p).await;
    assert!(s.write_for(Duration::from_secs(2)).await > 0);
    s.verify(&p).await;
    drain(p);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn crash_at_the_start_of_setup_recovers() {
    crash_during_setup("setup::before").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn crash_after_creating_the_slot_before_the_first_checkpoint_recovers() {
    // Rows written between the crash and the restart are in the slot; the restart
    // takes the slot's position as the first checkpoint and loses none of them.
    let mut s = Scenario::start(13).await;
    let mut p = s.spawn(&[("FAILPOINTS", "setup::after_slot=return(crash)")]);
    assert_killed_at(&mut p, "setup::after_slot");
    assert_eq!(s.checkpoint().await, None);
    assert!(s.confirmed().await.is_some(), "the slot was created");
    // History triggers need the audit columns, which setup adds later: record the
    // rows written while dbmazz is down by comparing the tables at the end.
    assert!(s.write_for(Duration::from_secs(1)).await > 0);
    let p = s.spawn(&[]);
    s.ready(&p).await;
    s.write_for(Duration::from_secs(1)).await;
    s.verify(&p).await;
    drain(p);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_immediate_shutdown_while_streaming_reconnects_without_loss() {
    let mut s = Scenario::start(21).await;
    let p = s.spawn(&[]);
    s.ready(&p).await;
    let pid = p.pid();
    let (stop, rx) = tokio::sync::watch::channel(false);
    let writer = s.workload.spawn_writer(s.env.source_conn(), rx);
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        s.env.restart_pg(StopMode::Immediate).expect("pg restart");
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let _ = stop.send(true);
    let written = writer.await.expect("writer");
    assert!(written.rows() > 0);
    s.verify(&p).await;
    // The same process reconnected by itself: no restart was needed.
    assert_eq!(p.pid(), pid);
    assert!(p.log().contains("reconnect"), "{}", p.log());
    drain(p);
}

/// The sink is unreachable for `down` while the writer keeps writing: dbmazz retries,
/// memory stays bounded (backpressure reaches the replication connection), and
/// everything arrives once the sink is back. Prints peak RSS.
async fn sink_down_under_load(down: Duration) {
    let mut s = Scenario::start(31).await;
    s.workload.pace = Duration::from_millis(1);
    let mut p = s.spawn(&[]);
    s.ready(&p).await;
    let (stop, rx) = tokio::sync::watch::channel(false);
    let writer = s.workload.spawn_writer(s.env.source_conn(), rx);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_before = rss_kib(p.pid()).unwrap_or(0);
    s.env.stop_sink().await;
    let c = s.env.pg_client().await.expect("pg");
    let lsn = |sql: &'static str| {
        let c = &c;
        async move {
            let r = c.query_one(sql, &[]).await.expect("lsn");
            let v: Option<tokio_postgres::types::PgLsn> = r.get(0);
            v.map(u64::from).unwrap_or(0)
        }
    };
    let wal_at_stop = lsn("SELECT pg_current_wal_lsn()").await;
    let started = Instant::now();
    let mut max_rss = rss_before;
    while started.elapsed() < down {
        tokio::time::sleep(Duration::from_millis(500)).await;
        max_rss = max_rss.max(rss_kib(p.pid()).unwrap_or(0));
        assert!(
            p.try_status().is_none(),
            "dbmazz exited while the sink was down\n{}",
            p.log()
        );
    }
    let wal_at_end = lsn("SELECT pg_current_wal_lsn()").await;
    let sent = lsn("SELECT sent_lsn FROM pg_stat_replication LIMIT 1").await;
    s.env.start_sink().await.expect("sink back");
    let _ = stop.send(true);
    let written = writer.await.expect("writer");
    s.verify(&p).await;
    let peak = peak_rss_kib(p.pid()).unwrap_or(0);
    eprintln!(
        "sink down {:?} under load: {} rows written ({} KiB of WAL while down); the walsender had sent \
         {} KiB of it when the sink came back (backpressure); RSS before {} MiB, max while down {} MiB, \
         peak (VmHWM) {} MiB",
        down,
        written.rows(),
        (wal_at_end - wal_at_stop) / 1024,
        sent.saturating_sub(wal_at_stop) / 1024,
        rss_before / 1024,
        max_rss / 1024,
        peak / 1024
    );
    // Bounded: a few batches and read-ahead chunks, not the outage's WAL.
    assert!(peak < 512 * 1024, "peak RSS {peak} KiB");
    drain(p);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sink_down_under_load_retries_and_catches_up() {
    sink_down_under_load(Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "two minutes; run by make chaos"]
async fn sink_down_two_minutes_under_load_memory_stays_bounded() {
    sink_down_under_load(Duration::from_secs(120)).await;
}

/// Writes one known transaction into both tables.
async fn one_transaction(s: &Scenario, first_id: i64, rows: i64, big: bool) {
    let c = s.env.pg_client().await.expect("pg");
    let note = if big {
        "(SELECT string_agg(md5(g::text || ':' || i::text), '') FROM generate_series(1, 200) i)"
    } else {
        "'n'"
    };
    c.batch_execute(&format!(
        "BEGIN;
         INSERT INTO w_acct (id, seq, payload, amount, note, updated_at)
           SELECT g, 1, 'p' || g, g, {note}, now() FROM generate_series({first_id}, {last}) g;
         INSERT INTO w_line (acct_id, line, seq, qty, label)
           SELECT g, 1, 1, g % 100, 'l' FROM generate_series({first_id}, {last}) g;
         COMMIT;",
        last = first_id + rows - 1
    ))
    .await
    .expect("transaction");
}

/// Injects `fault` on the next load, writes one transaction, and proves the
/// transaction was applied exactly once.
async fn applied_exactly_once(fault: &str, big: bool) -> String {
    let mut s = Scenario::start(41).await;
    let p = s.spawn(&[]);
    s.ready(&p).await;
    s.env.inject(&[fault.to_owned()]).await.expect("inject");
    one_transaction(&s, 1, if big { 600 } else { 50 }, big).await;
    let reapplied = s.verify(&p).await;
    assert_eq!(reapplied, 0, "a load was applied twice\n{}", p.log());
    let faults = s.env.admin("GET", "/faults", "").await.expect("faults");
    assert_eq!(faults.trim(), "[]", "the fault was consumed");
    let log = p.log();
    drain(p);
    log
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn publish_timeout_is_resolved_by_the_label_state_not_a_second_load() {
    let log = applied_exactly_once(
        r#"{"kind":"publish_timeout","visible_after_ms":1500,"table":"w_acct"}"#,
        false,
    )
    .await;
    assert!(
        log.contains("Publish Timeout") && log.contains("label state"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lost_response_is_resolved_by_the_label_state_not_a_second_load() {
    let log = applied_exactly_once(r#"{"kind":"lost_response","table":"w_acct"}"#, false).await;
    assert!(log.contains("label is committed"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lost_response_of_a_large_load_does_not_loop_on_early_label_answers() {
    // Regression: the re-sent load of a multi-megabyte body met "Label Already
    // Exists" answered before the body was read and the connection closed, i.e. a
    // broken pipe, i.e. "outcome unknown" again — forever.
    applied_exactly_once(r#"{"kind":"lost_response","table":"w_acct"}"#, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_running_label_that_aborts_is_loaded_again_exactly_once() {
    applied_exactly_once(
        r#"{"kind":"running_label","finish_after_ms":1000,"finish_as":"aborted","table":"w_acct"}"#,
        false,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_permanent_sink_error_fails_the_run_and_leaves_slot_and_checkpoint_alone() {
    let mut s = Scenario::start(51).await;
    let mut p = s.spawn(&[]);
    s.ready(&p).await;
    // Let the idle position settle, then freeze what is recorded.
    tokio::time::sleep(Duration::from_secs(2)).await;
    s.env
        .inject(&[r#"{"kind":"be_ignores_auth","count":1000}"#.to_owned()])
        .await
        .expect("inject");
    let cp_before = s.checkpoint().await;
    one_transaction(&s, 1, 10, false).await;
    let c = s.env.pg_client().await.expect("pg");
    let after_commit: String = c
        .query_one("SELECT pg_current_wal_lsn()::text", &[])
        .await
        .expect("lsn")
        .get(0);
    let st = p.wait_exit(T).expect("dbmazz exits on a permanent error");
    let log = p.log();
    assert!(!st.success() && st.code().is_some(), "exit {st:?}\n{log}");
    assert!(log.contains("FAILED"), "{log}");
    assert!(log.contains("Basic authorization"), "{log}");
    let lsn = |v: Option<String>| -> u64 {
        let l: dbmazz::lsn::Lsn = v.expect("lsn").parse().expect("lsn");
        l.0
    };
    // Nothing of the failed transaction was recorded or confirmed.
    let (cp_after, slot_after) = (s.checkpoint().await, s.confirmed().await);
    assert!(lsn(cp_after.clone()) >= lsn(cp_before));
    assert!(
        lsn(cp_after.clone()) < lsn(Some(after_commit)),
        "checkpoint moved past the failed transaction"
    );
    assert!(
        lsn(slot_after.clone()) <= lsn(cp_after.clone()),
        "{slot_after:?} > {cp_after:?}"
    );
    // A restart without the fault delivers the transaction: it was never skipped.
    s.env.clear_faults().await.expect("clear");
    let p = s.spawn(&[]);
    s.verify(&p).await;
    drain(p);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_oracle_catches_lost_rows_different_rows_and_version_regressions() {
    // The checks above can only pass meaningfully if they can fail: tamper with the
    // sink behind dbmazz's back and watch each one trip.
    let mut s = Scenario::start(61).await;
    let p = s.spawn(&[]);
    s.ready(&p).await;
    one_transaction(&s, 1, 20, false).await;
    s.verify(&p).await;
    drain(p);
    use mysql_async::prelude::Queryable;
    let mut c = s.env.sink.get_conn().await.expect("sink");
    c.query_drop(
        "DELETE FROM w_acct WHERE id = 1;
         UPDATE w_acct SET payload = 'tampered' WHERE id = 2;
         UPDATE w_acct SET dbmazz_cdc_version = dbmazz_cdc_version - 1 WHERE id = 3;
         UPDATE w_line SET dbmazz_is_deleted = 1 WHERE acct_id = 4;",
    )
    .await
    .expect("tamper");
    let pg = s.env.pg_client().await.expect("pg");
    let d = TableDiff::compute(&pg, &s.env.sink, "w_acct", &["id"])
        .await
        .expect("diff");
    assert_eq!((d.lost, d.different, d.extra), (1, 1, 0), "{d:?}");
    let d = TableDiff::compute(&pg, &s.env.sink, "w_line", &["acct_id", "line"])
        .await
        .expect("diff");
    assert_eq!(d.lost, 1, "{d:?}");
    let h = History::check(&s.env.sink).await.expect("history");
    assert_eq!(h.regressions.len(), 1, "{:?}", h.regressions);
    assert!(
        h.regressions[0].contains("w_acct key 3"),
        "{:?}",
        h.regressions
    );
}
