//! The chaos loop: start the workers, write the workload, inject one fault per
//! iteration, then let everything catch up and ask the oracle.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

use super::faults::{Fault, FaultMenu, Rng};
use super::verify::{ConfirmWatch, History, HistoryReport, TableDiff};
use super::workers::{tail, Workers};
use super::workload::{Workload, WriterStats};
use crate::stack::{Job, Stack, CHECKPOINT_SCHEMA};
use crate::StopMode;

/// How a run goes.
#[derive(Clone, Debug)]
pub struct ChaosConfig {
    /// Faults to inject (one per iteration), drawn from shuffled decks of the menu
    /// so that every kind comes up in a long run.
    pub iterations: usize,
    /// Seed of every random choice (fault, victim, durations).
    pub seed: u64,
    /// What may happen.
    pub menu: FaultMenu,
    /// Time between two faults (ms, inclusive range).
    pub settle_ms: (u64, u64),
    /// How long a killed worker stays down (ms, inclusive range).
    pub down_ms: (u64, u64),
    /// Time allowed for the final catch-up.
    pub catch_up: Duration,
    /// Time allowed for a SIGTERM drain.
    pub drain_timeout: Duration,
}

impl ChaosConfig {
    /// `iterations` faults from the whole menu.
    pub fn new(iterations: usize, seed: u64) -> Self {
        ChaosConfig {
            iterations,
            seed,
            menu: FaultMenu::all(),
            settle_ms: (300, 1500),
            down_ms: (0, 1000),
            catch_up: Duration::from_secs(180),
            drain_timeout: Duration::from_secs(60),
        }
    }
}

/// The result of a run.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    /// Seed (replays the same fault sequence).
    pub seed: u64,
    /// Iterations run.
    pub iterations: usize,
    /// Faults injected, by kind.
    pub faults: BTreeMap<&'static str, u32>,
    /// What the writer(s) did.
    pub written: WriterStats,
    /// Per table, after the catch-up.
    pub tables: Vec<TableDiff>,
    /// The version history.
    pub history: HistoryReport,
    /// Slot/checkpoint samples taken.
    pub confirm_samples: u64,
    /// Samples with a slot confirmed beyond its checkpoint.
    pub confirm_violations: Vec<String>,
    /// Highest peak RSS of any dbmazz process (KiB).
    pub peak_rss_kib: u64,
    /// dbmazz processes started.
    pub starts: u64,
    /// Workers that exited on their own or failed to drain.
    pub unexpected_exits: Vec<String>,
    /// Time from the last fault until source and sink were equal.
    pub catch_up: Duration,
    /// Whole run.
    pub elapsed: Duration,
    /// Things worth knowing that are not failures (e.g. a fast PostgreSQL shutdown
    /// that had to be escalated), by kind.
    pub notes: BTreeMap<&'static str, u32>,
    /// Problems of the harness itself (a service that would not restart, …).
    pub harness_errors: Vec<String>,
}

impl Summary {
    /// Rows lost over all tables.
    pub fn lost(&self) -> u64 {
        self.tables.iter().map(|t| t.lost).sum()
    }

    /// Rows different over all tables.
    pub fn different(&self) -> u64 {
        self.tables.iter().map(|t| t.different).sum()
    }

    /// Rows live in the sink but deleted at the source.
    pub fn extra(&self) -> u64 {
        self.tables.iter().map(|t| t.extra).sum()
    }

