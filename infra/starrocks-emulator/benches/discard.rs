//! Discard-mode throughput: small JSON rows loaded over real HTTP into an emulator
//! that runs on one core (a current-thread runtime on its own thread), compared with
//! a plain sonic-rs parse of the same body measured in the same run.
//!
//! Run: `make -C infra/starrocks-emulator bench-discard`
//! (= `cargo bench -p starrocks-emulator --bench discard`). Knobs:
//! `BENCH_ROWS_PER_LOAD` (default 20000), `BENCH_LOADS` (default 60).

use std::sync::mpsc;
use std::time::{Duration, Instant};

use dbmazz_testkit::MariaDb;
use sonic_rs::{JsonContainerTrait, JsonValueTrait};
use starrocks_emulator::{Emulator, EmulatorConfig};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn body(rows: usize, seed: usize) -> Vec<u8> {
    let mut s = String::with_capacity(rows * 110);
    s.push('[');
    for i in 0..rows {
        if i > 0 {
            s.push(',');
        }
        let id = seed * rows + i;
        s.push_str(&format!(
            r#"{{"id":{id},"name":"user{}","amount":"{}.{:02}","qty":{},"flag":{},"ts":"2024-03-{:02} 12:34:56.{:06}","ver":{id},"__op":0}}"#,
            id % 9973,
            id % 100_000,
            id % 100,
            id % 1000,
            if id.is_multiple_of(2) { "true" } else { "false" },
            1 + id % 28,
            id % 1_000_000
        ));
    }
    s.push(']');
    s.into_bytes()
}

fn main() {
    // `cargo bench` passes --bench; nothing else to parse.
    let rows_per_load = env_usize("BENCH_ROWS_PER_LOAD", 20_000);
    let loads = env_usize("BENCH_LOADS", 60);

    let db = MariaDb::start().expect("start MariaDB");
    db.create_database("bench").expect("create database");
    db.sql(
        "CREATE TABLE bench.rows (id BIGINT NOT NULL PRIMARY KEY, name VARCHAR(32) NULL, \
         amount DECIMAL(12,2) NULL, qty INT NULL, flag BOOLEAN NULL, ts DATETIME(6) NULL, \
         ver BIGINT NOT NULL)",
    )
    .expect("create table");
    let mut cfg = EmulatorConfig::new(format!("mysql://root@127.0.0.1:{}/", db.port()));
    cfg.discard = true;

    // The emulator gets one core: a current-thread runtime on its own thread.
    let (ports_tx, ports_rx) = mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let emu = Emulator::start(cfg).await.expect("start emulator");
            ports_tx
                .send((emu.be_url(), emu.admin_url()))
                .expect("send ports");
            let _ = stop_rx.await;
            emu.shutdown().await;
        });
    });
    let (be_url, admin_url) = ports_rx.recv().expect("ports");

    let bodies: Vec<Vec<u8>> = (0..4).map(|s| body(rows_per_load, s)).collect();
    let bytes_per_row = bodies[0].len() as f64 / rows_per_load as f64;

    // Reference: a full sonic-rs DOM parse of the same bodies, same number of times.
    let t = Instant::now();
    let mut n = 0usize;
    for i in 0..loads {
        let v: sonic_rs::Value = sonic_rs::from_slice(&bodies[i % bodies.len()]).expect("parse");
        n += v.as_array().expect("array").len();
    }
    let reference = n as f64 / t.elapsed().as_secs_f64();

    let mut easy = curl::easy::Easy::new();
    let url = format!("{be_url}/api/bench/rows/_stream_load");
    let mut sent_rows = 0usize;
    let t = Instant::now();
    for i in 0..loads {
        let data = &bodies[i % bodies.len()];
        easy.url(&url).expect("url");
        easy.upload(true).expect("put");
        easy.username("root").expect("user");
        easy.password("").expect("password");
        let mut headers = curl::easy::List::new();
        for h in [
            "Expect: 100-continue",
            "format: json",
            "strip_outer_array: true",
        ] {
            headers.append(h).expect("header");
        }
        easy.http_headers(headers).expect("headers");
        easy.in_filesize(data.len() as u64).expect("size");
        let mut src = &data[..];
        let mut resp = Vec::new();
        {
            let mut tr = easy.transfer();
            tr.read_function(|buf| Ok(std::io::Read::read(&mut src, buf).unwrap_or(0)))
                .expect("read");
            tr.write_function(|d| {
                resp.extend_from_slice(d);
                Ok(d.len())
            })
            .expect("write");
            tr.perform().expect("load");
        }
        let text = String::from_utf8_lossy(&resp);
        assert!(
            text.contains("\"Status\": \"Success\""),
            "load failed: {text}"
        );
        sent_rows += rows_per_load;
    }
    let wall = sent_rows as f64 / t.elapsed().as_secs_f64();

    let mut stats_easy = curl::easy::Easy::new();
    stats_easy.url(&format!("{admin_url}/stats")).expect("url");
    let mut stats = Vec::new();
    {
        let mut tr = stats_easy.transfer();
        tr.write_function(|d| {
            stats.extend_from_slice(d);
            Ok(d.len())
        })
        .expect("write");
        tr.perform().expect("stats");
    }
    let stats: sonic_rs::Value = sonic_rs::from_slice(&stats).expect("stats json");
    let busy = stats["rows_per_sec_busy"].as_f64().unwrap_or(0.0);
    let total = stats["rows_total"].as_u64().unwrap_or(0);
    assert_eq!(total as usize, sent_rows, "every row was validated");

    let _ = stop_tx.send(());
    let _ = server.join();
    std::thread::sleep(Duration::from_millis(50));

    println!("discard mode, {loads} loads x {rows_per_load} rows ({bytes_per_row:.0} bytes/row), emulator on one core:");
    println!("  emulator (its own busy time, from /stats): {busy:>12.0} rows/s");
    println!("  end to end over HTTP (client wall clock):  {wall:>12.0} rows/s");
    println!("  reference: sonic-rs DOM parse, same body:  {reference:>12.0} rows/s");
    println!(
        "  ratio emulator / reference:                {:>12.2}",
        busy / reference
    );
}
