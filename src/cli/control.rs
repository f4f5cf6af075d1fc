//! The `status`, `pause`, `resume`, `drain`, `stop` and `healthcheck` commands:
//! their arguments (clap), the calls they make through the typed client
//! ([`crate::grpc::client`]) and what they print ([`super::render`]).
//!
//! They talk to a running worker's control plane and need none of the pipeline
//! configuration: the address comes from `--addr` or `DBMAZZ_GRPC_ADDR` (a
//! container's `0.0.0.0:PORT` is dialed on loopback), the token from `--token` or
//! `DBMAZZ_CONTROL_TOKEN`.
//!
//! Exit codes: 0 success (for `healthcheck`: SERVING), 1 failure (unreachable,
//! refused, a pipeline that did not reach the requested stage, NOT_SERVING).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use crate::config::Secret;
use crate::grpc::client::{Client, ClientError, ClientOptions, ControlAction};
use crate::grpc::pb;

use super::render::{render_control, render_status_table, stage_name, status_json, ControlOutcome};

/// Exit code for success.
const OK: u8 = 0;
/// Exit code for a failure.
const FAILED: u8 = 1;

/// How to reach the worker.
#[derive(Clone, Debug, clap::Args)]
pub struct ConnectArgs {
    /// Control plane address of the worker (`host:port` or an http(s) URL).
    #[arg(long, env = "DBMAZZ_GRPC_ADDR", default_value = crate::grpc::DEFAULT_GRPC_ADDR)]
    pub addr: String,
    /// Bearer token (the worker's DBMAZZ_CONTROL_TOKEN); needed for pause, resume,
    /// drain and stop, and for reads when the worker requires it.
    #[arg(long, env = "DBMAZZ_CONTROL_TOKEN", hide_env_values = true)]
    pub token: Option<Secret>,
    /// CA certificate (PEM) that signed the worker's certificate; enables TLS.
    #[arg(long, value_name = "PEM")]
    pub tls_ca: Option<PathBuf>,
    /// Name to verify in the worker's certificate (default: the host of --addr).
    #[arg(long, value_name = "NAME")]
    pub tls_domain: Option<String>,
    /// Timeout for connecting and for each call, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 5000)]
    pub timeout_ms: u64,
}

impl ConnectArgs {
    fn options(&self) -> ClientOptions {
        ClientOptions {
            addr: self.addr.clone(),
            token: self.token.clone().filter(|t| !t.is_empty()),
            tls_ca: self.tls_ca.clone(),
            tls_domain: self.tls_domain.clone(),
            timeout: Duration::from_millis(self.timeout_ms.max(1)),
        }
    }
}

/// `dbmazz status`.
#[derive(Clone, Debug, clap::Args)]
pub struct StatusArgs {
    /// Worker to ask.
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `dbmazz pause|resume|drain|stop`.
#[derive(Clone, Debug, clap::Args)]
pub struct ControlArgs {
    /// Worker to steer.
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Only this pipeline (job id); default: every pipeline of the worker.
    #[arg(long, value_name = "JOB")]
    pub job: Option<String>,
    /// How long to wait for the pipelines to get there, in milliseconds (0: do not
    /// wait).
    #[arg(long, value_name = "MS", default_value_t = 60_000)]
    pub wait_ms: u64,
}

/// `dbmazz healthcheck`.
#[derive(Clone, Debug, clap::Args)]
pub struct HealthcheckArgs {
    /// Worker to ask.
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Only this pipeline (job id); default: the whole worker.
    #[arg(long, value_name = "JOB")]
    pub job: Option<String>,
}

/// What a command prints and how it exits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Output {
    /// Exit code.
    pub code: u8,
    /// Text for standard output.
    pub stdout: String,
    /// Text for standard error.
    pub stderr: String,
}

impl Output {
    fn ok(stdout: String) -> Self {
        Output {
            code: OK,
            stdout,
            stderr: String::new(),
        }
    }

    fn error(e: impl std::fmt::Display) -> Self {
        Output {
            code: FAILED,
            stdout: String::new(),
            stderr: format!("error: {e}\n"),
        }
    }

    /// Prints and turns into the process exit code.
    pub fn emit(self) -> ExitCode {
        use std::io::Write as _;
        let _ = std::io::stdout().lock().write_all(self.stdout.as_bytes());
        let _ = std::io::stderr().lock().write_all(self.stderr.as_bytes());
        ExitCode::from(self.code)
    }
}

