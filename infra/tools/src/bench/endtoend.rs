//! End to end on the same WAL: one workload, every consumer, interleaved rounds.
//!
//! All slots (one per consumer and round) are created before the measured statements
//! run, so every consumer decodes exactly the same WAL from the same position. Round
//! `r` runs the consumers in an order rotated by `r`, so no consumer is always first
//! (cold) or last; the report uses the median of the rounds.

use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;

use super::measure::{run_dbmazz, run_recvlogical, Consumer, DbmazzRun, RunFigures};
use super::stats::median;
use super::workloads::{CurvePoint, Identity, Workload};
use super::Settings;
use crate::{Error, Stack};

/// Environment variables passed through to dbmazz when set (tuning experiments);
/// the report lists the ones that were set.
pub const PASSTHROUGH_ENV: [&str; 5] = [
    "MALLOC_ARENA_MAX",
    "FLUSH_SIZE",
    "FLUSH_INTERVAL_MS",
    "DBMAZZ_MEMORY_BUDGET_MB",
    "DBMAZZ_SPILL_URL",
];

/// Everything measured for one workload.
#[derive(Clone, Debug)]
pub struct WorkloadResult {
    /// Workload id.
    pub id: &'static str,
    /// Title.
    pub title: String,
    /// Replica identity of its tables.
    pub identity: Identity,
    /// Row changes.
    pub row_changes: u64,
    /// WAL bytes the primary wrote for the measured statements.
    pub wal_bytes: u64,
    /// Seconds the statements took to write (not a benchmark figure; context).
    pub write_seconds: f64,
    /// Every run, in the order they ran.
    pub runs: Vec<(Consumer, RunFigures)>,
    /// Curve membership.
    pub curve: Option<CurvePoint>,
}

impl WorkloadResult {
    /// The median of `f` over the runs of `c`.
    pub fn median(&self, c: Consumer, f: impl Fn(&RunFigures) -> f64) -> f64 {
        median(
            &self
                .runs
                .iter()
                .filter(|(k, _)| *k == c)
                .map(|(_, r)| f(r))
                .collect::<Vec<_>>(),
        )
    }

    /// Median rows/s of a consumer.
    pub fn rate(&self, c: Consumer) -> f64 {
        self.row_changes as f64 / self.median(c, |r| r.seconds)
    }

    /// The faster `pg_recvlogical` mode: the reference dbmazz is compared with.
    pub fn reference(&self) -> Consumer {
        if self.rate(Consumer::RecvPipe) >= self.rate(Consumer::RecvDevNull) {
            Consumer::RecvPipe
        } else {
            Consumer::RecvDevNull
        }
    }

    /// dbmazz rows/s over the reference's.
    pub fn ratio(&self) -> f64 {
        self.rate(Consumer::Dbmazz) / self.rate(self.reference())
    }

    /// Median of `f` per million row changes.
    pub fn per_million(&self, c: Consumer, f: impl Fn(&RunFigures) -> f64) -> f64 {
        self.median(c, f) / (self.row_changes as f64 / 1e6)
    }
}

/// The slot of consumer `c` in round `r`.
fn slot(id: &str, c: Consumer, r: usize) -> String {
    format!("b_{id}_{}{r}", c.tag())
}

/// Current WAL insert position.
pub async fn insert_lsn(pg: &tokio_postgres::Client) -> Result<u64, Error> {
    let s: String = pg
        .query_one("SELECT pg_current_wal_insert_lsn()::text", &[])
        .await?
        .get(0);
    Ok(crate::parse_lsn(&s))
}

/// The WAL position right after the last statement of `c`, then one more WAL record
/// (a non-transactional logical message no consumer subscribes to). The record makes
/// the walsenders read, and report in keepalives, a position past the returned one,
/// so consumers always reach it: without it, a workload ending exactly at a WAL page
/// boundary would leave them waiting for the next keepalive.
pub async fn end_lsn(c: &tokio_postgres::Client) -> Result<u64, Error> {
    let lsn = insert_lsn(c).await?;
    c.batch_execute("SELECT pg_logical_emit_message(false, 'dbmazz-bench', 'end')")
        .await?;
    Ok(lsn)
}

/// A client for writing workloads: commits do not wait for the WAL write (the WAL is
/// complete before any consumer starts, so this only shortens the bench).
pub async fn writer(stack: &Stack) -> Result<tokio_postgres::Client, Error> {
    let c = stack.pg().await?;
    c.batch_execute("SET synchronous_commit = off").await?;
    Ok(c)
}

/// Creates a workload's tables on both sides and runs its preparation.
async fn create_tables(stack: &Stack, w: &mut Workload) -> Result<(), Error> {
    let pg = writer(stack).await?;
    pg.batch_execute(&w.source_ddl).await?;
    if w.identity == Identity::Full {
        for t in &w.tables {
            pg.batch_execute(&format!("ALTER TABLE {t} REPLICA IDENTITY FULL"))
                .await?;
        }
    }
    let mut sink = stack.sink().get_conn().await?;
    for ddl in &w.sink_ddl {
        sink.query_drop(ddl).await?;
    }
    for s in w.prepare.by_ref() {
        pg.batch_execute(&s).await?;
    }
    pg.batch_execute("CHECKPOINT").await?;
    Ok(())
}

