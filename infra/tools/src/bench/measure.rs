//! One measured run of one consumer over WAL that is already written: dbmazz (one
//! worker, one or several pipelines) or `pg_recvlogical` (one process per slot), each
//! reading its own slot(s) from the same start position to the same end LSN.
//!
//! What is measured, and how:
//! - **time**: from spawning the consumer until dbmazz has *confirmed* the end LSN on
//!   every slot (loaded into the sink and checkpointed: the end of its job), or until
//!   every `pg_recvlogical` has exited at `--endpos` (and its output was read to the
//!   end). Both are polled every 10 ms.
//! - **client CPU and peak RSS**: dbmazz from `/proc/<pid>` at the moment it caught
//!   up; `pg_recvlogical` from `wait4`'s resource usage (exact), plus the CPU of the
//!   thread counting its output in pipe mode.
//! - **walsender CPU**: the primary's cost of the consumer. The walsender of each slot
//!   (`pg_replication_slots.active_pid`) is sampled from `/proc` every 10 ms; for
//!   dbmazz the last sample is taken at the catch-up, while it still runs; a
//!   `pg_recvlogical` walsender ends with its client, so up to 10 ms of its CPU may be
//!   missed.
//! - **sink bytes**: request body bytes the emulator received (`GET /stats`), i.e. the
//!   JSON dbmazz put on the wire (no compression is used), HTTP headers excluded.

use std::collections::HashMap;
use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dbmazz_testkit::DbmazzProcess;
use sonic_rs::JsonValueTrait;

use crate::{proc_usage, Error, Stack};

/// Who reads the WAL.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Consumer {
    /// `dbmazz run`, loading into the emulator in discard mode.
    Dbmazz,
    /// `pg_recvlogical -f /dev/null`.
    RecvDevNull,
    /// `pg_recvlogical -f -` into a pipe the harness reads and counts.
    RecvPipe,
}

impl Consumer {
    /// Every consumer, in the first round's order.
    pub const ALL: [Consumer; 3] = [Consumer::Dbmazz, Consumer::RecvDevNull, Consumer::RecvPipe];

    /// Name in tables.
    pub fn name(self) -> &'static str {
        match self {
            Consumer::Dbmazz => "dbmazz",
            Consumer::RecvDevNull => "pg_recvlogical -f /dev/null",
            Consumer::RecvPipe => "pg_recvlogical -f - | counter",
        }
    }

    /// Short tag for slot names.
    pub fn tag(self) -> &'static str {
        match self {
            Consumer::Dbmazz => "d",
            Consumer::RecvDevNull => "n",
            Consumer::RecvPipe => "p",
        }
    }
}

/// The figures of one run.
#[derive(Clone, Debug, Default)]
pub struct RunFigures {
    /// Wall seconds until done.
    pub seconds: f64,
    /// CPU seconds of the consumer process(es).
    pub client_cpu: f64,
    /// CPU seconds of the walsender(s) serving it.
    pub walsender_cpu: f64,
    /// Peak RSS of the consumer (largest process for several `pg_recvlogical`).
    pub peak_rss: u64,
    /// dbmazz RSS a few seconds after the catch-up (0 for pg_recvlogical).
    pub rss_after: u64,
    /// Bytes the emulator received (dbmazz) or bytes read from the pipe.
    pub out_bytes: u64,
    /// Stream Loads that succeeded (dbmazz).
    pub loads: u64,
    /// Rows the emulator loaded (dbmazz).
    pub sink_rows: u64,
}

/// What a dbmazz run reads: one pipeline per slot.
pub struct DbmazzRun<'a> {
    /// Environment of `dbmazz run`.
    pub env: Vec<(String, String)>,
    /// Slots it must confirm up to the target.
    pub slots: &'a [String],
    /// Seconds to wait after the catch-up before reading the settled RSS.
    pub settle: Duration,
}

/// Walsender CPU of the slots, sampled while they run.
struct WalsenderCpu {
    pids: HashMap<String, u32>,
    last: HashMap<u32, f64>,
}

impl WalsenderCpu {
    fn new() -> Self {
        WalsenderCpu {
            pids: HashMap::new(),
            last: HashMap::new(),
        }
    }

    /// Records the walsender pids of `states` and samples every pid seen.
    fn sample(&mut self, states: &[SlotState]) {
        for st in states {
            if let Some(pid) = st.walsender.and_then(|p| u32::try_from(p).ok()) {
                self.pids.entry(st.slot.clone()).or_insert(pid);
            }
        }
        for &pid in self.pids.values() {
            if let Ok(u) = proc_usage(pid) {
                self.last.insert(pid, u.cpu_seconds);
            }
        }
    }