/// `dbmazz status [--json]`.
pub async fn status(args: &StatusArgs) -> Output {
    match run_status(&args.connect.options(), args.json).await {
        Ok(mut text) => {
            if !text.ends_with('\n') {
                text.push('\n');
            }
            Output::ok(text)
        }
        Err(e) => Output::error(e),
    }
}

/// `dbmazz pause|resume|drain|stop [--job J]`.
pub async fn control(action: ControlAction, args: &ControlArgs) -> Output {
    let wait = Duration::from_millis(args.wait_ms);
    match run_control(&args.connect.options(), action, args.job.as_deref(), wait).await {
        Ok(o) if o.ok => Output::ok(o.text),
        Ok(o) => Output {
            code: FAILED,
            stdout: o.text,
            stderr: String::new(),
        },
        Err(e) => Output::error(e),
    }
}

/// `dbmazz healthcheck [--job J]`: exit 0 only when SERVING.
pub async fn healthcheck(args: &HealthcheckArgs) -> Output {
    let o = run_healthcheck(&args.connect.options(), args.job.as_deref()).await;
    Output {
        code: if o.serving { OK } else { FAILED },
        stdout: format!("{}\n", o.text),
        stderr: String::new(),
    }
}

/// Runs one of these commands on a small runtime of its own (the CLI is sync).
pub fn block_on(f: impl std::future::Future<Output = Output>) -> ExitCode {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(f).emit(),
        Err(e) => Output::error(format!("cannot start the async runtime: {e}")).emit(),
    }
}

/// Why a command could not produce its output.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The worker could not be asked.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// JSON output could not be produced.
    #[error("cannot encode the status as JSON: {0}")]
    Json(String),
}

/// `dbmazz status`: a table of every pipeline, or JSON.
pub async fn run_status(opts: &ClientOptions, json: bool) -> Result<String, CommandError> {
    let client = Client::connect(opts).await?;
    let resp = client.list_pipelines().await?;
    if json {
        status_json(&resp).map_err(|e| CommandError::Json(e.to_string()))
    } else {
        Ok(render_status_table(
            &resp,
            crate::clock::unix_micros() / 1000,
        ))
    }
}

/// `dbmazz pause|resume|drain|stop [--job J]`.
pub async fn run_control(
    opts: &ClientOptions,
    action: ControlAction,
    job_id: Option<&str>,
    wait: Duration,
) -> Result<ControlOutcome, ClientError> {
    let client = Client::connect(opts).await?;
    let resp = client.control(action, job_id.unwrap_or(""), wait).await?;
    Ok(render_control(action, &resp, !wait.is_zero()))
}

/// Result of `dbmazz healthcheck`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthOutcome {
    /// True only when the worker answered SERVING.
    pub serving: bool,
    /// One line to print.
    pub text: String,
}

/// `dbmazz healthcheck`: SERVING or not; unreachable counts as not serving.
pub async fn run_healthcheck(opts: &ClientOptions, job_id: Option<&str>) -> HealthOutcome {
    let resp = match Client::connect(opts).await {
        Ok(c) => c.health(job_id.unwrap_or("")).await,
        Err(e) => Err(e),
    };
    match resp {
        Ok(r) if r.status == pb::ServingStatus::Serving as i32 => HealthOutcome {
            serving: true,
            text: format!("SERVING ({})", stage_name(r.stage)),
        },
        Ok(r) => HealthOutcome {
            serving: false,
            text: format!(
                "NOT_SERVING ({}): {}",
                stage_name(r.stage),
                if r.error_detail.is_empty() {
                    "no detail"
                } else {
                    &r.error_detail
                }
            ),
        },
        Err(e) => HealthOutcome {
            serving: false,
            text: format!("UNREACHABLE: {e}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct T {
        #[command(flatten)]
        c: ControlArgs,
    }

    #[test]
    fn defaults_and_flags() {
        let t = T::try_parse_from(["x", "--job", "orders", "--wait-ms", "0"]).expect("parse");
        assert_eq!(t.c.job.as_deref(), Some("orders"));
        assert_eq!(t.c.wait_ms, 0);
        assert_eq!(t.c.connect.timeout_ms, 5000);
        let t = T::try_parse_from(["x", "--addr", "10.0.0.1:1", "--token", "abc"]).expect("parse");
        assert_eq!(t.c.connect.addr, "10.0.0.1:1");
        assert_eq!(
            t.c.connect.options().token.as_ref().map(|t| t.expose()),
            Some("abc")
        );
        // An empty token (e.g. DBMAZZ_CONTROL_TOKEN= ) counts as none.
        let t = T::try_parse_from(["x", "--token", ""]).expect("parse");
        assert_eq!(t.c.connect.options().token, None);
    }
}
