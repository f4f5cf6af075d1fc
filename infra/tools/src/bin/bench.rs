//! End-to-end throughput benchmark: dbmazz against `pg_recvlogical`.
//!
//! Both consume the same WAL through their own pgoutput slot, created at the same
//! position before the rows are written: `pg_recvlogical` draining into /dev/null is
//! the reference (the fastest a logical replication client can go on this machine
//! and this server), dbmazz loads everything into the StarRocks emulator in discard
//! mode (rows parsed and validated, not stored, so the sink is not the bottleneck).
//! Prints rows/s of both and their ratio, dbmazz CPU seconds per million rows, and
//! its peak RSS during and RSS after the catch-up. dbmazz runs first, so any warm
//! cache favours the reference.
//!
//! `dbmazz-bench [ROWS]` (default 2,000,000; `BENCH_ROWS` also works).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use dbmazz_testkit::PgConfig;
use dbmazz_tools::{
    confirmed_lsn, human_bytes, parse_lsn, proc_usage, spawn_dbmazz, Error, ProcUsage, Stack,
};
use mysql_async::prelude::Queryable;
use sonic_rs::JsonValueTrait;

const CHUNK: i64 = 10_000;

async fn run(rows: i64) -> Result<(), Error> {
    let pg_cfg = PgConfig::default()
        .setting("shared_buffers", "256MB")
        .setting("max_wal_size", "8GB")
        .setting("checkpoint_timeout", "30min")
        .setting("wal_sender_timeout", "60s")
        .setting("synchronous_commit", "off");
    let stack = Stack::start(pg_cfg, true).await?;
    let pg = stack.pg().await?;
    pg.batch_execute(
        "CREATE TABLE bench (id bigint PRIMARY KEY, k integer NOT NULL, v text, \
         n numeric(12,2), ts timestamptz NOT NULL DEFAULT now());
         ALTER TABLE bench REPLICA IDENTITY FULL;
         CREATE PUBLICATION bench_pub FOR TABLE bench;",
    )
    .await?;
    for slot in ["bench_dbmazz", "bench_recv"] {
        pg.batch_execute(&format!(
            "SELECT pg_create_logical_replication_slot('{slot}', 'pgoutput')"
        ))
        .await?;
    }
    let sink = stack.sink();
    sink.get_conn()
        .await?
        .query_drop(
            "CREATE TABLE bench (id BIGINT PRIMARY KEY, k INT NOT NULL, v LONGTEXT, n DECIMAL(12,2), \
             ts DATETIME(6) NOT NULL)",
        )
        .await?;

    println!("writing {rows} rows in transactions of {CHUNK}…");
    let t = Instant::now();
    let mut start = 0i64;
    while start < rows {
        let end = (start + CHUNK).min(rows);
        pg.batch_execute(&format!(
            "INSERT INTO bench (id, k, v, n) SELECT g, g % 1000, 'value ' || g, g / 100.0 \
             FROM generate_series({}, {end}) g",
            start + 1
        ))
        .await?;
        start = end;
    }
    let target: String = pg
        .query_one("SELECT pg_current_wal_lsn()::text", &[])
        .await?
        .get(0);
    let target = parse_lsn(&target);
    println!("  written in {:.1} s\n", t.elapsed().as_secs_f64());

    // dbmazz
    let mut extra = vec![
        ("SOURCE_PUBLICATION_NAME", "bench_pub".to_owned()),
        ("DBMAZZ_REPLICA_IDENTITY", "keep".to_owned()),
        ("RUST_LOG", "warn".to_owned()),
    ];
    // Allocator tuning under test can be passed through.
    for k in [
        "MALLOC_ARENA_MAX",
        "MIMALLOC_SHOW_STATS",
        "MIMALLOC_ARENA_EAGER_COMMIT",
        "MIMALLOC_PURGE_DELAY",
        "FLUSH_SIZE",
        "FLUSH_INTERVAL_MS",
        "DBMAZZ_MEMORY_BUDGET_MB",
    ] {
        if let Ok(v) = std::env::var(k) {
            extra.push((k, v));
        }
    }
    let env = stack.dbmazz_env("public.bench", "bench_dbmazz", &extra);
    let t = Instant::now();
    let mut p = spawn_dbmazz(&env)?;
    let mut peak = ProcUsage::default();
    let mut usage = ProcUsage::default();
    loop {
        if let Ok(u) = proc_usage(p.pid()) {
            usage = u;
            peak.peak_rss_bytes = peak.peak_rss_bytes.max(u.peak_rss_bytes);
        }
        if confirmed_lsn(&pg, "bench_dbmazz").await? >= target {
            break;
        }
        if let Some(s) = p.try_status() {
            return Err(format!("dbmazz exited ({s}):\n{}", p.log()).into());
        }
        if t.elapsed() > Duration::from_secs(3600) {
            return Err("dbmazz did not catch up within an hour".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let dbmazz_secs = t.elapsed().as_secs_f64();
    let at_catch_up = proc_usage(p.pid()).unwrap_or(usage);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let after = proc_usage(p.pid()).unwrap_or(at_catch_up);
    p.sigterm();
    let _ = p.wait_exit(Duration::from_secs(30));
    if std::env::var_os("BENCH_SHOW_LOG").is_some() {
        println!("--- dbmazz log ---\n{}\n---", p.log());
    }
    let emu = stack.emulator_stats()?;
    let emu_rows = emu.get("rows_loaded").and_then(|v| v.as_u64()).unwrap_or(0);
    let emu_rate = emu
        .get("rows_per_sec_busy")
        .and_then(|v| v.as_f64())
        .unwrap_or(0.0);

    // pg_recvlogical
    let bin = dbmazz_testkit::postgres::pg_bin_dir()?.join("pg_recvlogical");
    let t = Instant::now();
    let out = Command::new(&bin)
        .args([
            "-d",
            &stack.services.source_conn(),
            "--slot",
            "bench_recv",
            "--start",
            "-P",
            "pgoutput",
        ])
        .args(["-o", "proto_version=1", "-o", "publication_names=bench_pub"])
        .args([
            "--endpos",
            &format!("{:X}/{:X}", target >> 32, target & 0xFFFF_FFFF),
        ])
        .args(["-f", "/dev/null", "--no-loop"])
        .stdin(Stdio::null())
        .output()?;
    let recv_secs = t.elapsed().as_secs_f64();
    if !out.status.success() {
        return Err(format!(
            "pg_recvlogical failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }

    let mrows = rows as f64 / 1e6;
    let (d_rate, r_rate) = (rows as f64 / dbmazz_secs, rows as f64 / recv_secs);
    println!("rows                          {rows}");
    println!("pg_recvlogical (reference)    {recv_secs:>8.2} s  {r_rate:>10.0} rows/s");
    println!("dbmazz → emulator (discard)   {dbmazz_secs:>8.2} s  {d_rate:>10.0} rows/s");
    println!("ratio dbmazz / reference      {:>8.2}", d_rate / r_rate);
    println!(
        "dbmazz CPU                    {:>8.2} s  ({:.2} CPU-s per million rows)",
        at_catch_up.cpu_seconds,
        at_catch_up.cpu_seconds / mrows
    );
    println!(
        "dbmazz peak RSS               {:>10}",
        human_bytes(peak.peak_rss_bytes.max(at_catch_up.peak_rss_bytes))
    );
    println!(
        "dbmazz RSS 5 s after catch-up {:>10}  (anonymous {}, file-backed {})",
        human_bytes(after.rss_bytes),
        human_bytes(after.rss_anon_bytes),
        human_bytes(after.rss_file_bytes)
    );
    println!("emulator rows validated       {emu_rows}  ({emu_rate:.0} rows/s of its own time)");
    if emu_rows < rows as u64 {
        return Err(format!("the emulator saw {emu_rows} rows, expected {rows}").into());
    }
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> std::process::ExitCode {
    let rows = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("BENCH_ROWS").ok())
        .and_then(|s| s.replace('_', "").parse().ok())
        .unwrap_or(2_000_000);
    match run(rows).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("benchmark failed: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
