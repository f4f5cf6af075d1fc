//! Stream Load connection reuse benchmark.
//!
//! A StarRocks FE closes its connection after every load (it only answers 307), a BE
//! keeps its connection open. dbmazz's libcurl handles keep the BE connection between
//! loads; this measures what that is worth: many small loads (the shape of a sub-second
//! flush interval) through the same `HttpClient` the sink uses, with connection reuse
//! and with every connection closed after its request, interleaved in rounds so both
//! see the same machine noise. The emulator runs in discard mode so the load itself is
//! cheap and the connection cost shows.
//!
//! `dbmazz-loadbench [LOADS]` (default 4,000 per mode; `BENCH_LOADS` also works).

use std::sync::Arc;
use std::time::{Duration, Instant};

use dbmazz::config::Secret;
use dbmazz::sink::starrocks::http::{HttpClient, HttpSettings};
use dbmazz_testkit::PgConfig;
use dbmazz_tools::{Error, Stack, SINK_DB};
use mysql_async::prelude::Queryable;

const ROWS_PER_LOAD: usize = 50;
const ROUNDS: usize = 8;

#[derive(Default)]
struct Totals {
    loads: usize,
    seconds: f64,
    connects: u64,
}

fn client(reuse: bool) -> HttpClient {
    HttpClient::new(HttpSettings {
        user: "root".into(),
        password: Secret::default(),
        connect_timeout: Duration::from_secs(10),
        request_timeout: Duration::from_secs(60),
        expect_timeout: Duration::from_secs(10),
        reuse_connections: reuse,
    })
}

fn round(
    http: &HttpClient,
    url: &str,
    body: &Arc<Vec<u8>>,
    loads: usize,
    label: &mut u64,
    totals: &mut Totals,
) -> Result<(), Error> {
    let t = Instant::now();
    for _ in 0..loads {
        *label += 1;
        let headers = vec![
            ("label".to_owned(), format!("loadbench_{label}")),
            ("format".to_owned(), "json".to_owned()),
            ("strip_outer_array".to_owned(), "true".to_owned()),
            ("columns".to_owned(), "id,v".to_owned()),
        ];
        let reply = http.put(url, &headers, body.clone())?;
        let text = String::from_utf8_lossy(&reply.body);
        if reply.status != 200 || !text.contains("\"Success\"") {
            return Err(format!("load failed: HTTP {} {text}", reply.status).into());
        }
        totals.connects += reply.connects;
    }
    totals.seconds += t.elapsed().as_secs_f64();
    totals.loads += loads;
    Ok(())
}

async fn run(loads: usize) -> Result<(), Error> {
    let stack = Stack::start(PgConfig::default(), true).await?;
    stack
        .sink()
        .get_conn()
        .await?
        .query_drop("CREATE TABLE loads (id BIGINT PRIMARY KEY, v VARCHAR(64))")
        .await?;
    let url = format!(
        "{}/api/{SINK_DB}/loads/_stream_load",
        stack.services.fe_url()
    );
    let mut body = b"[".to_vec();
    for i in 0..ROWS_PER_LOAD {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(format!("{{\"id\":{i},\"v\":\"value {i}\"}}").as_bytes());
    }
    body.push(b']');
    let body = Arc::new(body);
    let per_round = loads.div_ceil(ROUNDS).max(1);
    let result = tokio::task::spawn_blocking(move || -> Result<(Totals, Totals), Error> {
        let (keep, fresh) = (client(true), client(false));
        let (mut k, mut f) = (Totals::default(), Totals::default());
        let mut label = 0u64;
        // Warm-up: first connections, emulator caches.
        round(&keep, &url, &body, 20, &mut label, &mut Totals::default())?;
        round(&fresh, &url, &body, 20, &mut label, &mut Totals::default())?;
        for _ in 0..ROUNDS {
            round(&keep, &url, &body, per_round, &mut label, &mut k)?;
            round(&fresh, &url, &body, per_round, &mut label, &mut f)?;
        }
        Ok((k, f))
    })
    .await??;
    let (keep, fresh) = result;
    let rate = |t: &Totals| t.loads as f64 / t.seconds;
    let per = |t: &Totals| t.connects as f64 / t.loads as f64;
    println!("loads per mode                 {}", keep.loads);
    println!("rows per load                  {ROWS_PER_LOAD}");
    println!(
        "every connection closed (ref)  {:>8.0} loads/s  {:.2} new connections per load",
        rate(&fresh),
        per(&fresh)
    );
    println!(
        "BE connection reused (dbmazz)  {:>8.0} loads/s  {:.2} new connections per load",
        rate(&keep),
        per(&keep)
    );
    println!(
        "ratio reuse / no reuse         {:>8.2}",
        rate(&keep) / rate(&fresh)
    );
    println!(
        "time per load saved            {:>8.0} µs",
        (fresh.seconds / fresh.loads as f64 - keep.seconds / keep.loads as f64) * 1e6
    );
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> std::process::ExitCode {
    let loads = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("BENCH_LOADS").ok())
        .and_then(|s| s.replace('_', "").parse().ok())
        .unwrap_or(4_000);
    match run(loads).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("benchmark failed: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
