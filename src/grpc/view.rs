//! Turning [`SharedState`] into what the control plane shows: health verdicts,
//! status messages. Pure functions, shared by gRPC and Prometheus.
//!
//! Health rule: a pipeline is serving while it streams (CDC) or is paused on an
//! operator's request; every other stage (INIT, SETUP, DRAINING, STOPPED, FAILED)
//! is not serving. The worker is serving when every pipeline is; a worker without
//! pipelines (a standby waiting for a lease) is serving, so orchestrators do not
//! replace healthy spare workers.

use std::sync::atomic::Ordering;
use std::time::UNIX_EPOCH;

use crate::engine::status::{SharedState, Stage};
use crate::engine::PipelineHandle;
use crate::grpc::pb;
use crate::grpc::slot::SlotReport;
use crate::lsn::Lsn;

/// The protobuf stage of `stage`.
pub fn stage_pb(stage: Stage) -> pb::Stage {
    match stage {
        Stage::Init => pb::Stage::Init,
        Stage::Setup => pb::Stage::Setup,
        Stage::Cdc => pb::Stage::Cdc,
        Stage::Paused => pb::Stage::Paused,
        Stage::Draining => pb::Stage::Draining,
        Stage::Stopped => pb::Stage::Stopped,
        Stage::Failed => pb::Stage::Failed,
    }
}

/// An LSN as sent on the wire.
pub fn lsn_pb(value: u64) -> pb::Lsn {
    pb::Lsn {
        value,
        text: Lsn(value).to_string(),
    }
}

/// True for the stages in which a pipeline counts as serving.
pub fn is_serving(stage: Stage) -> bool {
    matches!(stage, Stage::Cdc | Stage::Paused)
}

/// How bad a stage is for the worker's health; the worst one is shown.
fn severity(stage: Stage) -> u8 {
    match stage {
        Stage::Cdc => 0,
        Stage::Paused => 1,
        Stage::Stopped => 2,
        Stage::Draining => 3,
        Stage::Init => 4,
        Stage::Setup => 5,
        Stage::Failed => 6,
    }
}

/// Health of one pipeline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PipelineVerdict {
    /// Job id.
    pub job_id: String,
    /// Serving or not.
    pub serving: bool,
    /// Stage.
    pub stage: Stage,
    /// Why it is not serving (empty when serving).
    pub detail: String,
}

/// Health of one pipeline from its state.
pub fn pipeline_verdict(state: &SharedState) -> PipelineVerdict {
    let stage = state.stage();
    let serving = is_serving(stage);
    let error = state.last_error().map(|e| e.message);
    let detail = if serving {
        String::new()
    } else {
        match (stage, error) {
            (_, Some(e)) => e,
            (Stage::Failed, None) => "the pipeline failed".to_owned(),
            (Stage::Init | Stage::Setup, None) => {
                "the pipeline is being set up (checking PostgreSQL and StarRocks)".to_owned()
            }
            (Stage::Draining, None) => "the pipeline is draining before it stops".to_owned(),
            (_, None) => "the pipeline is stopped".to_owned(),
        }
    };
    PipelineVerdict {
        job_id: state.job_id.clone(),
        serving,
        stage,
        detail,
    }
}

fn serving_pb(serving: bool) -> pb::ServingStatus {
    if serving {
        pb::ServingStatus::Serving
    } else {
        pb::ServingStatus::NotServing
    }
}

/// Health of the worker (all `pipelines`) or of one pipeline.
pub fn health(pipelines: &[PipelineHandle]) -> pb::HealthCheckResponse {
    let verdicts: Vec<PipelineVerdict> = pipelines
        .iter()
        .map(|h| pipeline_verdict(&h.state))
        .collect();
    let serving = verdicts.iter().all(|v| v.serving);
    let stage = verdicts
        .iter()
        .map(|v| v.stage)
        .max_by_key(|s| severity(*s))
        .map(stage_pb)
        .unwrap_or(pb::Stage::Unspecified);
    let failing: Vec<&PipelineVerdict> = verdicts.iter().filter(|v| !v.serving).collect();
    let error_detail = match failing.as_slice() {
        [] => String::new(),
        [one] if verdicts.len() == 1 => one.detail.clone(),
        many => many
            .iter()
            .map(|v| format!("job '{}' ({}): {}", v.job_id, v.stage.as_str(), v.detail))
            .collect::<Vec<_>>()
            .join("; "),
    };
    pb::HealthCheckResponse {
        status: serving_pb(serving) as i32,
        stage: stage as i32,
        error_detail,
        pipelines: verdicts
            .into_iter()
            .map(|v| pb::PipelineHealth {
                job_id: v.job_id,
                status: serving_pb(v.serving) as i32,
                stage: stage_pb(v.stage) as i32,
                error_detail: v.detail,
            })
            .collect(),
    }
}

