//! Handles through which the control plane steers running pipelines.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::status::SharedState;
use crate::lease::Fence;

/// Steering for one pipeline.
#[derive(Clone, Debug)]
pub struct PipelineHandle {
    /// What the pipeline publishes.
    pub state: Arc<SharedState>,
    /// Cancel to drain: stop reading, load and checkpoint what was read, stop.
    pub drain: CancellationToken,
    /// Cancel to stop at once (nothing unconfirmed is lost: it is replayed later).
    pub abort: CancellationToken,
    /// The lease this pipeline runs under, if any: checked before every checkpoint
    /// write, so a worker whose lease is overdue never moves the checkpoint.
    pub fence: Option<Arc<Fence>>,
    pause: watch::Sender<bool>,
}

impl PipelineHandle {
    /// A handle for a new pipeline.
    pub fn new(state: Arc<SharedState>) -> Self {
        PipelineHandle {
            state,
            drain: CancellationToken::new(),
            abort: CancellationToken::new(),
            fence: None,
            pause: watch::channel(false).0,
        }
    }

    /// The same handle, running under the lease `fence`.
    pub fn with_fence(mut self, fence: Arc<Fence>) -> Self {
        self.fence = Some(fence);
        self
    }

    /// False once the lease this pipeline runs under is lost or overdue (always true
    /// without leases).
    pub fn lease_valid(&self) -> bool {
        self.fence.as_ref().is_none_or(|f| f.is_valid())
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
