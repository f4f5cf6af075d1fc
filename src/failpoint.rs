//! Fault points for the crash tests (the `fail` crate), compiled in only with the
//! `failpoints` feature, which the test build enables and release builds never do.
//!
//! | point                              | where                                                        |
//! |------------------------------------|--------------------------------------------------------------|
//! | `setup::before`                    | sink and checkpoint store connected, setup not started       |
//! | `setup::after_slot`                | slot created or verified, initial checkpoint not yet written |
//! | `sink::between_loads`              | mid-batch: a load of the batch is applied, the next is not   |
//! | `loader::after_ack`                | the sink acknowledged the batch, no checkpoint written       |
//! | `loader::after_checkpoint`         | checkpoint written, nothing confirmed to the server          |
//! | `replication::before_status_update`| a newly durable LSN is about to be sent as flush LSN         |
//!
//! A process under test configures them through the `FAILPOINTS` environment variable
//! (`name=action;…`, read at start-up by [`setup`]). Besides the `fail` crate's own
//! actions, `return(crash)` kills the process on the spot with SIGKILL — exactly what
//! a power cut at that line looks like to PostgreSQL and the sink — and any other
//! `return` makes the pipeline fail with a definite error naming the point.

/// Applies `FAILPOINTS` from the environment; keep the guard for the process lifetime.
#[cfg(feature = "failpoints")]
pub fn setup() -> Option<fail::FailScenario<'static>> {
    Some(fail::FailScenario::setup())
}

/// Without the `failpoints` feature there is nothing to set up.
#[cfg(not(feature = "failpoints"))]
pub fn setup() -> Option<()> {
    None
}

/// Called by a fault point configured with `return(arg)`: `crash` kills the process
/// with SIGKILL (no drain, no destructors, no final status update); anything else
/// returns the message the pipeline fails with.
pub fn hit(point: &str, arg: Option<String>) -> String {
    if arg.as_deref() == Some("crash") {
        eprintln!("fail point {point}: crash (SIGKILL)");
        // SAFETY: kill(2) on our own pid has no memory-safety preconditions.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
        // SIGKILL cannot be caught; this line is never reached in practice.
        std::process::abort();
    }
    format!("fail point {point}")
}