    /// True when nothing was lost, nothing differs, nothing went back and nothing
    /// was confirmed early.
    pub fn ok(&self) -> bool {
        self.lost() == 0
            && self.different() == 0
            && self.extra() == 0
            && self.history.regressions.is_empty()
            && self.confirm_violations.is_empty()
            && self.unexpected_exits.is_empty()
            && self.harness_errors.is_empty()
            && !self.tables.is_empty()
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "chaos summary")?;
        writeln!(f, "  seed                 {}", self.seed)?;
        writeln!(f, "  iterations           {}", self.iterations)?;
        writeln!(
            f,
            "  elapsed              {:.1} s (catch-up {:.1} s)",
            self.elapsed.as_secs_f64(),
            self.catch_up.as_secs_f64()
        )?;
        writeln!(f, "  faults")?;
        for (k, v) in &self.faults {
            writeln!(f, "    {k:<40} {v}")?;
        }
        let w = &self.written;
        writeln!(
            f,
            "  written              {} transactions ({} unknown outcome), {} rows: {} inserts, {} updates ({} key changes), {} deletes",
            w.txns, w.unknown, w.rows(), w.inserts, w.updates, w.key_changes, w.deletes
        )?;
        for t in &self.tables {
            writeln!(
                f,
                "  table {:<24} {} rows, lost {}, different {}, extra {}",
                t.table, t.source_rows, t.lost, t.different, t.extra
            )?;
            for e in &t.examples {
                writeln!(f, "    {e}")?;
            }
        }
        writeln!(
            f,
            "  sink writes          {} ({} re-applied same version), version regressions {}",
            self.history.writes,
            self.history.reapplied,
            self.history.regressions.len()
        )?;
        for r in self.history.regressions.iter().take(5) {
            writeln!(f, "    {r}")?;
        }
        writeln!(
            f,
            "  slot vs checkpoint   {} samples, {} with the slot ahead",
            self.confirm_samples,
            self.confirm_violations.len()
        )?;
        for v in self.confirm_violations.iter().take(5) {
            writeln!(f, "    {v}")?;
        }
        writeln!(
            f,
            "  dbmazz processes     {} started, peak RSS {} MiB",
            self.starts,
            self.peak_rss_kib / 1024
        )?;
        for e in self.unexpected_exits.iter().take(3) {
            writeln!(f, "  unexpected exit: {e}")?;
        }
        for (k, v) in &self.notes {
            writeln!(f, "  note: {k} × {v}")?;
        }
        for e in &self.harness_errors {
            writeln!(f, "  harness error: {e}")?;
        }
        write!(
            f,
            "  result               {}",
            if self.ok() { "PASS" } else { "FAIL" }
        )
    }
}

