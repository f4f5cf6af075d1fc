//! Commit → sink-acknowledgement latency at a fraction of the measured maximum rate.
//!
//! A paced writer commits transactions of 10 rows (the shape of the small-transaction
//! workload) at 25/50/75 % of the rate dbmazz reached on that workload, while dbmazz
//! streams them into the emulator (discard mode, default flush settings). For every
//! transaction:
//!
//! - its **commit time** is the pgoutput commit timestamp, read after the level from a
//!   second pgoutput slot on the same publication (`pg_logical_slot_get_binary_changes`,
//!   Commit messages: commit LSN and timestamp) — the same value dbmazz receives;
//! - its **acknowledgement time** is when the emulator answered the Stream Load that
//!   carried it (`GET /loads`): dbmazz labels name the first and last commit LSN of
//!   their batch, so the transaction with commit LSN `c` was acknowledged by the last
//!   answered load whose range holds `c`.
//!
//! Both clocks are this machine's wall clock. The latency is the difference; a
//! transaction without an acknowledged load is an error, not a gap.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use sonic_rs::{JsonContainerTrait, JsonValueTrait};

use super::endtoend::end_lsn;
use super::stats::percentile;
use super::workloads::{sink_table, small_insert, SMALL_COLUMNS_PG, SMALL_COLUMNS_SINK};
use super::Settings;
use crate::{proc_usage, spawn_dbmazz, Error, Stack};

/// Rows per transaction of the paced writer.
pub const ROWS_PER_TXN: u64 = 10;
/// Fractions of the maximum rate measured.
pub const LEVELS: [u32; 3] = [25, 50, 75];

/// Microseconds between the PostgreSQL epoch (2000-01-01) and the Unix epoch.
const PG_EPOCH_UNIX_US: i64 = 946_684_800_000_000;

/// One level.
#[derive(Clone, Debug)]
pub struct LatencyLevel {
    /// Percent of the maximum rate asked for.
    pub percent: u32,
    /// Rows/s asked for.
    pub target_rate: f64,
    /// Rows/s the writer achieved.
    pub achieved_rate: f64,
    /// Transactions measured.
    pub transactions: usize,
    /// Stream Loads that carried them.
    pub loads: usize,
    /// Median latency, ms.
    pub p50_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// Largest, ms.
    pub max_ms: f64,
    /// dbmazz CPU seconds per wall second during the level.
    pub dbmazz_cpu_share: f64,
}

/// The latency section.
#[derive(Clone, Debug)]
pub struct LatencyResult {
    /// The 100 % rate, rows/s (dbmazz on the small-transaction workload).
    pub max_rate: f64,
    /// Seconds of writing per level.
    pub seconds: f64,
    /// The levels.
    pub levels: Vec<LatencyLevel>,
}

/// The first and last commit LSN named by a dbmazz label
/// (`<prefix>_<job>_<table>_<first>_<last>_<segment>_<part>[_r<nonce>]`, LSNs as
/// `HI-LO` in hex).
pub fn label_commit_range(label: &str) -> Option<(u64, u64)> {
    let mut parts: Vec<&str> = label.rsplit('_').collect();
    if parts.first().is_some_and(|p| p.starts_with('r')) {
        parts.remove(0);
    }
    // parts: part, segment, last, first, …
    let lsn = |s: &str| -> Option<u64> {
        let (hi, lo) = s.split_once('-')?;
        Some((u64::from_str_radix(hi, 16).ok()? << 32) | u64::from_str_radix(lo, 16).ok()?)
    };
    parts.get(1)?.parse::<u64>().ok()?;
    parts.first()?.parse::<u64>().ok()?;
    Some((lsn(parts.get(3)?)?, lsn(parts.get(2)?)?))
}

/// A pgoutput Commit message: (commit LSN, commit time in Unix µs).
pub fn decode_commit(msg: &[u8]) -> Option<(u64, i64)> {
    if msg.len() < 26 || msg[0] != b'C' {
        return None;
    }
    let commit_lsn = u64::from_be_bytes(msg[2..10].try_into().ok()?);
    let ts = i64::from_be_bytes(msg[18..26].try_into().ok()?);
    Some((commit_lsn, ts + PG_EPOCH_UNIX_US))
}

/// Latencies (µs) of `commits` given the answered loads `(first, last, answered µs)`.
pub fn latencies(commits: &[(u64, i64)], loads: &[(u64, u64, i64)]) -> Result<Vec<i64>, Error> {
    // Batch ranges never overlap; a batch may have several loads: keep the last answer.
    let mut acks: BTreeMap<u64, (u64, i64)> = BTreeMap::new();
    for &(first, last, at) in loads {
        let e = acks.entry(first).or_insert((last, at));
        e.0 = e.0.max(last);
        e.1 = e.1.max(at);
    }
    let mut out = Vec::with_capacity(commits.len());
    for &(lsn, at) in commits {
        let ack = acks
            .range(..=lsn)
            .next_back()
            .filter(|(_, (last, _))| lsn <= *last)
            .map(|(_, (_, ack))| *ack)
            .ok_or_else(|| {
                format!(
                    "no acknowledged load holds the transaction committed at {:X}/{:X}",
                    lsn >> 32,
                    lsn & 0xFFFF_FFFF
                )
            })?;
        out.push(ack - at);
    }
    out.sort_unstable();
    Ok(out)
}

