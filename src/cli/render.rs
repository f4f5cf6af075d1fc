//! What the control commands print: the `dbmazz status` table and JSON document,
//! control results, health lines, and the human units they use.

use serde::Serialize;

use crate::grpc::client::ControlAction;
use crate::grpc::pb;

/// Upper-case stage name of a wire stage value.
pub fn stage_name(stage: i32) -> &'static str {
    match pb::Stage::try_from(stage) {
        Ok(pb::Stage::Init) => "INIT",
        Ok(pb::Stage::Setup) => "SETUP",
        Ok(pb::Stage::Cdc) => "CDC",
        Ok(pb::Stage::Paused) => "PAUSED",
        Ok(pb::Stage::Draining) => "DRAINING",
        Ok(pb::Stage::Stopped) => "STOPPED",
        Ok(pb::Stage::Failed) => "FAILED",
        Ok(pb::Stage::Unspecified) | Err(_) => "-",
    }
}

fn lsn_text(l: &Option<pb::Lsn>) -> String {
    l.as_ref()
        .map(|l| l.text.clone())
        .unwrap_or_else(|| "-".into())
}

/// 1536 → "1.5 KiB".
pub fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < UNITS.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}

/// 850 → "850ms", 3200 → "3.2s", 312000 → "5m12s", 7380000 → "2h03m".
pub fn human_ms(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else if ms < 3_600_000 {
        format!("{}m{:02}s", ms / 60_000, (ms / 1000) % 60)
    } else if ms < 86_400_000 {
        format!("{}h{:02}m", ms / 3_600_000, (ms / 60_000) % 60)
    } else {
        format!("{}d{:02}h", ms / 86_400_000, (ms / 3_600_000) % 24)
    }
}

fn slot_text(p: &pb::PipelineStatus) -> String {
    match &p.slot_status {
        Some(s) if s.missing => format!("{} (MISSING)", p.slot),
        Some(s) if s.known => format!(
            "{} ({}, {})",
            p.slot,
            if s.wal_status.is_empty() {
                "?"
            } else {
                &s.wal_status
            },
            human_bytes(s.retained_wal_bytes)
        ),
        _ => format!("{} (?)", p.slot),
    }
}

fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(|r| r.len()).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, cell)| {
                let w = widths.get(i).copied().unwrap_or(0);
                format!("{cell:<w$}")
            })
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// The human-readable `dbmazz status` output; `now_ms` is the current Unix time in
/// milliseconds (for "… ago").
pub fn render_status_table(resp: &pb::ListPipelinesResponse, now_ms: i64) -> String {
    let mut out = format!(
        "dbmazz {} · control plane up {} · {} pipeline{}\n",
        resp.version,
        human_ms(resp.uptime_seconds.saturating_mul(1000)),
        resp.pipelines.len(),
        if resp.pipelines.len() == 1 { "" } else { "s" }
    );
    if resp.pipelines.is_empty() {
        out.push_str("\nno pipeline runs in this worker (waiting for a lease?)\n");
        return out;
    }
    let mut rows = vec![[
        "JOB",
        "STAGE",
        "LAG",
        "LAG BYTES",
        "RECEIVED",
        "CHECKPOINT",
        "CONFIRMED",
        "SLOT (WAL)",
        "ROWS",
        "LOADS OK/RETRY/FAIL",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect::<Vec<_>>()];
    for p in &resp.pipelines {
        rows.push(vec![
            p.job_id.clone(),
            stage_name(p.stage).to_owned(),
            if p.last_commit_unix_ms > 0 {
                human_ms(p.lag_ms)
            } else {
                "-".into()
            },
            human_bytes(p.lag_bytes),
            lsn_text(&p.received_lsn),
            lsn_text(&p.checkpoint_lsn),
            lsn_text(&p.confirmed_lsn),
            slot_text(p),
            p.rows_loaded.to_string(),
            format!("{}/{}/{}", p.loads_ok, p.loads_retried, p.loads_failed),
        ]);
    }
    out.push('\n');
    out.push_str(&table(&rows));
    for p in &resp.pipelines {
        let mut lines = Vec::new();
        if !p.tables.is_empty() {
            let mut t = vec![vec![
                "  TABLE".to_owned(),
                "INSERTS".to_owned(),
                "UPDATES".to_owned(),
                "DELETES".to_owned(),
                "TRUNCATES".to_owned(),
            ]];
            for r in &p.tables {
                t.push(vec![
                    format!("  {}", r.table),
                    r.inserts.to_string(),
                    r.updates.to_string(),
                    r.deletes.to_string(),
                    r.truncates.to_string(),
                ]);
            }
            lines.push(table(&t));
        }
        if let Some(s) = &p.slot_status {
            if !s.known && !s.error.is_empty() {
                lines.push(format!("  slot: unknown ({})\n", s.error));
            }
        }
        if !p.lease_holder.is_empty() {
            let left = p.lease_expires_unix_ms.saturating_sub(now_ms);
            lines.push(format!(
                "  lease: {} (epoch {}, expires in {})\n",
                p.lease_holder,
                p.lease_epoch,
                human_ms(u64::try_from(left).unwrap_or(0))
            ));
        }
        if let Some(e) = &p.last_error {
            let ago = u64::try_from(now_ms.saturating_sub(e.unix_ms)).unwrap_or(0);
            lines.push(format!(
                "  last error ({} ago): {}\n",
                human_ms(ago),
                e.message
            ));
        }
        if !lines.is_empty() {
            out.push_str(&format!("\n{}:\n", p.job_id));
            for l in lines {
                out.push_str(&l);
            }
        }
    }
    out
}

#[derive(Serialize)]
struct LsnJson {
    value: u64,
    text: String,
}

fn lsn_json(l: &Option<pb::Lsn>) -> Option<LsnJson> {
    l.as_ref().map(|l| LsnJson {
        value: l.value,
        text: l.text.clone(),
    })
}

#[derive(Serialize)]
struct SlotJson {
    known: bool,
    missing: bool,
    wal_status: String,
    retained_wal_bytes: u64,
    active: bool,
    restart_lsn: Option<LsnJson>,
    confirmed_flush_lsn: Option<LsnJson>,
    checked_unix_ms: i64,
    error: String,
}

#[derive(Serialize)]
struct TableJson {
    table: String,
    inserts: u64,
    updates: u64,
    deletes: u64,
    truncates: u64,
}

#[derive(Serialize)]
struct ErrorJson {
    message: String,
    unix_ms: i64,
}

#[derive(Serialize)]
struct PipelineJson {
    job_id: String,
    stage: &'static str,
    paused: bool,
    slot: String,
    publication: String,
    received_lsn: Option<LsnJson>,
    flushed_lsn: Option<LsnJson>,
    checkpoint_lsn: Option<LsnJson>,
    confirmed_lsn: Option<LsnJson>,
    server_wal_lsn: Option<LsnJson>,
    lag_bytes: u64,
    lag_ms: u64,
    last_commit_unix_ms: i64,
    slot_status: Option<SlotJson>,
    tables: Vec<TableJson>,
    events: u64,
    bytes: u64,
    transactions: u64,
    batches: u64,
    rows_loaded: u64,
    loads_ok: u64,
    loads_retried: u64,
    loads_failed: u64,
    last_error: Option<ErrorJson>,
    uptime_seconds: u64,
    lease_holder: String,
    lease_epoch: i64,
    lease_expires_unix_ms: i64,
}

#[derive(Serialize)]
struct StatusJson {
    version: String,
    uptime_seconds: u64,
    pipelines: Vec<PipelineJson>,
}

/// The `dbmazz status --json` document (stable field names, stages as text).
pub fn status_json(resp: &pb::ListPipelinesResponse) -> Result<String, sonic_rs::Error> {
    let doc = StatusJson {
        version: resp.version.clone(),
        uptime_seconds: resp.uptime_seconds,
        pipelines: resp
            .pipelines
            .iter()
            .map(|p| PipelineJson {
                job_id: p.job_id.clone(),
                stage: stage_name(p.stage),
                paused: p.paused,
                slot: p.slot.clone(),
                publication: p.publication.clone(),
                received_lsn: lsn_json(&p.received_lsn),
                flushed_lsn: lsn_json(&p.flushed_lsn),
                checkpoint_lsn: lsn_json(&p.checkpoint_lsn),
                confirmed_lsn: lsn_json(&p.confirmed_lsn),
                server_wal_lsn: lsn_json(&p.server_wal_lsn),
                lag_bytes: p.lag_bytes,
                lag_ms: p.lag_ms,
                last_commit_unix_ms: p.last_commit_unix_ms,
                slot_status: p.slot_status.as_ref().map(|s| SlotJson {
                    known: s.known,
                    missing: s.missing,
                    wal_status: s.wal_status.clone(),
                    retained_wal_bytes: s.retained_wal_bytes,
                    active: s.active,
                    restart_lsn: lsn_json(&s.restart_lsn),
                    confirmed_flush_lsn: lsn_json(&s.confirmed_flush_lsn),
                    checked_unix_ms: s.checked_unix_ms,
                    error: s.error.clone(),
                }),
                tables: p
                    .tables
                    .iter()
                    .map(|t| TableJson {
                        table: t.table.clone(),
                        inserts: t.inserts,
                        updates: t.updates,
                        deletes: t.deletes,
                        truncates: t.truncates,
                    })
                    .collect(),
                events: p.events,
                bytes: p.bytes,
                transactions: p.transactions,
                batches: p.batches,
                rows_loaded: p.rows_loaded,
                loads_ok: p.loads_ok,
                loads_retried: p.loads_retried,
                loads_failed: p.loads_failed,
                last_error: p.last_error.as_ref().map(|e| ErrorJson {
                    message: e.message.clone(),
                    unix_ms: e.unix_ms,
                }),
                uptime_seconds: p.uptime_seconds,
                lease_holder: p.lease_holder.clone(),
                lease_epoch: p.lease_epoch,
                lease_expires_unix_ms: p.lease_expires_unix_ms,
            })
            .collect(),
    };
    sonic_rs::to_string_pretty(&doc)
}

/// Result of a control command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlOutcome {
    /// Text to print.
    pub text: String,
    /// True when every pipeline reached the requested stage (or no wait was
    /// asked for).
    pub ok: bool,
}

