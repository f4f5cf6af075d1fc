//! The sink's own counters: loads, rows and per-table change counts, and the last
//! retry error. The engine's status board ([`crate::engine::status`]) reads them;
//! a sink never writes to the board or knows about the control plane.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;

use crate::error::LastError;
use crate::pipeline::batch::OpCounts;

/// Row counters of one table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TableCounters {
    /// Inserts loaded.
    pub inserts: u64,
    /// Updates loaded.
    pub updates: u64,
    /// Deletes loaded.
    pub deletes: u64,
    /// Truncates applied.
    pub truncates: u64,
}

impl From<&OpCounts> for TableCounters {
    fn from(c: &OpCounts) -> Self {
        TableCounters {
            inserts: c.inserts,
            updates: c.updates,
            deletes: c.deletes,
            truncates: c.truncates,
        }
    }
}

/// Counters a sink keeps (relaxed atomics; the per-table map sits behind a lock
/// that is taken once per table and batch and never held across an await).
#[derive(Debug, Default)]
pub struct SinkMetrics {
    /// Load requests that succeeded.
    pub loads_ok: AtomicU64,
    /// Load attempts that were retried.
    pub loads_retried: AtomicU64,
    /// Load requests that failed for good.
    pub loads_failed: AtomicU64,
    /// Rows sent to the sink (after folding).
    pub rows_loaded: AtomicU64,
    tables: Mutex<BTreeMap<String, TableCounters>>,
    /// Why the last retried attempt failed (shown in status with the engine's own
    /// errors, the newer one wins).
    pub last_retry: LastError,
}

impl SinkMetrics {
    fn tables(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, TableCounters>> {
        // Plain counters: a panic while holding the lock leaves nothing harmful.
        self.tables.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds per-table counters (once per table and batch).
    pub fn add_table_counts(&self, table: &str, delta: &TableCounters) {
        let mut t = self.tables();
        let e = t.entry(table.to_owned()).or_default();
        e.inserts += delta.inserts;
        e.updates += delta.updates;
        e.deletes += delta.deletes;
        e.truncates += delta.truncates;
    }

    /// Snapshot of per-table counters.
    pub fn table_counts(&self) -> BTreeMap<String, TableCounters> {
        self.tables().clone()
    }
}
