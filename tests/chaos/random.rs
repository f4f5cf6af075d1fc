//! Random faults under load: `chaos_random_faults` draws faults from one seed and
//! checks the oracle after every iteration.

use dbmazz_testkit::chaos::{self, ChaosConfig, Workers, Workload};
use dbmazz_testkit::{dbmazz_bin, DbmazzProcess, Job, Stack};

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

fn spawner(env: Vec<(String, String)>) -> chaos::workers::SpawnFn {
    Box::new(move |_| DbmazzProcess::spawn(dbmazz_bin!(), &["run"], &env).expect("spawn dbmazz"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn chaos_random_faults() {
    let iterations = env_u64("DBMAZZ_CHAOS_ITERATIONS").unwrap_or(10) as usize;
    let seed = env_u64("DBMAZZ_CHAOS_SEED").unwrap_or_else(chaos::Rng::clock_seed);
    let mut env = Stack::start().await.expect("services");
    let workload = Workload::new("w", seed ^ 0x5eed);
    workload.create(&env).await.expect("tables");
    let job = Job::new("job1", workload.tables());
    let mut workers = Workers::new(1, spawner(env.dbmazz_env(&job)));
    let cfg = ChaosConfig::new(iterations, seed);
    let summary = chaos::run(&mut env, &mut workers, &[job], &[workload], &cfg).await;
    eprintln!("{summary}");
    assert!(summary.ok(), "{summary}");
    assert_eq!(summary.iterations, iterations);
    assert!(summary.written.rows() > 0);
}
