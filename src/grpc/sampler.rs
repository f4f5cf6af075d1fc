//! Periodic metrics snapshots for `MetricsService.StreamMetrics`: counters as
//! published in [`SharedState`](crate::engine::status::SharedState), rates over the
//! period since the previous snapshot of the same stream, and the process's RSS
//! and CPU use.
//!
//! Rates are computed per stream (each client has its own sampler), so two
//! clients asking for different intervals each get rates over their own period.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Instant;

use crate::clock::unix_micros;
use crate::engine::PipelineHandle;
use crate::grpc::pb;
use crate::grpc::process::{self, ProcessSample};
use crate::grpc::view::stage_pb;

#[derive(Clone, Copy, Default)]
struct Totals {
    events: u64,
    bytes: u64,
    batches: u64,
}

/// Keeps what the previous snapshot saw, to turn counters into rates.
#[derive(Default)]
pub struct Sampler {
    previous: Option<(Instant, ProcessSample)>,
    totals: HashMap<String, Totals>,
}

impl std::fmt::Debug for Sampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sampler")
            .field("pipelines", &self.totals.len())
            .finish_non_exhaustive()
    }
}

fn rate(now: u64, before: u64, seconds: f64) -> f64 {
    if seconds <= 0.0 {
        return 0.0;
    }
    now.saturating_sub(before) as f64 / seconds
}

impl Sampler {
    /// A sampler whose first snapshot has no rates yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// A snapshot of `pipelines` now.
    pub fn snapshot(&mut self, pipelines: &[PipelineHandle]) -> pb::MetricsSnapshot {
        let now = Instant::now();
        let proc_now = process::sample();
        let (period, proc_before) = match self.previous {
            Some((at, p)) => (now.duration_since(at), Some(p)),
            None => (std::time::Duration::ZERO, None),
        };
        let seconds = period.as_secs_f64();
        let first = self.previous.is_none();
        let mut totals = HashMap::with_capacity(pipelines.len());
        let pipelines = pipelines
            .iter()
            .map(|h| {
                let s = &h.state;
                let load = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
                let t = Totals {
                    events: load(&s.pipeline.events),
                    bytes: load(&s.bytes),
                    batches: load(&s.batches),
                };
                // A pipeline that appeared since the last snapshot has no rate yet.
                let (b, secs) = match self.totals.get(&s.job_id) {
                    Some(b) if !first => (*b, seconds),
                    _ => (t, 0.0),
                };
                totals.insert(s.job_id.clone(), t);
                let holder = s.holder();
                pb::PipelineMetrics {
                    job_id: s.job_id.clone(),
                    stage: stage_pb(s.stage()) as i32,
                    events_total: t.events,
                    bytes_total: t.bytes,
                    batches_total: t.batches,
                    transactions_total: load(&s.pipeline.transactions),
                    rows_loaded_total: load(&s.sink.rows_loaded),
                    loads_ok_total: load(&s.sink.loads_ok),
                    loads_retried_total: load(&s.sink.loads_retried),
                    loads_failed_total: load(&s.sink.loads_failed),
                    events_per_second: rate(t.events, b.events, secs),
                    bytes_per_second: rate(t.bytes, b.bytes, secs),
                    batches_per_second: rate(t.batches, b.batches, secs),
                    lag_bytes: s.lag_bytes(),
                    lag_ms: s.lag_ms(),
                    lease_holder: holder.clone().unwrap_or_default(),
                    lease_epoch: s.lease_epoch.load(Ordering::Relaxed),
                    lease_expires_unix_ms: if holder.is_some() {
                        s.lease_expires_unix_ms.load(Ordering::Relaxed)
                    } else {
                        0
                    },
                }
            })
            .collect();
        self.totals = totals;
        self.previous = Some((now, proc_now));
        pb::MetricsSnapshot {
            unix_ms: unix_micros() / 1000,
            period_ms: u64::try_from(period.as_millis()).unwrap_or(u64::MAX),
            pipelines,
            process: Some(pb::ProcessMetrics {
                available: proc_now.available,
                rss_bytes: proc_now.rss_bytes,
                cpu_seconds_total: proc_now.cpu_seconds,
                cpu_percent: proc_before
                    .map(|b| process::cpu_percent(&b, &proc_now, seconds))
                    .unwrap_or(0.0),
                threads: proc_now.threads,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::status::SharedState;
    use std::sync::Arc;

    #[test]
    fn rates_cover_the_period_between_snapshots() {
        let state = Arc::new(SharedState::new("j", "s", "p"));
        let h = PipelineHandle::new(state.clone());
        let mut s = Sampler::new();
        state.pipeline.events.store(100, Ordering::Relaxed);
        let first = s.snapshot(std::slice::from_ref(&h));
        assert_eq!(first.period_ms, 0);
        assert_eq!(first.pipelines[0].events_total, 100);
        assert_eq!(first.pipelines[0].events_per_second, 0.0);
        std::thread::sleep(std::time::Duration::from_millis(100));
        state.pipeline.events.store(300, Ordering::Relaxed);
        state.bytes.store(1000, Ordering::Relaxed);
        let second = s.snapshot(std::slice::from_ref(&h));
        let p = &second.pipelines[0];
        assert_eq!(p.events_total, 300);
        let secs = second.period_ms as f64 / 1000.0;
        assert!(second.period_ms >= 100);
        // 200 events over the period (ms rounding aside).
        assert!((p.events_per_second * secs - 200.0).abs() < 5.0, "{p:?}");
        assert!(p.bytes_per_second > 0.0);
    }

    #[test]
    fn new_pipeline_starts_without_a_rate() {
        let a = PipelineHandle::new(Arc::new(SharedState::new("a", "s", "p")));
        let b_state = Arc::new(SharedState::new("b", "s", "p"));
        b_state.pipeline.events.store(5000, Ordering::Relaxed);
        let b = PipelineHandle::new(b_state);
        let mut s = Sampler::new();
        s.snapshot(std::slice::from_ref(&a));
        let snap = s.snapshot(&[a, b]);
        assert_eq!(snap.pipelines[1].events_per_second, 0.0);
        assert_eq!(snap.pipelines[1].events_total, 5000);
    }
}