/// The emulator's answered loads with dbmazz label ranges.
fn answered_loads(stack: &Stack) -> Result<Vec<(u64, u64, i64)>, Error> {
    let body = crate::http_get(&format!("{}/loads", stack.services.admin_url()))?;
    let v: sonic_rs::Value = sonic_rs::from_slice(&body)?;
    if v.get("dropped").and_then(|d| d.as_u64()).unwrap_or(0) > 0 {
        return Err("the emulator's load log overflowed: shorten the latency levels".into());
    }
    let mut out = Vec::new();
    for e in v
        .get("loads")
        .and_then(|l| l.as_array())
        .ok_or("GET /loads: no loads array")?
        .iter()
    {
        if !e.get("ok").and_then(|o| o.as_bool()).unwrap_or(false) {
            return Err(format!("a load failed during the latency run: {e:?}").into());
        }
        let label = e.get("label").and_then(|l| l.as_str()).unwrap_or("");
        let (first, last) =
            label_commit_range(label).ok_or_else(|| format!("not a dbmazz label: {label}"))?;
        let at = e
            .get("answered_unix_us")
            .and_then(|a| a.as_i64())
            .ok_or("GET /loads: no answered_unix_us")?;
        out.push((first, last, at));
    }
    Ok(out)
}

async fn slot_position(pg: &tokio_postgres::Client, slot: &str) -> Result<(u64, bool), Error> {
    let r = pg
        .query_one(
            "SELECT coalesce(confirmed_flush_lsn, '0/0')::text, active_pid IS NOT NULL \
             FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await?;
    Ok((crate::parse_lsn(&r.get::<_, String>(0)), r.get(1)))
}

/// Measures the levels.
pub async fn run(
    stack: &Stack,
    max_rate: f64,
    settings: &Settings,
) -> Result<LatencyResult, Error> {
    println!("── latency (max rate {max_rate:.0} rows/s)");
    let pg = stack.pg().await?;
    pg.batch_execute(&format!(
        "CREATE TABLE w_lat ({SMALL_COLUMNS_PG}); CREATE PUBLICATION lat_pub FOR TABLE w_lat;"
    ))
    .await?;
    // A logical slot cannot be created in a transaction that wrote: one call each.
    for slot in ["lat_dbmazz", "lat_commits"] {
        pg.execute(
            "SELECT pg_create_logical_replication_slot($1, 'pgoutput')",
            &[&slot],
        )
        .await?;
    }
    stack
        .sink()
        .get_conn()
        .await?
        .query_drop(sink_table("w_lat", SMALL_COLUMNS_SINK))
        .await?;
    let env = stack.dbmazz_env(
        "public.w_lat",
        "lat_dbmazz",
        &[
            ("SOURCE_PUBLICATION_NAME", "lat_pub".to_owned()),
            ("DBMAZZ_REPLICA_IDENTITY", "keep".to_owned()),
            ("RUST_LOG", "warn".to_owned()),
        ],
    );
    let mut p = spawn_dbmazz(&env)?;
    let t = Instant::now();
    while !slot_position(&pg, "lat_dbmazz").await?.1 {
        if let Some(s) = p.try_status() {
            return Err(format!("dbmazz exited ({s}):\n{}", p.log()).into());
        }
        if t.elapsed() > Duration::from_secs(60) {
            return Err(format!("dbmazz did not start streaming within 60 s:\n{}", p.log()).into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    // The writer commits the way applications do: synchronous_commit on (the default),
    // so every commit is written and wakes the walsender at once.
    let paced = stack.pg().await?;
    let seconds = settings.latency_seconds;
    let mut next_id = 1u64;
    let mut levels = Vec::new();
    for percent in LEVELS {
        let target_rate = max_rate * f64::from(percent) / 100.0;
        let txn_rate = target_rate / ROWS_PER_TXN as f64;
        crate::http_post(&format!("{}/stats/reset", stack.services.admin_url()))?;
        let cpu0 = proc_usage(p.pid())?.cpu_seconds;
        let wall0 = Instant::now();
        let mut sent = 0u64;
        let t0 = Instant::now();
        loop {
            let elapsed = t0.elapsed().as_secs_f64();
            if elapsed >= seconds {
                break;
            }
            let due = (elapsed * txn_rate) as u64;
            let k = due.saturating_sub(sent).min(2_000);
            if k == 0 {
                tokio::time::sleep(Duration::from_millis(2)).await;
                continue;
            }
            let mut s = String::new();
            for _ in 0..k {
                let _ = write!(
                    s,
                    "BEGIN;{}COMMIT;",
                    small_insert("w_lat", next_id, next_id + ROWS_PER_TXN - 1)
                );
                next_id += ROWS_PER_TXN;
            }
            paced.batch_execute(&s).await?;
            sent += k;
        }
        let written = t0.elapsed().as_secs_f64();
        let end = end_lsn(&paced).await?;
        let t = Instant::now();
        while slot_position(&pg, "lat_dbmazz").await?.0 < end {
            if let Some(s) = p.try_status() {
                return Err(format!("dbmazz exited ({s}):\n{}", p.log()).into());
            }
            if t.elapsed() > Duration::from_secs(300) {
                return Err("dbmazz did not catch up within 5 minutes of a latency level".into());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let cpu = proc_usage(p.pid())?.cpu_seconds - cpu0;
        let wall = wall0.elapsed().as_secs_f64();
        let loads = answered_loads(stack)?;
        let rows = pg
            .query(
                "SELECT data FROM pg_logical_slot_get_binary_changes('lat_commits', \
                 $1::text::pg_lsn, NULL, 'proto_version', '1', 'publication_names', 'lat_pub') \
                 WHERE get_byte(data, 0) = 67",
                &[&format!("{:X}/{:X}", end >> 32, end & 0xFFFF_FFFF)],
            )
            .await?;
        let commits: Vec<(u64, i64)> = rows
            .iter()
            .filter_map(|r| decode_commit(r.get::<_, &[u8]>(0)))
            .collect();
        if commits.len() as u64 != sent {
            return Err(format!(
                "{} commits decoded for {sent} transactions written",
                commits.len()
            )
            .into());
        }
        let lat = latencies(&commits, &loads)?;
        let ms = |us: i64| us as f64 / 1000.0;
        let level = LatencyLevel {
            percent,
            target_rate,
            achieved_rate: (sent * ROWS_PER_TXN) as f64 / written,
            transactions: lat.len(),
            loads: loads.len(),
            p50_ms: ms(percentile(&lat, 50.0)),
            p99_ms: ms(percentile(&lat, 99.0)),
            max_ms: ms(lat.last().copied().unwrap_or(0)),
            dbmazz_cpu_share: cpu / wall,
        };
        println!(
            "   {percent:>3} %: {:>9.0} rows/s asked, {:>9.0} written; {} txns in {} loads; \
             p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
            level.target_rate,
            level.achieved_rate,
            level.transactions,
            level.loads,
            level.p50_ms,
            level.p99_ms,
            level.max_ms
        );
        levels.push(level);
    }
    p.sigterm();
    let _ = p.wait_exit(Duration::from_secs(60));
    for slot in ["lat_dbmazz", "lat_commits"] {
        pg.execute("SELECT pg_drop_replication_slot($1)", &[&slot])
            .await?;
    }
    pg.batch_execute("DROP PUBLICATION lat_pub; DROP TABLE w_lat;")
        .await?;
    Ok(LatencyResult {
        max_rate,
        seconds,
        levels,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_name_their_commit_range() {
        assert_eq!(
            label_commit_range("dbmazz_lat_dbmazz_w_lat_0-16B3A28_1-2F_0_0"),
            Some((0x16B_3A28, (1 << 32) | 0x2F))
        );
        assert_eq!(
            label_commit_range("dbmazz_job_t_A-1_A-2_3_1_r1f"),
            Some(((10 << 32) | 1, (10 << 32) | 2))
        );
        assert_eq!(label_commit_range("loadbench_17"), None);
        assert_eq!(label_commit_range("a_b_c_d"), None);
    }

    #[test]
    fn commits_decode_from_pgoutput() {
        let mut m = vec![b'C', 0];
        m.extend_from_slice(&0x1_0000_0010u64.to_be_bytes());
        m.extend_from_slice(&0x1_0000_0040u64.to_be_bytes());
        m.extend_from_slice(&1_000_000i64.to_be_bytes());
        assert_eq!(
            decode_commit(&m),
            Some((0x1_0000_0010, PG_EPOCH_UNIX_US + 1_000_000))
        );
        assert_eq!(decode_commit(&m[..20]), None);
        m[0] = b'B';
        assert_eq!(decode_commit(&m), None);
    }

    #[test]
    fn each_commit_takes_the_last_answer_of_its_batch() {
        // Batch [10, 30] answered by two loads (at 100 and 150), batch [40, 40] at 300.
        let loads = [(10, 30, 100), (10, 30, 150), (40, 40, 300)];
        let lat = latencies(&[(10, 5), (30, 20), (40, 200)], &loads).expect("all acked");
        assert_eq!(lat, vec![100, 130, 145]);
        assert!(latencies(&[(35, 0)], &loads).is_err());
        assert!(latencies(&[(50, 0)], &loads).is_err());
    }
}
