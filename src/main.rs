//! `dbmazz` command-line entry point; everything lives in the library.

fn main() -> std::process::ExitCode {
    dbmazz::alloc::tune();
    // Test builds only (`failpoints` feature): fault points from FAILPOINTS.
    let _failpoints = dbmazz::failpoint::setup();
    dbmazz::cli::main()
}
