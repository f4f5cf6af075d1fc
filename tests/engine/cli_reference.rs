//! The configuration reference in README.md and docs/configuration.md is generated
//! from the registry in `src/config/registry.rs`; this test fails when they drift.
//! Regenerate with `make docs`.

use std::path::Path;
use std::process::Command;

use dbmazz::config::reference::{splice_reference, REFERENCE_BEGIN, REFERENCE_END};

fn check_file(rel: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    let doc = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{rel}: {e}"));
    assert!(
        doc.contains(REFERENCE_BEGIN) && doc.contains(REFERENCE_END),
        "{rel} lacks the reference markers"
    );
    let expected = splice_reference(&doc).expect("markers");
    assert!(
        doc == expected,
        "{rel} has an outdated configuration reference; run `make docs`"
    );
}

#[test]
fn readme_reference_matches_the_registry() {
    check_file("README.md");
}

#[test]
fn docs_reference_matches_the_registry() {
    check_file("docs/configuration.md");
}

#[test]
fn check_reference_prints_the_same_reference() {
    let out = Command::new(env!("CARGO_BIN_EXE_dbmazz"))
        .args(["check", "--reference"])
        .env_clear()
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        dbmazz::config::reference::reference_markdown()
    );
}