/// The dbmazz environment of one workload run.
fn dbmazz_env(
    stack: &Stack,
    w_tables: &str,
    slot: &str,
    publication: &str,
    extra: &[(String, String)],
) -> Vec<(String, String)> {
    let mut e: Vec<(&str, String)> = vec![
        ("SOURCE_PUBLICATION_NAME", publication.to_owned()),
        ("DBMAZZ_REPLICA_IDENTITY", "keep".to_owned()),
        ("RUST_LOG", "warn".to_owned()),
    ];
    for k in PASSTHROUGH_ENV {
        if let Ok(v) = std::env::var(k) {
            e.push((k, v));
        }
    }
    for (k, v) in extra {
        e.push((k.as_str(), v.clone()));
    }
    stack.dbmazz_env(w_tables, slot, &e)
}

/// Measures one workload.
pub async fn run_workload(
    stack: &Stack,
    mut w: Workload,
    settings: &Settings,
) -> Result<WorkloadResult, Error> {
    let pg = stack.pg().await?;
    println!("── {} ({})", w.id, w.title);
    create_tables(stack, &mut w).await?;
    let publication = format!("b_{}_pub", w.id);
    pg.batch_execute(&format!(
        "CREATE PUBLICATION {publication} FOR TABLE {}",
        w.tables.join(", ")
    ))
    .await?;
    let mut slots = Vec::new();
    for r in 0..settings.runs {
        for c in Consumer::ALL {
            let s = slot(w.id, c, r);
            pg.execute(
                "SELECT pg_create_logical_replication_slot($1, 'pgoutput')",
                &[&s],
            )
            .await?;
            slots.push(s);
        }
    }
    let wr = writer(stack).await?;
    let t = Instant::now();
    let start = insert_lsn(&wr).await?;
    for s in w.statements.by_ref() {
        wr.batch_execute(&s).await?;
    }
    let target = end_lsn(&wr).await?;
    let write_seconds = t.elapsed().as_secs_f64();
    println!(
        "   wrote {} row changes, {} of WAL, in {write_seconds:.1} s",
        w.row_changes,
        crate::human_bytes(target - start)
    );
    let tables = w.tables.join(",");
    let mut runs = Vec::new();
    for r in 0..settings.runs {
        for i in 0..Consumer::ALL.len() {
            let c = Consumer::ALL[(i + r) % Consumer::ALL.len()];
            let s = slot(w.id, c, r);
            let fig = match c {
                Consumer::Dbmazz => {
                    let env = dbmazz_env(stack, &tables, &s, &publication, &w.dbmazz_env);
                    let fig = run_dbmazz(
                        stack,
                        &pg,
                        DbmazzRun {
                            env,
                            slots: std::slice::from_ref(&s),
                            settle: settings.settle(),
                        },
                        target,
                    )
                    .await?;
                    check_sink_rows(&w, &fig)?;
                    fig
                }
                _ => run_recvlogical(stack, &pg, c, &[(s, publication.clone())], target).await?,
            };
            println!(
                "   round {}/{} {:<30} {:>8.2} s  {:>10.0} rows/s  CPU {:.2} s  walsender {:.2} s",
                r + 1,
                settings.runs,
                c.name(),
                fig.seconds,
                w.row_changes as f64 / fig.seconds,
                fig.client_cpu,
                fig.walsender_cpu
            );
            runs.push((c, fig));
        }
    }
    for s in &slots {
        pg.execute("SELECT pg_drop_replication_slot($1)", &[s])
            .await?;
    }
    pg.batch_execute(&format!("DROP PUBLICATION {publication}; CHECKPOINT"))
        .await?;
    // Free the tables' space; the sink tables are emptied by discard mode anyway.
    pg.batch_execute(&format!("DROP TABLE {}", w.tables.join(", ")))
        .await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    Ok(WorkloadResult {
        id: w.id,
        title: w.title.clone(),
        identity: w.identity,
        row_changes: w.row_changes,
        wal_bytes: target - start,
        write_seconds,
        runs,
        curve: w.curve.clone(),
    })
}

/// The sink must have received every row the workload guarantees (or, with folding,
/// at least one and at most one per change).
fn check_sink_rows(w: &Workload, fig: &RunFigures) -> Result<(), Error> {
    let ok = match w.sink_rows {
        Some(n) => fig.sink_rows == n,
        None => fig.sink_rows > 0 && fig.sink_rows <= w.row_changes,
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{}: the emulator loaded {} rows; expected {} ({} row changes)",
            w.id,
            fig.sink_rows,
            w.sink_rows
                .map_or_else(|| "between 1 and the changes".to_owned(), |n| n.to_string()),
            w.row_changes
        )
        .into())
    }
}
