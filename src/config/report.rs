//! The effective configuration as people read it (`dbmazz check`), secrets redacted.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::registry;
use super::{
    DeleteMode, JobConfig, LeaseBackend, Loaded, LogFormat, Origin, ReplicaIdentityMode,
    TruncateMode, WorkerConfig,
};

fn yes_no(b: bool) -> String {
    b.to_string()
}

impl WorkerConfig {
    /// Effective values by variable name, secrets redacted (for `dbmazz check`, status).
    pub fn describe(&self) -> Vec<(&'static str, String)> {
        use registry as v;
        let tls = self.grpc_tls.as_ref();
        vec![
            (v::WORKER_ID.name, self.worker_id.clone()),
            (
                v::LOG_FORMAT.name,
                match self.log_format {
                    LogFormat::Human => "human",
                    LogFormat::Json => "json",
                }
                .to_owned(),
            ),
            (v::GRPC_ADDR.name, self.grpc_addr.to_string()),
            (
                v::METRICS_ADDR.name,
                self.metrics_addr
                    .map_or_else(|| "off".to_owned(), |a| a.to_string()),
            ),
            (
                v::CONTROL_TOKEN.name,
                self.control_token
                    .as_ref()
                    .map_or_else(|| "unset".to_owned(), ToString::to_string),
            ),
            (v::CONTROL_INSECURE.name, yes_no(self.control_insecure)),
            (
                v::STATUS_REQUIRE_TOKEN.name,
                yes_no(self.status_requires_token),
            ),
            (
                v::GRPC_TLS_CERT.name,
                tls.map_or_else(|| "unset".to_owned(), |t| t.cert.display().to_string()),
            ),
            (
                v::GRPC_TLS_KEY.name,
                tls.map_or_else(|| "unset".to_owned(), |t| t.key.display().to_string()),
            ),
            (
                v::LEASE_BACKEND.name,
                match self.lease.backend {
                    LeaseBackend::None => "none",
                    LeaseBackend::Postgres => "postgres",
                    LeaseBackend::Redis => "redis",
                }
                .to_owned(),
            ),
            (
                v::LEASE_URL.name,
                self.lease
                    .url
                    .as_ref()
                    .map_or_else(|| "unset".to_owned(), ToString::to_string),
            ),
            (v::LEASE_TTL_MS.name, self.lease.ttl.as_millis().to_string()),
            (
                v::MAX_JOBS_PER_WORKER.name,
                self.max_jobs_per_worker
                    .map_or_else(|| "unlimited".to_owned(), |n| n.to_string()),
            ),
            (
                v::SHUTDOWN_TIMEOUT_MS.name,
                self.shutdown_timeout.as_millis().to_string(),
            ),
            (
                v::JOBS_FILE.name,
                self.jobs_file
                    .as_ref()
                    .map_or_else(|| "unset".to_owned(), |p| p.display().to_string()),
            ),
        ]
    }
}

impl JobConfig {
    /// Effective values by variable name, secrets redacted (for `dbmazz check`, status).
    pub fn describe(&self) -> Vec<(&'static str, String)> {
        use registry as v;
        let tables: Vec<String> = self.tables.iter().map(ToString::to_string).collect();
        let map: Vec<String> = self
            .sink
            .table_map
            .iter()
            .map(|(s, t)| format!("{s}={t}"))
            .collect();
        vec![
            (v::JOB_ID.name, self.id.clone()),
            (v::SOURCE_URL.name, self.source_url.to_string()),
            (v::TABLES.name, tables.join(", ")),
            (v::SLOT_NAME.name, self.slot_name.clone()),
            (v::PUBLICATION_NAME.name, self.publication_name.clone()),
            (
                v::REPLICA_IDENTITY.name,
                match self.replica_identity {
                    ReplicaIdentityMode::Full => "full",
                    ReplicaIdentityMode::Keep => "keep",
                }
                .to_owned(),
            ),
            (v::SINK_URL.name, self.sink.url.to_string()),
            (v::SINK_MYSQL_HOST.name, self.sink.mysql_host.clone()),
            (v::SINK_MYSQL_PORT.name, self.sink.mysql_port.to_string()),
            (v::SINK_DATABASE.name, self.sink.database.clone()),
            (v::SINK_USER.name, self.sink.user.clone()),
            (v::SINK_PASSWORD.name, self.sink.password.to_string()),
            (
                v::SINK_TABLE_MAP.name,
                if map.is_empty() {
                    "unset".to_owned()
                } else {
                    map.join(", ")
                },
            ),
            (v::FLUSH_SIZE.name, self.flush_size.to_string()),
            (
                v::FLUSH_INTERVAL_MS.name,
                self.flush_interval.as_millis().to_string(),
            ),
            (
                v::MEMORY_BUDGET_MB.name,
                (self.memory_budget_bytes / (1024 * 1024)).to_string(),
            ),
            (
                v::CHECKPOINT_URL.name,
                match &self.checkpoint_url {
                    Some(u) => u.to_string(),
                    None => format!("{} (same as SOURCE_URL)", self.source_url),
                },
            ),
            (v::CHECKPOINT_SCHEMA.name, self.checkpoint_schema.clone()),
            (
                v::SPILL_URL.name,
                self.spill_url
                    .as_ref()
                    .map_or_else(|| "unset (no spill)".to_owned(), ToString::to_string),
            ),
            (
                v::DELETE_MODE.name,
                match self.delete_mode {
                    DeleteMode::Soft => "soft",
                    DeleteMode::Hard => "hard",
                }
                .to_owned(),
            ),
            (
                v::TRUNCATE_MODE.name,
                match self.truncate_mode {
                    TruncateMode::Apply => "apply",
                    TruncateMode::Soft => "soft",
                    TruncateMode::Fail => "fail",
                }
                .to_owned(),
            ),
            (v::LABEL_PREFIX.name, self.label_prefix.clone()),
            (
                v::LOAD_TIMEOUT_S.name,
                self.load_timeout.as_secs().to_string(),
            ),
        ]
    }
}

impl Loaded {
    /// The effective configuration as a report for people, secrets redacted.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let n = self.config.jobs.len();
        let _ = writeln!(
            out,
            "Configuration is valid: {n} job{}.",
            if n == 1 { "" } else { "s" }
        );
        let section = |out: &mut String,
                       title: &str,
                       rows: Vec<(&'static str, String)>,
                       origins: &BTreeMap<&'static str, Origin>| {
            let _ = writeln!(out, "\n{title}");
            let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
            for (k, v) in rows {
                let origin = origins.get(k).cloned().unwrap_or(Origin::Default);
                let _ = writeln!(out, "  {k:<width$}  {v}  ({origin})");
            }
        };
        section(
            &mut out,
            "Worker",
            self.config.worker.describe(),
            &self.worker_origins,
        );
        let empty = BTreeMap::new();
        for (i, job) in self.config.jobs.iter().enumerate() {
            section(
                &mut out,
                &format!("Job {}", job.id),
                job.describe(),
                self.job_origins.get(i).unwrap_or(&empty),
            );
        }
        if !self.warnings.is_empty() {
            let _ = writeln!(out, "\nWarnings");
            for w in &self.warnings {
                let _ = writeln!(out, "  - {w}");
            }
        }
        out
    }
}
