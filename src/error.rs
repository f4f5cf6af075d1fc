//! What every layer's errors have in common: a [`ErrorKind`] that the code making the
//! error decides (it knows whether waiting can help), the back-off used for
//! retrying transient errors, and the last-error note shown in status.
//!
//! Each layer keeps its own typed error (`SourceError`, `StateStoreError`,
//! `SinkError`, `PipelineError`, `SetupError`, `LeaseError`, …) with a `kind()`;
//! the engine maps kinds to what it does — restart, re-check, fail or stop — in one
//! place (`engine::policy`). Messages name what is wrong and what to do; they never
//! carry secrets or row values.

use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

/// What can be done about an error.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// Waiting and trying again can get past it without anyone acting: a connection
    /// lost, a server restarting, a slot still held by a walsender that is exiting,
    /// a sink that is busy.
    Transient,
    /// Retrying cannot help until someone changes data or configuration: bad data,
    /// an invalidated slot, a rejected load. The pipeline stops (FAILED).
    Definite,
    /// Setup found something an operator must fix (a missing table, privileges, a
    /// wrong plugin). The pipeline reports FAILED and re-checks periodically, so
    /// fixing the cause is enough.
    Setup,
    /// This worker lost the job (its lease is overdue or a newer lease epoch owns
    /// the checkpoint): stop at once and write nothing.
    Fenced,
}

/// Exponential back-off with jitter for retries inside one layer (a checkpoint
/// write, a Stream Load): 200 ms doubling to 30 s, each wait 50–100 % of that.
pub fn backoff(attempt: u32) -> Duration {
    let base = 200u64
        .saturating_mul(1u64 << attempt.saturating_sub(1).min(8))
        .min(30_000);
    let jitter = rand::random_range(0.5..=1.0);
    Duration::from_millis((base as f64 * jitter) as u64)
}

/// A recorded error with the time it happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedError {
    /// Message (never contains secrets or row values).
    pub message: String,
    /// When it was recorded.
    pub at: SystemTime,
}

/// The last error one component recorded, shown in status until cleared.
#[derive(Debug, Default)]
pub struct LastError(Mutex<Option<(Instant, RecordedError)>>);

impl LastError {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(Instant, RecordedError)>> {
        // A panic while holding this small lock cannot leave a half-written message
        // that matters, so recover the guard.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records `message` as the newest error.
    pub fn record(&self, message: impl Into<String>) {
        *self.lock() = Some((
            Instant::now(),
            RecordedError {
                message: message.into(),
                at: SystemTime::now(),
            },
        ));
    }

    /// Forgets it.
    pub fn clear(&self) {
        *self.lock() = None;
    }

    /// The recorded error, if any.
    pub fn get(&self) -> Option<RecordedError> {
        self.lock().as_ref().map(|(_, e)| e.clone())
    }

    /// The more recent of the errors recorded in `self` and `other`.
    pub fn newest(&self, other: &LastError) -> Option<RecordedError> {
        let a = self.lock().clone();
        let b = other.lock().clone();
        match (a, b) {
            (Some(a), Some(b)) => Some(if b.0 > a.0 { b.1 } else { a.1 }),
            (a, b) => a.or(b).map(|(_, e)| e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        assert!(backoff(1) <= Duration::from_millis(200));
        assert!(backoff(1) >= Duration::from_millis(100));
        assert!(backoff(30) <= Duration::from_secs(30));
        assert!(backoff(30) >= Duration::from_secs(15));
    }

    #[test]
    fn newest_of_two_error_notes() {
        let (a, b) = (LastError::default(), LastError::default());
        assert_eq!(a.newest(&b), None);
        a.record("first");
        assert_eq!(a.newest(&b).map(|e| e.message), Some("first".into()));
        std::thread::sleep(Duration::from_millis(2));
        b.record("second");
        assert_eq!(a.newest(&b).map(|e| e.message), Some("second".into()));
        assert_eq!(b.newest(&a).map(|e| e.message), Some("second".into()));
        b.clear();
        assert_eq!(a.newest(&b).map(|e| e.message), Some("first".into()));
    }
}
