//! Command-line interface.

use std::process::ExitCode;

/// Parses the command line and runs the chosen command.
pub fn main() -> ExitCode {
    ExitCode::SUCCESS
}