/// Text for a control response.
pub fn render_control(
    action: ControlAction,
    resp: &pb::ControlResponse,
    waited: bool,
) -> ControlOutcome {
    if resp.pipelines.is_empty() {
        return ControlOutcome {
            text: format!("{}: no pipeline runs in this worker\n", action.verb()),
            ok: true,
        };
    }
    let mut ok = true;
    let mut text = String::new();
    for r in &resp.pipelines {
        let state = if !waited {
            format!(
                "requested ({} → {})",
                stage_name(r.stage_before),
                action.goal()
            )
        } else if r.reached {
            format!("{} → {}", stage_name(r.stage_before), stage_name(r.stage))
        } else {
            ok = false;
            format!(
                "NOT {} within the wait: now {}",
                action.goal(),
                stage_name(r.stage)
            )
        };
        text.push_str(&format!(
            "{} {}: {} (checkpoint {}, confirmed {})\n",
            action.verb(),
            r.job_id,
            state,
            lsn_text(&r.checkpoint_lsn),
            lsn_text(&r.confirmed_lsn)
        ));
    }
    ControlOutcome { text, ok }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_units() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(16 * 1024 * 1024), "16.0 MiB");
        assert_eq!(human_ms(850), "850ms");
        assert_eq!(human_ms(3200), "3.2s");
        assert_eq!(human_ms(312_000), "5m12s");
        assert_eq!(human_ms(7_380_000), "2h03m");
        assert_eq!(human_ms(90_000_000), "1d01h");
    }

    fn sample() -> pb::ListPipelinesResponse {
        pb::ListPipelinesResponse {
            version: "0.1.0".into(),
            uptime_seconds: 7380,
            pipelines: vec![pb::PipelineStatus {
                job_id: "orders".into(),
                stage: pb::Stage::Failed as i32,
                slot: "dbmazz_orders".into(),
                received_lsn: Some(pb::Lsn {
                    value: 0x1_0000_0010,
                    text: "1/10".into(),
                }),
                slot_status: Some(pb::SlotStatus {
                    known: true,
                    wal_status: "reserved".into(),
                    retained_wal_bytes: 2048,
                    ..Default::default()
                }),
                tables: vec![pb::TableRows {
                    table: "public.orders".into(),
                    inserts: 10,
                    ..Default::default()
                }],
                last_error: Some(pb::ErrorInfo {
                    message: "Table 'public.orders' has no primary key.".into(),
                    unix_ms: 1_000,
                }),
                ..Default::default()
            }],
        }
    }

    #[test]
    fn table_shows_every_pipeline_and_its_error() {
        let t = render_status_table(&sample(), 13_000);
        assert!(t.contains("orders"), "{t}");
        assert!(t.contains("FAILED"), "{t}");
        assert!(t.contains("1/10"), "{t}");
        assert!(t.contains("dbmazz_orders (reserved, 2.0 KiB)"), "{t}");
        assert!(t.contains("public.orders"), "{t}");
        assert!(
            t.contains("last error (12.0s ago): Table 'public.orders' has no primary key."),
            "{t}"
        );
    }

    #[test]
    fn json_is_parseable_with_text_stages() {
        let j = status_json(&sample()).expect("json");
        let v: sonic_rs::Value = sonic_rs::from_str(&j).expect("parse");
        use sonic_rs::JsonValueTrait;
        assert_eq!(v["pipelines"][0]["stage"].as_str(), Some("FAILED"));
        assert_eq!(
            v["pipelines"][0]["received_lsn"]["text"].as_str(),
            Some("1/10")
        );
        assert_eq!(v["pipelines"][0]["tables"][0]["inserts"].as_u64(), Some(10));
    }

    #[test]
    fn control_text_reports_unreached_goals() {
        let resp = pb::ControlResponse {
            pipelines: vec![pb::ControlResult {
                job_id: "a".into(),
                stage_before: pb::Stage::Cdc as i32,
                stage: pb::Stage::Draining as i32,
                reached: false,
                ..Default::default()
            }],
        };
        let o = render_control(ControlAction::Drain, &resp, true);
        assert!(!o.ok);
        assert!(o.text.contains("NOT STOPPED"), "{}", o.text);
        let o = render_control(ControlAction::Drain, &resp, false);
        assert!(o.ok);
    }
}
