//! Shared pieces of the dbmazz demo and benchmarks: the testkit's stack (PostgreSQL,
//! MariaDB, the StarRocks emulator) with the tools' databases, the `dbmazz` binary as
//! a child process, and measurements of processes (CPU time, RSS) read from `/proc`.
//! The `make bench` harness lives in [`bench`].

pub mod bench;

use std::path::PathBuf;
use std::time::Duration;

use dbmazz_testkit::{DbmazzProcess, PgConfig, StackConfig};

/// Source database.
pub const DB: &str = "shop";
/// Sink database.
pub const SINK_DB: &str = "analytics";

/// A boxed error for the tools' top level.
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// The testkit's stack, private to this run, with the tools' databases.
pub struct Stack {
    /// PostgreSQL, MariaDB and the emulator.
    pub services: dbmazz_testkit::Stack,
}

impl Stack {
    /// Starts everything; `discard` runs the emulator without storing rows.
    pub async fn start(pg: PgConfig, discard: bool) -> Result<Stack, Error> {
        let config = StackConfig::default()
            .pg(pg)
            .databases(DB, SINK_DB)
            .discard(discard);
        Ok(Stack {
            services: dbmazz_testkit::Stack::start_with(config).await?,
        })
    }

    /// The environment of `dbmazz run` replicating `tables` into the sink, with
    /// dbmazz's own defaults for batching (what a user gets) unless `extra` sets them.
    pub fn dbmazz_env(
        &self,
        tables: &str,
        slot: &str,
        extra: &[(&str, String)],
    ) -> Vec<(String, String)> {
        let mut env = self.services.connection_env();
        dbmazz_testkit::set_var(&mut env, "TABLES", tables);
        dbmazz_testkit::set_var(&mut env, "SOURCE_SLOT_NAME", slot);
        dbmazz_testkit::set_var(&mut env, "SOURCE_PUBLICATION_NAME", &format!("{slot}_pub"));
        for (k, v) in extra {
            dbmazz_testkit::set_var(&mut env, k, v);
        }
        env
    }

    /// A client of the source database.
    pub async fn pg(&self) -> Result<tokio_postgres::Client, Error> {
        Ok(self.services.pg_client().await?)
    }

    /// The sink pool.
    pub fn sink(&self) -> mysql_async::Pool {
        self.services.sink.clone()
    }

    /// Lag of `slot` in bytes (server WAL position − confirmed_flush_lsn).
    pub async fn slot_lag(
        &self,
        pg: &tokio_postgres::Client,
        slot: &str,
    ) -> Result<Option<i64>, Error> {
        let row = pg
            .query_opt(
                "SELECT (pg_current_wal_lsn() - confirmed_flush_lsn)::bigint \
                 FROM pg_replication_slots WHERE slot_name = $1",
                &[&slot],
            )
            .await?;
        Ok(row.and_then(|r| r.get(0)))
    }

    /// The emulator's statistics (`GET /stats` on the admin port).
    pub fn emulator_stats(&self) -> Result<sonic_rs::Value, Error> {
        let body = http_get(&format!("{}/stats", self.services.admin_url()))?;
        Ok(sonic_rs::from_slice(&body)?)
    }
}

/// A blocking HTTP GET on loopback.
pub fn http_get(url: &str) -> Result<Vec<u8>, Error> {
    Ok(http_request(url, false)?.1)
}

/// A blocking HTTP POST with an empty body on loopback (admin calls); fails on a
/// non-2xx answer.
pub fn http_post(url: &str) -> Result<Vec<u8>, Error> {
    let (code, body) = http_request(url, true)?;
    if !(200..300).contains(&code) {
        return Err(format!("POST {url}: HTTP {code} {}", String::from_utf8_lossy(&body)).into());
    }
    Ok(body)
}

