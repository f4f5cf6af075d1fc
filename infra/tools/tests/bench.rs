//! The end-to-end benchmark, at a size the normal suite can afford: it must run to
//! completion and report every figure (no timing assertion; `make bench` runs the
//! full size).

use std::process::Command;

#[test]
fn the_benchmark_runs_and_reports_every_figure() {
    let out = Command::new(env!("CARGO_BIN_EXE_dbmazz-bench"))
        .arg("20000")
        .output()
        .expect("run the benchmark");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "benchmark failed:\n{stdout}\n{stderr}"
    );
    for line in [
        "pg_recvlogical (reference)",
        "dbmazz → emulator (discard)",
        "ratio dbmazz / reference",
        "CPU-s per million rows",
        "dbmazz peak RSS",
        "after catch-up",
        "emulator rows validated       20000",
    ] {
        assert!(stdout.contains(line), "missing {line:?} in:\n{stdout}");
    }
}

/// The connection-reuse benchmark also proves the property it measures: with reuse a
/// load opens only the FE connection (the BE's is kept), without it both.
#[test]
fn the_load_benchmark_shows_the_be_connection_kept() {
    let out = Command::new(env!("CARGO_BIN_EXE_dbmazz-loadbench"))
        .arg("80")
        .output()
        .expect("run the load benchmark");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "load benchmark failed:\n{stdout}\n{stderr}"
    );
    let connections = |prefix: &str| -> f64 {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("missing {prefix:?} in:\n{stdout}"));
        let before = line
            .split(" new connections per load")
            .next()
            .unwrap_or_default();
        before
            .split_whitespace()
            .last()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no connection count in {line:?}"))
    };
    assert_eq!(connections("every connection closed"), 2.0, "{stdout}");
    assert_eq!(connections("BE connection reused"), 1.0, "{stdout}");
    assert!(stdout.contains("ratio reuse / no reuse"), "{stdout}");
}
