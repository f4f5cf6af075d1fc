//! Nothing lost, nothing doubled: `dbmazz run` as a real process under random and
//! scripted crashes and faults (see `dbmazz_testkit::chaos`).
//!
//! The suite runs `chaos_random_faults` with 10 iterations; `make chaos` runs it
//! with `DBMAZZ_CHAOS_ITERATIONS=100` (and the long, ignored scenarios). A failing
//! run prints its seed; `DBMAZZ_CHAOS_SEED=<seed>` replays the same fault sequence.
//!
//! - [`random`]: random faults under load, one seed per run;
//! - [`scripted`]: one fault at a chosen point (a fail point in the binary, a
//!   PostgreSQL shutdown, the sink down, an emulator fault), then the same oracle.

mod random;
mod scripted;
