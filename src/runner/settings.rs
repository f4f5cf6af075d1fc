//! Configuration → engine settings.

use std::time::Duration;

use crate::config::{self, JobConfig, Secret};
use crate::engine::EngineSettings;
use crate::pipeline::BatchLimits;
use crate::sink::starrocks::catalog::CatalogSettings;
use crate::sink::starrocks::StarRocksSettings;

/// The engine settings of one configured job (StarRocks is the sink).
pub fn engine_settings(job: &JobConfig) -> EngineSettings<StarRocksSettings> {
    let sink = &job.sink;
    EngineSettings {
        job_id: job.id.clone(),
        source_url: Secret::from(&job.source_url),
        tables: job
            .tables
            .iter()
            .map(|t| {
                (
                    t.schema.clone(),
                    t.name.clone(),
                    sink.target_table(t).to_owned(),
                )
            })
            .collect(),
        slot: job.slot_name.clone(),
        publication: job.publication_name.clone(),
        replica_identity_full: job.replica_identity == config::ReplicaIdentityMode::Full,
        checkpoint_url: Secret::from(job.effective_checkpoint_url()),
        checkpoint_schema: job.checkpoint_schema.clone(),
        epoch: 0,
        limits: BatchLimits {
            max_changes: job.flush_size,
            max_bytes: usize::try_from(job.memory_budget_bytes / 2).unwrap_or(usize::MAX),
            max_age: job.flush_interval,
        },
        sink: StarRocksSettings {
            fe_url: sink.url.as_str().trim_end_matches('/').to_owned(),
            database: sink.database.clone(),
            user: sink.user.clone(),
            password: sink.password.clone(),
            label_prefix: job.label_prefix.clone(),
            job_id: job.id.clone(),
            delete_mode: job.delete_mode,
            truncate: job.truncate_mode,
            load_timeout: job.load_timeout,
            catalog: CatalogSettings {
                host: sink.mysql_host.clone(),
                port: sink.mysql_port,
                user: sink.user.clone(),
                password: sink.password.clone(),
                database: sink.database.clone(),
            },
        },
        progress_interval: Duration::from_secs(5),
    }
}
