//! Soak: a fleet of three workers and four jobs under continuous load while a random
//! worker is killed (mostly `kill -9`, sometimes SIGTERM) every ~`KILL_EVERY` and
//! replaced. Reports takeovers, the longest takeover, rows and the equality result.
//!
//! The normal suite runs a short version (a few kills). `make soak` runs the long one:
//! `DBMAZZ_SOAK_SECS=1800 DBMAZZ_SOAK_KILL_EVERY_SECS=30`, backend from
//! `DBMAZZ_SOAK_BACKEND` (`postgres` or `redis`). Only the long run checks the
//! takeover bound (TTL + 2 s after a `kill -9`): timings on a busy CI machine are not
//! a correctness signal, but on a soak machine they are the point.

use std::time::{Duration, Instant};

use crate::harness::{Fleet, TTL_MS};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn soak_random_worker_kills_lose_nothing() {
    let long = std::env::var("DBMAZZ_SOAK_SECS").is_ok();
    let total = Duration::from_secs(env_u64("DBMAZZ_SOAK_SECS", 25));
    let every = env_u64("DBMAZZ_SOAK_KILL_EVERY_SECS", 6) as f64;
    let redis = std::env::var("DBMAZZ_SOAK_BACKEND").as_deref() == Ok("redis");
    let mut fleet = Fleet::start(redis, 4, 3).await;
    fleet.start_load();
    let start = Instant::now();
    let (mut kills, mut terms) = (0u32, 0u32);
    let mut takeovers: Vec<(String, bool, Duration)> = Vec::new();
    while start.elapsed() < total {
        let wait = every * rand::random_range(0.5..1.5);
        tokio::time::sleep(Duration::from_secs_f64(wait)).await;
        // A random live worker that holds something.
        let mut holders = Vec::new();
        for i in 0..fleet.workers.len() {
            if fleet.workers[i].proc.try_status().is_none() && !fleet.jobs_of(i).await.is_empty() {
                holders.push(i);
            }
        }
        let Some(&victim) = holders.get(rand::random_range(0..holders.len().max(1))) else {
            continue;
        };
        let jobs = fleet.jobs_of(victim).await;
        let sigterm = rand::random_range(0..5) == 0;
        let t0 = Instant::now();
        if sigterm {
            terms += 1;
            fleet.workers[victim].proc.sigterm();
        } else {
            kills += 1;
            fleet.workers[victim].proc.kill9();
        }
        for j in jobs {
            fleet
                .wait_streaming(&j, Some(victim), Duration::from_secs(60))
                .await;
            takeovers.push((j, sigterm, t0.elapsed()));
        }
        if sigterm {
            let st = fleet.workers[victim]
                .proc
                .wait_exit(Duration::from_secs(60))
                .expect("exits after SIGTERM");
            assert!(st.success(), "{}", fleet.workers[victim].proc.log());
        }
        eprintln!(
            "soak t={}s {} {} takeovers so far={} last={:?}",
            start.elapsed().as_secs(),
            if sigterm { "SIGTERM" } else { "kill -9" },
            fleet.workers[victim].id,
            takeovers.len(),
            takeovers.last().map(|t| t.2)
        );
        fleet.spawn_worker();
        let v = fleet.watch.violations();
        assert!(v.is_empty(), "violations: {v:#?}");
    }
    let txns = fleet.stop_load().await;
    let rows = fleet.verify().await;
    let max_kill = takeovers
        .iter()
        .filter(|t| !t.1)
        .map(|t| t.2)
        .max()
        .unwrap_or_default();
    let max_term = takeovers
        .iter()
        .filter(|t| t.1)
        .map(|t| t.2)
        .max()
        .unwrap_or_default();
    eprintln!(
        "soak backend={} secs={} ttl_ms={TTL_MS} kill9={kills} sigterm={terms} takeovers={} \
         max_takeover_after_kill9={max_kill:?} max_takeover_after_sigterm={max_term:?} \
         txns={txns} rows={rows} equal=true version_regressions=0",
        if redis { "redis" } else { "postgres" },
        start.elapsed().as_secs(),
        takeovers.len()
    );
    assert!(!takeovers.is_empty(), "no takeover happened");
    if long {
        assert!(
            max_kill <= Duration::from_millis(TTL_MS + 2000),
            "a takeover after kill -9 took {max_kill:?}"
        );
    }
}
