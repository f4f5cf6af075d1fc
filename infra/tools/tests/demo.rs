//! The demo, shortened and started the way users start it (`dbmazz demo`): it must
//! end with "source and sink match".

use std::process::Command;

#[test]
fn the_demo_ends_with_source_and_sink_matching() {
    // `dbmazz demo` looks for dbmazz-demo beside itself, as in target/release.
    let dbmazz = std::path::Path::new(env!("CARGO_BIN_EXE_dbmazz-demo")).with_file_name("dbmazz");
    assert!(
        dbmazz.is_file(),
        "{} is not built (cargo build -p dbmazz with the same profile)",
        dbmazz.display()
    );
    let out = Command::new(&dbmazz)
        .args(["demo", "--seconds", "3"])
        .output()
        .expect("run the demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "demo failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("source and sink match."), "{stdout}");
    assert!(stdout.contains("identical"), "{stdout}");
    assert!(
        stdout.contains("writing a mixed workload for 3 s"),
        "{stdout}"
    );
}
