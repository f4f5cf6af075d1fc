//! Multi-process failover of a fleet of three `dbmazz run` workers sharing three
//! jobs through leases, on both lease backends, under a continuous write load:
//!
//! - `kill -9` of a holder: another worker streams each of its jobs (takeover
//!   times are printed; the TTL is 2 s);
//! - SIGTERM of a holder: it drains, releases, exits 0, and another worker takes
//!   over without waiting for the TTL;
//! - SIGSTOP of a holder past its TTL (a zombie): its jobs are taken over; after
//!   SIGCONT it neither moves a checkpoint nor confirms a slot, and stops its
//!   pipelines by itself;
//! - a restart of the coordinator (the lease PostgreSQL, or Redis losing every key):
//!   never two active holders of a job.
//!
//! Every run ends with source == sink row by row and no version regression; a
//! background watch asserts throughout that no two workers streamed one job at the
//! same time, that checkpoints never went back (epoch or LSN) and that no slot was
//! confirmed beyond its checkpoint.

use std::time::{Duration, Instant};

use crate::harness::{Fleet, TTL_MS};

const T: Duration = Duration::from_secs(60);

/// Kills worker `i` with `kill -9` (or SIGTERM) and waits until each of its jobs
/// streams on another worker. Returns the takeover times.
async fn fail_holder(fleet: &mut Fleet, i: usize, sigterm: bool) -> Vec<(String, Duration)> {
    let jobs = fleet.jobs_of(i).await;
    assert!(!jobs.is_empty(), "worker {i} holds nothing");
    let mut before = Vec::new();
    for j in &jobs {
        before.push(fleet.holder_of(j).await.map_or(0, |(_, e)| e));
    }
    let start = Instant::now();
    if sigterm {
        fleet.workers[i].proc.sigterm();
    } else {
        fleet.workers[i].proc.kill9();
    }
    let mut times = Vec::new();
    for (j, old) in jobs.into_iter().zip(before) {
        let (_, epoch, _) = fleet.wait_streaming(&j, Some(i), T).await;
        times.push((j.clone(), start.elapsed()));
        assert!(epoch > old, "{j}: epoch {epoch} after {old}");
    }
    if sigterm {
        let status = fleet.workers[i]
            .proc
            .wait_exit(T)
            .expect("exits after SIGTERM");
        assert!(
            status.success(),
            "exit {status:?}\n{}",
            fleet.workers[i].proc.log()
        );
        let log = fleet.workers[i].proc.log();
        assert!(log.contains("lease released"), "{log}");
    }
    times
}

async fn kill9_and_sigterm(redis: bool) {
    let mut fleet = Fleet::start(redis, 3, 3).await;
    fleet.start_load();
    tokio::time::sleep(Duration::from_secs(2)).await;

    let (_, victim, _) = fleet.some_holder().await;
    let killed = fail_holder(&mut fleet, victim, false).await;
    fleet.spawn_worker();
    tokio::time::sleep(Duration::from_secs(2)).await;

    let (_, victim, _) = fleet.some_holder().await;
    let termed = fail_holder(&mut fleet, victim, true).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let txns = fleet.stop_load().await;
    let rows = fleet.verify().await;
    eprintln!(
        "backend={} ttl_ms={TTL_MS} kill9_takeovers={killed:?} sigterm_takeovers={termed:?} \
         txns={txns} rows={rows} watch_rounds={} equal=true",
        if redis { "redis" } else { "postgres" },
        fleet.watch.rounds()
    );
    // Liveness, not speed: a kill -9 takeover needs the TTL to run out.
    for (j, d) in killed.iter().chain(&termed) {
        assert!(*d < T, "{j} took {d:?}");
    }
}

async fn zombie_and_coordinator_restart(redis: bool) {
    let mut fleet = Fleet::start(redis, 3, 3).await;
    fleet.start_load();
    tokio::time::sleep(Duration::from_secs(2)).await;

    // The zombie: frozen past its TTL, its jobs are taken over.
    let (_, z, _) = fleet.some_holder().await;
    let jobs = fleet.jobs_of(z).await;
    let start = Instant::now();
    fleet.workers[z].proc.pause();
    let mut zombie_takeovers = Vec::new();
    for j in &jobs {
        fleet.wait_streaming(j, Some(z), T).await;
        zombie_takeovers.push((j.clone(), start.elapsed()));
    }
    tokio::time::sleep(Duration::from_millis(TTL_MS)).await;
    fleet.workers[z].proc.resume();
    // It wakes up, finds its leases overdue or fenced, and stops its pipelines.
    let woke = Instant::now();
    loop {
        let log = fleet.workers[z].proc.log();
        if log.matches("lease lost").count() >= jobs.len() {
            break;
        }
        assert!(woke.elapsed() < T, "zombie did not stop itself:\n{log}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        fleet.jobs_of(z).await.is_empty(),
        "the zombie streams again"
    );
    // Give a stale worker every chance to write, then check nothing moved back.
    tokio::time::sleep(Duration::from_millis(TTL_MS)).await;
    let v = fleet.watch.violations();
    assert!(v.is_empty(), "after the zombie woke: {v:#?}");

    // Coordinator restart: holders keep or hand over their jobs, never overlap.
    fleet.coord.restart();
    tokio::time::sleep(Duration::from_millis(3 * TTL_MS)).await;
    for j in fleet.jobs.clone() {
        fleet.wait_streaming(&j, None, T).await;
    }
    let v = fleet.watch.violations();
    assert!(v.is_empty(), "after the coordinator restart: {v:#?}");

    let txns = fleet.stop_load().await;
    let rows = fleet.verify().await;
    eprintln!(
        "backend={} ttl_ms={TTL_MS} zombie_takeovers={zombie_takeovers:?} txns={txns} rows={rows} \
         watch_rounds={} equal=true",
        if redis { "redis" } else { "postgres" },
        fleet.watch.rounds()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_leases_kill9_and_sigterm_take_over_and_lose_nothing() {
    kill9_and_sigterm(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_leases_kill9_and_sigterm_take_over_and_lose_nothing() {
    kill9_and_sigterm(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_leases_zombie_is_fenced_and_coordinator_restart_keeps_one_holder() {
    zombie_and_coordinator_restart(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_leases_zombie_is_fenced_and_coordinator_restart_keeps_one_holder() {
    zombie_and_coordinator_restart(true).await;
}