fn http_request(url: &str, post: bool) -> Result<(u32, Vec<u8>), Error> {
    let mut easy = curl::easy::Easy::new();
    easy.url(url)?;
    if post {
        easy.post(true)?;
        easy.post_field_size(0)?;
    }
    easy.timeout(Duration::from_secs(10))?;
    let mut out = Vec::new();
    {
        let mut t = easy.transfer();
        t.write_function(|d| {
            out.extend_from_slice(d);
            Ok(d.len())
        })?;
        t.perform()?;
    }
    Ok((easy.response_code()?, out))
}

/// The `dbmazz` binary built next to this tool (same profile).
pub fn dbmazz_binary() -> Result<PathBuf, Error> {
    if let Ok(p) = std::env::var("DBMAZZ_BIN") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe()?;
    let dir = exe.parent().ok_or("the tool has no directory")?;
    let bin = dir.join("dbmazz");
    if bin.is_file() {
        Ok(bin)
    } else {
        Err(format!(
            "{} not found: build it first (cargo build -p dbmazz with the same profile) or set DBMAZZ_BIN",
            bin.display()
        )
        .into())
    }
}

/// Starts `dbmazz run` with `env`.
pub fn spawn_dbmazz(env: &[(String, String)]) -> Result<DbmazzProcess, Error> {
    Ok(DbmazzProcess::spawn(&dbmazz_binary()?, &["run"], env)?)
}

/// CPU time (user + system) and memory of a process, from `/proc`.
#[derive(Copy, Clone, Debug, Default, PartialEq)]
pub struct ProcUsage {
    /// User + system CPU seconds.
    pub cpu_seconds: f64,
    /// Resident set size now, bytes.
    pub rss_bytes: u64,
    /// Peak resident set size, bytes.
    pub peak_rss_bytes: u64,
    /// Anonymous (heap, stacks) part of the RSS, bytes.
    pub rss_anon_bytes: u64,
    /// File-backed (the mapped binary and libraries) part of the RSS, bytes.
    pub rss_file_bytes: u64,
}

/// Reads `/proc/<pid>/stat` and `/proc/<pid>/status`.
pub fn proc_usage(pid: u32) -> Result<ProcUsage, Error> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may contain spaces) start after ')'.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or("malformed /proc stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> Result<f64, Error> {
        Ok(fields.get(i).ok_or("short /proc stat")?.parse::<f64>()?)
    };
    // utime and stime are fields 14 and 15 of stat, i.e. 11 and 12 after the name.
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let cpu_seconds = (ticks(11)? + ticks(12)?) / hz;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb = |key: &str| -> u64 {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
            * 1024
    };
    Ok(ProcUsage {
        cpu_seconds,
        rss_bytes: kb("VmRSS:"),
        peak_rss_bytes: kb("VmHWM:"),
        rss_anon_bytes: kb("RssAnon:"),
        rss_file_bytes: kb("RssFile:"),
    })
}

/// Formats a byte count for people.
pub fn human_bytes(b: u64) -> String {
    let b = b as f64;
    if b >= 1024.0 * 1024.0 * 1024.0 {
        format!("{:.1} GiB", b / (1024.0 * 1024.0 * 1024.0))
    } else if b >= 1024.0 * 1024.0 {
        format!("{:.1} MiB", b / (1024.0 * 1024.0))
    } else if b >= 1024.0 {
        format!("{:.1} KiB", b / 1024.0)
    } else {
        format!("{b} B")
    }
}

/// The slot's `confirmed_flush_lsn` as a number (0 when the slot has none yet).
pub async fn confirmed_lsn(pg: &tokio_postgres::Client, slot: &str) -> Result<u64, Error> {
    let v: Option<String> = pg
        .query_one(
            "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await?
        .get(0);
    Ok(parse_lsn(v.as_deref().unwrap_or("0/0")))
}

/// Parses PostgreSQL's `X/Y` LSN text (0 when it is not one).
pub fn parse_lsn(s: &str) -> u64 {
    let (hi, lo) = s.split_once('/').unwrap_or(("0", "0"));
    (u64::from_str_radix(hi, 16).unwrap_or(0) << 32) | u64::from_str_radix(lo, 16).unwrap_or(0)
}
