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
