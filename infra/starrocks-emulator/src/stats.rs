//! Load statistics served on the admin port (`GET /stats`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

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

/// All statistics.
#[derive(Debug, Default)]
pub struct Stats {
    all: Counters,
    tables: BTreeMap<String, Counters>,
    busy: Duration,
    first: Option<Instant>,
    last: Option<Instant>,
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
    /// Records one load.
    pub fn record(&mut self, table: &str, ok: bool, rows: Rows, busy: Duration) {
        let Rows {
            total,
            loaded,
            filtered,
            bytes,
        } = rows;
        let now = Instant::now();
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
