//! One attempt of the CDC stage: connect the checkpoint store and the sink, run
//! setup, start the replication stream from the checkpoint, then stream
//! ([`super::flow`]) until drained, aborted or an error ends it.

use std::sync::Arc;

use super::flow::{self, FlowSettings};
use super::status::Stage;
use super::{setup, EngineError, EngineSettings, PipelineHandle};
use crate::pipeline::schema_cache::SchemaCache;
use crate::pipeline::Batcher;
use crate::sink::SinkConnector;
use crate::source::{SourceConfig, SourceStream};
use crate::state_store::{StateStore, StateStoreError};

/// Runs setup and streaming once: `Ok` when drained or aborted on request.
pub async fn run_once<C: SinkConnector>(
    settings: &EngineSettings<C>,
    handle: &PipelineHandle,
) -> Result<(), EngineError> {
    let state = &handle.state;
    let store = StateStore::connect(&settings.checkpoint_url, &settings.checkpoint_schema)
        .await
        .map_err(|e| {
            let detail = e.to_string();
            // Only an unreachable database may heal by itself; a refused statement
            // (privileges, a read-only server) needs an operator.
            match e {
                StateStoreError::Connect(_) => setup::SetupError::CheckpointUnreachable { detail },
                _ => setup::SetupError::Checkpoint { detail },
            }
        })?;
    let sink_cancel = handle.abort.child_token();
    let sink = settings
        .sink
        .connect(state.sink.clone(), sink_cancel.clone())
        .await
        .map_err(setup::SetupError::Sink)?;
    fail::fail_point!("setup::before", |a| Err(EngineError::FaultInjected(
        crate::failpoint::hit("setup::before", a)
    )));
    let prepared = setup::run(settings, &store, &sink).await?;
    let resume = store.resume_point(&prepared.checkpoint);
    state.checkpoint_lsn.raise(resume.lsn());
    state.flushed_lsn.raise(resume.lsn());

    let mut cfg = SourceConfig::new(
        settings.source_url.clone(),
        &settings.slot,
        &settings.publication,
    );
    cfg.start_lsn = Some(resume);
    // A chunk holds up to a few thousand decoded messages (~0.5 KiB each); a few
    // chunks of read-ahead keep the reader busy without holding much memory.
    cfg.channel_capacity = 4;
    let mut source = SourceStream::start(cfg).await?;
    state
        .pipeline
        .server_wal_lsn
        .raise(source.server_info().xlogpos);
    state.clear_error();
    state.set_stage(Stage::Cdc);

    let mut cache = SchemaCache::new(prepared.specs);
    for s in prepared.schemas {
        cache.seed(s);
    }
    let batcher = Batcher::new(
        cache,
        settings.limits.clone(),
        settings.sink.truncate_mode(),
        prepared.checkpoint.lsn,
        state.pipeline.clone(),
    );
    let result = flow::run(
        &mut source,
        batcher,
        Arc::new(sink),
        store,
        FlowSettings {
            job: settings.job_id.clone(),
            slot: settings.slot.clone(),
            epoch: settings.epoch,
            checkpoint: prepared.checkpoint.lsn,
            max_age: settings.limits.max_age,
            progress_interval: settings.progress_interval,
        },
        handle,
        &sink_cancel,
    )
    .await;
    source.shutdown().await;
    result
}
