//! Replication slot health as PostgreSQL sees it (`pg_replication_slots`).
//!
//! `SharedState` knows what the pipeline did; only the server knows whether the
//! slot still holds its WAL (`wal_status`) and how much WAL it keeps on disk. The
//! control plane asks through a [`SlotInspector`] that the caller provides
//! ([`PgSlotInspector`] for the real thing), and [`SlotCache`] keeps each answer for
//! a few seconds so a busy scraper or a `watch dbmazz status` costs PostgreSQL at
//! most one small query per slot per period. A slow or failing server never blocks
//! a status call for long: each inspection has a deadline and failures are shown as
//! "unknown, because …" instead of an error for the whole call.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use crate::clock::unix_micros;
use crate::config::Secret;
use crate::lsn::Lsn;
use crate::postgres::slot::{self, SlotError};

/// What PostgreSQL reports about one slot.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SlotInfo {
    /// False when no slot of that name exists.
    pub exists: bool,
    /// `reserved`, `extended`, `unreserved` or `lost`; `None` when the server does
    /// not report it.
    pub wal_status: Option<String>,
    /// Whether a walsender is attached.
    pub active: bool,
    /// Oldest WAL the slot still needs.
    pub restart_lsn: Option<Lsn>,
    /// What the consumer confirmed.
    pub confirmed_flush_lsn: Option<Lsn>,
    /// Current WAL position minus `restart_lsn`: WAL kept on disk for the slot.
    pub retained_wal_bytes: Option<u64>,
}

/// Why a slot could not be inspected. The text never contains a connection string.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SlotInspectError(pub String);

/// Boxed future returned by [`SlotInspector::inspect`].
pub type InspectFuture<'a> =
    Pin<Box<dyn Future<Output = Result<SlotInfo, SlotInspectError>> + Send + 'a>>;

/// Looks up a replication slot for the control plane.
pub trait SlotInspector: Send + Sync + 'static {
    /// Reports on `slot`, which belongs to pipeline `job_id`.
    fn inspect<'a>(&'a self, job_id: &'a str, slot: &'a str) -> InspectFuture<'a>;
}

/// Queries `pg_replication_slots` on each pipeline's source database.
///
/// Register the source URL of every pipeline with [`PgSlotInspector::set_source`]
/// (the URL stays inside; errors and logs never show it). One SQL connection per
/// source is opened on first use and reopened after a failure.
#[derive(Default)]
pub struct PgSlotInspector {
    sources: RwLock<HashMap<String, Secret>>,
    /// One connection per job, each behind its own lock so a slow server only
    /// delays its own pipeline's inspection.
    clients: Mutex<HashMap<String, ClientSlot>>,
}

type ClientSlot = Arc<tokio::sync::Mutex<Option<tokio_postgres::Client>>>;

impl std::fmt::Debug for PgSlotInspector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let jobs: Vec<String> = self
            .sources
            .read()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        f.debug_struct("PgSlotInspector")
            .field("jobs", &jobs)
            .finish_non_exhaustive()
    }
}

impl PgSlotInspector {
    /// An inspector that knows no source yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets (or replaces) the source database URL of pipeline `job_id`.
    pub fn set_source(&self, job_id: &str, url: impl Into<Secret>) {
        if let Ok(mut m) = self.sources.write() {
            m.insert(job_id.to_owned(), url.into());
        }
        // A new URL must not reuse a connection to the old one.
        self.clients
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(job_id);
    }

    /// Forgets pipeline `job_id`.
    pub fn remove_source(&self, job_id: &str) {
        if let Ok(mut m) = self.sources.write() {
            m.remove(job_id);
        }
        self.clients
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(job_id);
    }

    async fn query(&self, job_id: &str, slot: &str) -> Result<SlotInfo, SlotInspectError> {
        let url = self
            .sources
            .read()
            .ok()
            .and_then(|m| m.get(job_id).cloned())
            .ok_or_else(|| {
                SlotInspectError(format!("no source database registered for job '{job_id}'"))
            })?;
        let cell = {
            let mut m = self.clients.lock().unwrap_or_else(|p| p.into_inner());
            m.entry(job_id.to_owned()).or_default().clone()
        };
        let mut cell = cell.lock().await;
        let client = match cell.take() {
            Some(c) if !c.is_closed() => c,
            _ => crate::postgres::connect(&url).await.map_err(|e| {
                SlotInspectError(format!("cannot connect to the source database: {e}"))
            })?,
        };
        let read = slot::read(&client, slot).await;
        if !matches!(read, Err(SlotError::Query(_))) {
            *cell = Some(client);
        }
        drop(cell);
        let row = read.map_err(|e| match e {
            SlotError::Query(m) => {
                SlotInspectError(format!("querying pg_replication_slots failed: {m}"))
            }
            other => SlotInspectError(other.to_string()),
        })?;
        Ok(match row {
            None => SlotInfo::default(),
            Some(r) => SlotInfo {
                exists: true,
                wal_status: r.wal_status,
                active: r.active,
                restart_lsn: r.restart_lsn,
                confirmed_flush_lsn: r.confirmed_flush_lsn,
                retained_wal_bytes: r.retained_wal_bytes,
            },
        })
    }
}

