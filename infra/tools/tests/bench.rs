//! The benchmarks, at a size the normal suite can afford: they must run to completion
//! and report every figure (no timing assertion; `make bench` runs the full size).

use std::process::Command;

/// The `make bench` harness in quick mode: every workload, the latency levels and the
/// scaling section run for real (tiny sizes, one round) and the report and its plots
/// are written.
#[test]
fn the_benchmark_harness_runs_every_section_and_writes_the_report() {
    let dir = std::env::temp_dir().join(format!("dbmazz-bench-quick-{}", std::process::id()));
    let out = Command::new(env!("CARGO_BIN_EXE_dbmazz-bench"))
        .args(["--quick", "--out"])
        .arg(&dir)
        .output()
        .expect("run the benchmark");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "benchmark failed:\n{stdout}\n{stderr}"
    );
    let md = std::fs::read_to_string(dir.join("benchmarks.md")).expect("the report");
    for needle in [
        "## Machine",
        "### The reference",
        "| 500 txns × 10 rows (INSERT) |",
        "| 1 txn × 10,000 rows (INSERT) |",
        "1,200 single-row UPDATEs",
        "mixed txns on 3 tables",
        "## Replica identity and unchanged TOAST",
        "| FULL |",
        "| DEFAULT (primary key) |",
        "## Latency: commit → sink acknowledgement",
        "| 25 % |",
        "| 75 % |",
        "## Several pipelines on one worker",
        "| 3 |",
        "(benchmarks/throughput.png)",
    ] {
        assert!(md.contains(needle), "missing {needle:?} in:\n{md}");
    }
    // Every figure is a number: no NaN or infinity from an empty measurement.
    for bad in ["NaN", "| inf", "inf×", "inf ms", "inf MiB"] {
        assert!(!md.contains(bad), "{bad} in:\n{md}");
    }
    for png in ["throughput", "cpu", "identity", "latency", "scaling"] {
        let bytes = std::fs::read(dir.join("benchmarks").join(format!("{png}.png")))
            .unwrap_or_else(|e| panic!("{png}.png: {e}"));
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{png}.png");
    }
    let _ = std::fs::remove_dir_all(&dir);
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
