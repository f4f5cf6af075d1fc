//! The control plane of a real `dbmazz run` process, driven by the `dbmazz status`,
//! `pause`, `resume`, `drain` and `healthcheck` commands and scraped on `/metrics`.

use std::process::Command;
use std::time::{Duration, Instant};

use dbmazz_testkit::stack::{JOB, SLOT};
use dbmazz_testkit::{dbmazz_bin, set_var, DbmazzProcess, Job, Stack};

const T: Duration = Duration::from_secs(60);
const TOKEN: &str = "cli-e2e-token-0123456789";

/// Runs a dbmazz client command; returns (exit code, stdout, stderr).
fn dbmazz(args: &[&str], env: &[(String, String)]) -> (i32, String, String) {
    let out = Command::new(dbmazz_bin!())
        .args(args)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .expect("run dbmazz");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn status_pause_resume_drain_and_healthcheck_against_dbmazz_run() {
    let stack = Stack::start().await.expect("start the stack");
    stack.create_kv_table("t").await;
    let metrics_port = dbmazz_testkit::free_port();
    let mut env = stack.dbmazz_env(&Job::test(&["t"]));
    set_var(
        &mut env,
        "DBMAZZ_METRICS_ADDR",
        &format!("127.0.0.1:{metrics_port}"),
    );
    set_var(&mut env, "DBMAZZ_CONTROL_TOKEN", TOKEN);
    let grpc_addr = env
        .iter()
        .find(|(k, _)| k == "DBMAZZ_GRPC_ADDR")
        .map(|(_, v)| v.clone())
        .expect("grpc addr");
    let mut p = DbmazzProcess::spawn(dbmazz_bin!(), &["run"], &env).expect("spawn dbmazz");
    // What a client shell has: the address and the token, nothing else.
    let client = vec![("DBMAZZ_GRPC_ADDR".to_owned(), grpc_addr.clone())];
    let with_token = vec![
        ("DBMAZZ_GRPC_ADDR".to_owned(), grpc_addr.clone()),
        ("DBMAZZ_CONTROL_TOKEN".to_owned(), TOKEN.to_owned()),
    ];

    // healthcheck: non-zero until the pipeline streams, then 0.
    let start = Instant::now();
    loop {
        let (code, out, _) = dbmazz(&["healthcheck"], &client);
        if code == 0 {
            assert_eq!(out, "SERVING (CDC)\n");
            break;
        }
        assert_eq!(code, 1);
        assert!(start.elapsed() < T, "never SERVING: {out}\n{}", p.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // How long this pipeline takes to deliver a write when it runs: the yardstick
    // for watching the sink while it is paused below.
    let written = Instant::now();
    stack
        .source_sql("INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 1000) g")
        .await;
    stack.wait_equal("t", &["id"], T).await;
    let delivery = written.elapsed();
    let (code, out, err) = dbmazz(&["status"], &client);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(JOB) && out.contains("CDC"), "{out}");
    assert!(out.contains("public.t"), "{out}");
    assert!(out.contains("(reserved, "), "slot wal_status shown: {out}");
    let (code, json, _) = dbmazz(&["status", "--json"], &client);
    assert_eq!(code, 0);
    let v: sonic_rs::Value = sonic_rs::from_str(&json).expect("json");
    use sonic_rs::JsonValueTrait;
    assert_eq!(
        v["pipelines"][0]["tables"][0]["inserts"].as_u64(),
        Some(1000)
    );
    assert_eq!(v["version"].as_str(), Some(env!("CARGO_PKG_VERSION")));

    // The scrape agrees with the status.
    let (code, _, body) = crate::server::http_get(
        ([127, 0, 0, 1], metrics_port).into(),
        "GET",
        "/metrics",
        None,
    )
    .await;
    assert_eq!(code, 200);
    assert!(
        body.contains(&format!(
            "dbmazz_table_inserts_total{{job=\"{}\",table=\"public.t\"}} 1000",
            JOB
        )),
        "{body}"
    );

    // Control needs the token.
    let (code, _, err) = dbmazz(&["pause"], &client);
    assert_eq!(code, 1);
    assert!(
        err.contains("--token") && err.contains("DBMAZZ_CONTROL_TOKEN"),
        "{err}"
    );
    let (code, out, err) = dbmazz(&["pause", "--job", JOB], &with_token);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("CDC → PAUSED"), "{out}");
    stack
        .source_sql("INSERT INTO t SELECT g, 'w' FROM generate_series(1001, 1500) g")
        .await;
    // The rows written while paused are in dbmazz's hands: its replication
    // connection read them and said so to PostgreSQL. From there a running pipeline
    // loads them within `delivery`; a paused one must not, for three times as long.
    let end = stack.wal_lsn().await;
    stack.wait_received(SLOT, &end, T).await;
    let watch = (delivery * 3).max(Duration::from_secs(1));
    let watching = Instant::now();
    while watching.elapsed() < watch {
        assert_eq!(
            stack.sink_count("t").await,
            1000,
            "paused, with the rows received: the sink must not move"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (code, _, _) = dbmazz(&["healthcheck"], &client);
    assert_eq!(code, 0, "paused on purpose is healthy");
    let (code, out, err) = dbmazz(&["resume"], &with_token);
    assert_eq!(code, 0, "{out}{err}");
    stack.wait_equal("t", &["id"], T).await;

    // drain: every pipeline stops cleanly, so the process exits 0.
    let (code, out, err) = dbmazz(&["drain", "--wait-ms", "30000"], &with_token);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("→ STOPPED"), "{out}");
    let status = p.wait_exit(T).expect("dbmazz exits after the drain");
    assert!(status.success(), "exit {status:?}\n{}", p.log());
    assert_eq!(stack.checkpoint(JOB).await, stack.confirmed(SLOT).await);
    let (code, out, _) = dbmazz(&["healthcheck", "--timeout-ms", "2000"], &client);
    assert_eq!(code, 1);
    assert!(out.starts_with("UNREACHABLE"), "{out}");
}
