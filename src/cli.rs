//! Command-line interface.
//!
//! Each subcommand is one variant of [`Command`] and one function that takes its
//! arguments and returns the process exit code; [`main`] only parses and dispatches.
//! Exit codes: 0 success, 1 runtime failure, 2 invalid configuration or usage.

use std::io::Write as _;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::config;
use crate::grpc;
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
    Status(grpc::commands::StatusArgs),
    /// Pause reading and loading (the replication connection stays up).
    ///
    /// Needs the worker's token (--token or DBMAZZ_CONTROL_TOKEN). Every pipeline of
    /// the worker unless --job names one. Exits 1 if a pipeline did not get there
    /// within --wait-ms.
    Pause(grpc::commands::ControlArgs),
    /// Resume after a pause.
    Resume(grpc::commands::ControlArgs),
    /// Load and checkpoint everything read, confirm it to PostgreSQL, then stop.
    Drain(grpc::commands::ControlArgs),
    /// Stop at once (changes not yet checkpointed are streamed again on restart).
    Stop(grpc::commands::ControlArgs),
    /// Exit 0 only when the worker (or --job) is SERVING; for container health
    /// checks.
    Healthcheck(grpc::commands::HealthcheckArgs),
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
        Command::Check(args) => check(&args),
        Command::Run => run(),
        Command::Status(args) => grpc::commands::block_on(grpc::commands::status(&args)),
        Command::Pause(args) => control(ControlAction::Pause, &args),
        Command::Resume(args) => control(ControlAction::Resume, &args),
        Command::Drain(args) => control(ControlAction::Drain, &args),
        Command::Stop(args) => control(ControlAction::Stop, &args),
        Command::Healthcheck(args) => grpc::commands::block_on(grpc::commands::healthcheck(&args)),
        Command::Demo(args) => demo(&args),
    }
}

/// `dbmazz demo`: runs the `dbmazz-demo` binary found beside this one, which in
/// turn starts this binary as `dbmazz run`.
fn demo(args: &DemoArgs) -> ExitCode {
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

/// `dbmazz run`.
pub fn run() -> ExitCode {
    let config = match load_config() {
        Ok(loaded) => {
            for w in &loaded.warnings {
                eprintln!("dbmazz: warning: {w}");
            }
            loaded.config
        }
        Err(code) => return code,
    };
    let telemetry = match crate::telemetry::init(&crate::telemetry::TelemetrySettings::from_env(
        config.worker.log_format,
    )) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("dbmazz: cannot set up logging/telemetry: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("dbmazz: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let summary = runtime.block_on(crate::runner::run(config));
    drop(runtime);
    let _ = telemetry.shutdown();
    for (job, err) in &summary.failed {
        eprintln!("dbmazz: job '{job}' FAILED: {err}");
    }
    if summary.failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_FAILURE)
    }
}

/// `dbmazz pause|resume|drain|stop`.
fn control(action: ControlAction, args: &grpc::commands::ControlArgs) -> ExitCode {
    grpc::commands::block_on(grpc::commands::control(action, args))
}

/// `dbmazz check`.
pub fn check(args: &CheckArgs) -> ExitCode {
    if args.reference {
        return print_stdout(&config::registry::reference_markdown());
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
