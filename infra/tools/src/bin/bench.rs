//! `make bench`: dbmazz end to end against `pg_recvlogical` on the same WAL,
//! commit → acknowledgement latency and several pipelines on one worker; writes
//! `benchmarks.md` and its plots (see `dbmazz_tools::bench`).
//!
//! ```text
//! dbmazz-bench [--runs N] [--quick] [--only a,b,…] [--out DIR]
//! ```
//! `--runs` (default 3, or `BENCH_RUNS`): rounds per figure, medians reported.
//! `--quick`: tiny sizes, one round (the test suite's run).
//! `--only`: workload ids, `latency`, `scaling`.
//! `--out` (default `docs`): the report goes to `DIR/benchmarks.md`, plots to
//! `DIR/benchmarks/`.

use std::path::PathBuf;

use dbmazz_tools::bench::{self, Settings};
use dbmazz_tools::Error;

fn settings() -> Result<Settings, Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let mut s = if quick {
        Settings::quick(PathBuf::from("docs"))
    } else {
        Settings::full(PathBuf::from("docs"))
    };
    if let Ok(v) = std::env::var("BENCH_RUNS") {
        s.runs = v
            .parse()
            .map_err(|_| format!("BENCH_RUNS={v:?} is not a number"))?;
    }
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match a.as_str() {
            "--quick" => {}
            "--runs" => {
                let v = value("--runs")?;
                s.runs = v
                    .parse()
                    .map_err(|_| format!("--runs {v:?} is not a number"))?;
            }
            "--only" => {
                s.only = Some(
                    value("--only")?
                        .split(',')
                        .map(|x| x.trim().to_owned())
                        .filter(|x| !x.is_empty())
                        .collect(),
                );
            }
            "--out" => s.out = PathBuf::from(value("--out")?),
            other => {
                return Err(format!(
                    "unknown argument {other:?}; usage: dbmazz-bench [--runs N] [--quick] \
                     [--only a,b,…] [--out DIR]"
                )
                .into())
            }
        }
    }
    s.command = std::iter::once("dbmazz-bench".to_owned())
        .chain(args)
        .collect::<Vec<_>>()
        .join(" ");
    s.validate()?;
    Ok(s)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> std::process::ExitCode {
    let result = match settings() {
        Ok(s) => bench::run(&s).await.map(|_| ()),
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            let mut msg = format!("benchmark failed: {e}");
            let mut source = e.source();
            while let Some(s) = source {
                msg.push_str(&format!(": {s}"));
                source = s.source();
            }
            eprintln!("{msg}");
            std::process::ExitCode::FAILURE
        }
    }
}