    fn total(&self) -> f64 {
        self.last.values().sum()
    }
}

/// A slot's progress and the walsender serving it.
struct SlotState {
    slot: String,
    confirmed: u64,
    walsender: Option<i32>,
}

/// Confirmed LSN and walsender pid of each slot.
async fn slot_states(
    pg: &tokio_postgres::Client,
    slots: &[String],
) -> Result<Vec<SlotState>, Error> {
    let rows = pg
        .query(
            "SELECT slot_name::text, coalesce(confirmed_flush_lsn, '0/0')::text, active_pid \
             FROM pg_replication_slots WHERE slot_name = ANY($1)",
            &[&slots],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| SlotState {
            slot: r.get(0),
            confirmed: crate::parse_lsn(&r.get::<_, String>(1)),
            walsender: r.get(2),
        })
        .collect())
}

/// Runs dbmazz until every slot is confirmed at `target`.
pub async fn run_dbmazz(
    stack: &Stack,
    pg: &tokio_postgres::Client,
    run: DbmazzRun<'_>,
    target: u64,
) -> Result<RunFigures, Error> {
    crate::http_post(&format!("{}/stats/reset", stack.services.admin_url()))?;
    let start = Instant::now();
    let mut p = DbmazzProcess::spawn(&crate::dbmazz_binary()?, &["run"], &run.env)?;
    let mut ws = WalsenderCpu::new();
    let mut peak = 0u64;
    loop {
        if let Ok(u) = proc_usage(p.pid()) {
            peak = peak.max(u.peak_rss_bytes);
        }
        let states = slot_states(pg, run.slots).await?;
        ws.sample(&states);
        if states.len() == run.slots.len() && states.iter().all(|s| s.confirmed >= target) {
            break;
        }
        if let Some(s) = p.try_status() {
            return Err(format!("dbmazz exited ({s}):\n{}", p.log()).into());
        }
        if start.elapsed() > Duration::from_secs(3600) {
            return Err("dbmazz did not catch up within an hour".into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let seconds = start.elapsed().as_secs_f64();
    let at = proc_usage(p.pid())?;
    ws.sample(&slot_states(pg, run.slots).await?);
    tokio::time::sleep(run.settle).await;
    let after = proc_usage(p.pid()).unwrap_or(at);
    p.sigterm();
    if p.wait_exit(Duration::from_secs(60)).is_none() {
        return Err(format!("dbmazz did not stop within 60 s of SIGTERM:\n{}", p.log()).into());
    }
    let stats = stack.emulator_stats()?;
    let get = |k: &str| stats.get(k).and_then(|v| v.as_u64()).unwrap_or(0);
    if get("loads_failed") > 0 || get("rows_filtered") > 0 {
        return Err(format!(
            "the emulator saw {} failed loads and {} filtered rows: the run is not valid\n{}",
            get("loads_failed"),
            get("rows_filtered"),
            p.log()
        )
        .into());
    }
    Ok(RunFigures {
        seconds,
        client_cpu: at.cpu_seconds,
        walsender_cpu: ws.total(),
        peak_rss: peak.max(at.peak_rss_bytes),
        rss_after: after.rss_bytes,
        out_bytes: get("bytes"),
        loads: get("loads_ok"),
        sink_rows: get("rows_loaded"),
    })
}

/// One `pg_recvlogical` child and, in pipe mode, the thread counting its output.
struct Recv {
    child: Child,
    counter: Option<std::thread::JoinHandle<std::io::Result<(u64, f64)>>>,
    usage: Option<libc::rusage>,
    status: i32,
}

/// CPU seconds of the calling thread.
fn thread_cpu() -> f64 {
    // SAFETY: getrusage writes into the zeroed struct we own.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_THREAD with a valid pointer.
    unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) };
    rusage_cpu(&ru)
}

fn rusage_cpu(ru: &libc::rusage) -> f64 {
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(ru.ru_utime) + t(ru.ru_stime)
}

/// The pgoutput options dbmazz uses on this server version (same decoding work).
pub fn pgoutput_options(server_version_num: u32, publication: &str) -> Vec<String> {
    let proto = match server_version_num {
        v if v >= 160000 => 4,
        v if v >= 150000 => 3,
        v if v >= 140000 => 2,
        _ => 1,
    };
    let mut o = vec![
        format!("proto_version={proto}"),
        format!("publication_names={publication}"),
    ];
    if server_version_num >= 140000 {
        o.push("messages=off".into());
    }
    if proto >= 2 {
        o.push("streaming=off".into());
    }
    if proto >= 3 {
        o.push("two_phase=off".into());
    }
    o
}

/// Runs one `pg_recvlogical` per `(slot, publication)` at once until all have exited
/// at `target`.
pub async fn run_recvlogical(
    stack: &Stack,
    pg: &tokio_postgres::Client,
    mode: Consumer,
    slots: &[(String, String)],
    target: u64,
) -> Result<RunFigures, Error> {
    let version: i32 = pg
        .query_one("SELECT current_setting('server_version_num')::int", &[])
        .await?
        .get(0);
    let bin = dbmazz_testkit::postgres::pg_bin_dir()?.join("pg_recvlogical");
    let endpos = format!("{:X}/{:X}", target >> 32, target & 0xFFFF_FFFF);
    let start = Instant::now();
    let mut children = Vec::new();
    for (slot, publication) in slots {
        let mut cmd = Command::new(&bin);
        cmd.args([
            "-d",
            &stack.services.source_conn(),
            "--slot",
            slot,
            "--start",
        ])
        .args(["-P", "pgoutput", "--endpos", &endpos, "--no-loop"]);
        for o in pgoutput_options(u32::try_from(version).unwrap_or(0), publication) {
            cmd.args(["-o", &o]);
        }
        cmd.stdin(Stdio::null()).stderr(Stdio::piped());
        let mut child = match mode {
            Consumer::RecvDevNull => cmd
                .args(["-f", "/dev/null"])
                .stdout(Stdio::null())
                .spawn()?,
            _ => cmd.args(["-f", "-"]).stdout(Stdio::piped()).spawn()?,
        };
        let counter = child.stdout.take().map(|mut out| {
            std::thread::spawn(move || -> std::io::Result<(u64, f64)> {
                let mut buf = vec![0u8; 256 * 1024];
                let mut n = 0u64;
                loop {
                    match out.read(&mut buf)? {
                        0 => return Ok((n, thread_cpu())),
                        k => n += k as u64,
                    }
                }
            })
        });
        children.push(Recv {
            child,
            counter,
            usage: None,
            status: 0,
        });
    }
    let names: Vec<String> = slots.iter().map(|(s, _)| s.clone()).collect();
    let mut ws = WalsenderCpu::new();
    loop {
        ws.sample(&slot_states(pg, &names).await?);
        for r in children.iter_mut().filter(|r| r.usage.is_none()) {
            // SAFETY: wait4 on our own child with valid out-pointers; WNOHANG.
            let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
            let mut status = 0;
            let pid = libc::pid_t::try_from(r.child.id()).unwrap_or(-1);
            // SAFETY: as above.
            let got = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut ru) };
            if got == pid {
                r.usage = Some(ru);
                r.status = status;
            } else if got < 0 {
                return Err(format!(
                    "waiting for pg_recvlogical: {}",
                    std::io::Error::last_os_error()
                )
                .into());
            }
        }
        if children.iter().all(|r| r.usage.is_some()) {
            break;
        }
        if start.elapsed() > Duration::from_secs(3600) {
            for r in &mut children {
                let _ = r.child.kill();
            }
            return Err("pg_recvlogical did not reach the end position within an hour".into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut fig = RunFigures {
        seconds: start.elapsed().as_secs_f64(),
        walsender_cpu: ws.total(),
        ..RunFigures::default()
    };
    for r in &mut children {
        if let Some(h) = r.counter.take() {
            let (n, cpu) = h.join().map_err(|_| "the pipe counter thread panicked")??;
            fig.out_bytes += n;
            fig.client_cpu += cpu;
        }
        let ok = libc::WIFEXITED(r.status) && libc::WEXITSTATUS(r.status) == 0;
        if !ok {
            let mut err = String::new();
            if let Some(mut e) = r.child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            return Err(format!("pg_recvlogical failed (wait status {}): {err}", r.status).into());
        }
        if let Some(ru) = &r.usage {
            fig.client_cpu += rusage_cpu(ru);
            fig.peak_rss = fig
                .peak_rss
                .max(u64::try_from(ru.ru_maxrss).unwrap_or(0) * 1024);
        }
    }
    Ok(fig)
}
