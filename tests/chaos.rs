//! Nothing lost, nothing doubled: `dbmazz run` as a real process under random and
//! scripted crashes and faults (see `dbmazz_testkit::chaos`).
//!
//! The suite runs `chaos_random_faults` with 10 iterations; `make chaos` runs it
//! with `DBMAZZ_CHAOS_ITERATIONS=100` (and the long, ignored scenarios). A failing
//! run prints its seed; `DBMAZZ_CHAOS_SEED=<seed>` replays the same fault sequence.

use std::path::Path;

use dbmazz_testkit::chaos::{self, ChaosConfig, ChaosEnv, ChaosJob, Workers, Workload};
use dbmazz_testkit::DbmazzProcess;

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

fn spawner(env: Vec<(String, String)>) -> chaos::workers::SpawnFn {
    Box::new(move |_| {
        DbmazzProcess::spawn(Path::new(env!("CARGO_BIN_EXE_dbmazz")), &["run"], &env)
            .expect("spawn dbmazz")
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn chaos_random_faults() {
    let iterations = env_u64("DBMAZZ_CHAOS_ITERATIONS").unwrap_or(10) as usize;
    let seed = env_u64("DBMAZZ_CHAOS_SEED").unwrap_or_else(chaos::Rng::clock_seed);
    let mut env = ChaosEnv::start().await.expect("services");
    let workload = Workload::new("w", seed ^ 0x5eed);
    workload.create(&env).await.expect("tables");
    let job = ChaosJob::new("job1", workload.tables());
    let mut workers = Workers::new(1, spawner(env.dbmazz_env(&job)));
    let cfg = ChaosConfig::new(iterations, seed);
    let summary = chaos::run(&mut env, &mut workers, &[job], &[workload], &cfg).await;
    eprintln!("{summary}");
    assert!(summary.ok(), "{summary}");
    assert_eq!(summary.iterations, iterations);
    assert!(summary.written.rows() > 0);
}
