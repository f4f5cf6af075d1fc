//! Taking a job over from a previous holder, after its lease was acquired and the
//! checkpoint row claimed with the new epoch:
//!
//! 1. a walsender still attached to the job's slot (the previous holder, dead,
//!    frozen or not yet aware that it lost the lease) is terminated with
//!    `pg_terminate_backend(active_pid)`;
//! 2. the slot is polled until no walsender is attached, so the engine's setup finds
//!    it free instead of failing with "slot in use".
//!
//! Only the lease holder does this, so it never disturbs a legitimate holder. The
//! previous holder cannot move the checkpoint any more (the claimed row is fenced
//! by the new epoch), and without its walsender it cannot confirm the slot either.
//!
//! The StarRocks sink loads with Stream Load's single-request API (no prepared
//! transactions), so there are no half-open loads to roll back: an in-flight load
//! of the previous holder either lands (and `merge_condition` on
//! `dbmazz_cdc_version` keeps it from moving rows backwards) or does not.

use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::config::Secret;
use crate::postgres::slot;

/// What the takeover found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct TakeoverReport {
    /// Walsender pids that were terminated.
    pub terminated: Vec<i32>,
    /// False when a walsender was still attached when the wait ended.
    pub slot_free: bool,
}

/// Terminates the walsender attached to `slot` (if any) and waits up to `wait` for
/// the slot to be free. Errors are returned as text for the log: the engine's setup
/// checks the slot again and retries on its own.
pub async fn free_slot(
    source_url: &Secret,
    slot_name: &str,
    wait: Duration,
    cancel: &CancellationToken,
) -> Result<TakeoverReport, String> {
    let client = crate::postgres::connect(source_url)
        .await
        .map_err(|e| format!("connecting to the source: {e}"))?;
    let mut report = TakeoverReport::default();
    let start = Instant::now();
    loop {
        let row = slot::read(&client, slot_name)
            .await
            .map_err(|e| format!("reading pg_replication_slots: {e}"))?;
        let Some(pid) = row.and_then(|r| r.active_pid) else {
            report.slot_free = true;
            return Ok(report);
        };
        if !report.terminated.contains(&pid) {
            let done = slot::terminate_walsender(&client, pid).await.map_err(|e| {
                format!(
                    "terminating walsender {pid} of slot '{slot_name}': {e} (the role needs \
                         to own that backend or have pg_signal_backend)"
                )
            })?;
            tracing::info!(
                slot = slot_name,
                pid,
                terminated = done,
                "terminated the previous walsender of the slot"
            );
            report.terminated.push(pid);
        }
        if start.elapsed() >= wait {
            return Ok(report);
        }
        tokio::select! {
            _ = cancel.cancelled() => return Ok(report),
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
    }
}
