//! Load statistics served on the admin port (`GET /stats`), and the log of the
//! most recent loads (`GET /loads`): label, table, outcome and the wall-clock times a
//! load arrived and was answered, which lets a benchmark match a client's loads to
//! its own records (dbmazz labels carry the commit LSNs of their batch) and measure
//! commit → acknowledgement latency.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// Counters for one table (or all tables).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Counters {
    /// Loads that succeeded (Success or Publish Timeout).
    pub loads_ok: u64,
    /// Loads that failed (any other outcome, injected ones included).
    pub loads_failed: u64,
    /// Rows read.
    pub rows_total: u64,
    /// Rows loaded (stored, or validated in discard mode).
    pub rows_loaded: u64,
    /// Rows filtered.
    pub rows_filtered: u64,
    /// Body bytes received.
    pub bytes: u64,
}

/// What one load read and loaded.
#[derive(Debug, Clone, Copy, Default)]
pub struct Rows {
    /// Rows read.
    pub total: u64,
    /// Rows loaded.
    pub loaded: u64,
    /// Rows filtered.
    pub filtered: u64,
    /// Body bytes.
    pub bytes: u64,
}

/// Most loads the log keeps; older entries are dropped first (bounded memory under
/// any load).
pub const LOAD_LOG_CAPACITY: usize = 100_000;

/// One finished load (Stream Load or a transaction `load` call).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LoadEntry {
    /// `db.table`.
    pub table: String,
    /// The load's label.
    pub label: String,
    /// Whether it succeeded.
    pub ok: bool,
    /// Rows loaded.
    pub rows: u64,
    /// Body bytes received.
    pub bytes: u64,
    /// When the request arrived, Unix microseconds (this machine's clock).
    pub received_unix_us: i64,
    /// When its answer was ready, Unix microseconds.
    pub answered_unix_us: i64,
}

/// All statistics.
#[derive(Debug, Default)]
pub struct Stats {
    all: Counters,
    tables: BTreeMap<String, Counters>,
    busy: Duration,
    first: Option<Instant>,
    last: Option<Instant>,
    log: VecDeque<LoadEntry>,
    log_dropped: u64,
}

/// The JSON served by `GET /loads`.
#[derive(Debug, Serialize)]
pub struct LoadLog<'a> {
    /// Entries dropped because the log was full (oldest first).
    pub dropped: u64,
    /// The loads, oldest first.
    pub loads: &'a VecDeque<LoadEntry>,
}

fn unix_us(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The JSON served by `GET /stats`.
#[derive(Debug, Serialize)]
pub struct StatsReport {
    /// Whether the emulator discards rows.
    pub discard: bool,
    /// Totals.
    #[serde(flatten)]
    pub all: Counters,
    /// Seconds spent reading, parsing, converting and applying bodies.
    pub busy_seconds: f64,
    /// `rows_total / busy_seconds`: the emulator's own throughput.
    pub rows_per_sec_busy: f64,
    /// `rows_total` over the time from the first to the last load.
    pub rows_per_sec_wall: f64,
    /// Per `db.table`.
    pub tables: BTreeMap<String, Counters>,
}

impl Stats {
    /// Records one load that took `busy` until now.
    pub fn record(&mut self, table: &str, label: &str, ok: bool, rows: Rows, busy: Duration) {
        let Rows {
            total,
            loaded,
            filtered,
            bytes,
        } = rows;
        let now = Instant::now();
        let wall = SystemTime::now();
        if self.log.len() == LOAD_LOG_CAPACITY {
            self.log.pop_front();
            self.log_dropped += 1;
        }
        self.log.push_back(LoadEntry {
            table: table.to_owned(),
            label: label.to_owned(),
            ok,
            rows: loaded,
            bytes,
            received_unix_us: unix_us(wall.checked_sub(busy).unwrap_or(wall)),
            answered_unix_us: unix_us(wall),
        });
        self.first.get_or_insert(now - busy);
        self.last = Some(now);
        self.busy += busy;
        for c in [
            &mut self.all,
            self.tables.entry(table.to_owned()).or_default(),
        ] {
            if ok {
                c.loads_ok += 1;
            } else {
                c.loads_failed += 1;
            }
            c.rows_total += total;
            c.rows_loaded += loaded;
            c.rows_filtered += filtered;
            c.bytes += bytes;
        }
    }

    /// The load log.
    pub fn load_log(&self) -> LoadLog<'_> {
        LoadLog {
            dropped: self.log_dropped,
            loads: &self.log,
        }
    }

    /// A snapshot.
    pub fn report(&self, discard: bool) -> StatsReport {
        let busy = self.busy.as_secs_f64();
        let wall = match (self.first, self.last) {
            (Some(f), Some(l)) => l.duration_since(f).as_secs_f64(),
            _ => 0.0,
        };
        let rate = |secs: f64| {
            if secs > 0.0 {
                self.all.rows_total as f64 / secs
            } else {
                0.0
            }
        };
        StatsReport {
            discard,
            all: self.all.clone(),
            busy_seconds: busy,
            rows_per_sec_busy: rate(busy),
            rows_per_sec_wall: rate(wall),
            tables: self.tables.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_load_log_keeps_the_newest_entries_and_counts_the_dropped() {
        let mut s = Stats::default();
        let rows = Rows {
            total: 3,
            loaded: 2,
            filtered: 1,
            bytes: 40,
        };
        for i in 0..LOAD_LOG_CAPACITY + 5 {
            s.record(
                "db.t",
                &format!("l{i}"),
                true,
                rows,
                Duration::from_millis(2),
            );
        }
        let log = s.load_log();
        assert_eq!(log.dropped, 5);
        assert_eq!(log.loads.len(), LOAD_LOG_CAPACITY);
        let first = &log.loads[0];
        assert_eq!(first.label, "l5");
        assert_eq!((first.rows, first.bytes), (2, 40));
        assert!(first.answered_unix_us - first.received_unix_us >= 2_000);
        assert_eq!(
            s.report(true).all.rows_loaded,
            2 * (LOAD_LOG_CAPACITY as u64 + 5)
        );
    }
}
