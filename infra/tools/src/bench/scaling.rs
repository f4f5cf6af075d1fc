//! Several pipelines on one worker (a jobs file, `DBMAZZ_LEASE_BACKEND=none`).
//!
//! For each pipeline count `n`:
//! 1. **Idle**: a worker starts `n` jobs whose tables receive nothing; once every
//!    slot has its walsender, it settles, then its RSS and its CPU over a window are
//!    read. The cost of an idle pipeline is the difference between counts:
//!    `(RSS(n) − RSS(1)) / (n − 1)`.
//! 2. **Loaded**: small transactions (10 rows) spread round-robin over the `n` tables
//!    are written, and a last one touching every table, then a fresh worker catches up on all `n` slots (same method as the
//!    end-to-end runs), against `n` `pg_recvlogical` into pipes on their own slots at
//!    once as the reference; interleaved rounds, medians.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;

use super::endtoend::{end_lsn, writer};
use super::measure::{run_dbmazz, run_recvlogical, Consumer, DbmazzRun, RunFigures};
use super::stats::median;
use super::workloads::{sink_table, small_insert, SMALL_COLUMNS_PG, SMALL_COLUMNS_SINK};
use super::Settings;
use crate::{proc_usage, Error, Stack, SINK_DB};

/// Rows per transaction.
const ROWS_PER_TXN: u64 = 10;
/// Key of the last row written to every table.
const LAST_ID: u64 = 1 << 30;

/// Figures for one pipeline count.
#[derive(Clone, Debug)]
pub struct ScalingPoint {
    /// Pipelines.
    pub pipelines: usize,
    /// Worker RSS while idle.
    pub idle_rss: u64,
    /// Worker CPU seconds per wall second while idle.
    pub idle_cpu_share: f64,
    /// Row changes of the loaded phase (all pipelines).
    pub row_changes: u64,
    /// dbmazz runs.
    pub dbmazz: Vec<RunFigures>,
    /// Reference runs.
    pub reference: Vec<RunFigures>,
}

impl ScalingPoint {
    fn med(runs: &[RunFigures], f: impl Fn(&RunFigures) -> f64) -> f64 {
        median(&runs.iter().map(f).collect::<Vec<_>>())
    }

    /// dbmazz median seconds.
    pub fn dbmazz_seconds(&self) -> f64 {
        Self::med(&self.dbmazz, |r| r.seconds)
    }

    /// Reference median seconds.
    pub fn reference_seconds(&self) -> f64 {
        Self::med(&self.reference, |r| r.seconds)
    }

    /// dbmazz rows/s over the reference's.
    pub fn ratio(&self) -> f64 {
        self.reference_seconds() / self.dbmazz_seconds()
    }

    /// Median of `f` over the dbmazz runs.
    pub fn dbmazz_median(&self, f: impl Fn(&RunFigures) -> f64) -> f64 {
        Self::med(&self.dbmazz, f)
    }

    /// Median of `f` over the reference runs.
    pub fn reference_median(&self, f: impl Fn(&RunFigures) -> f64) -> f64 {
        Self::med(&self.reference, f)
    }
}

fn table(n: usize, i: usize) -> String {
    format!("w_sc{n}_{i}")
}

fn jobs_file(stack: &Stack, n: usize, tag: &str) -> String {
    let mut f = String::new();
    let _ = write!(
        f,
        "[defaults]\nsource_url = \"{}\"\nsink_url = \"{}\"\nsink_database = \"{SINK_DB}\"\n\
         sink_mysql_host = \"127.0.0.1\"\nsink_mysql_port = {}\nsink_user = \"root\"\n\
         replica_identity = \"keep\"\n",
        stack.services.source_url(),
        stack.services.fe_url(),
        stack.services.maria.port()
    );
    for i in 0..n {
        let t = table(n, i);
        let _ = write!(
            f,
            "\n[[jobs]]\nslot_name = \"{t}_{tag}\"\npublication_name = \"{t}_pub\"\n\
             tables = [\"public.{t}\"]\n"
        );
    }
    f
}

