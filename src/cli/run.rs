//! `dbmazz run`: configuration, telemetry, the control plane and the worker loop.
//!
//! The control plane comes up first and stays up until every pipeline has ended, so
//! probes see SETUP and DRAINING and operators can follow a drain; the worker loop
//! ([`crate::runner`]) knows nothing of it and only fills the pipeline registry the
//! control plane reads.

use std::process::ExitCode;
use std::sync::Arc;

use super::check::load_config;
use super::EXIT_FAILURE;
use crate::config::Config;
use crate::engine::Pipelines;
use crate::grpc::{GrpcServer, GrpcSettings, PgSlotInspector};
use crate::runner::{self, RunSummary};

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
    let summary = runtime.block_on(serve_and_run(config));
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

/// Serves the control plane while the worker runs every job of `config`.
pub async fn serve_and_run(config: Config) -> RunSummary {
    let pipelines = Pipelines::new();
    let control = match GrpcServer::bind(
        GrpcSettings::from_worker(&config.worker),
        pipelines.clone(),
        env!("CARGO_PKG_VERSION"),
        Some(Arc::new(PgSlotInspector::for_jobs(&config.jobs))),
    )
    .await
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the control plane");
            return RunSummary {
                stopped: 0,
                failed: vec![("(control plane)".into(), e.to_string())],
            };
        }
    };
    let (stop_control, control_stopped) = tokio::sync::oneshot::channel::<()>();
    let control = tokio::spawn(control.serve(async move {
        let _ = control_stopped.await;
    }));
    let summary = runner::run(&config, &pipelines).await;
    let _ = stop_control.send(());
    match control.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!(error = %e, "control plane stopped with an error"),
        Err(e) => tracing::error!(error = %e, "control plane task failed"),
    }
    summary
}
