//! Handles through which the control plane steers running pipelines.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::grpc::state::SharedState;

/// Steering for one pipeline.
#[derive(Clone, Debug)]
pub struct PipelineHandle {
    /// What the pipeline publishes.
    pub state: Arc<SharedState>,
    /// Cancel to drain: stop reading, load and checkpoint what was read, stop.
    pub drain: CancellationToken,
    /// Cancel to stop at once (nothing unconfirmed is lost: it is replayed later).
    pub abort: CancellationToken,
    pause: watch::Sender<bool>,
}

impl PipelineHandle {
    /// A handle for a new pipeline.
    pub fn new(state: Arc<SharedState>) -> Self {
        PipelineHandle {
            state,
            drain: CancellationToken::new(),
            abort: CancellationToken::new(),
            pause: watch::channel(false).0,
        }
    }

    /// Pauses (true) or resumes (false) reading and loading.
    pub fn set_paused(&self, paused: bool) {
        self.pause.send_replace(paused);
    }

    /// True while paused.
    pub fn is_paused(&self) -> bool {
        *self.pause.borrow()
    }

    /// A receiver the engine watches.
    pub fn pause_watch(&self) -> watch::Receiver<bool> {
        self.pause.subscribe()
    }
}

/// The pipelines of this process, by job id.
#[derive(Clone, Debug, Default)]
pub struct Pipelines {
    inner: Arc<RwLock<BTreeMap<String, PipelineHandle>>>,
}

impl Pipelines {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces a pipeline.
    pub fn insert(&self, handle: PipelineHandle) {
        if let Ok(mut m) = self.inner.write() {
            m.insert(handle.state.job_id.clone(), handle);
        }
    }

    /// Removes a pipeline.
    pub fn remove(&self, job: &str) -> Option<PipelineHandle> {
        self.inner.write().ok().and_then(|mut m| m.remove(job))
    }

    /// The pipeline of `job`.
    pub fn get(&self, job: &str) -> Option<PipelineHandle> {
        self.inner.read().ok().and_then(|m| m.get(job).cloned())
    }

    /// Every pipeline, ordered by job id.
    pub fn all(&self) -> Vec<PipelineHandle> {
        self.inner
            .read()
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }
}
