//! Command-line interface: the top of the crate, the only place that wires the
//! worker ([`crate::runner`]) to the control plane ([`crate::grpc`]) and telemetry.
//!
//! Each subcommand is one variant of [`Command`] and one function that takes its
//! arguments and returns the process exit code; [`main`] only parses and dispatches.
//! - [`run`]: `dbmazz run` (telemetry, control plane, the worker loop);
//! - [`check`]: `dbmazz check` (configuration report and reference);
//! - [`control`] and [`render`]: `status`, `pause|resume|drain|stop`, `healthcheck`
//!   over the control plane's typed client, and what they print;
//! - [`demo`]: `dbmazz demo`.
//!
//! Exit codes: 0 success, 1 runtime failure, 2 invalid configuration or usage.

pub mod check;
pub mod control;
pub mod demo;
pub mod render;
pub mod run;

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::grpc::client::ControlAction;

/// Exit code of an invalid configuration (and of a command-line usage error).
pub const EXIT_CONFIG: u8 = 2;
/// Exit code of a runtime failure.
pub const EXIT_FAILURE: u8 = 1;

const AFTER_HELP: &str = "\
Configuration comes from environment variables (one job), optionally with a jobs file
(DBMAZZ_JOBS_FILE) describing several. The minimum for one job:

  SOURCE_URL=postgres://user:password@host:5432/db   PostgreSQL with wal_level=logical
  TABLES=public.orders,public.customers              tables to replicate
  SINK_URL=http://starrocks-fe:8030                  StarRocks FE HTTP address
  SINK_DATABASE=analytics                            StarRocks database

Run `dbmazz check` to validate a configuration and see every effective value.
All variables: docs/configuration.md (or `dbmazz check --reference`).";

/// dbmazz: change data capture from PostgreSQL into StarRocks.
#[derive(Debug, Parser)]
#[command(
    name = "dbmazz",
    version,
    about = "Change data capture from PostgreSQL into StarRocks",
    long_about = "Change data capture from PostgreSQL into StarRocks.\n\n\
                  dbmazz streams every row change of the configured PostgreSQL tables through \
                  a logical replication slot and loads it into StarRocks with Stream Load, \
                  checkpointing progress so nothing is lost or applied twice.",
    after_help = AFTER_HELP,
    propagate_version = true
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate the configuration and print the effective values (secrets hidden).
    ///
    /// Reads the environment (and the jobs file named by DBMAZZ_JOBS_FILE), reports
    /// every invalid or missing value at once, and exits 2 if there is any; otherwise
    /// prints the configuration each job would run with and exits 0. Nothing is
    /// connected to: this checks values, not reachability.
    Check(CheckArgs),
    /// Run the configured pipelines until SIGTERM/SIGINT.
    ///
    /// Sets up PostgreSQL (publication, slot) and StarRocks (audit columns), streams
    /// every change into StarRocks and checkpoints progress. On SIGTERM or SIGINT it
    /// drains: stops reading, loads what was read, checkpoints, confirms and exits 0;
    /// a second signal (or DBMAZZ_SHUTDOWN_TIMEOUT_MS) aborts without losing anything.
    /// Exits 1 when a pipeline fails with an error an operator must fix, 2 on an
    /// invalid configuration.
    Run,
    /// Show every pipeline of a running worker: stage, LSNs, lag, slot, rows.
    ///
    /// Asks the worker's control plane (--addr or DBMAZZ_GRPC_ADDR). `--json` prints
    /// the same as JSON for scripts.
    Status(control::StatusArgs),
    /// Pause reading and loading (the replication connection stays up).
    ///
    /// Needs the worker's token (--token or DBMAZZ_CONTROL_TOKEN). Every pipeline of
    /// the worker unless --job names one. Exits 1 if a pipeline did not get there
    /// within --wait-ms.
    Pause(control::ControlArgs),
    /// Resume after a pause.
    Resume(control::ControlArgs),
    /// Load and checkpoint everything read, confirm it to PostgreSQL, then stop.
    Drain(control::ControlArgs),
    /// Stop at once (changes not yet checkpointed are streamed again on restart).
    Stop(control::ControlArgs),
    /// Exit 0 only when the worker (or --job) is SERVING; for container health
    /// checks.
    Healthcheck(control::HealthcheckArgs),
    /// Run the demo: throw-away PostgreSQL, MariaDB and StarRocks emulator, a
    /// generated shop workload with live progress, then a row-by-row comparison.
    ///
    /// Starts `dbmazz-demo`, which is built beside this binary by `make demo` (it
    /// carries the test equipment, which the dbmazz binary itself never links).
    /// Everything it starts is removed afterwards, also on Ctrl-C. Exits 0 when
    /// source and sink match.
    Demo(DemoArgs),
}

/// Arguments of `dbmazz demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// How long the workload runs, in seconds.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub seconds: u64,
}

/// Arguments of `dbmazz check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Print the reference of every configuration variable (Markdown) and exit.
    #[arg(long)]
    pub reference: bool,
}

/// Parses the command line and runs the chosen command.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version are "errors" that print to stdout and exit 0.
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { EXIT_CONFIG } else { 0 });
        }
    };
    match cli.command {
        Command::Check(args) => check::check(&args),
        Command::Run => run::run(),
        Command::Status(args) => control::block_on(control::status(&args)),
        Command::Pause(args) => steer(ControlAction::Pause, &args),
        Command::Resume(args) => steer(ControlAction::Resume, &args),
        Command::Drain(args) => steer(ControlAction::Drain, &args),
        Command::Stop(args) => steer(ControlAction::Stop, &args),
        Command::Healthcheck(args) => control::block_on(control::healthcheck(&args)),
        Command::Demo(args) => demo::demo(&args),
    }
}

/// `dbmazz pause|resume|drain|stop`.
fn steer(action: ControlAction, args: &control::ControlArgs) -> ExitCode {
    control::block_on(control::control(action, args))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn check_parses() {
        let cli = Cli::try_parse_from(["dbmazz", "check", "--reference"]).expect("parse");
        assert!(matches!(
            cli.command,
            Command::Check(CheckArgs { reference: true })
        ));
        assert!(Cli::try_parse_from(["dbmazz"]).is_err());
        let cli = Cli::try_parse_from(["dbmazz", "drain", "--job", "orders", "--wait-ms", "0"])
            .expect("parse drain");
        assert!(matches!(
            cli.command,
            Command::Drain(ref a) if a.job.as_deref() == Some("orders") && a.wait_ms == 0
        ));
        let cli = Cli::try_parse_from(["dbmazz", "status", "--json"]).expect("parse status");
        assert!(matches!(cli.command, Command::Status(ref a) if a.json));
        assert!(Cli::try_parse_from(["dbmazz", "healthcheck", "--job", "j"]).is_ok());
        assert!(Cli::try_parse_from(["dbmazz", "bogus"]).is_err());
    }
}