/// Starts a worker for the `n` jobs of slot set `tag`.
fn worker_env(
    stack: &Stack,
    dir: &std::path::Path,
    n: usize,
    tag: &str,
) -> Result<Vec<(String, String)>, Error> {
    let path = dir.join(format!("jobs_{n}_{tag}.toml"));
    std::fs::write(&path, jobs_file(stack, n, tag))?;
    Ok([
        ("DBMAZZ_JOBS_FILE", path.display().to_string()),
        ("DBMAZZ_METRICS_ADDR", "off".to_owned()),
        (
            "DBMAZZ_GRPC_ADDR",
            format!("127.0.0.1:{}", dbmazz_testkit::free_port()),
        ),
        ("RUST_LOG", "warn".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect())
}

fn slots(n: usize, tag: &str) -> Vec<String> {
    (0..n).map(|i| format!("{}_{tag}", table(n, i))).collect()
}

/// Idle RSS and CPU share of a worker running `n` pipelines that receive nothing.
async fn idle(
    stack: &Stack,
    pg: &tokio_postgres::Client,
    dir: &std::path::Path,
    n: usize,
    settings: &Settings,
) -> Result<(u64, f64), Error> {
    let env = worker_env(stack, dir, n, "idle")?;
    let names = slots(n, "idle");
    let mut p = crate::spawn_dbmazz(&env)?;
    let t = Instant::now();
    loop {
        let active: i64 = pg
            .query_one(
                "SELECT count(*) FROM pg_replication_slots \
                 WHERE slot_name = ANY($1) AND active_pid IS NOT NULL",
                &[&names],
            )
            .await?
            .get(0);
        if active as usize == n {
            break;
        }
        if let Some(s) = p.try_status() {
            return Err(format!("dbmazz exited ({s}):\n{}", p.log()).into());
        }
        if t.elapsed() > Duration::from_secs(120) {
            return Err(
                format!("{n} pipelines did not start within 2 minutes:\n{}", p.log()).into(),
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(settings.settle()).await;
    let u0 = proc_usage(p.pid())?;
    let w0 = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(settings.idle_seconds)).await;
    let u1 = proc_usage(p.pid())?;
    let share = (u1.cpu_seconds - u0.cpu_seconds) / w0.elapsed().as_secs_f64();
    p.sigterm();
    if p.wait_exit(Duration::from_secs(60)).is_none() {
        return Err("the idle worker did not stop within 60 s of SIGTERM".into());
    }
    Ok((u1.rss_bytes, share))
}

/// Measures every pipeline count of `settings`.
pub async fn run(stack: &Stack, settings: &Settings) -> Result<Vec<ScalingPoint>, Error> {
    let pg = stack.pg().await?;
    let dir = dbmazz_testkit::process::temp_dir("dbmazz-bench-jobs-")?;
    let mut points = Vec::new();
    let mut sink = stack.sink().get_conn().await?;
    for &n in &settings.pipelines {
        println!("── scaling: {n} pipeline(s)");
        let mut tags: Vec<String> = vec!["idle".into()];
        for r in 0..settings.runs {
            tags.push(format!("d{r}"));
            tags.push(format!("p{r}"));
        }
        for i in 0..n {
            let t = table(n, i);
            pg.batch_execute(&format!(
                "CREATE TABLE {t} ({SMALL_COLUMNS_PG}); CREATE PUBLICATION {t}_pub FOR TABLE {t};"
            ))
            .await?;
            sink.query_drop(sink_table(&t, SMALL_COLUMNS_SINK)).await?;
            for tag in &tags {
                pg.execute(
                    "SELECT pg_create_logical_replication_slot($1, 'pgoutput')",
                    &[&format!("{t}_{tag}")],
                )
                .await?;
            }
        }
        let (idle_rss, idle_cpu_share) = idle(stack, &pg, dir.path(), n, settings).await?;
        println!(
            "   idle: RSS {}, CPU {:.3} %",
            crate::human_bytes(idle_rss),
            idle_cpu_share * 100.0
        );
        let txns = settings.scaling_rows / ROWS_PER_TXN;
        let wr = writer(stack).await?;
        let mut s = String::new();
        for k in 0..txns {
            let first = (k / n as u64) * ROWS_PER_TXN + 1;
            let _ = write!(
                s,
                "BEGIN;{}COMMIT;",
                small_insert(
                    &table(n, (k % n as u64) as usize),
                    first,
                    first + ROWS_PER_TXN - 1
                )
            );
            if k % 100 == 99 {
                wr.batch_execute(&std::mem::take(&mut s)).await?;
            }
        }
        // A last transaction touches every table, so every pipeline's last change is
        // at the end position (without it, a pipeline whose table was not written last
        // could only confirm the end through an idle checkpoint, which measures the
        // keepalive schedule, not the work).
        s.push_str("BEGIN;");
        for i in 0..n {
            s.push_str(&small_insert(&table(n, i), LAST_ID, LAST_ID));
        }
        s.push_str("COMMIT;");
        wr.batch_execute(&s).await?;
        let target = end_lsn(&wr).await?;
        let row_changes = txns * ROWS_PER_TXN + n as u64;
        let mut point = ScalingPoint {
            pipelines: n,
            idle_rss,
            idle_cpu_share,
            row_changes,
            dbmazz: Vec::new(),
            reference: Vec::new(),
        };
        for r in 0..settings.runs {
            for i in 0..2 {
                if (i + r) % 2 == 0 {
                    let tag = format!("d{r}");
                    let names = slots(n, &tag);
                    let fig = run_dbmazz(
                        stack,
                        &pg,
                        DbmazzRun {
                            env: worker_env(stack, dir.path(), n, &tag)?,
                            slots: &names,
                            settle: settings.settle(),
                        },
                        target,
                    )
                    .await?;
                    if fig.sink_rows != row_changes {
                        return Err(format!(
                            "{n} pipelines: the emulator loaded {} rows of {row_changes}",
                            fig.sink_rows
                        )
                        .into());
                    }
                    println!(
                        "   round {}/{} dbmazz {:>8.2} s  CPU {:.2} s  peak RSS {}",
                        r + 1,
                        settings.runs,
                        fig.seconds,
                        fig.client_cpu,
                        crate::human_bytes(fig.peak_rss)
                    );
                    point.dbmazz.push(fig);
                } else {
                    let pairs: Vec<(String, String)> = (0..n)
                        .map(|i| {
                            let t = table(n, i);
                            (format!("{t}_p{r}"), format!("{t}_pub"))
                        })
                        .collect();
                    let fig =
                        run_recvlogical(stack, &pg, Consumer::RecvPipe, &pairs, target).await?;
                    println!(
                        "   round {}/{} {n} × pg_recvlogical {:>8.2} s",
                        r + 1,
                        settings.runs,
                        fig.seconds
                    );
                    point.reference.push(fig);
                }
            }
        }
        for i in 0..n {
            let t = table(n, i);
            for tag in &tags {
                pg.execute(
                    "SELECT pg_drop_replication_slot($1)",
                    &[&format!("{t}_{tag}")],
                )
                .await?;
            }
            pg.batch_execute(&format!("DROP PUBLICATION {t}_pub; DROP TABLE {t};"))
                .await?;
        }
        pg.batch_execute("CHECKPOINT").await?;
        points.push(point);
    }
    Ok(points)
}
