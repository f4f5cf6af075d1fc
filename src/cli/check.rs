//! `dbmazz check`: validates the configuration and prints every effective value
//! (secrets hidden), or the reference of every variable.

use std::io::Write as _;
use std::process::ExitCode;

use super::{CheckArgs, EXIT_CONFIG, EXIT_FAILURE};
use crate::config;

/// `dbmazz check`.
pub fn check(args: &CheckArgs) -> ExitCode {
    if args.reference {
        return print_stdout(&config::reference::reference_markdown());
    }
    match load_config() {
        Ok(loaded) => print_stdout(&loaded.render()),
        Err(code) => code,
    }
}

/// Loads the configuration from the environment for a command. On problems, prints
/// every one of them to stderr and returns the exit code to end the process with
/// ([`EXIT_CONFIG`]).
pub fn load_config() -> Result<config::Loaded, ExitCode> {
    config::load_env().map_err(|e| {
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "{e}");
        let _ = writeln!(
            err,
            "\nFix the values above and run `dbmazz check` again; every variable is \
             described in docs/configuration.md (`dbmazz check --reference`)."
        );
        ExitCode::from(EXIT_CONFIG)
    })
}

fn print_stdout(text: &str) -> ExitCode {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        // A closed pipe (`dbmazz check | head`) is not worth a panic.
        Err(_) => ExitCode::from(EXIT_FAILURE),
    }
}
