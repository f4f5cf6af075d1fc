//! `dbmazz demo`: starts the demo binary built beside this one.

use std::process::ExitCode;

use super::{DemoArgs, EXIT_CONFIG};

/// `dbmazz demo`: runs the `dbmazz-demo` binary found beside this one, which in
/// turn starts this binary as `dbmazz run`.
pub fn demo(args: &DemoArgs) -> ExitCode {
    let exe = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("dbmazz demo: cannot locate the dbmazz binary: {e}");
            return ExitCode::FAILURE;
        }
    };
    let demo = exe.with_file_name("dbmazz-demo");
    if !demo.is_file() {
        eprintln!(
            "dbmazz demo: {} not found. The demo ships with the source tree: run `make demo` \
             (or `cargo build --release -p dbmazz -p dbmazz-tools`) and start \
             target/release/dbmazz demo.",
            demo.display()
        );
        return ExitCode::from(EXIT_CONFIG);
    }
    match std::process::Command::new(&demo)
        .env("DEMO_SECONDS", args.seconds.to_string())
        .env("DBMAZZ_BIN", &exe)
        .status()
    {
        Ok(s) if s.success() => ExitCode::SUCCESS,
        Ok(s) => ExitCode::from(u8::try_from(s.code().unwrap_or(1)).unwrap_or(1)),
        Err(e) => {
            eprintln!("dbmazz demo: cannot start {}: {e}", demo.display());
            ExitCode::FAILURE
        }
    }
}