/// Unix milliseconds of a `SystemTime` (0 before the epoch).
pub fn unix_ms(t: std::time::SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The slot part of a status.
pub fn slot_pb(report: &SlotReport) -> pb::SlotStatus {
    let checked_unix_ms = report.checked_unix_us / 1000;
    match &report.result {
        Ok(info) if !info.exists => pb::SlotStatus {
            known: true,
            missing: true,
            checked_unix_ms,
            ..Default::default()
        },
        Ok(info) => pb::SlotStatus {
            known: true,
            wal_status: info.wal_status.clone().unwrap_or_default(),
            retained_wal_bytes: info.retained_wal_bytes.unwrap_or(0),
            active: info.active,
            restart_lsn: info.restart_lsn.map(|l| lsn_pb(l.0)),
            confirmed_flush_lsn: info.confirmed_flush_lsn.map(|l| lsn_pb(l.0)),
            checked_unix_ms,
            error: String::new(),
            missing: false,
        },
        Err(e) => pb::SlotStatus {
            known: false,
            checked_unix_ms,
            error: e.to_string(),
            ..Default::default()
        },
    }
}

/// Full status of one pipeline.
pub fn pipeline_status(
    handle: &PipelineHandle,
    slot: pb::SlotStatus,
    version: &str,
) -> pb::PipelineStatus {
    let s = &handle.state;
    let load = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
    let tables = s
        .sink
        .table_counts()
        .into_iter()
        .map(|(table, c)| pb::TableRows {
            table,
            inserts: c.inserts,
            updates: c.updates,
            deletes: c.deletes,
            truncates: c.truncates,
        })
        .collect();
    pb::PipelineStatus {
        job_id: s.job_id.clone(),
        stage: stage_pb(s.stage()) as i32,
        slot: s.slot.clone(),
        publication: s.publication.clone(),
        received_lsn: Some(lsn_pb(s.pipeline.received_lsn.get().0)),
        flushed_lsn: Some(lsn_pb(s.flushed_lsn.get().0)),
        checkpoint_lsn: Some(lsn_pb(s.checkpoint_lsn.get().0)),
        confirmed_lsn: Some(lsn_pb(s.confirmed_lsn.get().0)),
        server_wal_lsn: Some(lsn_pb(s.pipeline.server_wal_lsn.get().0)),
        lag_bytes: s.lag_bytes(),
        lag_ms: s.lag_ms(),
        slot_status: Some(slot),
        tables,
        events: load(&s.pipeline.events),
        bytes: load(&s.bytes),
        transactions: load(&s.pipeline.transactions),
        batches: load(&s.batches),
        rows_loaded: load(&s.sink.rows_loaded),
        loads_ok: load(&s.sink.loads_ok),
        loads_retried: load(&s.sink.loads_retried),
        loads_failed: load(&s.sink.loads_failed),
        last_error: s.last_error().map(|e| pb::ErrorInfo {
            message: e.message,
            unix_ms: unix_ms(e.at),
        }),
        uptime_seconds: s.uptime().as_secs(),
        version: version.to_owned(),
        lease_holder: s.holder().unwrap_or_default(),
        lease_epoch: s.lease_epoch.load(Ordering::Relaxed),
        paused: handle.is_paused(),
        last_commit_unix_ms: s.last_commit_unix_us.load(Ordering::Relaxed) / 1000,
        lease_expires_unix_ms: if s.holder().is_some() {
            s.lease_expires_unix_ms.load(Ordering::Relaxed)
        } else {
            0
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn handle(job: &str, stage: Stage) -> PipelineHandle {
        let s = Arc::new(SharedState::new(job, "slot", "pub"));
        s.set_stage(stage);
        PipelineHandle::new(s)
    }

    #[test]
    fn serving_only_in_cdc_or_paused() {
        for (stage, serving) in [
            (Stage::Init, false),
            (Stage::Setup, false),
            (Stage::Cdc, true),
            (Stage::Paused, true),
            (Stage::Draining, false),
            (Stage::Stopped, false),
            (Stage::Failed, false),
        ] {
            let r = health(&[handle("a", stage)]);
            assert_eq!(
                r.status == pb::ServingStatus::Serving as i32,
                serving,
                "{stage:?}"
            );
            assert_eq!(r.stage, stage_pb(stage) as i32);
        }
    }

    #[test]
    fn no_pipelines_is_serving() {
        let r = health(&[]);
        assert_eq!(r.status, pb::ServingStatus::Serving as i32);
        assert_eq!(r.stage, pb::Stage::Unspecified as i32);
    }

    #[test]
    fn single_failure_shows_the_error_text_alone() {
        let h = handle("a", Stage::Failed);
        h.state
            .record_error("Table 'public.t' not found in PostgreSQL.");
        let r = health(std::slice::from_ref(&h));
        assert_eq!(r.error_detail, "Table 'public.t' not found in PostgreSQL.");
    }

    #[test]
    fn worst_stage_and_every_failing_job_named() {
        let a = handle("a", Stage::Cdc);
        let b = handle("b", Stage::Failed);
        b.state.record_error("boom");
        let c = handle("c", Stage::Setup);
        let r = health(&[a, b, c]);
        assert_eq!(r.status, pb::ServingStatus::NotServing as i32);
        assert_eq!(r.stage, pb::Stage::Failed as i32);
        assert!(
            r.error_detail.contains("job 'b' (FAILED): boom"),
            "{}",
            r.error_detail
        );
        assert!(
            r.error_detail.contains("job 'c' (SETUP)"),
            "{}",
            r.error_detail
        );
        assert!(!r.error_detail.contains("job 'a'"));
        assert_eq!(r.pipelines.len(), 3);
    }

    #[test]
    fn lsn_text_matches_postgres() {
        assert_eq!(lsn_pb(0x16_B374_D848).text, "16/B374D848");
    }
}