impl SlotInspector for PgSlotInspector {
    fn inspect<'a>(&'a self, job_id: &'a str, slot: &'a str) -> InspectFuture<'a> {
        Box::pin(self.query(job_id, slot))
    }
}

/// One cached inspection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlotReport {
    /// The answer, or why there is none.
    pub result: Result<SlotInfo, SlotInspectError>,
    /// When it was obtained (Unix µs).
    pub checked_unix_us: i64,
}

type Entry = Arc<tokio::sync::Mutex<Option<(Instant, SlotReport)>>>;

/// Keeps slot inspections for `ttl`, one in flight per pipeline at a time.
pub struct SlotCache {
    inspector: Option<Arc<dyn SlotInspector>>,
    ttl: Duration,
    deadline: Duration,
    entries: Mutex<HashMap<String, Entry>>,
}

impl std::fmt::Debug for SlotCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlotCache")
            .field("configured", &self.inspector.is_some())
            .field("ttl", &self.ttl)
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

/// How long an inspection result is reused.
pub const DEFAULT_SLOT_TTL: Duration = Duration::from_secs(5);
/// How long one inspection may take before it is reported as timed out.
pub const DEFAULT_SLOT_DEADLINE: Duration = Duration::from_secs(3);

impl SlotCache {
    /// A cache over `inspector` (`None`: slots are reported as not inspected).
    pub fn new(
        inspector: Option<Arc<dyn SlotInspector>>,
        ttl: Duration,
        deadline: Duration,
    ) -> Self {
        SlotCache {
            inspector,
            ttl,
            deadline,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The report for `slot` of `job_id`, from the cache when it is fresh enough.
    pub async fn get(&self, job_id: &str, slot: &str) -> SlotReport {
        let Some(inspector) = &self.inspector else {
            return SlotReport {
                result: Err(SlotInspectError(
                    "slot inspection is not configured on this worker".into(),
                )),
                checked_unix_us: 0,
            };
        };
        let entry = {
            let mut m = self.entries.lock().unwrap_or_else(|p| p.into_inner());
            m.entry(format!("{job_id}\u{0}{slot}")).or_default().clone()
        };
        // The per-slot async lock makes concurrent callers share one query.
        let mut guard = entry.lock().await;
        if let Some((at, report)) = guard.as_ref() {
            if at.elapsed() < self.ttl {
                return report.clone();
            }
        }
        let result =
            match tokio::time::timeout(self.deadline, inspector.inspect(job_id, slot)).await {
                Ok(r) => r,
                Err(_) => Err(SlotInspectError(format!(
                    "PostgreSQL did not answer about the slot within {} ms",
                    self.deadline.as_millis()
                ))),
            };
        if let Err(e) = &result {
            tracing::debug!(job = %job_id, slot = %slot, error = %e, "slot inspection failed");
        }
        let report = SlotReport {
            result,
            checked_unix_us: unix_micros(),
        };
        *guard = Some((Instant::now(), report.clone()));
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    struct Counting(AtomicU32);

    impl SlotInspector for Counting {
        fn inspect<'a>(&'a self, _job: &'a str, _slot: &'a str) -> InspectFuture<'a> {
            Box::pin(async move {
                let n = self.0.fetch_add(1, Ordering::SeqCst);
                Ok(SlotInfo {
                    exists: true,
                    retained_wal_bytes: Some(u64::from(n)),
                    ..SlotInfo::default()
                })
            })
        }
    }

    struct Hanging;

    impl SlotInspector for Hanging {
        fn inspect<'a>(&'a self, _job: &'a str, _slot: &'a str) -> InspectFuture<'a> {
            Box::pin(std::future::pending())
        }
    }

    #[tokio::test]
    async fn cached_within_ttl_then_refreshed() {
        let insp = Arc::new(Counting(AtomicU32::new(0)));
        let cache = SlotCache::new(
            Some(insp.clone()),
            Duration::from_millis(200),
            Duration::from_secs(1),
        );
        let a = cache.get("j", "s").await;
        let b = cache.get("j", "s").await;
        assert_eq!(a, b);
        assert_eq!(insp.0.load(Ordering::SeqCst), 1);
        let other = cache.get("k", "s").await;
        assert_eq!(insp.0.load(Ordering::SeqCst), 2);
        assert_eq!(other.result.map(|i| i.retained_wal_bytes), Ok(Some(1)));
        tokio::time::sleep(Duration::from_millis(250)).await;
        let c = cache.get("j", "s").await;
        assert_eq!(c.result.map(|i| i.retained_wal_bytes), Ok(Some(2)));
    }

    #[tokio::test]
    async fn a_hanging_server_is_reported_not_waited_for() {
        let cache = SlotCache::new(
            Some(Arc::new(Hanging)),
            Duration::from_secs(5),
            Duration::from_millis(50),
        );
        let r = cache.get("j", "s").await;
        let e = r.result.expect_err("must time out");
        assert!(e.0.contains("within 50 ms"), "{e}");
    }

    #[tokio::test]
    async fn without_inspector_says_so() {
        let cache = SlotCache::new(None, DEFAULT_SLOT_TTL, DEFAULT_SLOT_DEADLINE);
        let r = cache.get("j", "s").await;
        assert!(r
            .result
            .expect_err("not configured")
            .0
            .contains("not configured"));
    }
}
