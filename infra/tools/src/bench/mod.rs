//! The benchmark harness of `make bench`: dbmazz end to end against
//! `pg_recvlogical` on the same WAL, commit → acknowledgement latency, and several
//! pipelines on one worker. It writes `docs/benchmarks.md` and its PNG plots.
//!
//! Everything runs on a private stack (PostgreSQL, MariaDB, the StarRocks emulator in
//! discard mode, so the sink is not the bottleneck). Speed is always a ratio against
//! a reference measured in the same run; absolute figures are there for context.
//!
//! Sections, in run order (each can be chosen with `--only`):
//! - the workloads of [`workloads::all`] ([`endtoend`]);
//! - `latency` ([`latency`]; needs `small_txns` for its maximum rate, which it runs
//!   first if `--only` left it out);
//! - `scaling` ([`scaling`]).
//!
//! To add a workload see [`workloads`]; a new kind of measurement (snapshot versus
//! COPY, say) is a module beside [`latency`] and [`scaling`] with its own result type,
//! a call in [`run`] and a section in [`report`].

pub mod endtoend;
pub mod latency;
pub mod machine;
pub mod measure;
pub mod plot;
pub mod report;
pub mod scaling;
pub mod stats;
pub mod workloads;

use std::path::PathBuf;
use std::time::Duration;

use dbmazz_testkit::PgConfig;

use crate::{Error, Stack};

/// How much to run.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Rounds per measurement (medians are taken over them).
    pub runs: usize,
    /// Tiny sizes for the test suite.
    pub quick: bool,
    /// Where `benchmarks.md` and `benchmarks/*.png` go.
    pub out: PathBuf,
    /// Sections and workloads to run (all when `None`).
    pub only: Option<Vec<String>>,
    /// Seconds of writing per latency level.
    pub latency_seconds: f64,
    /// Idle window of the scaling section, seconds.
    pub idle_seconds: f64,
    /// Pipeline counts of the scaling section.
    pub pipelines: Vec<usize>,
    /// Row changes of the scaling section's loaded phase.
    pub scaling_rows: u64,
    /// The command line, for the report.
    pub command: String,
}

impl Settings {
    /// The full benchmark.
    pub fn full(out: PathBuf) -> Settings {
        Settings {
            runs: 3,
            quick: false,
            out,
            only: None,
            latency_seconds: 20.0,
            idle_seconds: 20.0,
            pipelines: vec![1, 4, 16],
            scaling_rows: 400_000,
            command: String::new(),
        }
    }

    /// The test suite's version: every section, tiny sizes, one round.
    pub fn quick(out: PathBuf) -> Settings {
        Settings {
            runs: 1,
            quick: true,
            out,
            only: None,
            latency_seconds: 1.5,
            idle_seconds: 1.0,
            pipelines: vec![1, 3],
            scaling_rows: 3_000,
            command: String::new(),
        }
    }

    /// Workload sizes.
    pub fn size(&self) -> workloads::Size {
        if self.quick {
            workloads::Size::Quick
        } else {
            workloads::Size::Full
        }
    }

    /// Wait after a catch-up before reading the settled RSS.
    pub fn settle(&self) -> Duration {
        Duration::from_secs_f64(if self.quick { 0.5 } else { 3.0 })
    }

    /// Whether `name` (a workload id, `latency` or `scaling`) is selected.
    pub fn wants(&self, name: &str) -> bool {
        self.only
            .as_ref()
            .is_none_or(|o| o.iter().any(|n| n == name))
    }

    /// Checks `--only` names.
    pub fn validate(&self) -> Result<(), Error> {
        if self.runs == 0 {
            return Err("--runs must be at least 1".into());
        }
        if let Some(only) = &self.only {
            let mut known = workloads::ids();
            known.extend(["latency", "scaling"]);
            for n in only {
                if !known.contains(&n.as_str()) {
                    return Err(format!(
                        "unknown section or workload {n:?}; known: {}",
                        known.join(", ")
                    )
                    .into());
                }
            }
        }
        Ok(())
    }
}

/// Everything measured.
#[derive(Clone, Debug, Default)]
pub struct Results {
    /// The machine.
    pub machine: machine::Machine,
    /// End-to-end workloads.
    pub workloads: Vec<endtoend::WorkloadResult>,
    /// Latency.
    pub latency: Option<latency::LatencyResult>,
    /// Scaling.
    pub scaling: Vec<scaling::ScalingPoint>,
}

/// The PostgreSQL settings of the benchmark cluster (on top of the test kit's:
/// `wal_level=logical`, `fsync=off`, `full_page_writes=off`).
pub const PG_SETTINGS: [(&str, &str); 7] = [
    ("shared_buffers", "256MB"),
    ("max_wal_size", "16GB"),
    ("checkpoint_timeout", "30min"),
    ("wal_sender_timeout", "60s"),
    ("autovacuum", "off"),
    ("max_replication_slots", "128"),
    ("max_wal_senders", "64"),
];

/// Runs the selected sections and writes the report.
pub async fn run(settings: &Settings) -> Result<Results, Error> {
    settings.validate()?;
    let mut results = Results {
        machine: machine::Machine::describe(),
        ..Results::default()
    };
    let mut cfg = PgConfig::default();
    for (k, v) in PG_SETTINGS {
        cfg = cfg.setting(k, v);
    }
    let stack = Stack::start(cfg, true).await?;
    let pg = stack.pg().await?;
    results.machine.postgres = pg
        .query_one("SHOW server_version", &[])
        .await?
        .get::<_, String>(0);
    for w in workloads::all(settings.size()) {
        let needed_for_latency = w.id == "small_txns" && settings.wants("latency");
        if settings.wants(w.id) || needed_for_latency {
            results
                .workloads
                .push(endtoend::run_workload(&stack, w, settings).await?);
        }
    }
    if settings.wants("latency") {
        let max = results
            .workloads
            .iter()
            .find(|w| w.id == "small_txns")
            .map(|w| w.rate(measure::Consumer::Dbmazz))
            .ok_or("the latency section needs the small_txns workload")?;
        results.latency = Some(latency::run(&stack, max, settings).await?);
    }
    if settings.wants("scaling") {
        results.scaling = scaling::run(&stack, settings).await?;
    }
    results.machine.load_after = machine::load_average();
    report::write(settings, &results)?;
    Ok(results)
}
