//! One worker end to end: the engine in-process against real services, every setup
//! error a real misconfiguration produces, `dbmazz run` as a process (drain on
//! SIGTERM, exit codes), its telemetry exported over OTLP, and the `check` command
//! and configuration reference of the binary.

mod cli_check;
mod cli_reference;
mod e2e;
mod run_process;
mod setup_errors;
mod telemetry_otlp;
