//! Change semantics end to end (PostgreSQL → dbmazz engine → StarRocks emulator →
//! MariaDB), one module per section of docs/change-semantics.md. Each test runs its
//! scenarios side by side on one stack ([`scenario`]) and ends with the sink table
//! compared to what it must be.
//!
//! `make semantics` runs this target; `make semantics-long` runs [`random`] with
//! thousands of transactions per seed.

mod bad_data;
mod deletes;
mod keys;
mod random;
mod scenario;
mod schema;
mod toast;
mod transactions;
mod truncate;
mod types;
