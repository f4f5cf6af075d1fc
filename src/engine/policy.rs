//! What the engine does about an error, in one place: the error's [`ErrorKind`]
//! (decided by the layer that made it) maps to one [`Action`].
//!
//! | kind | action | stage |
//! |---|---|---|
//! | transient | restart the pipeline (setup again) after an exponential back-off with jitter | SETUP/CDC, error shown |
//! | setup | re-check after [`SETUP_RECHECK`], the process and control plane stay up | FAILED until fixed |
//! | definite | stop; the job needs an operator | FAILED |
//! | fenced | stop at once, write nothing (another worker owns the job) | STOPPED |
//!
//! Layers retry on their own only inside one operation (a Stream Load re-sent with
//! the same label, a replication connection resumed from the durable LSN, a
//! checkpoint write); what they give up on comes here.

use std::time::Duration;

use crate::error::ErrorKind;

/// What the engine does after an error.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Restart the pipeline after a back-off.
    Restart,
    /// Report FAILED and run setup again after the given wait.
    Recheck(Duration),
    /// Stop as FAILED.
    Fail,
    /// Stop without writing anything more (the lease is gone).
    Stop,
}

/// How long a setup problem waits before setup runs again.
pub const SETUP_RECHECK: Duration = Duration::from_secs(30);

/// The action for an error of `kind`.
pub fn action(kind: ErrorKind) -> Action {
    match kind {
        ErrorKind::Transient => Action::Restart,
        ErrorKind::Setup => Action::Recheck(SETUP_RECHECK),
        ErrorKind::Definite => Action::Fail,
        ErrorKind::Fenced => Action::Stop,
    }
}

/// Exponential back-off with jitter for engine restarts: 1 s doubling to 30 s.
fn restart_backoff(attempt: u32) -> Duration {
    let base = 1000u64.saturating_mul(1 << attempt.min(5)).min(30_000);
    Duration::from_millis((base as f64 * rand::random_range(0.5..=1.0)) as u64)
}

/// A pipeline that streamed at least this long before a transient error starts its
/// back-off from the first step again: that error is a new one, not the previous one
/// repeating.
pub const HEALTHY_RUN: Duration = Duration::from_secs(30);

/// Counts consecutive transient failures and says how long to wait before the next
/// attempt. Without the reset, every recovery late in a process's life (after a
/// handful of database restarts over days) waited the full 30 s.
#[derive(Debug, Default)]
pub struct Restarts {
    attempt: u32,
}

impl Restarts {
    /// The wait after a transient failure of an attempt that ran for `ran_for` and
    /// did (`streamed`) or did not reach streaming; also the attempt number.
    pub fn next_wait(&mut self, streamed: bool, ran_for: Duration) -> (u32, Duration) {
        if streamed && ran_for >= HEALTHY_RUN {
            self.attempt = 0;
        }
        self.attempt += 1;
        (self.attempt, restart_backoff(self.attempt))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_one_action() {
        assert_eq!(action(ErrorKind::Transient), Action::Restart);
        assert_eq!(action(ErrorKind::Setup), Action::Recheck(SETUP_RECHECK));
        assert_eq!(action(ErrorKind::Definite), Action::Fail);
        assert_eq!(action(ErrorKind::Fenced), Action::Stop);
    }

    #[test]
    fn back_off_grows_while_failures_repeat_and_restarts_after_a_healthy_run() {
        let mut r = Restarts::default();
        let quick = Duration::from_secs(1);
        let (a, first) = r.next_wait(false, quick);
        assert_eq!(a, 1);
        assert!(first <= Duration::from_secs(2));
        for _ in 0..6 {
            r.next_wait(true, quick);
        }
        let (a, late) = r.next_wait(false, Duration::from_secs(600));
        assert_eq!(a, 8, "a failure before streaming is not a healthy run");
        assert!(late >= Duration::from_secs(15));
        let (a, again) = r.next_wait(true, HEALTHY_RUN);
        assert_eq!(a, 1, "streaming for a while resets the count");
        assert!(again <= Duration::from_secs(2));
    }
}
