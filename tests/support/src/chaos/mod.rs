//! The chaos harness: real `dbmazz` processes against a throw-away PostgreSQL, the
//! StarRocks emulator and MariaDB, a workload whose every version is known, faults
//! injected at random (or scripted) points, and an oracle that proves nothing was
//! lost, nothing differs and no row ever moved to an older version.
//!
//! ```text
//!  Writer (workload.rs) ──SQL──▶ PostgreSQL ──WAL──▶ dbmazz worker(s) (workers.rs)
//!        │ per-key seq                │ slot + checkpoints          │ Stream Load
//!        │                            ▼                             ▼
//!        │                  ConfirmWatch (verify.rs)     emulator ──▶ MariaDB
//!        │                  slot ≤ checkpoint, sampled     │  history triggers (verify.rs)
//!        └───────────── final catch-up: source = sink row by row; seq/version never back
//!
//!  faults.rs: kill -9, SIGTERM restart, SIGSTOP/SIGCONT, PostgreSQL fast/immediate
//!  restart, emulator restart, sink down for a while, every emulator fault kind.
//! ```
//!
//! The parts are independent of how many dbmazz processes run: [`crate::Stack`] owns
//! the services, [`workload::Workload`] the tables and the writer, [`verify`] the
//! oracle, [`workers::Workers`] any number of processes built by a caller-supplied
//! spawn function, and [`run::run`] ties them together for N iterations and returns a
//! [`run::Summary`]. Every random choice comes from one seed ([`faults::Rng`]), printed
//! in the summary, so a failing run can be replayed.

pub mod faults;
pub mod run;
pub mod verify;
pub mod workers;
pub mod workload;

pub use faults::{EmuFault, Fault, FaultMenu, Rng};
pub use run::{run, ChaosConfig, Summary};
pub use verify::{ConfirmWatch, History, TableDiff};
pub use workers::Workers;
pub use workload::{Workload, WriterStats};