/// Waits until every job has a checkpoint row (setup finished once).
pub async fn wait_for_checkpoints(
    env: &Stack,
    jobs: &[Job],
    timeout: Duration,
) -> Result<(), String> {
    let start = Instant::now();
    let c = env.pg_client().await.map_err(|e| e.to_string())?;
    loop {
        let mut missing = Vec::new();
        for j in jobs {
            let row = c
                .query_opt(
                    &format!(
                        "SELECT 1 FROM {CHECKPOINT_SCHEMA}.dbmazz_checkpoints WHERE job_id = $1"
                    ),
                    &[&j.id],
                )
                .await;
            if !matches!(row, Ok(Some(_))) {
                missing.push(j.id.clone());
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        if start.elapsed() > timeout {
            return Err(format!("no checkpoint for {missing:?} after {timeout:?}"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Compares every workload table; returns the diffs.
pub async fn diff_all(env: &Stack, workloads: &[Workload]) -> Result<Vec<TableDiff>, String> {
    let c = env.pg_client().await.map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for w in workloads {
        for t in w.tables() {
            out.push(TableDiff::compute(&c, &env.sink, &t, &w.key_columns(&t)).await?);
        }
    }
    Ok(out)
}

/// Waits until every workload table is equal at both ends (or `timeout`); returns
/// the last diffs.
pub async fn catch_up(env: &Stack, workloads: &[Workload], timeout: Duration) -> Vec<TableDiff> {
    let start = Instant::now();
    loop {
        match diff_all(env, workloads).await {
            Ok(d) if d.iter().all(TableDiff::is_equal) || start.elapsed() > timeout => return d,
            Err(e) if start.elapsed() > timeout => {
                return vec![TableDiff {
                    table: "(comparison failed)".into(),
                    lost: 1,
                    examples: vec![e],
                    ..Default::default()
                }]
            }
            _ => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}

/// Applies one fault (and the recovery that belongs to it); returns notes.
pub async fn apply_fault(
    fault: Fault,
    env: &mut Stack,
    workers: &mut Workers,
    cfg: &ChaosConfig,
    rng: &mut Rng,
) -> Result<Vec<&'static str>, String> {
    let mut notes = Vec::new();
    let victim = rng.range(0, workers.len().saturating_sub(1) as u64) as usize;
    match fault {
        Fault::Kill9 => {
            workers.kill9(victim);
            tokio::time::sleep(rng.millis(cfg.down_ms.0, cfg.down_ms.1)).await;
            workers.start(victim);
        }
        Fault::Restart => workers.restart(victim, cfg.drain_timeout),
        Fault::Pause => {
            let d = rng.millis(cfg.menu.pause_ms.0, cfg.menu.pause_ms.1);
            workers.pause(victim, d).await;
        }
        Fault::PgRestartFast => {
            if !env.restart_pg(StopMode::Fast).map_err(|e| e.to_string())? {
                notes.push("pg fast shutdown blocked by a walsender, escalated to immediate");
            }
        }
        Fault::PgRestartImmediate => {
            env.restart_pg(StopMode::Immediate)
                .map_err(|e| e.to_string())?;
        }
        Fault::EmulatorRestart => env.restart_sink().await.map_err(|e| e.to_string())?,
        Fault::SinkDown => {
            env.stop_sink().await;
            tokio::time::sleep(rng.millis(cfg.menu.sink_down_ms.0, cfg.menu.sink_down_ms.1)).await;
            env.start_sink().await.map_err(|e| e.to_string())?;
        }
        Fault::Emu(e) => {
            let count = rng.range(1, 3) as u32;
            let spec = e.spec(env.sink_db(), count, rng);
            env.inject(&[spec]).await.map_err(|e| e.to_string())?;
        }
    }
    Ok(notes)
}

/// Runs a whole chaos session: `workers` (not started) replicate `jobs`, whose
/// tables are those of `workloads` (created already).
pub async fn run(
    env: &mut Stack,
    workers: &mut Workers,
    jobs: &[Job],
    workloads: &[Workload],
    cfg: &ChaosConfig,
) -> Summary {
    let started = Instant::now();
    let mut rng = Rng::new(cfg.seed);
    let mut s = Summary {
        seed: cfg.seed,
        ..Default::default()
    };
    workers.start_all();
    if let Err(e) = wait_for_checkpoints(env, jobs, Duration::from_secs(120)).await {
        s.harness_errors.push(format!("{e}\n{}", workers.logs()));
        return s;
    }
    let tables: Vec<(String, Vec<&str>)> = workloads
        .iter()
        .flat_map(|w| {
            w.tables()
                .into_iter()
                .map(|t| (t.clone(), w.key_columns(&t)))
        })
        .collect();
    if let Err(e) = History::install(&env.sink, env.sink_db(), &tables).await {
        s.harness_errors.push(format!("history triggers: {e}"));
        return s;
    }
    let watch = ConfirmWatch::start(
        env.source_conn(),
        CHECKPOINT_SCHEMA,
        jobs.iter()
            .map(|j| (j.id.clone(), j.slot.clone()))
            .collect(),
    );
    let (stop_writers, stop_rx) = tokio::sync::watch::channel(false);
    let writers: Vec<_> = workloads
        .iter()
        .map(|w| w.spawn_writer(env.source_conn(), stop_rx.clone()))
        .collect();

    let mut deck = Vec::new();
    for i in 0..cfg.iterations {
        if deck.is_empty() {
            deck = cfg.menu.deck(&mut rng);
        }
        let fault = deck.pop().unwrap_or(Fault::Kill9);
        eprintln!("chaos iteration {i}: {}", fault.name());
        *s.faults.entry(fault.name()).or_default() += 1;
        match apply_fault(fault, env, workers, cfg, &mut rng).await {
            Ok(notes) => {
                for n in notes {
                    *s.notes.entry(n).or_default() += 1;
                }
            }
            Err(e) => {
                s.harness_errors
                    .push(format!("iteration {i} ({}): {e}", fault.name()));
                break;
            }
        }
        workers.check();
        // A worker that gave up is a finding; start it again so the run goes on.
        workers.start_all();
        tokio::time::sleep(rng.millis(cfg.settle_ms.0, cfg.settle_ms.1)).await;
        workers.check();
        s.iterations = i + 1;
    }

    let _ = stop_writers.send(true);
    for w in writers {
        if let Ok(st) = w.await {
            s.written.add(&st);
        }
    }
    let last_fault = Instant::now();
    if let Err(e) = env.start_sink().await {
        s.harness_errors.push(e.to_string());
    }
    if let Err(e) = env.clear_faults().await {
        s.harness_errors.push(e.to_string());
    }
    workers.start_all();
    s.tables = catch_up(env, workloads, cfg.catch_up).await;
    s.catch_up = last_fault.elapsed();
    workers.check();
    if !s.tables.iter().all(TableDiff::is_equal) {
        s.harness_errors.push(format!(
            "not equal after {:?}; worker logs:\n{}",
            cfg.catch_up,
            tail(&workers.logs(), 20_000)
        ));
    }
    match History::check(&env.sink).await {
        Ok(h) => s.history = h,
        Err(e) => s.harness_errors.push(format!("history: {e}")),
    }
    // A final drain: every worker must stop cleanly with exit 0.
    for (i, st) in workers.stop_all(cfg.drain_timeout).into_iter().enumerate() {
        if !st.is_some_and(|st| st.success()) {
            s.unexpected_exits
                .push(format!("worker {i}: final SIGTERM drain ended with {st:?}"));
        }
    }
    let (samples, violations) = watch.finish().await;
    s.confirm_samples = samples;
    s.confirm_violations = violations;
    s.peak_rss_kib = workers.peak_rss_kib;
    s.starts = workers.starts;
    s.unexpected_exits.append(&mut workers.unexpected_exits);
    s.elapsed = started.elapsed();
    s
}
