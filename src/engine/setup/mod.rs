//! Setup (stage SETUP): make PostgreSQL, the checkpoint store and the sink ready
//! for one pipeline. Idempotent; runs on every start ("recovery mode"), so a
//! restart after any crash re-verifies everything before streaming. The sink's
//! side is the sink's own [`Sink::prepare`].

pub mod error;
pub mod postgres;

pub use error::SetupError;

use super::EngineSettings;
use crate::pipeline::schema_cache::{TableSchema, TableSpec};
use crate::sink::{Sink, SinkConnector};
use crate::source::message::ReplicaIdentity;
use crate::state_store::{Checkpoint, StateStore};
use postgres::PgSetupRequest;

/// What setup hands to the CDC stage.
#[derive(Debug)]
pub struct Prepared {
    /// Tables with their keys.
    pub specs: Vec<TableSpec>,
    /// Schemas as the catalog described them (seed for change detection).
    pub schemas: Vec<TableSchema>,
    /// The checkpoint to resume from (written at first start).
    pub checkpoint: Checkpoint,
}

fn endpoint_of(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => format!(
            "{}:{}{}",
            u.host_str().unwrap_or("?"),
            u.port().unwrap_or(5432),
            u.path()
        ),
        Err(_) => "(unparsable SOURCE_URL)".into(),
    }
}

/// Runs setup against PostgreSQL, the checkpoint store and the sink.
pub async fn run<C: SinkConnector>(
    settings: &EngineSettings<C>,
    store: &StateStore,
    sink: &C::Sink,
) -> Result<Prepared, SetupError> {
    let client = crate::postgres::connect(&settings.source_url)
        .await
        .map_err(|e| SetupError::PgConnect {
            endpoint: endpoint_of(settings.source_url.expose()),
            detail: e.to_string(),
        })?;
    let checkpoint = store
        .load(&settings.job_id)
        .await
        .map_err(|e| SetupError::Checkpoint {
            detail: e.to_string(),
        })?;
    if let Some(cp) = &checkpoint {
        if cp.slot_name != settings.slot {
            return Err(SetupError::Checkpoint {
                detail: format!(
                    "job '{}' has a checkpoint for slot '{}' but SOURCE_SLOT_NAME is '{}'; a \
                     different slot has a different history. Use another DBMAZZ_JOB_ID for the \
                     new slot, or restore SOURCE_SLOT_NAME",
                    settings.job_id, cp.slot_name, settings.slot
                ),
            });
        }
    }
    let pg = postgres::setup(
        &client,
        &PgSetupRequest {
            tables: &settings.tables,
            slot: &settings.slot,
            publication: &settings.publication,
            replica_identity_full: settings.replica_identity_full,
            job: &settings.job_id,
            checkpoint: checkpoint.as_ref(),
        },
    )
    .await?;
    fail::fail_point!("setup::after_slot", |a| Err(SetupError::Checkpoint {
        detail: crate::failpoint::hit("setup::after_slot", a),
    }));
    let checkpoint = match checkpoint {
        Some(cp) => cp,
        None => {
            // First start: record where the slot begins so that a slot that later
            // disappears is noticed (rule 2) instead of silently recreated.
            let written = store
                .commit(
                    &settings.job_id,
                    &settings.slot,
                    pg.slot_confirmed,
                    settings.epoch,
                )
                .await
                .map_err(|e| SetupError::Checkpoint {
                    detail: e.to_string(),
                })?;
            tracing::info!(job = %settings.job_id, lsn = %written.lsn(), "initial checkpoint written");
            Checkpoint {
                job_id: settings.job_id.clone(),
                slot_name: settings.slot.clone(),
                lsn: written.lsn(),
                epoch: settings.epoch,
            }
        }
    };
    sink.prepare(&pg.tables).await?;
    let specs: Vec<TableSpec> = pg.tables.iter().map(|t| t.spec.clone()).collect();
    let schemas = pg
        .tables
        .iter()
        .map(|t| {
            let key = t
                .spec
                .key_columns
                .iter()
                .filter_map(|k| t.columns.iter().position(|c| &c.name == k))
                .collect();
            TableSchema {
                rel_id: 0,
                spec: std::sync::Arc::new(t.spec.clone()),
                columns: t.columns.clone(),
                key,
                replica_identity: ReplicaIdentity::Full,
                generation: 0,
            }
        })
        .collect();
    Ok(Prepared {
        specs,
        schemas,
        checkpoint,
    })
}
