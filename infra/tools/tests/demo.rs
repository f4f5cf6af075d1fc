//! The demo, shortened: it must end with "source and sink match".

use std::process::Command;

#[test]
fn the_demo_ends_with_source_and_sink_matching() {
    let out = Command::new(env!("CARGO_BIN_EXE_dbmazz-demo"))
        .env("DEMO_SECONDS", "3")
        .output()
        .expect("run the demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "demo failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("source and sink match."), "{stdout}");
    assert!(stdout.contains("identical"), "{stdout}");
}
